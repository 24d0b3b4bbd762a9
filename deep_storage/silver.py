"""Silver: bronze/events -> silver/stop_executions/client_id=N/date=D/.

One pass over the bronze days the run needs, the pure projection of projection.py, and a
partition-level replace of only the (client_id, date) partitions whose rows change.

Which days are read, for a run over [D, D2] with look-back L:
  [D-L, D-1]  look-back: the early events of executions still open on D;
  [D, D2]     the run's days: must be committed;
  [D2+1, D2+L] whatever is committed already, so re-running an old day never rolls an
              execution back to a state that later days have moved past.
An execution is re-projected when its events overlap [D, D2+1). Its row lives in the partition
of its first event's UTC date; a partition of a look-back day keeps its other rows as they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from deep_storage import config, projection, schemas, session
from deep_storage.config import StoreConfig
from deep_storage.dates import DayRange, window
from deep_storage.errors import LakeStateError
from deep_storage.lake import (
    BRONZE_EVENTS,
    MANIFEST,
    QUARANTINE,
    SILVER_EXECUTIONS,
    LakeFS,
    Manifest,
)
from deep_storage.quality import helpers, rules

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 7
_PARALLEL_FS_CALLS = 16


@dataclass
class SilverResult:
    lake: str
    run_id: str
    days: str
    executions: int = 0
    partitions_written: int = 0
    partitions_removed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    bronze_days_read: list[str] = field(default_factory=list)
    unsealed_days: list[str] = field(default_factory=list)
    missing_lookback_days: list[str] = field(default_factory=list)
    left_out: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BronzeInput:
    files: list[str]
    read_days: list[dt.date]
    unsealed: list[dt.date]
    missing_lookback: list[dt.date]


def _repair(day: dt.date) -> str:
    return f"run `deep-storage bronze --date {day}`"


def plan_bronze(fs: LakeFS, days: DayRange, lookback_days: int) -> BronzeInput:
    """Check the bronze days a run needs and collect their committed files."""
    files: list[str] = []
    read, unsealed, missing = [], [], []

    def take(day: dt.date, role: str) -> None:
        found = fs.committed_files(BRONZE_EVENTS, day)
        if found is None:
            exists = fs.exists(f"{fs.lake}/{BRONZE_EVENTS}/date={day}")
            if role == "run":
                state = "was interrupted (no manifest)" if exists else "was never ingested"
                raise LakeStateError(f"bronze day {day} {state}: {_repair(day)}")
            if role == "lookback":
                if exists:
                    raise LakeStateError(
                        f"look-back bronze day {day} was interrupted (no manifest): {_repair(day)}"
                    )
                missing.append(day)
            return
        manifest, day_files = found
        files.extend(day_files)
        read.append(day)
        if not manifest.sealed:
            unsealed.append(day)

    for i in range(lookback_days, 0, -1):
        take(days.first - dt.timedelta(days=i), "lookback")
    for day in days.days():
        take(day, "run")
    for i in range(1, lookback_days + 1):
        take(days.last + dt.timedelta(days=i), "ahead")
    return BronzeInput(files, read, unsealed, missing)


def read_events(spark: SparkSession, files: list[str]) -> DataFrame:
    if not files:
        return spark.createDataFrame([], schemas.BRONZE_EVENTS)
    return spark.read.schema(schemas.BRONZE_EVENTS).parquet(*files)


def overlapping(days: DayRange):
    """Keep executions whose events overlap the run's days [first, last+1)."""
    start, _ = window(days.first)
    _, end = window(days.last)

    def keep(executions: DataFrame) -> DataFrame:
        return executions.where(
            (F.col("_first_event_at") < F.lit(end)) & (F.col("_last_event_at") >= F.lit(start))
        )

    return keep


def with_fail_reasons(events: DataFrame, projected: DataFrame) -> DataFrame:
    """Adds `_reasons` to each execution: the fail-level rules broken by one of its events
    (bronze row rules) or by its own row (silver row rules). Executions with reasons are left
    out of silver.
    Their events stay in bronze; `deep-storage validate` reports and quarantines them."""
    bronze_fail = [r for r in rules.BRONZE_ROW_RULES if r.level == rules.FAIL]
    silver_fail = [r for r in rules.SILVER_ROW_RULES if r.level == rules.FAIL]
    bad_events = (
        events.transform(helpers.bronze_helpers)
        .withColumn("_reasons", helpers.reasons(bronze_fail))
        .where(F.size("_reasons") > 0)
        .transform(projection.with_execution_key)
        .groupBy("execution_id")
        .agg(F.array_distinct(F.flatten(F.collect_list("_reasons"))).alias("_event_reasons"))
    )
    return (
        projected.transform(helpers.silver_helpers)
        .withColumn("_reasons", helpers.reasons(silver_fail))
        .join(F.broadcast(bad_events), "execution_id", "left")
        .withColumn(
            "_reasons",
            F.concat(
                "_reasons", F.coalesce(F.col("_event_reasons"), F.array().cast("array<string>"))
            ),
        )
        .drop("_event_reasons", *helpers.SILVER_HELPERS)
    )


def _date_glob(days: list[dt.date]) -> str:
    return "{" + ",".join(d.isoformat() for d in days) + "}"


def _partition_key(uri: str) -> tuple[int, str]:
    parts = dict(p.split("=", 1) for p in uri.rstrip("/").split("/")[-2:])
    return int(parts["client_id"]), parts["date"]


def _partition_uri(lake: str, client_id: int, date: str) -> str:
    return f"{lake}/{SILVER_EXECUTIONS}/client_id={client_id}/date={date}"


def run(
    days: DayRange,
    lake: str,
    *,
    spark: SparkSession | None = None,
    store_config: StoreConfig | None = None,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    run_id: str | None = None,
) -> SilverResult:
    """Project executions for `days` and replace the silver partitions they change."""
    run_id = config.run_id(run_id)
    spark = session.for_lake("silver", lake, spark, store_config)
    fs = LakeFS(spark, lake)
    root = f"{lake}/{SILVER_EXECUTIONS}"

    # An interrupted silver partition of a look-back day cannot be merged into: widen the run
    # to start at that day, whose partitions are then re-projected whole.
    while True:
        lookback = [days.first - dt.timedelta(days=i) for i in range(lookback_days, 0, -1)]
        current = list(days.days())
        existing = fs.glob(f"{root}/client_id=*/date={_date_glob(lookback + current)}")
        committed = {
            u.rsplit("/", 1)[0]
            for u in fs.glob(f"{root}/client_id=*/date={_date_glob(lookback + current)}/{MANIFEST}")
        }
        broken = sorted(
            dt.date.fromisoformat(_partition_key(u)[1])
            for u in existing
            if u not in committed and dt.date.fromisoformat(_partition_key(u)[1]) < days.first
        )
        if not broken:
            break
        log.warning(
            "silver: partitions of %s were interrupted; re-projecting from that day", broken[0]
        )
        days = DayRange(broken[0], days.last)

    bronze_in = plan_bronze(fs, days, lookback_days)
    result = SilverResult(
        lake=lake,
        run_id=run_id,
        days=str(days),
        bronze_days_read=[d.isoformat() for d in bronze_in.read_days],
        unsealed_days=[d.isoformat() for d in bronze_in.unsealed],
        missing_lookback_days=[d.isoformat() for d in bronze_in.missing_lookback],
    )
    if bronze_in.missing_lookback:
        log.warning(
            "silver: look-back bronze days never ingested, read as empty: %s",
            ", ".join(result.missing_lookback_days),
        )
    if bronze_in.unsealed:
        log.warning(
            "silver: bronze days still unsealed (may change): %s", ", ".join(result.unsealed_days)
        )

    started = time.monotonic()

    def phase(name: str) -> None:
        log.info("silver: %s done at %.1f s", name, time.monotonic() - started)

    events = read_events(spark, bronze_in.files)
    projected = events.transform(projection.executions).transform(overlapping(days))
    checked = with_fail_reasons(events, projected).cache()
    new = checked.where(F.size("_reasons") == 0).drop("_reasons")
    left_out = checked.where(F.size("_reasons") > 0)
    result.left_out = left_out.count()
    phase("read, projection and rule checks")
    if result.left_out:
        where = f"{lake}/{QUARANTINE}/silver_left_out/run_id={run_id}"
        left_out.coalesce(1).write.mode("overwrite").parquet(where)
        log.warning(
            "silver: left out %d executions that break fail-level rules (rows in %s)",
            result.left_out,
            where,
        )
    first = days.first.isoformat()
    old_files = (
        [
            u
            for u in fs.glob(f"{root}/client_id=*/date={_date_glob(lookback)}/part-*")
            if u.rsplit("/", 1)[0] in committed
        ]
        if lookback
        else []
    )
    if old_files:
        old = (
            spark.read.schema(schemas.SILVER_EXECUTIONS)
            .option("basePath", root)
            .parquet(*old_files)
            .withColumn("date", F.col("date").cast("date"))
        )
        # Rows of re-projected executions (kept or left out) in look-back partitions go away.
        moved = old.join(checked.select("execution_id"), "execution_id", "left_semi")
    else:
        old = moved = None

    keys_new = {
        (r.client_id, r.date.isoformat())
        for r in new.select("client_id", "date").distinct().collect()
    }
    keys_moved = (
        {
            (r.client_id, r.date.isoformat())
            for r in moved.select("client_id", "date").distinct().collect()
        }
        if moved
        else set()
    )
    keys_current = {_partition_key(u) for u in existing if _partition_key(u)[1] >= first}
    rewrite = keys_new | keys_moved | keys_current

    columns = [*schemas.SILVER_EXECUTIONS.fieldNames(), "date"]
    final = new.select(*columns)
    lookback_targets = [(c, dt.date.fromisoformat(d)) for c, d in rewrite if d < first]
    if old is not None and lookback_targets:
        targets = spark.createDataFrame(lookback_targets, "client_id long, date date")
        kept = (
            old.join(checked.select("execution_id"), "execution_id", "left_anti")
            .join(F.broadcast(targets), ["client_id", "date"], "left_semi")
            .select(*columns)
        )
        final = final.unionByName(kept)
    final = final.cache()
    counts = {
        (r.client_id, r.date.isoformat()): r["count"]
        for r in final.groupBy("client_id", "date").count().collect()
    }

    phase(f"planning {len(rewrite)} partitions")
    uris = {k: _partition_uri(lake, *k) for k in rewrite}
    with ThreadPoolExecutor(_PARALLEL_FS_CALLS) as pool:
        # Un-commit every partition the run replaces, then clear it, then write, then commit.
        list(pool.map(lambda u: fs.delete(f"{u}/{MANIFEST}"), uris.values()))
        list(pool.map(lambda u: fs.delete(u, True), uris.values()))
    phase("clearing the partitions")
    (
        final.repartition("client_id", "date")
        .sortWithinPartitions("date", "client_id", "triggered_at", "execution_id")
        .write.mode("append")
        # Partition-level replace the way Hadoop documents it for the S3A committers: the
        # partitioned staging committer, conflict mode "replace", Spark in append mode.
        .option("fs.s3a.committer.name", "partitioned")
        .option("fs.s3a.committer.staging.conflict-mode", "replace")
        .partitionBy("client_id", "date")
        .parquet(root)
    )

    phase("writing")
    now = dt.datetime.now(dt.UTC).isoformat()
    unsealed = set(result.unsealed_days)

    def commit(key: tuple[int, str]) -> None:
        uri = uris[key]
        names = fs.data_files(uri)
        manifest = Manifest(
            date=key[1],
            rows=counts[key],
            sealed=not unsealed,
            files=names,
            run_id=run_id,
            written_at=now,
            table=f"{SILVER_EXECUTIONS}/client_id={key[0]}",
            details={
                "client_id": key[0],
                "run_days": str(days),
                "bronze_days": result.bronze_days_read,
            },
        )
        fs.write_text(f"{uri}/{MANIFEST}", manifest.to_json())

    written = [k for k in rewrite if counts.get(k)]
    with ThreadPoolExecutor(_PARALLEL_FS_CALLS) as pool:
        list(pool.map(commit, written))
    phase("manifests")

    result.by_status = {r.status: r["count"] for r in new.groupBy("status").count().collect()}
    result.executions = sum(result.by_status.values())
    result.partitions_written = len(written)
    result.partitions_removed = len(rewrite) - len(written)
    checked.unpersist()
    final.unpersist()
    log.info(
        "silver %s: %d executions re-projected, %d partitions written, %d removed",
        days,
        result.executions,
        result.partitions_written,
        result.partitions_removed,
    )
    return result


def read_committed(spark: SparkSession, lake: str, dates: list[dt.date]) -> DataFrame:
    """Silver rows of the committed partitions of `dates`, with client_id and date columns."""
    fs = LakeFS(spark, lake)
    root = f"{lake}/{SILVER_EXECUTIONS}"
    pattern = f"{root}/client_id=*/date={_date_glob(dates)}"
    committed = {u.rsplit("/", 1)[0] for u in fs.glob(f"{pattern}/{MANIFEST}")}
    files = [u for u in fs.glob(f"{pattern}/part-*") if u.rsplit("/", 1)[0] in committed]
    if not files:
        return spark.createDataFrame([], schemas.SILVER_EXECUTIONS).withColumn(
            "date", F.lit(None).cast("date")
        )
    return (
        spark.read.schema(schemas.SILVER_EXECUTIONS)
        .option("basePath", root)
        .parquet(*files)
        .withColumn("date", F.col("date").cast("date"))
    )
