"""A plugin whose ``report_sections`` raises, as a buggy third-party one might."""
from charrnn import hookimpl


@hookimpl
def report_sections(trainer):
    raise RuntimeError("this section has a bug")
