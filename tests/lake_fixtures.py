"""Writing crafted (possibly broken) bronze days and silver partitions straight into a lake,
the way a corrupted upstream or an old writer could have left them."""

from __future__ import annotations

import datetime as dt

from pyspark.sql.types import StructField, StructType

from deep_storage import schemas
from deep_storage.lake import BRONZE_EVENTS, MANIFEST, SILVER_EXECUTIONS, LakeFS, Manifest, day_uri
from tests.events import COLUMNS


def _relaxed(schema: StructType) -> StructType:
    return StructType([StructField(f.name, f.dataType, True) for f in schema.fields])


def write_bronze_day(spark, lake: str, day: dt.date, rows: list[dict], sealed: bool = False):
    fs = LakeFS(spark, lake)
    folder = fs.begin_day(BRONZE_EVENTS, day)
    frame = spark.createDataFrame(
        [tuple(r[c] for c in COLUMNS) for r in rows], _relaxed(schemas.BRONZE_EVENTS)
    )
    frame.coalesce(1).write.mode("overwrite").parquet(folder)
    fs.commit_day(
        Manifest(
            date=day.isoformat(),
            rows=len(rows),
            sealed=sealed,
            files=fs.data_files(folder),
            run_id="crafted",
            written_at="",
            table=BRONZE_EVENTS,
        )
    )


SILVER_COLUMNS = schemas.SILVER_EXECUTIONS.fieldNames()


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
    from pyspark.sql import functions as F

    fs = LakeFS(spark, lake)
    root = f"{lake}/{SILVER_EXECUTIONS}"
    frame = spark.createDataFrame(
        [tuple(r[c] for c in SILVER_COLUMNS) for r in rows], _relaxed(schemas.SILVER_EXECUTIONS)
    )
    frame = frame.withColumn("date", F.lit(day))
    frame.write.mode("append").partitionBy("client_id", "date").parquet(root)
    for client in sorted({r["client_id"] for r in rows}):
        folder = f"{root}/client_id={client}/date={day.isoformat()}"
        fs.write_text(
            f"{folder}/{MANIFEST}",
            Manifest(
                date=day.isoformat(),
                rows=sum(r["client_id"] == client for r in rows),
                sealed=True,
                files=fs.data_files(folder),
                run_id="crafted",
                written_at="",
            ).to_json(),
        )


__all__ = ["day_uri", "silver_row", "write_bronze_day", "write_silver_day"]
