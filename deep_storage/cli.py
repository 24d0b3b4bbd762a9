"""`deep-storage`: every step, the same way on a laptop, in CI and inside the image.

Errors become one line on stderr and an exit code (core/errors.py); `--debug` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from deep_storage import __version__, steps
from deep_storage.core import defaults
from deep_storage.core.config import redact, resolve_lake
from deep_storage.core.errors import DeepStorageError

log = logging.getLogger("deep_storage")


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "botocore", "urllib3", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# How the CLI names the steps' inputs, in their errors.
FLAGS = {
    "run_date": "--date",
    "until_date": "--until",
    "first_day": "--date",
    "last_day": "--until",
    "as_of": "--as-of",
    "from_day": "--from",
    "to_day": "--to",
    "test_from": "--test-from",
}


date_option = click.option(
    "--date", "date", metavar="YYYY-MM-DD", help="First UTC day (window [D 00:00Z, D+1 00:00Z))."
)
until_option = click.option(
    "--until", "until", metavar="YYYY-MM-DD", help="Last UTC day, inclusive (default: --date)."
)
lake_option = click.option(
    "--lake",
    "lake",
    metavar="URI",
    help="s3a://BUCKET[/prefix] or file:///abs/path (default s3a://$S3_BUCKET).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deep-storage")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Stop-events lake: bronze ingest, silver transform, gold features and quality gates."""
    ctx.obj = {"debug": debug}
    _setup_logging(debug)


@cli.command()
@date_option
@until_option
@lake_option
@click.option(
    "--seal-margin",
    type=click.IntRange(min=0),
    default=defaults.SEAL_MARGIN_S,
    show_default=True,
    metavar="SECONDS",
    help="Clock-skew margin before a day can seal.",
)
@click.option(
    "--read-partitions",
    type=click.IntRange(1, 64),
    default=defaults.READ_PARTITIONS,
    show_default=True,
    help="Range reads of a day at a time (its hourly slices; Spark JDBC: slices and files).",
)
@click.option(
    "--read-path",
    type=click.Choice(["arrow", "jdbc"]),
    default=None,
    help="arrow: binary COPY to Parquet without Spark (default); jdbc: Spark JDBC. "
    "Env DEEP_STORAGE_READ_PATH.",
)
@click.option(
    "--max-days",
    type=click.IntRange(1, 366),
    default=defaults.MAX_DAYS,
    show_default=True,
    help="At most this many days per run (without --date); the next run continues.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def bronze(date, until, lake, seal_margin, read_partitions, read_path, max_days, as_json) -> None:
    """Ingest stop_events into bronze/events/date=D/.

    Without --date: every day missing or unsealed since the oldest ingested one (gaps
    included) up to today; on an empty lake, from the source's oldest event within 90 days.
    """
    result = steps.bronze(
        lake or "",
        date or "",
        until or "",
        seal_margin_s=seal_margin,
        max_days=max_days,
        read_partitions=read_partitions,
        read_path=read_path or "",
        catch_up=date is None,
        names=FLAGS,
    ).result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for d in result.days:
            state = "sealed" if d.sealed else "unsealed"
            click.echo(f"bronze {d.date}: {d.rows} rows, {state}")
        if not result.days:
            click.echo("bronze: nothing to ingest")
    for stuck in sorted({w for d in result.days for w in d.stuck_writers}):
        click.echo(f"warning: stuck writer at the source keeps days unsealed: {stuck}", err=True)
    if result.left:
        click.echo(
            f"note: {len(result.left)} more days are due ({result.left[0]}..{result.left[-1]}); "
            "run again to continue",
            err=True,
        )


@cli.command()
@click.option("--date", "date", required=True, metavar="YYYY-MM-DD", help="First UTC day.")
@until_option
@lake_option
@click.option(
    "--lookback-days",
    type=click.IntRange(0, 60),
    default=defaults.LOOKBACK_DAYS,
    show_default=True,
    help="How many days an execution may span.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def silver(date, until, lake, lookback_days, as_json) -> None:
    """Rebuild silver/stop_executions for the executions of --date .. --until."""
    result = steps.silver(lake or "", date, until or "", lookback_days, names=FLAGS).result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items()))
    click.echo(
        f"silver {result.days}: {result.executions} executions ({statuses}); "
        f"{result.partitions_written} partitions written"
        + (f" (on {result.engine})" if result.engine else "")
    )
    if result.missing_lookback_days:
        click.echo(
            "warning: look-back bronze days never ingested (read as empty): "
            + ", ".join(result.missing_lookback_days),
            err=True,
        )
    if result.unsealed_days:
        click.echo(
            "note: unsealed bronze days (silver will change when they do): "
            + ", ".join(result.unsealed_days),
            err=True,
        )


@cli.command()
@date_option
@until_option
@lake_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def gold(date, until, lake, as_json) -> None:
    """Build gold/stop_execution_features for --date .. --until (default: every day whose silver
    changed since gold last built it)."""
    result = steps.gold(lake or "", date or "", until or "", names=FLAGS).result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.skipped:
        click.echo("gold: no day's silver inputs changed since gold built it: nothing to build")
        return
    days = result.dates_committed
    click.echo(
        f"gold {days[0]}..{days[-1]}: {result.rows} executions' features over {len(days)} days "
        f"(from silver v{result.silver_version})"
    )


@cli.command("training-set")
@click.option(
    "--name",
    default=defaults.TRAINING_SET_NAME,
    show_default=True,
    help="The set: stop_outcome or slippage_prediction (deep_storage/tables/specs/).",
)
@click.option(
    "--version",
    "version",
    metavar="X.Y.Z",
    help="The version (default: the next patch version, or the newest when its rows are the same).",
)
@click.option(
    "--from", "from_day", metavar="YYYY-MM-DD", help="First UTC day (default: 28 days to --to)."
)
@click.option(
    "--to", "to_day", metavar="YYYY-MM-DD", help="Last UTC day (default: before gold's newest)."
)
@click.option(
    "--test-from",
    "test_from",
    metavar="YYYY-MM-DD",
    help="First day of the test split (default: the first day of the range's last fifth).",
)
@lake_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the outcome and the record as JSON on stdout."
)
def training_set(name, version, from_day, to_day, test_from, lake, as_json) -> None:
    """Release a version of gold/training_sets/NAME from the gold features of --from .. --to.
    A released version never changes: the same rows again change nothing, other rows are
    refused."""
    out = steps.training_set(
        lake or "", name, version or "", from_day or "", to_day or "", test_from or "", names=FLAGS
    )
    if as_json:
        click.echo(json.dumps({"outcome": out.outcome, **out.record}, indent=2, default=str))
        return
    click.echo(out.markdown)
    rows = out.record.get("rows") or {}
    click.echo(
        f"training set {name} {out.record.get('version')}: {out.outcome} "
        f"({rows.get('train', 0)} train, {rows.get('test', 0)} test rows; "
        f"sha256 {str(out.record.get('rows_sha256'))[:12]})"
    )


@cli.command()
@click.option("--date", "date", required=True, metavar="YYYY-MM-DD", help="UTC day to check.")
@until_option
@lake_option
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(["bronze", "silver"]),
    help="Check only these tables (default both).",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="ISO-8601",
    help="The run's scheduled time, for freshness (default now).",
)
@click.option(
    "--volume-k",
    type=click.FloatRange(min=0),
    default=defaults.VOLUME_K,
    show_default=True,
    help="Warn when the day's rows fall outside mean ± k·stdev of the previous days.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Judge every rule on the rows even when neither table changed since the day's last "
    "verdict (by default that day is re-judged on freshness and lag alone).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def validate(date, until, lake, tables, as_of, volume_k, full, as_json) -> None:
    """Quality gate for --date (.. --until): exits non-zero when a `fail` rule breaks."""
    checked = steps.quality(
        lake or "",
        date,
        until or "",
        as_of or "",
        volume_k,
        tuple(tables) or ("bronze", "silver"),
        names=FLAGS,
        full=full,
    )
    report = checked.metrics
    one_day = len(checked.reports) == 1  # names as `table.rule`; over several days, `D:table.rule`
    failed = checked.reports[0].failed if one_day else checked.failed
    warned = checked.reports[0].warned if one_day else checked.warned
    if as_json:
        phases: dict[str, float] = {}
        for r in checked.reports:
            for k, v in r.phases.items():
                phases[k] = phases.get(k, 0) + v
        click.echo(
            json.dumps(
                {**report, "failed": failed, "warned": warned, "phases": phases},
                indent=2,
            )
        )
    else:
        click.echo(checked.markdown)
    for r in checked.reports:
        on = f" on {r.date}" if len(checked.reports) > 1 else ""
        for name in r.warned:
            click.echo(f"warning: rule {name} broke (level warn){on}", err=True)
    checked.raise_if_failed()


@cli.command()
@lake_option
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=14,
    show_default=True,
    help="The newest days of each table.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
def status(lake, days, as_json) -> None:
    """Per table and day: rows, sealed, committed when, and the gate's verdict with its report."""
    from deep_storage import lake_status

    found = lake_status.status(lake, days=days)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in found], indent=2))
        return
    if not found:
        click.echo(f"{resolve_lake(lake)}: nothing committed yet")
        return
    click.echo(f"{'table':<7} {'date':<10} {'rows':>10}  {'sealed':<8} {'committed':<20} gate")
    for s in found:
        when = s.committed_at[:19].replace("T", " ")
        gate = f"{s.gate}  {s.report}" if s.gate else "not run"
        sealed = "sealed" if s.sealed else "UNSEALED"
        click.echo(f"{s.table:<7} {s.date:<10} {s.rows:>10}  {sealed:<8} {when:<20} {gate}")


@cli.command()
@lake_option
@click.option(
    "--as-of",
    "as_of",
    metavar="ISO-8601",
    help="Judge the windows as of this time or day (default now); never in the future.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be removed and vacuumed; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def retention(lake, as_of, dry_run, as_json) -> None:
    """Remove the days past their retention, then vacuum.

    A bronze day D goes once D < as_of - 90 days, a silver day once D < as_of - 365 days (the
    day as_of - N stays). Then each table and _days is vacuumed with Delta's 7-day window: the
    version before a removal stays readable (time travel) for a week.
    """
    result = steps.retention(lake or "", as_of or "", dry_run, names=FLAGS).result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for table, days in result.days_removed.items():
        keeps = f"keeps days from {result.floors[table]}"
        if not days:
            click.echo(f"{table}: {keeps}; nothing to remove")
        else:
            span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
            count = f"{len(days)} day{'' if len(days) == 1 else 's'}"
            click.echo(f"{table}: {keeps}; {verb} {count} ({span})")
    files = ", ".join(f"{table} {n}" for table, n in result.files_vacuumed.items())
    click.echo(f"vacuum ({'would delete' if dry_run else 'deleted'} files): {files}")
    if dry_run:
        click.echo("dry run: nothing was changed", err=True)


@cli.command()
@click.option(
    "--metastore",
    metavar="thrift://HOST:PORT",
    help="The Hive Metastore (default: env HIVE_METASTORE_URI; neither: nothing to do).",
)
@click.option(
    "--database",
    default=defaults.CATALOG_DATABASE,
    show_default=True,
    help="The metastore database the tables are named in.",
)
@lake_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def catalog(metastore, database, lake, as_json) -> None:
    """Name the lake's tables in a Hive Metastore, for Spark SQL and Trino.

    Each Delta table of the lake becomes an external table at its location
    (deep_storage.bronze_events, deep_storage.silver_stop_executions, the gold tables the lake
    holds). A name resolves to the table's latest version; new commits need no new run. Running
    it again changes nothing; a name taken by a table elsewhere is refused (exit 10) and nothing
    is dropped; an unreachable metastore exits 9.
    """
    result = steps.catalog(lake or "", metastore or "", database).result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.skipped:
        click.echo(f"catalog: skipped: {result.skipped}")
        return
    if not result.tables:
        click.echo(f"catalog: the lake has no tables yet; nothing registered in {result.metastore}")
    for t in result.tables:
        what = "registered" if t.outcome == "registered" else "already registered"
        click.echo(f"{t.name}: {what} at {t.location}")


@cli.command()
@lake_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def migrate(lake, as_json) -> None:
    """Turn a lake written by v0.2 (Parquet folders and JSON manifests) into Delta tables.

    The files the manifests list are adopted where they are; nothing is rewritten. A table that
    is a Delta table already is skipped, so running it again is safe. _manifests/ is left in
    place.
    """
    from deep_storage.lake import migrate as step

    result = step.run(resolve_lake(lake))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for t in result.tables:
            if t.outcome == step.MIGRATED:
                click.echo(
                    f"{t.table}: migrated {t.days} days ({t.files} files, {t.rows} rows) "
                    f"as Delta version {t.version}"
                )
            elif t.outcome == step.ALREADY_DELTA:
                click.echo(f"{t.table}: already Delta (version {t.version}); skipped")
            else:
                click.echo(f"{t.table}: {t.outcome}; nothing to migrate")
    for t in result.tables:
        if t.not_adopted:
            first, last = t.not_adopted[0], t.not_adopted[-1]
            command = "bronze" if t.table == step.BRONZE_EVENTS else "silver"
            click.echo(
                f"warning: {t.table} became a Delta table before `migrate` ran, without the "
                f"v0.2 days {', '.join(t.not_adopted)}; rebuild them: "
                f"`deep-storage {command} --date {first} --until {last}`",
                err=True,
            )
    for folder in result.manifests_kept:
        click.echo(
            f"note: {folder} (v0.2's manifests) is left in place; no Delta reader or step "
            "reads it. Delete it once the Delta table is checked.",
            err=True,
        )


def main(argv: list[str] | None = None, group: click.Group | None = None) -> int:
    """Run `group` (default: the library's commands) with the one-line error contract."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        (group or cli).main(args=argv, prog_name="deep-storage", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("deep-storage: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except DeepStorageError as exc:
        if debug:
            raise
        click.echo(f"deep-storage: error: {redact(str(exc))}", err=True)
        return exc.exit_code
    except Exception as exc:  # Spark/JVM failures and the unexpected: one line, no secret
        if debug:
            raise
        message = _python_reason(exc) or _java_message(exc) or f"{type(exc).__name__}: {exc}"
        first = redact(message.strip().splitlines()[0] if message.strip() else type(exc).__name__)
        click.echo(
            f"deep-storage: error: {first[:500]} (rerun with --debug for the traceback)", err=True
        )
        return 1
    return 0


def _python_reason(exc: Exception) -> str | None:
    """A Python task failing inside Spark (PythonException) carries the worker's traceback:
    its last line is the reason ("ValueError: ..."), the first only says where it came from."""
    text = str(exc)
    if "Traceback (most recent call last)" not in text:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _java_message(exc: Exception) -> str | None:
    java = getattr(exc, "java_exception", None)
    if java is None:
        return None
    try:
        return f"{java.getClass().getName()}: {java.getMessage()}"
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
