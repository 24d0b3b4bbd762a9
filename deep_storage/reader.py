"""Read the lake in one call, the way the steps commit it: only the files a committed manifest
lists, never an interrupted or superseded write.

    import deep_storage
    week = deep_storage.read("silver", "2025-06-01", "2025-06-07")          # a pandas DataFrame
    one = deep_storage.read("bronze", "2025-06-02", columns=["event_id", "event_type"],
                            where="event_type = 'EXECUTED'", engine="arrow")

A plain `spark.read.parquet(".../silver/stop_executions")` or `duckdb.read_parquet(".../*.parquet")`
also reads files no manifest lists (a killed run's, a superseded version's), so it can count an
execution twice or see half a day. This module prunes days and clients by the manifests and the
partition folder names before any file is opened, pushes the column selection into the Parquet
scan, restores the partition columns with their types (client_id int64, date date), and adds
`_sealed`: False on the rows of a day that may still change (its manifest says unsealed).

Settings are the steps': `lake` or DEEP_STORAGE_LAKE or s3a://$S3_BUCKET, and the AWS_* variables
for the object store (pyarrow's S3 filesystem, path-style).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from deep_storage import lake as lakes
from deep_storage.config import StoreConfig, resolve_lake
from deep_storage.dates import DayRange, parse_day
from deep_storage.errors import InputError

ENGINES = ("pandas", "arrow", "duckdb", "polars", "spark")


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
    days: list[dt.date]  # committed days in the range
    missing: list[dt.date]  # days in the range with nothing committed
    unsealed: list[dt.date]
    files: list[str]  # table-relative, manifest-listed, after pruning
    extra_columns: tuple[str, ...] = ()  # source columns beyond the contract, in any day read


def select(
    table: str,
    start: str | dt.date,
    end: str | dt.date | None = None,
    *,
    clients: list[int] | None = None,
    lake: str | None = None,
    store: StoreConfig | None = None,
) -> tuple[Selection, lakes.LakeFS]:
    """Resolve the files a read needs from the manifests alone."""
    if table not in TABLES:
        raise InputError(f"table {table!r} is unknown: expected one of {', '.join(TABLES)}")
    spec = TABLES[table]
    first = start if isinstance(start, dt.date) else parse_day(start, name="start")
    last = first if end is None else end if isinstance(end, dt.date) else parse_day(end, name="end")
    days = DayRange(first, last)
    uri = resolve_lake(lake)
    fs = lakes.LakeFS(uri, store)  # an s3a lake takes the AWS_* settings when store is None
    manifests = lakes.committed(fs, spec.path, days.days())
    wanted = None if clients is None else {int(c) for c in clients}
    if wanted is not None and spec.partitions[0][0] != "client_id":
        raise InputError(f"{table} is not partitioned by client: pass `where` instead of clients")
    files = [
        rel
        for m in manifests.values()
        for rel in m.files
        if wanted is None or _client(rel) in wanted
    ]
    extra: dict[str, None] = {}  # in order of first appearance
    for _, m in sorted(manifests.items()):
        extra.update({c["name"]: None for c in m.details.get("extra_columns") or []})
    return (
        Selection(
            spec,
            uri,
            sorted(manifests),
            [d for d in days.days() if d not in manifests],
            sorted(d for d, m in manifests.items() if not m.sealed),
            files,
            tuple(extra),
        ),
        fs,
    )


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
    engine: str = "pandas",
    lake: str | None = None,
    spark: Any = None,
    store: StoreConfig | None = None,
) -> Any:
    """Committed rows of `table` ("bronze" or "silver") for the days [start, end].

    columns  the columns to read (partition columns and `_sealed` may be named too); all by default
    where    a SQL boolean expression over the columns (DuckDB's dialect; Spark SQL for spark)
    clients  silver only: the client ids to read (pruned by folder, before any file is opened)
    engine   pandas (DataFrame), arrow (Table), duckdb (a lazy relation), polars (DataFrame),
             spark (a DataFrame in `spark`, or the active session)
    """
    if engine not in ENGINES:
        raise InputError(f"engine {engine!r} is unknown: expected one of {', '.join(ENGINES)}")
    sel, fs = select(table, start, end, clients=clients, lake=lake, store=store)
    if engine == "spark":
        return _spark(sel, fs, columns, where, spark)
    if engine == "duckdb":
        return _duckdb(sel, fs, columns, where)
    # Without a filter, pyarrow scans the files itself (multi-threaded, columns pushed down).
    table = _table(_duckdb(sel, fs, columns, where)) if where else _arrow(sel, fs, columns)
    if engine == "arrow":
        return table
    if engine == "polars":
        try:
            import polars
        except ImportError:
            raise InputError("engine 'polars' needs polars: pip install polars") from None
        return polars.from_arrow(table)
    frame = _pandas(table)
    frame.attrs["unsealed_days"] = [d.isoformat() for d in sel.unsealed]
    frame.attrs["missing_days"] = [d.isoformat() for d in sel.missing]
    return frame


def _contract(spec: Table):
    from deep_storage import schemas

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


def dataset(sel: Selection, fs: lakes.LakeFS):
    """A pyarrow dataset of exactly the selected files, partition columns typed."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    afs, root = fs.arrow()
    data, partitions = _schema(sel.table)
    # Union by name across days: a day written before a source column appeared reads it as null.
    drift = pa.schema([pa.field(c, pa.string()) for c in sel.extra_columns])
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


def _spark(sel: Selection, fs: lakes.LakeFS, columns, where, spark):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise InputError("engine 'spark' needs a session: pass spark=... or start one first")
    frame = lakes.read_files(
        spark,
        fs,
        sel.table.path,
        _contract(sel.table),
        [f"{fs.lake}/{sel.table.path}/{rel}" for rel in sel.files],
    )
    sealed = ~F.col("date").isin(*sel.unsealed) if sel.unsealed else F.lit(True)
    frame = frame.withColumn("_sealed", sealed)
    if where:
        frame = frame.where(where)
    return frame.select(*columns) if columns else frame


@dataclass(frozen=True)
class DayStatus:
    table: str
    date: str
    rows: int
    sealed: bool
    committed_at: str
    run_id: str
    gate: str | None  # passed, warned, failed, or None when the gate never ran on the day
    report: str | None  # the gate's report page for the table and day

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def status(
    lake: str | None = None,
    *,
    days: int | None = 14,
    store: StoreConfig | None = None,
) -> list[DayStatus]:
    """Per table and committed day (the newest `days` of each; all with None): rows, sealed or
    not, committed when and by which run, and the gate's verdict with its report."""
    import json

    uri = resolve_lake(lake)
    fs = lakes.LakeFS(uri, store)
    out = []
    for name, spec in TABLES.items():
        version = sorted(lakes.current_version(fs, spec.path))
        shown = version if days is None else version[-days:]
        manifests = lakes.committed(fs, spec.path, [dt.date.fromisoformat(d) for d in shown])
        gate_table = {"bronze": "bronze_events", "silver": "silver_stop_executions"}[name]
        for day, m in sorted(manifests.items()):
            verdict_text = fs.read_text(
                f"{uri}/{lakes.QUALITY}/summary/date={day.isoformat()}/verdict.json"
            )
            verdict = json.loads(verdict_text) if verdict_text else {}
            gate = verdict.get("tables", {}).get(gate_table)
            out.append(
                DayStatus(
                    name,
                    day.isoformat(),
                    m.rows,
                    m.sealed,
                    m.written_at,
                    m.run_id,
                    gate,
                    f"{uri}/{lakes.QUALITY}/summary/date={day.isoformat()}/report.html"
                    if gate
                    else None,
                )
            )
    return out
