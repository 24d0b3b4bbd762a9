"""The commit path: `Writer` lands new files, counts their rows from the footers and commits
them with the day facts in one Delta transaction; `vacuum` deletes what no version needs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deep_storage.core.errors import DeepStorageError, LakeStateError
from deep_storage.lake.days import (
    CommittedDay,
    day_from_facts,
    load_facts,
    snapshot_files,
    write_facts,
)
from deep_storage.lake.layout import (
    BRONZE_EVENTS,
    FACTS_KEY,
    PARTITION_COLUMNS,
    TABLE_CONFIG,
    partition_date,
)
from deep_storage.lake.storage import DataFile, LakeFS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from deep_storage.lake.writer_lock import Lease

log = logging.getLogger(__name__)


# The tables' delta.deletedFileRetentionDuration (layout.TABLE_CONFIG), below which delta-rs
# refuses to vacuum: a table's setting, not the retention step's default (which tests shorten).
_VACUUM_SAFE_HOURS = 168


def _failpoint(table: str, point: str) -> None:
    """Kill this process at a named point of the commit path when DEEP_STORAGE_KILL_AT names it
    (`table:point`), so tests can prove a kill at each point loses nothing. Off by default."""
    wanted = os.environ.get("DEEP_STORAGE_KILL_AT")
    if wanted and wanted == f"{table.split('/', 1)[0]}:{point}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Written:
    """What one write left under the table, not yet committed."""

    table: str
    files: dict[dt.date, list[str]]  # new files per day, relative to the table root
    rows: int  # counted from the new files' footers
    data_files: list[DataFile] = field(default_factory=list)
    schema: Any = None  # the new files' Arrow schema (one of them: they share it)

    def expect(self, rows_read: int) -> None:
        """A commit never records fewer rows than the step read: fail before committing."""
        if self.rows != rows_read:
            days = sorted(self.files)
            raise LakeStateError(
                f"{self.table} {days[0]}..{days[-1]}: {self.rows} rows landed but {rows_read} "
                "were read: nothing was committed; re-run the step"
            )


def _partition_values(table: str, folder: str) -> dict[str, str]:
    values = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    return {c: values[c] for c in PARTITION_COLUMNS[table]}


class Writer:
    """Writes new versions of days of one table. Hold the writer lease around it."""

    def __init__(
        self,
        fs: LakeFS,
        table: str,
        lease: Lease,
        run_id: str,
        *,
        adopts_v02: bool = False,
        schema=None,
    ) -> None:
        self.fs, self.table, self.lease, self.run_id = fs, table, lease, run_id
        # The table's Arrow schema for a first commit without files (an empty day); bronze's
        # and silver's come from their contracts.
        self.schema = schema
        self.root = f"{fs.lake}/{table}"
        # Only `migrate` may start a Delta table over a v0.2 one; every other writer would hide
        # the v0.2 days behind an empty Delta table.
        self.adopts_v02 = adopts_v02
        self._loaded = None  # the table as this writer last saw it (the lease keeps it current)

    def _table(self):
        if self._loaded is None:
            self._loaded = self.fs.delta(self.table)
        else:
            self._loaded.update_incremental()
        return self._loaded

    def _data_files(self, folder: str) -> set[str]:
        """Data files under `folder` (relative to the table root); metadata names skipped."""
        rel = folder[len(self.root) :].strip("/")
        return {
            f"{rel}/{f}" if rel else f
            for f in self.fs.list_files(folder)
            if not any(p.startswith(("_", ".")) for p in f.split("/")) and f.endswith(".parquet")
        }

    def write(
        self,
        frame: DataFrame,
        days: list[dt.date],
        *,
        partition_by: list[str] | None = None,
        folder: str | None = None,
    ) -> Written:
        """Append `frame` under new file names, into `folder` (one day) or partitioned by
        `partition_by` under the table root. Nothing becomes visible to readers here."""
        target = folder or self.root
        before = self._data_files(target)
        writer = frame.write.mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(target)
        new = sorted(self._data_files(target) - before)
        _failpoint(self.table, "written")
        return self._written(days, new)

    def landed_in(self, days: list[dt.date], files: list[str]) -> Written:
        """Files Spark's tasks wrote under new names into partition folders of `days` (silver's
        tasks, with pyarrow: silver_task.py), counted from their footers. Not Spark's own writer:
        behind the S3A committer it cost ~45 ms of object-store round trips per file, and a day
        of silver is ~200 small files; these need no committer, they are invisible until
        `commit` adds them to the Delta log."""
        _failpoint(self.table, "written")
        return self._written(days, files)

    def landed(self, day: dt.date, files: list[str]) -> Written:
        """Files another engine wrote under new names into `day`'s folder (bronze's Arrow
        engine), counted from their footers. Nothing becomes visible to readers here."""
        for rel in files:
            if partition_date(rel) != day:
                raise LakeStateError(f"{self.table}: {rel} is not a file of the day {day}")
        return self.landed_in([day], files)

    def _written(self, days: list[dt.date], files: list[str]) -> Written:
        """New `files` grouped by day (each must belong to one of `days`), their rows counted
        from the Parquet footers, their sizes and times for the Delta log."""
        by_day: dict[dt.date, list[str]] = {d: [] for d in days}
        for rel in files:
            day = partition_date(rel)
            if day not in by_day:
                raise LakeStateError(
                    f"{self.table}: the write produced {rel}, outside the days {days}"
                )
            by_day[day].append(rel)
        data_files, schema = self.fs.describe_files(self.table, files)
        rows = sum(f.rows for f in data_files)
        by_day_sorted = {d: sorted(f) for d, f in by_day.items()}
        return Written(self.table, by_day_sorted, rows, data_files, schema)

    def commit(
        self,
        days: list[CommittedDay],
        written: Written | None = None,
        replace: Iterable[str] = (),
        keep: Iterable[str] = (),
    ) -> int | None:
        """One Delta transaction: remove the current files of every partition folder in
        `replace` (and, when files are `written` to a table partitioned by date alone, of every
        day in `days`) but those in `keep` (relative to the table root), add `written`'s
        files, and record the days' facts. Without `written` and `replace` only the facts change.
        Returns the new table version."""
        from deltalake.transaction import CommitProperties

        if not days and not replace:
            return None
        replace = set(replace)
        if written is not None and PARTITION_COLUMNS[self.table] == ("date",):
            replace |= {f"date={m.date}" for m in days}
        # The lease is checked right before each log write below (and before a schema change).
        self._stamp(days)
        facts_json = json.dumps(
            {"days": [m.facts() for m in days], "run_id": self.run_id}, sort_keys=True
        )
        properties = CommitProperties(custom_metadata={FACTS_KEY: facts_json})
        adds = self._adds(written)
        table = self._table()
        try:
            if table is None:
                self._create(written, adds, properties)
            else:
                self._append(table, written, adds, replace, properties, set(keep))
        except DeepStorageError:
            raise
        except Exception as exc:
            raise self.fs._fail(f"commit {self.table}", exc) from None
        version = self._table().version()
        log.info(
            "%s: committed %s as version %d",
            self.table,
            ", ".join(m.date for m in days),
            version,
        )
        _failpoint(self.table, "swapped")
        self._record_facts(days, version)
        return version

    def _stamp(self, days: list[CommittedDay]) -> None:
        now = dt.datetime.now(dt.UTC)
        for m in days:
            m.table, m.run_id = self.table, self.run_id
            m.lease_token = self.lease.holder.token
            m.written_at = now.isoformat()

    def _adds(self, written: Written | None) -> list:
        files = written.data_files if written else []
        return add_actions(files, lambda path: _partition_values(self.table, path))

    def _create(self, written: Written | None, adds: list, properties) -> None:
        """The table's first commit: creates the Delta table with `adds`."""
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        v02 = f"{self.root}/_manifests/_current.json"
        if not self.adopts_v02 and self.fs.read_text(v02) is not None:
            raise LakeStateError(
                f"{self.table} in lake {self.fs.lake} was written by v0.2 (it has "
                "_manifests/_current.json and no Delta log): run `deep-storage migrate "
                f"--lake {self.fs.lake}` first"
            )
        _failpoint(self.table, "commit")
        self.lease.check()
        create_table_with_add_actions(
            self.fs.delta_uri(self.table),
            Schema.from_arrow(self._table_schema(written)),
            adds,
            mode="error",
            partition_by=list(PARTITION_COLUMNS[self.table]),
            configuration=TABLE_CONFIG,
            storage_options=self.fs.delta_options(),
            commit_properties=properties,
        )

    def _append(self, table, written: Written | None, adds: list, replace: set, properties, keep):
        """A later commit: removes the files of the `replace` folders but `keep`, adds `adds`."""
        import time

        from deltalake.transaction import RemoveAction

        self._evolve(table, written)
        deleted = int(time.time() * 1000)
        _, folders = snapshot_files(self.fs, self.table, loaded=table)
        removes = [
            RemoveAction(rel, True, deleted, size, _partition_values(self.table, folder))
            for folder in sorted(replace & set(folders))
            for rel, size in folders[folder]
            if rel not in keep
        ]
        _failpoint(self.table, "commit")
        self.lease.check()
        table.create_write_transaction(
            [*removes, *adds],
            "append",
            table.schema(),
            partition_by=list(PARTITION_COLUMNS[self.table]),
            commit_properties=properties,
        )

    def _record_facts(self, days: list[CommittedDay], version: int) -> None:
        """`_days` learns the committed days (a kill before this loses nothing: readers replay
        the commit's own metadata)."""
        facts = load_facts(self.fs)
        for m in days:
            m.version = version
            facts.days[(self.table, m.date)] = day_from_facts(m.facts())
        facts.versions[self.table] = version
        write_facts(self.fs, facts)

    def remove_days(self, days: list[dt.date]) -> int | None:
        """Retention: one transaction removing every file of `days`, and their facts."""
        import time

        from deltalake.transaction import CommitProperties, RemoveAction

        wanted = {d.isoformat() for d in days}
        table = self._table()
        if table is None or not wanted:
            return None
        self.lease.check()
        _, folders = snapshot_files(self.fs, self.table, loaded=table)
        deleted = int(time.time() * 1000)
        removes = [
            RemoveAction(rel, True, deleted, size, _partition_values(self.table, folder))
            for folder, files in sorted(folders.items())
            if (day := partition_date(folder)) is not None and day.isoformat() in wanted
            for rel, size in files
        ]
        facts_json = json.dumps({"removed": sorted(wanted), "run_id": self.run_id})
        try:
            table.create_write_transaction(
                removes,
                "append",
                table.schema(),
                partition_by=list(PARTITION_COLUMNS[self.table]),
                commit_properties=CommitProperties(custom_metadata={FACTS_KEY: facts_json}),
            )
        except Exception as exc:
            raise self.fs._fail(f"remove days from {self.table}", exc) from None
        version = self._table().version()
        _failpoint(self.table, "removed")
        facts = load_facts(self.fs)
        for date in wanted:
            facts.days.pop((self.table, date), None)
        facts.versions[self.table] = version
        write_facts(self.fs, facts)
        return version

    def _table_schema(self, written: Written | None):
        """A new table's schema: the files' columns, then the partition columns."""
        import pyarrow as pa

        if written is not None and written.schema is not None:
            source = written.schema
        elif self.schema is not None:
            source = self.schema
        else:  # a first commit without files (an empty day): the contract's columns
            from pyspark.sql.pandas.types import to_arrow_schema  # pure Python: no JVM

            from deep_storage.core import schemas

            source = to_arrow_schema(
                schemas.BRONZE_EVENTS_SCHEMA
                if self.table == BRONZE_EVENTS
                else schemas.SILVER_EXECUTIONS_SCHEMA
            )
        data = [f for f in source if f.name not in PARTITION_COLUMNS[self.table]]
        parts = [
            pa.field(c, pa.int64() if c == "client_id" else pa.date32())
            for c in PARTITION_COLUMNS[self.table]
        ]
        return pa.schema([*data, *parts])

    def _evolve(self, table, written: Written | None) -> None:
        """Schema evolution: columns the new files carry that the table lacks are added to the
        table's schema (add_columns), so older days read them as null."""
        if written is None or written.schema is None:
            return
        new = add_columns(table, written.schema, self.lease)
        if new:
            log.info("%s: schema evolved, new columns %s", self.table, new)


def add_actions(files: list[DataFile], partitions_of) -> list:
    """Delta add actions for new files (`partitions_of`: a file's folder -> its partition
    values), their row counts in the stats, as every commit of the lake records them."""
    from deltalake.transaction import AddAction

    return [
        AddAction(
            f.path,
            f.size,
            partitions_of(f.path.rsplit("/", 1)[0]),
            f.modified_ms,
            True,
            json.dumps({"numRecords": f.rows}),
        )
        for f in files
    ]


def add_columns(table, schema, lease: Lease) -> list[str]:
    """Schema evolution: the columns of `schema` (Arrow) that `table` lacks are added to it
    (Delta's own ALTER TABLE ADD COLUMNS), so older files read them as null. Returns their
    names."""
    import pyarrow as pa
    from deltalake import Schema

    known = {f.name for f in table.schema().fields}
    new = [f for f in schema if f.name not in known]
    if new:
        lease.check()
        table.alter.add_columns(list(Schema.from_arrow(pa.schema(new)).fields))
    return [f.name for f in new]


def vacuum(
    fs: LakeFS, table: str, retention_hours: int | None = None, dry_run: bool = False
) -> list[str]:
    """Delete the table's files that no version within the retention window needs: superseded
    files older than it (Delta's own vacuum) and files no commit ever named that are older than
    it (a killed run's leftovers: `full` mode). Returns the files (to be) deleted."""
    data = fs.delta(table)
    if data is None:
        return []
    try:
        return sorted(
            data.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                # Delta's safety check stays on unless a shorter window is asked for (tests).
                enforce_retention_duration=retention_hours is None
                or retention_hours >= _VACUUM_SAFE_HOURS,
                full=True,
            )
        )
    except Exception as exc:
        raise fs._fail(f"vacuum {table}", exc) from None
