"""Read the lake in one call: one version of a Delta table, pruned, typed and labelled.

    import deep_storage
    week = deep_storage.read("silver", "2025-06-01", "2025-06-07")      # a pandas DataFrame
    n = week.attrs["delta_version"]                                      # the version it read
    same = deep_storage.read("silver", "2025-06-01", "2025-06-07", version=n)  # after any commit
    then = deep_storage.read("bronze", "2025-06-02", as_of="2025-06-03T01:00:00Z", engine="arrow")

Both tables are Delta Lake tables (lake/), so any Delta reader (delta-rs, delta-spark, DuckDB
over delta-rs's Arrow dataset, Trino) reads exactly the committed rows of a version: the
transaction log lists its files, and a killed run's or a superseded version's files are in no
version. This module adds what a notebook wants on top of that:
- pruning before any file is opened: the files of the version's snapshot (lake.snapshot_files)
  are narrowed to the days' partition folders and, for silver, the clients' folders, and the
  column selection is pushed into the Parquet scan;
- the contract's types: client_id int64 and date date from the partition folders, and exact
  decimals (pandas gets Arrow-backed decimal128, not floats); columns a source added later
  (schema evolution: the table's schema has them) read as null on the days before;
- `_sealed`: False on the rows of a day that may still change (its facts at that version);
- the version: every read is of one version and says which. pandas: `frame.attrs
  ["delta_version"]` (with `unsealed_days`, `missing_days`); arrow: the schema metadata
  `b"delta_version"` (absent, like the attrs' None, before the table's first commit). A DuckDB
  relation, a polars or a Spark DataFrame has no place for it: pin those reads with `version=`
  (`select(...)[0].version` is the current one).

Time travel: `version=N` reads version N; `as_of` (ISO-8601, or an aware datetime; naive means
UTC) the version that was current then. Versions stay readable while their files are kept:
7 days after a newer version replaced them (vacuum's retention), 30 days of log. The days' facts
(`_sealed`, which days are committed) are those of that version: `_days` when no day changed
since, else the commit metadata of the version's log, walked back from it.

The spark engine: with delta-spark on the session (its SQL extension configured, as
spark_session.build does) it reads `spark.read.format("delta").option("versionAsOf", N)` of the
table's s3a URI, filtered by date (and client_id): Delta's own reader prunes the partitions from
the same log, takes the file sizes from it instead of asking the store for each file (a silver
day is ~200 files), and would honour any Delta feature a later writer turns on (deletion
vectors, column mapping), which a list of Parquet files would not. N is resolved here first, so
the rows and `_sealed` come from one version. A session without delta-spark (a notebook's own
Spark) reads the same snapshot's files by name (lake.read_files) instead: the same rows.

Settings are the steps': `lake` or DEEP_STORAGE_LAKE or s3a://$S3_BUCKET, and the AWS_* variables
for the object store (delta-rs and pyarrow's S3 filesystem, path-style).
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from typing import Any

from deep_storage import lake as lakes
from deep_storage.core.config import StoreConfig, resolve_lake
from deep_storage.core.dates import DayRange, parse_day, parse_instant
from deep_storage.core.errors import InputError
from deep_storage.lake import delta_log

ENGINES = ("pandas", "arrow", "duckdb", "polars", "spark")
VERSION_KEY = b"delta_version"  # in an Arrow result's schema metadata
_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"


@dataclass(frozen=True)
class Table:
    path: str
    partitions: tuple[tuple[str, str], ...]  # (column, arrow type name)


TABLES = {
    "bronze": Table(lakes.BRONZE_EVENTS, (("date", "date32"),)),
    "silver": Table(lakes.SILVER_EXECUTIONS, (("client_id", "int64"), ("date", "date32"))),
}


@dataclass(frozen=True)
class Selection:
    """What a read resolved to, before any data file is opened."""

    table: Table
    lake: str
    version: int | None  # the Delta version read; None before the table's first commit
    span: DayRange
    days: list[dt.date]  # committed days in the range, at that version
    missing: list[dt.date]  # days in the range with nothing committed at that version
    unsealed: list[dt.date]
    files: list[str]  # table-relative, in the version's snapshot, after pruning
    clients: tuple[int, ...] | None = None
    extra: Any = None  # pyarrow schema: the table's columns beyond the contract (evolution)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return tuple(self.extra.names) if self.extra is not None else ()


def select(
    table: str,
    start: str | dt.date,
    end: str | dt.date | None = None,
    *,
    clients: list[int] | None = None,
    version: int | None = None,
    as_of: str | dt.datetime | None = None,
    lake: str | None = None,
    store: StoreConfig | None = None,
) -> tuple[Selection, lakes.LakeFS]:
    """Resolve the version, and the files a read needs from its snapshot and the day facts."""
    if table not in TABLES:
        raise InputError(f"table {table!r} is unknown: expected one of {', '.join(TABLES)}")
    spec = TABLES[table]
    span = _span(start, end)
    wanted = _wanted_clients(table, spec, clients)
    when = _instant(as_of)
    version = _checked_version(version, when, as_of)
    uri = resolve_lake(lake)
    fs = lakes.LakeFS(uri, store)  # an s3a lake takes the AWS_* settings when store is None
    at = _open(fs, spec.path, version, when, as_of)
    number = None if at is None else at.version()
    _, folders = lakes.snapshot_files(fs, spec.path, number) if at is not None else (None, {})
    days = set(span.days())
    in_range = {
        folder: files
        for folder, files in folders.items()
        if lakes.partition_date(folder) in days and (wanted is None or _client(folder) in wanted)
    }
    with_files = {lakes.partition_date(f) for f, files in folders.items() if files} & days
    sealed = _sealed_at(fs, spec.path, number, span, with_files)
    return (
        Selection(
            spec,
            uri,
            number,
            span,
            sorted(sealed),
            [d for d in span.days() if d not in sealed],
            sorted(d for d, s in sealed.items() if not s),
            sorted(rel for files in in_range.values() for rel, _ in files),
            wanted,
            _extra(spec, at),
        ),
        fs,
    )


def _span(start: str | dt.date, end: str | dt.date | None) -> DayRange:
    first = start if isinstance(start, dt.date) else parse_day(start, name="start")
    last = first if end is None else end if isinstance(end, dt.date) else parse_day(end, name="end")
    return DayRange(first, last)


def _wanted_clients(table: str, spec: Table, clients: list[int] | None) -> tuple[int, ...] | None:
    wanted = None if clients is None else tuple(sorted({int(c) for c in clients}))
    if wanted is not None and spec.partitions[0][0] != "client_id":
        raise InputError(f"{table} is not partitioned by client: pass `where` instead of clients")
    return wanted


def _checked_version(version, when: dt.datetime | None, as_of) -> int | None:
    """`version` as a table version number, or an InputError naming what was wrong with it."""
    given = version
    if version is not None and when is not None:
        raise InputError(
            f"version {version} and as_of {as_of!r} were both given: expected one of them "
            "(as_of picks the version that was current then)"
        )
    if version is not None:
        try:
            version = operator.index(version) if not isinstance(version, bool) else None
        except TypeError:
            version = None
        if version is None:
            raise InputError(f"version {given!r} is not a table version: expected an integer >= 0")
    if version is not None and version < 0:
        raise InputError(
            f"version {version} is not a table version: expected an integer >= 0 (0 is the "
            "table's first commit)"
        )
    return version


def _instant(as_of: str | dt.datetime | None) -> dt.datetime | None:
    if as_of is None or isinstance(as_of, dt.datetime):
        if as_of is not None and as_of.tzinfo is None:
            return as_of.replace(tzinfo=dt.UTC)
        return as_of
    if not isinstance(as_of, str):
        raise InputError(
            f"as_of {as_of!r} is not a time: expected ISO-8601, e.g. 2025-06-02T01:00:00Z"
        )
    return parse_instant(as_of, "as_of")


def _open(fs: lakes.LakeFS, table: str, version: int | None, when: dt.datetime | None, as_of):
    """The table's DeltaTable at `version`, at the version current at `when`, or current; None
    before the table's first commit (an InputError when a version was asked for)."""
    from deltalake.exceptions import TableNotFoundError

    head = fs.delta(table)
    if version is None and when is None:
        return head
    asked = f"version {version}" if version is not None else f"as_of {as_of!r}"
    if head is None:
        raise InputError(
            f"{asked}: {table} in {fs.lake} has no commit yet, so no version to read: read "
            "without version/as_of (an empty result) until a step has committed to it"
        )
    newest = head.version()
    if version is not None and version > newest:
        raise InputError(
            f"version {version} of {table} does not exist yet: expected 0..{newest} (the newest)"
        )
    if version == newest:
        return head
    try:
        head.load_as_version(version if version is not None else when)
    except (TableNotFoundError, FileNotFoundError):
        # The log before the oldest checkpoint kept is gone (30 days of log are kept).
        raise InputError(
            f"{asked} of {table} is no longer kept: expected a version of the last 30 days "
            f"(the newest is {newest}); read without version/as_of for the current rows"
        ) from None
    except Exception as exc:
        raise fs._fail(f"open version {asked} of {table}", exc) from None
    if when is not None:
        committed_at = delta_log.commit_time(fs, table, head.version())
        if committed_at is not None and committed_at > when:
            raise InputError(
                f"as_of {as_of!r} is before {table}'s first commit kept (version "
                f"{head.version()}, {committed_at.isoformat(timespec='seconds')}): expected a "
                "time on or after it"
            )
    return head


def _sealed_at(
    fs: lakes.LakeFS, table: str, version: int | None, span: DayRange, with_files: set[dt.date]
) -> dict[dt.date, bool]:
    """Committed day -> sealed, for the days of `span` as they were at `version`.

    The current facts (`_days`) hold for every day no commit after `version` touched; a day with
    files in the snapshot whose facts changed since takes the facts of the newest commit at or
    before `version` that carried it, from that commit's metadata in the log."""
    if version is None:
        return {}
    facts = lakes.committed(fs, table, span.days(), with_files=False)
    found = {d: m.sealed for d, m in facts.items() if m.version <= version}
    need = {d.isoformat() for d in with_files if d not in found}
    for _, commit in delta_log.facts_back(fs, table, version) if need else ():
        for day in (commit or {}).get("days", []):
            if day["date"] in need:
                found[dt.date.fromisoformat(day["date"])] = bool(day["sealed"])
                need.discard(day["date"])
        if not need:
            break
    for date in need:  # files without facts: readable, but nothing says the day is final
        found[dt.date.fromisoformat(date)] = False
    return dict(sorted(found.items()))


def _extra(spec: Table, at) -> Any:
    """The table's columns at that version beyond the contract (a source's new columns)."""
    import pyarrow as pa

    if at is None:
        return None
    known = {f.name for f in _contract(spec).fields} | {n for n, _ in spec.partitions}
    fields = [
        # delta-rs may hand strings over as large strings or views: plain strings, as the files.
        pa.field(f.name, pa.string())
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
        else f
        for f in pa.schema(at.schema().to_arrow())
        if f.name not in known
    ]
    return pa.schema(fields) if fields else None


def _client(relpath: str) -> int | None:
    for part in relpath.split("/"):
        if part.startswith("client_id="):
            return int(part.split("=", 1)[1])
    return None


def read(
    table: str,
    start: str | dt.date,
    end: str | dt.date | None = None,
    *,
    columns: list[str] | None = None,
    where: str | None = None,
    clients: list[int] | None = None,
    version: int | None = None,
    as_of: str | dt.datetime | None = None,
    engine: str = "pandas",
    lake: str | None = None,
    spark: Any = None,
    store: StoreConfig | None = None,
) -> Any:
    """Committed rows of `table` ("bronze" or "silver") for the days [start, end], of one version.

    columns  the columns to read (partition columns and `_sealed` may be named too); all by default
    where    a SQL boolean expression over the columns (DuckDB's dialect; Spark SQL for spark)
    clients  silver only: the client ids to read (pruned by folder, before any file is opened)
    version  the table version to read (time travel); the current one by default
    as_of    or the version that was current at this time (ISO-8601 or a datetime; naive is UTC)
    engine   pandas (DataFrame), arrow (Table), duckdb (a lazy relation), polars (DataFrame),
             spark (a DataFrame in `spark`, or the active session)
    """
    if engine not in ENGINES:
        raise InputError(f"engine {engine!r} is unknown: expected one of {', '.join(ENGINES)}")
    sel, fs = select(
        table, start, end, clients=clients, version=version, as_of=as_of, lake=lake, store=store
    )
    if engine == "spark":
        return _spark(sel, fs, columns, where, spark)
    if engine == "duckdb":
        return _duckdb(sel, fs, columns, where)
    # Without a filter, pyarrow scans the files itself (multi-threaded, columns pushed down).
    table = _table(_duckdb(sel, fs, columns, where)) if where else _arrow(sel, fs, columns)
    if engine == "arrow":
        if sel.version is None:
            return table
        return table.replace_schema_metadata(
            {**(table.schema.metadata or {}), VERSION_KEY: str(sel.version).encode()}
        )
    if engine == "polars":
        try:
            import polars
        except ImportError:
            raise InputError("engine 'polars' needs polars: pip install polars") from None
        return polars.from_arrow(table)
    frame = _pandas(table)
    frame.attrs["delta_version"] = sel.version
    frame.attrs["unsealed_days"] = [d.isoformat() for d in sel.unsealed]
    frame.attrs["missing_days"] = [d.isoformat() for d in sel.missing]
    return frame


def _contract(spec: Table):
    from deep_storage.core import schemas

    return (
        schemas.BRONZE_EVENTS_SCHEMA
        if spec.path == lakes.BRONZE_EVENTS
        else schemas.SILVER_EXECUTIONS_SCHEMA
    )


def _schema(spec: Table):
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    contract = _contract(spec)
    partition_names = {name for name, _ in spec.partitions}
    data = [f for f in to_arrow_schema(contract) if f.name not in partition_names]
    types = {"int64": pa.int64(), "date32": pa.date32()}
    return pa.schema(data), pa.schema([pa.field(n, types[t]) for n, t in spec.partitions])


def _columns(sel: Selection) -> list[str]:
    """Every column a read returns, in order: the contract's data columns, the table's newer
    columns, the partition columns, `_sealed`."""
    data, partitions = _schema(sel.table)
    return [*data.names, *sel.extra_columns, *partitions.names, "_sealed"]


def dataset(sel: Selection, fs: lakes.LakeFS):
    """A pyarrow dataset of exactly the selected files, partition columns typed."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    afs, root = fs.arrow()
    data, partitions = _schema(sel.table)
    # By name across days: a day written before a column was added reads it as null.
    drift = sel.extra if sel.extra is not None else pa.schema([])
    base = f"{root}/{sel.table.path}"
    return ds.dataset(
        [f"{base}/{rel}" for rel in sel.files],
        schema=pa.unify_schemas([data, drift, partitions]),
        format="parquet",
        filesystem=afs,
        partitioning=ds.partitioning(partitions, flavor="hive"),
        partition_base_dir=base,
    )


def _arrow(sel: Selection, fs: lakes.LakeFS, columns: list[str] | None):
    import pyarrow as pa
    import pyarrow.compute as pc

    source = dataset(sel, fs)
    wanted = columns or [*source.schema.names, "_sealed"]
    unknown = [c for c in wanted if c != "_sealed" and c not in source.schema.names]
    if unknown:
        raise InputError(
            f"columns {unknown} are not in {sel.table.path}: expected some of "
            f"{', '.join(source.schema.names)}, _sealed"
        )
    scanned = [c for c in wanted if c != "_sealed"]
    if "_sealed" in wanted and "date" not in scanned:
        scanned.append("date")
    table = source.to_table(columns=scanned)
    if "_sealed" in wanted:
        unsealed = pa.array(sel.unsealed, type=pa.date32())
        table = table.append_column("_sealed", pc.invert(pc.is_in(table["date"], unsealed)))
    return table.select(wanted)


def _pandas(table):
    """Money stays exact: decimal columns become pandas' Arrow-backed decimal128 (converting them
    to Python Decimal objects row by row is slow, to float inexact); the rest as pandas does."""
    import pandas as pd
    import pyarrow as pa

    return table.to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_decimal(t) else None
    )


def _table(relation):
    """A DuckDB relation's rows as one Arrow table (DuckDB 2 renamed the call)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return fetch()


def _sealed_sql(sel: Selection) -> str:
    if not sel.unsealed:
        return "true AS _sealed"
    days = ", ".join(f"DATE '{d.isoformat()}'" for d in sel.unsealed)
    return f"date NOT IN ({days}) AS _sealed"


def _duckdb(sel: Selection, fs: lakes.LakeFS, columns, where):
    import duckdb

    con = duckdb.connect()
    scan = con.from_arrow(dataset(sel, fs))  # lazy: DuckDB pushes columns and filters into it
    relation = scan.project(f"*, {_sealed_sql(sel)}")
    if where:
        relation = relation.filter(where)
    if columns:
        relation = relation.project(", ".join(f'"{c}"' for c in columns))
    return relation


def has_delta(spark) -> bool:
    """Whether `spark` reads Delta itself: delta-spark's SQL extension is configured."""
    extensions = spark.conf.get("spark.sql.extensions", None) or ""
    return _DELTA_EXTENSION in [e.strip() for e in extensions.split(",")]


def _spark(sel: Selection, fs: lakes.LakeFS, columns, where, spark, delta: bool | None = None):
    """The selection as a Spark DataFrame: through delta-spark at the selection's version when
    the session has it (`delta`, by default detected), else from the snapshot's files by name."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise InputError("engine 'spark' needs a session: pass spark=... or start one first")
    root = f"{fs.lake}/{sel.table.path}"
    if sel.version is not None and (has_delta(spark) if delta is None else delta):
        frame = (
            spark.read.format("delta")
            .option("versionAsOf", sel.version)
            .load(root)
            .where(F.col("date").between(F.lit(sel.span.first), F.lit(sel.span.last)))
        )
        if sel.clients is not None:
            frame = frame.where(F.col("client_id").isin(*sel.clients))
    else:
        contract = _contract(sel.table)
        extra = [
            StructField(f.name, from_arrow_type(f.type), True)
            for f in (sel.extra if sel.extra is not None else [])
        ]
        frame = lakes.read_files(
            spark,
            fs,
            sel.table.path,
            StructType([*contract.fields, *extra]),
            [f"{root}/{rel}" for rel in sel.files],
        )
    sealed = ~F.col("date").isin(*sel.unsealed) if sel.unsealed else F.lit(True)
    frame = frame.withColumn("_sealed", sealed).select(*_columns(sel))
    if where:
        frame = frame.where(where)
    return frame.select(*columns) if columns else frame
