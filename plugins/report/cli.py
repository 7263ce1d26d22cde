"""``charrnn report``: a run's report and plot written again from its latest checkpoint."""
from __future__ import annotations

import os

import click

from . import REPORT_FILE


def register(cli) -> None:
    @cli.command("report")
    @click.argument("run_dir", metavar="RUN_DIR")
    @click.option("--quiet", is_flag=True,
                  help="Print only the path of report.md, for scripts.")
    def report_cmd(run_dir: str, quiet: bool) -> None:
        """Write RUN_DIR's report.md and loss.png again from its latest checkpoint, without
        training: for a run stopped before it wrote them (killed, out of disk), or to render
        an old run with this version."""
        from charrnn.resume import write_end_files

        trainer = write_end_files(run_dir, quiet=quiet)
        if quiet:
            click.echo(os.path.join(run_dir, REPORT_FILE))
        else:
            click.echo(f"run {run_dir} at update {trainer.update:,}: report and plot written")
