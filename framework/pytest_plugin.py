"""charrnn's pytest plugin, loaded through the ``pytest11`` entry point.

It only asks pytest to rewrite the assertions of :mod:`charrnn.testing`, the backend conformance
suite, so that a failing check there reports the values it compared. It imports nothing heavy.
"""
import pytest

pytest.register_assert_rewrite("charrnn.testing")
