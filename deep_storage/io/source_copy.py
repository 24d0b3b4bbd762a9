"""The source's rows in bulk: PostgreSQL's binary COPY straight into Arrow (the ADBC PostgreSQL
driver), written with pyarrow straight to Parquet files in the lake. No JVM, no Spark. Bronze's
default engine (tables/bronze.py); source_db holds the small metadata queries.

Bronze needs no shuffle and no join, and measured here Spark's JDBC decode and the handoff of
Arrow batches into the JVM cost more than the read itself (benchmarks/). The day's window is cut
into slices read in parallel, each on its own connection, each streaming its batches into its own
Parquet files (a new file every ROWS_PER_FILE rows), so memory is bounded by a few batches per
slice, never by the day's size. The files land under new names; lake.Writer counts their rows
from the footers and commits them with the same protocol as every other write.

Values stay exact: numeric arrives as the server's text and is cast to decimal128(20,8)/(10,4) (an
overflow fails, never rounds); uuid and jsonb are rendered by the server (`::text`), so event_id
is canonical and payload_json is jsonb::text byte for byte; timestamps are written as
TIMESTAMP(MICROS, adjusted to UTC), exactly as Spark writes them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from deep_storage.core import schemas
from deep_storage.core.config import SourceConfig, redact
from deep_storage.core.dates import window
from deep_storage.core.errors import SourceError, StoreError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs


class ArrowTarget(Protocol):
    """Where the files go: the lake's URI (named in errors) and its pyarrow file system with the
    lake's root in it (deep_storage.lake.LakeFS is one)."""

    lake: str

    def arrow(self) -> tuple[pyarrow.fs.FileSystem, str]: ...


ROWS_PER_FILE = 2_000_000
BATCH_BYTES = 32 << 20  # ADBC's batch size hint: a Parquet row group of ~80k rows
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Rendered as text by the server: canonical uuid text, jsonb::text byte for byte, and numeric's
# exact text (the driver's own binary-numeric decoding measured 2.4x slower than the server's).
_SERVER_RENDERED = {
    f.name: f"{f.name}::text"
    for f in schemas.BRONZE_EVENTS_SCHEMA.fields
    if f.name in ("event_id", "payload_json") or f.dataType.typeName() == "decimal"
}


def query(table: str, lo: dt.datetime, hi: dt.datetime, extra: tuple[str, ...] = ()) -> str:
    """The slice's rows, in the table's physical order (for an append-only log, close to
    occurred_at order). No ORDER BY: with one, a 5M-event day took 22.1 s from a 60-day table
    against 17.2 s from a 1-day table (benchmarks/results/scale-5m-seed1.json); nothing
    downstream needs the rows ordered.

    The bounds are rendered from datetimes this module computed (never from user text) as
    timestamptz literals: ADBC reads a query without bound parameters through COPY (FORMAT
    binary), its fast path."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"table name {table!r} is not a plain identifier")
    columns = ", ".join(
        [
            f"{_SERVER_RENDERED[f.name]} AS {f.name}" if f.name in _SERVER_RENDERED else f.name
            for f in schemas.BRONZE_EVENTS_SCHEMA.fields
        ]
        # Columns beyond the contract (schema drift) follow it, as the server's text.
        + [f"{_quoted(c)}::text AS {_quoted(c)}" for c in extra]
    )
    return (
        f'SELECT {columns} FROM "{table}" '
        f"WHERE occurred_at >= '{_literal(lo)}'::timestamptz "
        f"AND occurred_at < '{_literal(hi)}'::timestamptz"
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(instant: dt.datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("slice bounds must be aware datetimes")
    return instant.astimezone(dt.UTC).isoformat()


def uri(src: SourceConfig) -> str:
    # Every part percent-encoded: a password with ! $ ' " @ : / survives the URI intact.
    return (
        f"postgresql://{quote(src.user, safe='')}:{quote(src.password, safe='')}"
        f"@{src.host}:{src.port}/{quote(src.dbname, safe='')}"
        f"?connect_timeout={src.connect_timeout_s}&application_name=deep-storage"
        "&options=-c%20TimeZone%3DUTC"
    )


def slices(day: dt.date, parts: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The half-open window cut into `parts` half-open slices that cover it exactly."""
    start, end = window(day)
    step = (end - start) / parts
    edges = [start + step * i for i in range(parts)] + [end]
    return list(itertools.pairwise(edges))


def arrow_schema(extra: tuple[str, ...] = ()) -> pa.Schema:
    """The contract's columns, then any extra source columns as nullable strings."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema  # pure Python: no JVM starts

    contract = to_arrow_schema(schemas.BRONZE_EVENTS_SCHEMA)
    return pa.schema([*contract, *(pa.field(c, pa.string()) for c in extra)])


@dataclass(frozen=True)
class Landed:
    files: list[str]  # relative to the table root, in slice order
    rows: int  # rows written (the read count: every row read is written)
    newest: dt.datetime | None  # the newest occurred_at written
    # Each slice read: (rows, newest occurred_at), what source_db.slice_summary answers for it.
    slices: dict[int, tuple[int, dt.datetime | None]] = field(default_factory=dict)


def write_day(
    fs: ArrowTarget,
    table: str,
    src: SourceConfig,
    day: dt.date,
    parts: int = 2,
    extra: tuple[str, ...] = (),
    count: int = 1,
    only: list[int] | None = None,
) -> Landed:
    """Read the source rows of [day, day+1), cut into `count` slices, once and write them under
    `{table}/date=D/` as new Parquet files, each named for its slice (`slice_of`); `only` reads
    just those slices; `parts` slices are read at once, each on its own connection; `extra`
    names source columns beyond the contract. Nothing is committed here."""
    target = arrow_schema(extra)
    tag = uuid.uuid4().hex
    pieces = slices(day, max(1, count))
    chosen = list(range(len(pieces))) if only is None else sorted(only)

    def one(index: int) -> Landed:
        return _write_slice(fs, table, src, day, index, pieces[index], target, tag, extra)

    with ThreadPoolExecutor(max(1, min(parts, len(chosen)))) as pool:
        done = dict(zip(chosen, pool.map(one, chosen), strict=True))
    newest = [d.newest for d in done.values() if d.newest is not None]
    return Landed(
        [f for d in done.values() for f in d.files],
        sum(d.rows for d in done.values()),
        max(newest, default=None),
        {i: (d.rows, d.newest) for i, d in done.items()},
    )


_FILE_NAME = re.compile(r"^part-(\d{5})-\d{3}-[0-9a-f]{32}\.snappy\.parquet$")


def slice_of(rel: str) -> int | None:
    """The slice a bronze file was read from (`_new_file`'s name); None for a name this engine
    does not write (Spark's, an older layout's)."""
    found = _FILE_NAME.match(rel.rsplit("/", 1)[-1])
    return int(found.group(1)) if found else None


def schema_id(extra: tuple[str, ...] = ()) -> str:
    """A short fingerprint of the files' schema: a day's slices are kept only beside slices of
    the same schema."""
    import hashlib

    return hashlib.sha256(str(arrow_schema(extra)).encode()).hexdigest()[:16]


def _write_slice(fs, table, src, day, index, bounds, target, tag, extra) -> Landed:
    import adbc_driver_manager
    import adbc_driver_postgresql
    import adbc_driver_postgresql.dbapi as pgdb
    import pyarrow as pa
    import pyarrow.compute as pc

    afs, base = fs.arrow()
    files: list[str] = []
    rows = in_file = 0
    newest = None
    writer = None
    try:
        with pgdb.connect(uri(src)) as conn, conn.cursor() as cur:
            hint = adbc_driver_postgresql.StatementOptions.BATCH_SIZE_HINT_BYTES.value
            cur.adbc_statement.set_options(**{hint: str(BATCH_BYTES)})
            cur.execute(query(src.table, *bounds, extra))
            for batch in cur.fetch_record_batch():
                if batch.num_rows == 0:
                    continue
                batch = _conform(batch, target)
                if writer is None or in_file >= ROWS_PER_FILE:
                    if writer is not None:
                        writer.close()
                    writer, rel = _new_file(afs, base, table, day, index, len(files), tag, target)
                    files.append(rel)
                    in_file = 0
                writer.write_batch(batch)
                in_file += batch.num_rows
                rows += batch.num_rows
                top = pc.max(batch.column("occurred_at")).as_py()
                newest = top if newest is None or (top and top > newest) else newest
    except adbc_driver_manager.Error as exc:  # the database's side; no secret in the message
        raise SourceError(
            f"{src.where}: reading {day} (slice {index}) failed: {_first_line(exc, src)}"
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(
            f"writing {day}'s Parquet to lake {fs.lake} failed: {_first_line(exc, src)}: "
            "nothing was committed; check the object store and re-run"
        ) from None
    finally:
        if writer is not None:
            writer.close()
    return Landed(files, rows, newest.astimezone(dt.UTC) if newest else None)


def _new_file(afs, base: str, table: str, day: dt.date, index: int, number: int, tag: str, target):
    """A Parquet writer for the slice's next file, and that file's path relative to the table."""
    import pyarrow.parquet as pq

    name = f"part-{index:05d}-{number:03d}-{tag}.snappy.parquet"
    rel = f"date={day.isoformat()}/{name}"
    if base.startswith("/"):  # the local disk has folders to create
        afs.create_dir(f"{base}/{table}/date={day.isoformat()}", recursive=True)
    writer = pq.ParquetWriter(
        f"{base}/{table}/{rel}",
        target,
        filesystem=afs,
        compression="snappy",
        store_decimal_as_integer=True,  # as Spark writes decimal(10,4): INT64
        write_time_adjusted_to_utc=True,
    )
    return writer, rel


def _first_line(exc: Exception, src: SourceConfig) -> str:
    lines = redact(str(exc).replace(src.password, "***")).strip().splitlines()
    return (lines or [type(exc).__name__])[0][:300]


def _conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    columns = []
    for wanted in target:
        column = batch.column(wanted.name)
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        columns.append(column.cast(wanted.type))
    return pa.RecordBatch.from_arrays(columns, schema=target)
