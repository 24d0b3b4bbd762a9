"""The KFP half of `deep-storage`: compile, run-local, submit, schedule, backfill.

It extends the library's command group (deep_storage.cli), so the library itself never imports
kfp and data still flows one way: CLI -> pipelines/components -> library -> lake.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deep_storage.cli import cli, lake_option, until_option
from deep_storage.cli import main as _main
from deep_storage.config import resolve_lake
from deep_storage.dates import DayRange
from deep_storage.errors import LakeStateError


@cli.command("compile")
@click.option("--check", is_flag=True, help="Fail when compiled/ differs from a fresh compile.")
def compile_cmd(check: bool) -> None:
    """Write compiled/ (the pipeline and each component as KFP YAML)."""
    from pipelines import compile as compiling

    if check:
        problems = compiling.stale()
        if problems:
            raise LakeStateError(
                f"compiled/ is stale: {'; '.join(problems)[:400]}: run `make compile` and commit"
            )
        click.echo("compiled/ is up to date")
        return
    for path in compiling.compile_all():
        click.echo(f"wrote {path.relative_to(compiling.REPO)}")


@cli.command("run-local")
@click.option("--date", "date", required=True, metavar="YYYY-MM-DD", help="Run date.")
@until_option
@lake_option
@click.option("--lookback-days", type=click.IntRange(0, 60), default=7, show_default=True)
@click.option(
    "--pipeline-root",
    type=click.Path(path_type=Path),
    default=Path(".cache/kfp-local"),
    show_default=True,
    help="Where kfp.local keeps each task's outputs.",
)
def run_local(date, until, lake, lookback_days, pipeline_root) -> None:
    """Run the whole pipeline here through kfp.local (SubprocessRunner, no Docker)."""
    from pipelines import local

    days = DayRange.parse(date, until)
    result = local.run(
        days.first,
        days.last if until else None,
        resolve_lake(lake),
        pipeline_root.resolve(),
        lookback_days,
    )
    click.echo(f"pipeline run finished: {result.root}")
    for name, path in result.outputs.items():
        click.echo(f"  {name}: {path}")
    for task, metrics in result.metrics.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in metrics.items())
        click.echo(f"  {task} metrics: {shown}")


def main(argv: list[str] | None = None) -> int:
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
