"""Writing crafted (possibly broken) bronze days and silver partitions straight into a lake,
the way a corrupted upstream or an old writer could have left them, through the lake's own
commit protocol; and reading what a Delta reader sees."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from deep_storage import lake as lakes
from deep_storage.core import schemas
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, LakeFS, day_uri, writer_lock
from tests.events import COLUMNS


def _relaxed(schema: StructType) -> StructType:
    return StructType([StructField(f.name, f.dataType, True) for f in schema.fields])


def _newest(rows: list[dict], columns: tuple[str, ...]) -> str | None:
    """The newest of `columns` over `rows`, as the steps record it (details.newest_event_at)."""
    found = [r[c] for r in rows for c in columns if r.get(c) is not None]
    return max(found).astimezone(dt.UTC).isoformat() if found else None


def write_bronze_day(
    spark, lake: str, day: dt.date, rows: list[dict], sealed: bool = False, details=None
):
    fs = LakeFS(lake)
    frame = spark.createDataFrame(
        [tuple(r[c] for c in COLUMNS) for r in rows], _relaxed(schemas.BRONZE_EVENTS_SCHEMA)
    )
    with writer_lock.hold(lake, "crafted", str(day), "crafted") as lease:
        writer = lakes.Writer(fs, BRONZE_EVENTS, lease, "crafted")
        written = writer.write(
            frame.coalesce(1),
            [day],
            folder=day_uri(lake, BRONZE_EVENTS, day),
        )
        writer.commit(
            [
                lakes.CommittedDay(
                    table=BRONZE_EVENTS,
                    date=day.isoformat(),
                    rows=len(rows),
                    sealed=sealed,
                    files=written.files[day],
                    partitions={f"date={day}": len(rows)},
                    run_id="crafted",
                    written_at="",
                    details={
                        "newest_event_at": _newest(rows, ("occurred_at",)),
                        **(details or {}),
                    },
                )
            ],
            written,
        )


SILVER_COLUMNS = schemas.SILVER_EXECUTIONS_SCHEMA.fieldNames()
SILVER_NEWEST = ("triggered_at", "submitted_at", "executed_at", "failed_at")


def silver_row(**kw) -> dict:
    base = {c: None for c in SILVER_COLUMNS}
    base.update(
        execution_id="e-1",
        operation_id=1,
        client_id=1,
        execution_token="1:1:1",
        symbol="BTCUSDC",
        status="PENDING",
        side="SELL",
        source="ws",
        retry_count=0,
        triggered_at=dt.datetime(2025, 6, 1, 10, tzinfo=dt.UTC),
    )
    base.update(kw)
    return base


def write_silver_day(spark, lake: str, day: dt.date, rows: list[dict]):
    fs = LakeFS(lake)
    frame = spark.createDataFrame(
        [tuple(r[c] for c in SILVER_COLUMNS) for r in rows],
        _relaxed(schemas.SILVER_EXECUTIONS_SCHEMA),
    ).withColumn("date", F.lit(day))
    with writer_lock.hold(lake, "crafted", str(day), "crafted") as lease:
        writer = lakes.Writer(fs, SILVER_EXECUTIONS, lease, "crafted")
        written = writer.write(frame, [day], partition_by=["client_id", "date"])
        partitions = {}
        for r in rows:
            key = f"client_id={r['client_id']}/date={day}"
            partitions[key] = partitions.get(key, 0) + 1
        writer.commit(
            [
                lakes.CommittedDay(
                    table=SILVER_EXECUTIONS,
                    date=day.isoformat(),
                    rows=len(rows),
                    sealed=True,
                    files=written.files[day],
                    partitions=partitions,
                    run_id="crafted",
                    written_at="",
                    details={"newest_event_at": _newest(rows, SILVER_NEWEST)},
                )
            ],
            written,
            replace=set(partitions),
        )


def recommit(lake: str, table: str, day: dt.date, **changes) -> None:
    """Commit the day's current files again with some of its facts changed (e.g. sealed)."""
    fs = LakeFS(lake)
    m = lakes.committed_day(fs, table, day)
    for key, value in changes.items():
        setattr(m, key, value)
    with writer_lock.hold(lake, "crafted", str(day), "crafted") as lease:
        lakes.Writer(fs, table, lease, "crafted").commit([m])


def bronze_rows(spark, lake: str, days: list[dt.date]) -> list:
    """What a Delta reader sees of bronze `days`, ordered."""
    frame = lakes.read_committed(
        spark, LakeFS(lake), BRONZE_EVENTS, schemas.BRONZE_EVENTS_SCHEMA, days
    )
    return frame.orderBy("occurred_at", "event_id").collect()


def silver_snapshot(spark, lake: str) -> dict[str, list[tuple]]:
    """Every committed silver partition -> its rows as sorted tuples (file names ignored)."""
    fs = LakeFS(lake)
    out: dict[str, list[tuple]] = {}
    frame = lakes.read_committed(
        spark, fs, SILVER_EXECUTIONS, schemas.SILVER_EXECUTIONS_SCHEMA, None
    )
    for r in frame.collect():
        key = f"client_id={r.client_id}/date={r.date.isoformat()}"
        out.setdefault(key, []).append(tuple(r)[:-1])
    return {k: sorted(v) for k, v in sorted(out.items())}


def delta_rs_keys(lake: str, table: str) -> list[str]:
    """The ids a Delta reader that is not ours (delta-rs) sees in `table`: event_id for bronze,
    execution_id for silver, sorted."""

    fs = LakeFS(lake)
    found = fs.delta(table)
    if found is None:
        return []
    key = "event_id" if table == BRONZE_EVENTS else "execution_id"
    return sorted(fs.scan(table, found, columns=[key]).column(key).to_pylist())


def leftovers_after_vacuum(lake: str, table: str) -> list[str]:
    """Vacuum `table` with a zero window, then list the data files its snapshot does not name:
    what a killed or superseded write would leave behind for good (nothing, after vacuum)."""
    fs = LakeFS(lake)
    lakes.vacuum(fs, table, retention_hours=0)
    listed = {f for m in lakes.committed(fs, table).values() for f in m.files}
    data = [f for f in fs.list_files(f"{lake}/{table}") if f.endswith(".parquet")]
    return [f for f in data if not f.startswith("_") and f not in listed]


def lake_rows(spark, lake: str, day: dt.date) -> dict[str, list[tuple]]:
    """What a committed-data reader sees of `day` in each table, as sorted row tuples: file
    names, commit facts and run ids are not compared. The one place that knows the lake's reader."""
    fs = LakeFS(lake)
    tables = {
        "bronze": (BRONZE_EVENTS, schemas.BRONZE_EVENTS_SCHEMA),
        "silver": (SILVER_EXECUTIONS, schemas.SILVER_EXECUTIONS_SCHEMA),
    }
    rows = {}
    for name, (table, schema) in tables.items():
        frame = lakes.read_committed(spark, fs, table, schema, [day])
        rows[name] = sorted(tuple(r) for r in frame.collect())
    return rows


__all__ = [
    "bronze_rows",
    "day_uri",
    "delta_rs_keys",
    "lake_rows",
    "leftovers_after_vacuum",
    "recommit",
    "silver_row",
    "silver_snapshot",
    "write_bronze_day",
    "write_silver_day",
]
