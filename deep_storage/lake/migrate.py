"""Migration: a lake written by v0.2 (Parquet folders and JSON manifests) becomes Delta tables,
its data files adopted where they are.

v0.2 kept, per table:

    {table}/_manifests/_current.json          {"dates": {date: that day's manifest, relative}}
    {table}/_manifests/date=D/m-<id>.json     the day's v0.2 manifest: rows, sealed, files, ...

and the data as Parquet in Hive folders (`date=D/`, `client_id=N/date=D/`), the partition
columns in the folder names only: how a Delta table keeps them too. So nothing is rewritten.
For each table with a `_current.json` and no Delta log yet, under the writer lease:

1. every committed day's manifest is read; only the files they list are adopted (what a killed
   v0.2 run left is not: vacuum deletes it once it is older than its window);
2. each listed file's rows are counted from its footer; a day (or a partition) whose files do not
   hold the rows its manifest says fails the migration, and nothing is committed for the table;
3. one Delta transaction adds every listed file, with the days' facts (lake.Writer.commit),
   which then go to `_days` as for any commit. Each day's details keep where it came from
   (`details.migrated_from`: the v0.2 manifest, run and commit time).

Every table is read and checked before any is committed. A table that has a Delta log already
is skipped ("already Delta"): running it twice is safe, and a migration cut short is finished by
running it again. If such a table lacks days its v0.2 manifests hold (inside retention), a step
of this version ran on the v0.2 lake before `migrate` did and started the table afresh: those
days are named (`not_adopted`), to be rebuilt from the source.

`_manifests/` is left in place. Nothing reads it any more (Delta readers and vacuum skip names
starting with `_`), so keeping it costs a few small objects, and for a week (until vacuum's
window passes) it still describes files that are all there: the record to compare the Delta
tables against, or to go back to v0.2 with. Deleting it is one command once the tables are
checked; undeleting is not possible.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field

from deep_storage import lake
from deep_storage.core import config
from deep_storage.core.config import StoreConfig
from deep_storage.core.errors import LakeStateError
from deep_storage.io import object_store
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, retention, writer_lock

log = logging.getLogger(__name__)

TABLES = (BRONZE_EVENTS, SILVER_EXECUTIONS)
MANIFESTS = "_manifests"  # v0.2's folder of manifests, in each table
CURRENT = "_current.json"  # v0.2's version file: date -> manifest
MIGRATED = "migrated"
ALREADY_DELTA = "already Delta"
NOT_V02 = "no v0.2 manifests"
NO_DAYS = "no committed day in its v0.2 manifests"
_REPAIR = {BRONZE_EVENTS: "bronze", SILVER_EXECUTIONS: "silver"}


@dataclass
class TableMigration:
    table: str
    outcome: str  # MIGRATED, ALREADY_DELTA, NOT_V02 or NO_DAYS
    days: int = 0
    files: int = 0
    rows: int = 0
    version: int | None = None  # the table's Delta version (after the migration)
    not_adopted: list[str] = field(default_factory=list)  # v0.2 days the Delta table lacks


@dataclass
class MigrationResult:
    lake: str
    run_id: str
    tables: list[TableMigration] = field(default_factory=list)
    manifests_kept: list[str] = field(default_factory=list)  # v0.2 `_manifests/` left in place

    def to_dict(self) -> dict:
        return asdict(self)


def run(
    lake_uri: str, *, store_config: StoreConfig | None = None, run_id: str | None = None
) -> MigrationResult:
    """Migrate every v0.2 table of the lake that is not a Delta table yet. Every table is read
    and checked before any is committed: a broken day in silver leaves bronze unmigrated too,
    so no step of this version meets a lake that is half v0.2."""
    run_id = config.run_id(run_id)
    store_config = object_store.checked(lake_uri, store_config)
    fs = lake.LakeFS(lake_uri, store_config)
    result = MigrationResult(lake_uri, run_id)
    with writer_lock.hold(lake_uri, "migrate", "v0.2 to Delta", run_id, store_config) as lease:
        prepared = []
        for table in TABLES:
            text = fs.read_text(f"{fs.lake}/{table}/{MANIFESTS}/{CURRENT}")
            if text is not None:
                result.manifests_kept.append(f"{fs.lake}/{table}/{MANIFESTS}/")
            prepared.append(_prepare(fs, table, text, lease, run_id))
        for done in prepared:
            result.tables.append(done if isinstance(done, TableMigration) else _adopt(fs, *done))
    return result


def _prepare(fs: lake.LakeFS, table: str, text: str | None, lease, run_id: str):
    """A TableMigration when there is nothing to commit, else (writer, manifests, written):
    every listed file there, its rows counted and matching its manifest."""
    current_uri = f"{fs.lake}/{table}/{MANIFESTS}/{CURRENT}"
    existing = fs.delta(table)
    if existing is not None:
        log.info("migrate: %s is a Delta table already (version %d)", table, existing.version())
        missed = not_adopted(fs, table, text) if text is not None else []
        return TableMigration(table, ALREADY_DELTA, version=existing.version(), not_adopted=missed)
    if text is None:
        return TableMigration(table, NOT_V02)
    manifests = read_manifests(fs, table, text, current_uri)
    if not manifests:
        return TableMigration(table, NO_DAYS)
    files = [f for m in manifests for f in m.files]
    present = set(fs.list_files(f"{fs.lake}/{table}"))
    for m in manifests:
        missing = [f for f in m.files if f not in present]
        if missing:
            raise LakeStateError(
                f"{table} day {m.date}: its v0.2 manifest lists {missing[0]}, which is not in "
                f"the lake ({len(missing)} files missing): nothing was migrated; "
                f"{_fix(table, m.date)}"
            )
    log.info("migrate: %s: counting the rows of %d files", table, len(files))
    writer = lake.Writer(fs, table, lease, run_id, adopts_v02=True)
    written = writer._written([dt.date.fromisoformat(m.date) for m in manifests], files)
    check_rows(table, manifests, written)
    return writer, manifests, written


def _adopt(
    fs: lake.LakeFS, writer: lake.Writer, manifests: list[lake.CommittedDay], written: lake.Written
) -> TableMigration:
    """One Delta transaction adding every listed file, with the days' facts."""
    table = writer.table
    commit = [_as_committed(m) for m in manifests]
    if table == SILVER_EXECUTIONS:
        version = writer.commit(commit, written, replace=set())
    else:
        version = writer.commit(commit, written)
    _checkpoint(fs, table)
    log.info("migrate: %s: %d days adopted as Delta version %s", table, len(commit), version)
    files = sum(len(f) for f in written.files.values())
    return TableMigration(table, MIGRATED, len(commit), files, written.rows, version)


def not_adopted(fs: lake.LakeFS, table: str, text: str) -> list[str]:
    """Days of the v0.2 manifests, still inside retention, that the Delta table lacks: the
    table became a Delta table before `migrate` ran (a step of this version ran first)."""
    try:
        dates = sorted(json.loads(text)["dates"])
    except (ValueError, KeyError, TypeError):
        return []
    keep_from = retention.floor(table, dt.datetime.now(dt.UTC).date()).isoformat()
    committed = {d.isoformat() for d in lake.committed(fs, table, with_files=False)}
    return [d for d in dates if d >= keep_from and d not in committed]


def _checkpoint(fs: lake.LakeFS, table: str) -> None:
    """One commit names every file of the table: a checkpoint lets readers start from Parquet
    instead of parsing that JSON. An optimisation only: a failure is a warning."""
    try:
        fs.delta(table).create_checkpoint()
    except Exception as exc:
        log.warning("migrate: %s: no checkpoint written (%s); readers replay the log", table, exc)


def read_manifests(
    fs: lake.LakeFS, table: str, text: str, current_uri: str
) -> list[lake.CommittedDay]:
    """The committed days' v0.2 manifests, oldest first, each checked against its place."""
    try:
        version = dict(json.loads(text)["dates"])
    except (ValueError, KeyError, TypeError):
        raise LakeStateError(
            f'{current_uri} is not a v0.2 version file (expected {{"dates": {{date: manifest}}}}):'
            " restore it from the object store's versioning; nothing was migrated"
        ) from None
    found = []
    for date, rel in sorted(version.items()):
        uri = f"{fs.lake}/{table}/{rel}"
        body = fs.read_text(uri)
        if body is None:
            raise LakeStateError(
                f"{table} day {date}: its v0.2 manifest {uri} is missing: nothing was migrated; "
                f"{_fix(table, date)}"
            )
        try:
            m = lake.CommittedDay.from_json(body)
        except (ValueError, TypeError):
            raise LakeStateError(
                f"{table} day {date}: {uri} is not a v0.2 manifest: nothing was migrated; "
                f"{_fix(table, date)}"
            ) from None
        if m.date != date or m.table != table:
            raise LakeStateError(
                f"{uri} is the manifest of {m.table} {m.date}, but {current_uri} names it for "
                f"{table} {date}: nothing was migrated; {_fix(table, date)}"
            )
        for f in m.files:
            if lake.partition_date(f) != dt.date.fromisoformat(date):
                raise LakeStateError(
                    f"{table} day {date}: its v0.2 manifest lists {f}, a file of another day: "
                    f"nothing was migrated; {_fix(table, date)}"
                )
        m.details = {
            **m.details,
            "migrated_from": {
                "format": "v0.2",
                "manifest": rel,
                "run_id": m.run_id,
                "written_at": m.written_at,
                "lease_token": m.lease_token,
            },
        }
        found.append(m)
    return found


def check_rows(table: str, manifests: list[lake.CommittedDay], written: lake.Written) -> None:
    """Every day's files hold the rows its manifest says, partition by partition."""
    by_folder: dict[str, int] = {}
    for f in written.data_files:
        folder = f.path.rsplit("/", 1)[0]
        by_folder[folder] = by_folder.get(folder, 0) + f.rows
    for m in manifests:
        day = dt.date.fromisoformat(m.date)
        found = {k: v for k, v in by_folder.items() if lake.partition_date(k) == day and v}
        rows = sum(found.values())
        if rows != m.rows:
            raise LakeStateError(
                f"{table} day {m.date}: its files hold {rows} rows, its v0.2 manifest says "
                f"{m.rows}: nothing was migrated; {_fix(table, m.date)}"
            )
        said = {k: v for k, v in m.partitions.items() if v}
        if said and said != found:
            wrong = sorted(k for k in set(said) | set(found) if said.get(k) != found.get(k))
            raise LakeStateError(
                f"{table} day {m.date}: partition {wrong[0]} holds {found.get(wrong[0], 0)} rows, "
                f"its v0.2 manifest says {said.get(wrong[0], 0)}: nothing was migrated; "
                f"{_fix(table, m.date)}"
            )


def _as_committed(m: lake.CommittedDay) -> lake.CommittedDay:
    """The day's facts as the Delta commit records them (the commit stamps run, lease and time)."""
    return lake.CommittedDay(
        table=m.table,
        date=m.date,
        rows=m.rows,
        sealed=m.sealed,
        files=list(m.files),
        partitions=dict(m.partitions),
        run_id="",
        written_at="",
        details=m.details,
    )


def _fix(table: str, date: str) -> str:
    return (
        f"drop {date} from {table}/{MANIFESTS}/{CURRENT}, migrate, then rebuild the day with "
        f"`deep-storage {_REPAIR[table]} --date {date}`"
    )
