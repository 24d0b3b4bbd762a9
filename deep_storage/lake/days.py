"""The committed days: each table's day facts (rows, sealed, window, newest event, ...) kept in
the `_days` table and in every data commit's metadata, replayed forward from the tables' own
history, and the reads of a committed day's files."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from deep_storage.lake.delta_log import commit_facts, commit_info
from deep_storage.lake.layout import (
    DAYS,
    PARTITION_COLUMNS,
    TABLE_CONFIG,
    VERSIONS_KEY,
    partition_date,
)
from deep_storage.lake.storage import LakeFS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


@dataclass
class CommittedDay:
    """One committed day of one table: its facts (kept in `_days` and in the commit's metadata)
    and, when read back, its files in the table's current snapshot."""

    table: str
    date: str
    rows: int
    sealed: bool
    files: list[str]  # relative to the table root
    partitions: dict[str, int]  # partition folder (relative) -> rows
    run_id: str
    written_at: str
    lease_token: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    version: int = -1  # the table's Delta version whose commit wrote this day

    def facts(self) -> dict[str, Any]:
        """What `_days` and the commit's metadata keep: everything but the file list, which the
        Delta log holds."""
        return {k: v for k, v in asdict(self).items() if k != "files"}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CommittedDay:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _days_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("table", pa.string()),
            ("date", pa.date32()),
            ("rows", pa.int64()),
            ("sealed", pa.bool_()),
            ("version", pa.int64()),
            ("committed_at", pa.timestamp("us", tz="UTC")),
            ("run_id", pa.string()),
            ("lease_token", pa.int64()),
            ("partitions", pa.string()),  # JSON: partition folder -> rows
            ("details", pa.string()),  # JSON: window, seal check, newest event, statuses, ...
        ]
    )


def day_from_facts(data: dict[str, Any]) -> CommittedDay:
    return CommittedDay(
        table=data["table"],
        date=data["date"],
        rows=int(data["rows"]),
        sealed=bool(data["sealed"]),
        files=[],
        partitions=dict(data.get("partitions") or {}),
        run_id=data.get("run_id") or "",
        written_at=data.get("written_at") or "",
        lease_token=int(data.get("lease_token") or 0),
        details=dict(data.get("details") or {}),
        version=int(data.get("version", -1)),
    )


@dataclass
class Facts:
    days: dict[tuple[str, str], CommittedDay]  # (table, ISO date) -> facts
    versions: dict[str, int]  # table -> the newest data version the facts cover


def _read_facts(fs: LakeFS) -> Facts:
    table = fs.delta(DAYS)
    if table is None:
        return Facts({}, {})
    fs._days_table = table  # a writer's next `_days` write starts from this loaded state
    days: dict[tuple[str, str], CommittedDay] = {}
    for row in fs.scan(DAYS, table).to_pylist():
        m = day_from_facts(
            {
                **row,
                "date": row["date"].isoformat(),
                "written_at": row["committed_at"].isoformat() if row["committed_at"] else "",
                "partitions": json.loads(row["partitions"] or "{}"),
                "details": json.loads(row["details"] or "{}"),
            }
        )
        days[(m.table, m.date)] = m
    # The newest `_days` commit that names the data versions it covers (a vacuum of `_days`
    # commits without them).
    versions: dict[str, int] = {}
    newest = table.version()
    for version in range(newest, max(-1, newest - 20), -1):
        info = commit_info(fs, DAYS, version) or {}
        if VERSIONS_KEY in info:
            versions = {k: int(v) for k, v in json.loads(info[VERSIONS_KEY]).items()}
            break
    return Facts(days, versions)


def _replay(fs: LakeFS, facts: Facts, table: str) -> None:
    """Bring `facts` up to the table's current version from the commits `_days` does not cover
    yet (a run killed after its data commit, before `_days` was written)."""
    data = fs.delta(table, without_files=True)
    if data is None:
        return
    known = facts.versions.get(table, -1)
    current = data.version()
    if current <= known:
        return
    for version in range(known + 1, current + 1):
        commit = commit_facts(fs, table, version)
        if commit is None:
            continue
        for date in commit.get("removed", []):
            facts.days.pop((table, date), None)
        for day in commit.get("days", []):
            m = day_from_facts({**day, "table": table, "version": version})
            facts.days[(table, m.date)] = m
    facts.versions[table] = current


def load_facts(fs: LakeFS) -> Facts:
    """Every table's day facts, current: cached on `fs` (the writer lease keeps anyone else
    from committing while a step runs; `Writer.commit` refreshes it)."""
    cached = getattr(fs, "_facts_cache", None)
    if cached is None:
        cached = _read_facts(fs)
        for table in PARTITION_COLUMNS:
            _replay(fs, cached, table)
        fs._facts_cache = cached
    return cached


def write_facts(fs: LakeFS, facts: Facts) -> None:
    """Replace `_days` whole (a few hundred rows, one small file) in one Delta transaction."""
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.transaction import CommitProperties

    rows = []
    for (table, date), m in sorted(facts.days.items()):
        written = dt.datetime.fromisoformat(m.written_at) if m.written_at else None
        rows.append(
            {
                "table": table,
                "date": dt.date.fromisoformat(date),
                "rows": m.rows,
                "sealed": m.sealed,
                "version": m.version,
                "committed_at": written,
                "run_id": m.run_id,
                "lease_token": m.lease_token,
                "partitions": json.dumps(m.partitions, sort_keys=True),
                "details": json.dumps(m.details, sort_keys=True),
            }
        )
    days = getattr(fs, "_days_table", None)
    try:
        write_deltalake(
            days if days is not None else fs.delta_uri(DAYS),
            pa.Table.from_pylist(rows, schema=_days_schema()),
            mode="overwrite",
            configuration=TABLE_CONFIG,
            storage_options=fs.delta_options(),
            commit_properties=CommitProperties(
                custom_metadata={VERSIONS_KEY: json.dumps(facts.versions, sort_keys=True)}
            ),
        )
    except Exception as exc:
        raise fs._fail("write the day facts (_days)", exc) from None
    if days is None:
        fs._days_table = fs.delta(DAYS)
    else:
        days.update_incremental()


# --- reading committed days ------------------------------------------------------------------


def snapshot_files(
    fs: LakeFS,
    table: str,
    version: int | None = None,
    as_of: dt.datetime | None = None,
    *,
    loaded=None,
) -> tuple[int | None, dict[str, list[tuple[str, int]]]]:
    """(the version read, partition folder -> [(file, size)]) of the table's snapshot (of the
    `loaded` DeltaTable when given); file paths are relative to the table root. (None, {})
    before the table's first commit."""
    import pyarrow as pa

    data = loaded if loaded is not None else fs.delta(table, version, as_of)
    if data is None:
        return None, {}
    actions = pa.table(data.get_add_actions(flatten=True)).select(["path", "size_bytes"])
    by_folder: dict[str, list[tuple[str, int]]] = {}
    for path, size in zip(
        actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True
    ):
        rel = unquote(path)
        by_folder.setdefault(rel.rsplit("/", 1)[0], []).append((rel, size))
    return data.version(), by_folder


def committed(
    fs: LakeFS, table: str, days: Iterable[dt.date] | None = None, *, with_files: bool = True
) -> dict[dt.date, CommittedDay]:
    """The facts of the committed days among `days` (all days when None), each with its files in
    the table's current snapshot (unless `with_files` is False)."""
    facts = load_facts(fs)
    wanted = None if days is None else {d.isoformat() for d in days}
    found = {
        dt.date.fromisoformat(date): CommittedDay(**{**asdict(m), "files": []})
        for (t, date), m in facts.days.items()
        if t == table and (wanted is None or date in wanted)
    }
    if with_files and found:
        _, folders = snapshot_files(fs, table)
        for folder, files in folders.items():
            day = partition_date(folder)
            if day in found:
                found[day].files.extend(rel for rel, _ in files)
        for m in found.values():
            m.files.sort()
    return dict(sorted(found.items()))


def committed_day(fs: LakeFS, table: str, day: dt.date) -> CommittedDay | None:
    return committed(fs, table, [day]).get(day)


def newest_event(fs: LakeFS, table: str) -> dt.datetime | None:
    """The newest event time a committed day of `table` records (details.newest_event_at),
    looking from the newest day back."""
    for m in sorted(committed(fs, table, with_files=False).values(), key=lambda m: m.date)[::-1]:
        newest = m.details.get("newest_event_at")
        if newest:
            return dt.datetime.fromisoformat(newest)
    return None


def file_uris(fs: LakeFS, days: Iterable[CommittedDay]) -> list[str]:
    return [f"{fs.lake}/{m.table}/{f}" for m in days for f in m.files]


def read_committed(
    spark: SparkSession,
    fs: LakeFS,
    table: str,
    schema: StructType,
    days: Iterable[dt.date] | None,
) -> DataFrame:
    """The committed rows of `days`, with the table's partition columns (typed: client_id
    bigint, date date). Only the files of the table's current snapshot are opened."""
    found = committed(fs, table, days).values()
    return read_files(spark, fs, table, schema, file_uris(fs, found))


def read_files(
    spark: SparkSession, fs: LakeFS, table: str, schema: StructType, files: list[str]
) -> DataFrame:
    """`files` (URIs of the table's data files) as one DataFrame with the partition columns."""
    from pyspark.sql import functions as F

    partition_columns = list(PARTITION_COLUMNS[table])
    if not files:
        frame = spark.createDataFrame([], schema)
        for c in partition_columns:
            frame = frame.withColumn(c, F.lit(None).cast("bigint" if c == "client_id" else "date"))
        return frame
    frame = spark.read.schema(schema).option("basePath", f"{fs.lake}/{table}").parquet(*files)
    # Partition values come from the folder names; pin their types whatever Spark infers.
    return frame.withColumns(
        {c: F.col(c).cast("bigint" if c == "client_id" else "date") for c in partition_columns}
    )
