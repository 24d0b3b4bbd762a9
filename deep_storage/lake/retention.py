"""Retention: the days past their table's window leave the lake, then vacuum deletes the files no
version within Delta's 7 days needs.

    bronze/events            a day D is removed once D < as_of's date - 90 days
    silver/stop_executions   a day D is removed once D < as_of's date - 365 days

The floor day (as_of's date - N) is kept, and every day after it: retention never removes a day
inside its window. Bronze's catch-up starts no earlier than the same floor (bronze.plan_days), so
a day retention removed is never ingested again by a run that catches up.

One run, under the writer lease:
1. per table, one Delta transaction removes every out-of-window day's files and its facts
   (lake.Writer.remove_days): readers stop seeing those days at once;
2. each table and `_days` is vacuumed with the 7-day window (lake.vacuum, full mode: superseded
   files, and files no commit names, once older than the window). The files of the days just
   removed are superseded now, so the version before the removal stays readable (time travel)
   until the window passes; a run after that deletes them.
A dry run reports the same days and files and changes nothing: no lease, no commit, no delete.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote

from deep_storage import lake
from deep_storage.core import config, defaults
from deep_storage.core.config import StoreConfig
from deep_storage.core.errors import InputError
from deep_storage.io import metrics, object_store
from deep_storage.lake import BRONZE_EVENTS, DAYS, SILVER_EXECUTIONS, writer_lock
from deep_storage.lake import days as day_facts

log = logging.getLogger(__name__)

TABLES = (BRONZE_EVENTS, SILVER_EXECUTIONS)
WINDOW_DAYS = {
    BRONZE_EVENTS: defaults.BRONZE_RETENTION_DAYS,
    SILVER_EXECUTIONS: defaults.SILVER_RETENTION_DAYS,
}


def floor(table: str, as_of: dt.date) -> dt.date:
    """The oldest day `table` keeps as of the day `as_of`: a day D is removed once D < floor."""
    return as_of - dt.timedelta(days=WINDOW_DAYS[table])


@dataclass
class RetentionResult:
    lake: str
    run_id: str
    as_of: str
    dry_run: bool
    floors: dict[str, str] = field(default_factory=dict)  # table -> the oldest day it keeps
    days_removed: dict[str, list[str]] = field(default_factory=dict)  # dry run: would be
    versions: dict[str, int] = field(default_factory=dict)  # table -> its removal's Delta version
    files_vacuumed: dict[str, int] = field(default_factory=dict)  # table or _days -> files

    def to_dict(self) -> dict:
        return asdict(self)


def run(
    lake_uri: str,
    *,
    as_of: dt.datetime | None = None,
    dry_run: bool = False,
    store_config: StoreConfig | None = None,
    run_id: str | None = None,
) -> RetentionResult:
    """Remove every day past its table's window as of `as_of` (default now, UTC), then vacuum
    each table and `_days`; with `dry_run`, only report what would go."""
    if dry_run:  # a preview is not a run of the step: nothing is pushed
        return _run(lake_uri, as_of, True, store_config, run_id)
    with metrics.step("retention") as m:
        result = _run(lake_uri, as_of, False, store_config, run_id)
        m.set("days_removed", sum(len(d) for d in result.days_removed.values()))
        m.set("files_vacuumed", sum(result.files_vacuumed.values()))
        return result


def _run(lake_uri, as_of, dry_run, store_config, run_id) -> RetentionResult:
    now = dt.datetime.now(dt.UTC)
    when = now if as_of is None else _aware(as_of)
    if not dry_run and when > now + defaults.AS_OF_AHEAD:
        raise InputError(
            f"retention as of {when.isoformat()} is in the future (now {now.isoformat()}): it "
            "would remove days still inside their window; give a time that has passed, or "
            "preview with a dry run"
        )
    run_id = config.run_id(run_id)
    store_config = object_store.checked(lake_uri, store_config)
    fs = lake.LakeFS(lake_uri, store_config)
    result = RetentionResult(lake_uri, run_id, when.isoformat(), dry_run)
    if dry_run:
        _plan(fs, when.date(), result)
        for table in (*TABLES, DAYS):
            result.files_vacuumed[table] = _vacuum(fs, table, dry_run=True)
        return result
    with writer_lock.hold(
        lake_uri, "retention", f"as of {when.date()}", run_id, store_config
    ) as lease:
        due = _plan(fs, when.date(), result)
        for table, days in due.items():
            if days:
                version = lake.Writer(fs, table, lease, run_id).remove_days(days)
                if version is not None:
                    result.versions[table] = version
                log.info("retention: %s: removed %s", table, ", ".join(map(str, days)))
        for table in (*TABLES, DAYS):
            lease.check()
            result.files_vacuumed[table] = _vacuum(fs, table, dry_run=False)
        if result.files_vacuumed[DAYS]:
            _cover_vacuum_commits(fs)
    return result


def _aware(instant: dt.datetime) -> dt.datetime:
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _plan(fs: lake.LakeFS, as_of: dt.date, result: RetentionResult) -> dict[str, list[dt.date]]:
    """Per table, the days before its floor: every day with facts in `_days` and every day with
    files in the table's snapshot (one without the other would be a broken lake: both go)."""
    due = {}
    for table in TABLES:
        keep_from = floor(table, as_of)
        days = set(lake.committed(fs, table, with_files=False))
        _, folders = lake.snapshot_files(fs, table)
        days |= {d for folder in folders if (d := lake.partition_date(folder)) is not None}
        due[table] = sorted(d for d in days if d < keep_from)
        result.floors[table] = keep_from.isoformat()
        result.days_removed[table] = [d.isoformat() for d in due[table]]
    return due


def _vacuum(fs: lake.LakeFS, table: str, *, dry_run: bool) -> int:
    """How many files vacuum deletes (would delete) from `table`, counting only files that are
    there: delta-rs 1.6 lists again, and commits a vacuum for, the tombstones of files an
    earlier vacuum already deleted, until a checkpoint drops them. So the real vacuum runs only
    when a file it would delete still exists (an hourly run adds no empty vacuum commits)."""
    hours = defaults.VACUUM_RETENTION_HOURS
    candidates = _relative(fs, table, lake.vacuum(fs, table, retention_hours=hours, dry_run=True))
    if not candidates:
        return 0
    present = candidates & set(fs.list_files(f"{fs.lake}/{table}"))
    if dry_run or not present:
        return len(present)
    deleted = _relative(fs, table, lake.vacuum(fs, table, retention_hours=hours))
    log.info("retention: vacuumed %d files from %s", len(deleted & present), table)
    return len(deleted & present)


def _relative(fs: lake.LakeFS, table: str, paths: list[str]) -> set[str]:
    """Vacuum's paths relative to the table root (delta-rs gives some as absolute paths)."""
    root = fs.delta_uri(table).rstrip("/") + "/"
    return {unquote(p[len(root) :] if p.startswith(root) else p.lstrip("/")) for p in paths}


def _cover_vacuum_commits(fs: lake.LakeFS) -> None:
    """Write `_days` again after vacuuming it. Its facts are read with the table versions they
    cover from its newest commit's metadata, and a vacuum commits VACUUM START and END with
    none: without this every reader would replay the tables' whole history. The facts cover
    every table's current version (under the lease, vacuum commits are the only ones since the
    facts were read, and they carry no facts)."""
    facts = day_facts.load_facts(fs)
    for table in TABLES:
        data = fs.delta(table)
        if data is not None:
            facts.versions[table] = data.version()
    day_facts.write_facts(fs, facts)
