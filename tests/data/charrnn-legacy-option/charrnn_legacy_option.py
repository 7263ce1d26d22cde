"""A plugin as charrnn 0.5 documented them: ``add_option`` called with click.Option's arguments.

It writes the update number to ``marks.txt`` in the run directory every ``--mark-every``
updates, so a test can see that the option reached the callback.
"""
import os

import click
from charrnn import hookimpl
from charrnn.callbacks import Callback


class Marks(Callback):
    name = "legacy_marks"

    def __init__(self, every):
        self.every = every

    @classmethod
    def from_options(cls, options):
        return cls(int(options["mark_every"]))

    def on_update_end(self, trainer):
        if trainer.run_dir and trainer.update % self.every == 0:
            with open(os.path.join(trainer.run_dir, "marks.txt"), "a", encoding="utf-8") as fh:
                fh.write(f"{trainer.update}\n")


@hookimpl
def register_callbacks(register):
    register(Marks)


@hookimpl
def add_run_options(add_option):
    add_option("--mark-every", type=click.IntRange(min=1), default=10, show_default=True,
               help="Updates between marks in marks.txt.")
