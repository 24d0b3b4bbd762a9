"""Bronze ingest: stop_events -> bronze/events/date=D/, one committed folder per UTC day.

extract (Spark JDBC, one read of the day's half-open window) -> conform (pure) -> load (the
commit protocol of lake.py). The seal check runs before the read, so every row it allowed for
is committed by the time the read's snapshot is taken.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from deep_storage import config, schemas, session, source
from deep_storage.config import SourceConfig, StoreConfig
from deep_storage.dates import DayRange, window
from deep_storage.errors import InputError
from deep_storage.lake import BRONZE_EVENTS, LakeFS, Manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DEFAULT_SEAL_MARGIN = dt.timedelta(minutes=5)
DEFAULT_READ_PARTITIONS = 2


@dataclass(frozen=True)
class DayResult:
    date: str
    rows: int
    sealed: bool
    reason: str | None


@dataclass
class BronzeResult:
    lake: str
    run_id: str
    days: list[DayResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)

    @property
    def unsealed(self) -> list[str]:
        return [d.date for d in self.days if not d.sealed]

    def to_dict(self) -> dict:
        return {
            "lake": self.lake,
            "run_id": self.run_id,
            "rows": self.rows,
            "days": [asdict(d) for d in self.days],
        }


def extract(
    spark: SparkSession,
    src: SourceConfig,
    day: dt.date,
    partitions: int = DEFAULT_READ_PARTITIONS,
    read_path: str = "jdbc",
) -> DataFrame:
    """The source rows of the UTC window [day, day+1), read once: through Spark JDBC (the
    default) or through the binary COPY protocol into Arrow (arrow_read.py)."""
    if read_path == "arrow":
        from deep_storage import arrow_read

        return arrow_read.extract(spark, src, day, partitions)
    if read_path != "jdbc":
        raise InputError(f"read path {read_path!r} is unknown: expected arrow or jdbc")
    return extract_jdbc(spark, src, day, partitions)


def extract_jdbc(
    spark: SparkSession, src: SourceConfig, day: dt.date, partitions: int = DEFAULT_READ_PARTITIONS
) -> DataFrame:
    """The source rows of the UTC window [day, day+1) through Spark JDBC.

    Spark's JDBC source cannot bind parameters; the bounds reach PostgreSQL as typed timestamp
    filters that Spark renders itself, in a JVM and session pinned to UTC (session.py), never as
    text built from user input.
    """
    start, end = window(day)
    fmt = "%Y-%m-%d %H:%M:%S"
    frame = (
        spark.read.format("jdbc")
        .options(**session.jdbc_options(src))
        .option("dbtable", f'"{src.table}"')
        .option("partitionColumn", "occurred_at")
        .option("lowerBound", start.strftime(fmt))
        .option("upperBound", end.strftime(fmt))
        .option("numPartitions", str(partitions))
        .load()
    )
    return frame.where((F.col("occurred_at") >= F.lit(start)) & (F.col("occurred_at") < F.lit(end)))


def conform(frame: DataFrame) -> DataFrame:
    """Exactly the contract's columns, names, order and types; event_id lower-case canonical."""
    columns = []
    for f in schemas.BRONZE_EVENTS.fields:
        col = F.col(f.name)
        if f.name == "event_id":
            col = F.lower(col.cast("string"))
        columns.append(col.cast(f.dataType).alias(f.name))
    return frame.select(*columns)


def load(
    fs: LakeFS, frame: DataFrame, day: dt.date, check: source.SealCheck, run_id: str
) -> Manifest:
    """Replace the day: manifest removed first, files written through the S3A committer,
    manifest written last with the row count read back from what landed."""
    started = time.monotonic()
    folder = fs.begin_day(BRONZE_EVENTS, day)
    frame.sortWithinPartitions("occurred_at", "event_id").write.mode("overwrite").parquet(folder)
    log.info("bronze %s: written in %.1f s", day, time.monotonic() - started)
    files = fs.data_files(folder)
    spark = frame.sparkSession
    rows = (
        spark.read.schema(schemas.BRONZE_EVENTS).parquet(*[f"{folder}/{n}" for n in files]).count()
        if files
        else 0
    )
    start, end = window(day)
    manifest = Manifest(
        date=day.isoformat(),
        rows=rows,
        sealed=check.sealed,
        files=files,
        run_id=run_id,
        written_at=dt.datetime.now(dt.UTC).isoformat(),
        table=BRONZE_EVENTS,
        details={
            "window": [start.isoformat(), end.isoformat()],
            "checked_at": check.checked_at.isoformat(),
            "snapshot_xmin": check.snapshot_xmin,
            "unsealed_reason": check.reason,
        },
    )
    fs.commit_day(manifest)
    return manifest


def plan_days(
    fs: LakeFS, conn, src: SourceConfig, *, empty_lake_from_source: bool = True
) -> DayRange | None:
    """Days to ingest when no --date is given: from the oldest day that is unsealed or was
    interrupted (or the day after the newest sealed one) up to the source's today."""
    today = source.server_now(conn).date()
    pending, sealed = [], []
    for day in fs.day_folders(BRONZE_EVENTS):
        m = fs.manifest(BRONZE_EVENTS, day)
        (sealed if m is not None and m.sealed else pending).append(day)
    candidates = list(pending)
    if sealed:
        candidates.append(max(sealed) + dt.timedelta(days=1))
    if not candidates and not empty_lake_from_source:
        return None
    if not candidates:
        oldest = source.oldest_event_day(conn, src)
        candidates.append(oldest if oldest is not None else today)
    first = min(candidates)
    return DayRange(first, today) if first <= today else None


def run(
    days: DayRange | None,
    lake: str,
    *,
    src: SourceConfig | None = None,
    store_config: StoreConfig | None = None,
    spark: SparkSession | None = None,
    seal_margin: dt.timedelta = DEFAULT_SEAL_MARGIN,
    read_partitions: int = DEFAULT_READ_PARTITIONS,
    read_path: str | None = None,
    run_id: str | None = None,
    catch_up: bool = False,
) -> BronzeResult:
    """Ingest `days` (or, when None, every day from the oldest unsealed one up to today).

    With `catch_up`, the range starts earlier when an older day is unsealed or was interrupted,
    so a scheduled run also repairs what missed or failed runs left behind.

    Checks the database and the bucket before Spark starts or anything is written.
    """
    src = src or SourceConfig.from_env()
    read_path = config.read_path(read_path)
    run_id = config.run_id(run_id)
    with source.connect(src) as conn:
        source.check_table(conn, src)
        spark = session.for_lake("bronze", lake, spark, store_config)
        fs = LakeFS(spark, lake)
        if days is None:
            days = plan_days(fs, conn, src)
        elif catch_up:
            pending = plan_days(fs, conn, src, empty_lake_from_source=False)
            if pending is not None and pending.first < days.first:
                log.info("bronze: catching up from %s (oldest unsealed day)", pending.first)
                days = DayRange(pending.first, days.last)
        result = BronzeResult(lake=lake, run_id=run_id)
        if days is None:
            log.info("bronze: nothing to ingest")
            return result
        log.info("bronze: ingesting %s into %s", days, lake)
        for day in days.days():
            check = source.seal_check(conn, src, day, seal_margin)
            frame = conform(extract(spark, src, day, read_partitions, read_path))
            manifest = load(fs, frame, day, check, run_id)
            state = "sealed" if manifest.sealed else f"unsealed ({check.reason})"
            log.info("bronze %s: %d rows, %s", day, manifest.rows, state)
            result.days.append(
                DayResult(day.isoformat(), manifest.rows, manifest.sealed, check.reason)
            )
        return result
