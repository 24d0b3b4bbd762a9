"""Silver: bronze/events -> silver/stop_executions/client_id=N/date=D/.

One run is four small steps, under the lake's writer lease:
  plan     which bronze days to read and which committed silver days may hold stale rows
           (silver_plan.py: from the days' commit facts alone);
  project  one read of those bronze days, the events split by client_id, and in each task the
  + write  projection of projection.py, the merge with the committed rows of untouched
           executions that share a partition with re-projected ones, and one new file per
           changed (client_id, date) partition (silver_task.py);
  commit   one Delta transaction replacing every partition the run changed (lake.Writer).

Two engines run the same tasks (`engine_for`): this process, with DuckDB on a thread per task,
for a run that fits one pod (no JVM: on an hourly run, the start of Spark and its shuffle cost
more than the projection); Spark, whose tasks are its Python workers fed by one shuffle, for a
run above SILVER_DUCKDB_MAX_ROWS or with executors. The same tasks give the same rows.

Which days a run reads and rebuilds, and when it resumes a dead run or skips: silver_plan.py.
An execution is re-projected when its events overlap [D, D2+1); its row lives in the partition
of its first event's UTC date. Its previous row, wherever it was (a backfilled earlier day moves
it to an earlier partition), is replaced: an execution lives in exactly one partition.
Silver holds every execution: quality rules flag rows in the gate's report, they never remove one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deep_storage import lake
from deep_storage.core import config, defaults, schemas
from deep_storage.core.config import StoreConfig
from deep_storage.core.dates import DayRange, from_unix_micros, window
from deep_storage.io import metrics, object_store, spark_session
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, writer_lock
from deep_storage.tables import projection, silver_plan, silver_task
from deep_storage.tables.silver_plan import Plan

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

COLUMNS = [*schemas.SILVER_EXECUTIONS_SCHEMA.fieldNames(), "date"]


@dataclass
class SilverResult:
    lake: str
    run_id: str
    days: str
    executions: int = 0
    partitions_written: int = 0
    partitions_removed: int = 0
    dates_committed: list[str] = field(default_factory=list)
    by_status: dict[str, int] = field(default_factory=dict)
    bronze_days_read: list[str] = field(default_factory=list)
    unsealed_days: list[str] = field(default_factory=list)
    missing_lookback_days: list[str] = field(default_factory=list)
    resumed: str | None = None  # the days of a silver run that died holding the lease
    skipped: bool = False  # bronze had not changed since the run that built these days
    engine: str = ""  # what projected the run: duckdb (in this process) or spark
    freshness_lag_s: float | None = None  # bronze's newest event minus silver's
    commit_latency_s: float | None = None  # now minus silver's newest event
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase

    def to_dict(self) -> dict:
        return {**asdict(self), "phases": dict(self.phases)}


@dataclass
class Projection:
    """What the tasks of one silver run wrote (nothing is visible before the commit)."""

    files: list[str]  # new files, relative to the table root
    counts: dict[tuple[int, dt.date], int]  # rows per partition written
    cleared: set[tuple[int, dt.date]]  # committed partitions that end up empty
    by_status: dict[str, int]
    newest: dict[dt.date, dt.datetime]  # newest event time of the rows written, per day
    # rows per status in each partition written (the day's commit facts keep them: the gate's
    # report charts a fortnight of statuses from those facts alone)
    statuses: dict[tuple[int, dt.date], dict[str, int]] = field(default_factory=dict)


def _task_plan(fs: lake.LakeFS, p: Plan, run_id: str) -> silver_task.TaskPlan:
    """What every task of the run gets: the run's window, the lake and the committed
    partitions of the read window's other days."""
    run_days = set(p.days.days())
    other_days = frozenset(d for d in p.silver if d not in run_days)
    start, _ = window(p.days.first)
    _, end = window(p.days.last)
    return silver_task.TaskPlan(
        lake=fs.lake,
        store=fs.store,
        table=SILVER_EXECUTIONS,
        tag=f"{run_id[:8]}-{uuid.uuid4().hex}",
        start=start,
        end=end,
        other_days=other_days,
        committed=_committed_partitions(fs, sorted(other_days)),
    )


def project_and_write(spark: SparkSession, fs: lake.LakeFS, p: Plan, run_id: str) -> Projection:
    """One Spark job: the run's bronze events, hash-partitioned by client_id, and in each task
    the projection, the merge with the committed rows it replaces and one new file per
    (client_id, date) partition (silver_task.py). Returns what the tasks report."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    files = lake.file_uris(fs, p.bronze.values())
    events = (
        spark.read.schema(schemas.BRONZE_EVENTS_SCHEMA).parquet(*files)
        if files
        else spark.createDataFrame([], schemas.BRONZE_EVENTS_SCHEMA)
    )
    plan = _task_plan(fs, p, run_id)
    keyed = events.select(*projection.EVENT_COLUMNS).repartition("client_id")
    schema = to_arrow_schema(keyed.schema)

    def task(batches):
        yield from silver_task.run(batches, plan, schema, COLUMNS)

    report_type = from_arrow_schema(silver_task.report_schema())
    report = keyed.mapInArrow(task, report_type).collect()
    return _projection(p, [r.asDict() for r in report])


def project_in_process(
    fs: lake.LakeFS, p: Plan, run_id: str, threads: int, events=None
) -> Projection:
    """The same tasks as `project_and_write`'s, in this process and without a JVM: the bronze
    days read once into Arrow, split by client_id into about BUCKET_ROWS events a bucket (an
    execution never spans clients, so each is whole in its bucket; one large client makes its
    bucket larger), and each bucket one task on one of `threads` threads (DuckDB and pyarrow
    release the GIL). `events`: those days' events already read (`bronze_events`). The first
    task that fails stops the run: the tasks not started are cancelled."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    plan = _task_plan(fs, p, run_id)
    events = bronze_events(fs, p) if events is None else events
    buckets = max(threads, -(-events.num_rows // BUCKET_ROWS))
    bucket_of = np.asarray(pc.fill_null(events["client_id"], 0)) % buckets
    store = fs.arrow()  # one pyarrow file system (thread-safe) for every task

    def task(index: int) -> list[dict]:
        part = events.filter(pa.array(bucket_of == index))
        name = f"{index:05d}-0"
        out = silver_task.run(part.to_batches(), plan, events.schema, COLUMNS, name, store)
        return pa.Table.from_batches(list(out), silver_task.report_schema()).to_pylist()

    report: list[dict] = []
    with ThreadPoolExecutor(threads, thread_name_prefix="silver-task") as pool:
        futures = [pool.submit(task, i) for i in range(buckets)]
        try:
            for done in as_completed(futures):
                report += done.result()
        except (OSError, pa.ArrowException) as exc:
            pool.shutdown(cancel_futures=True)
            raise fs._fail(f"write {SILVER_EXECUTIONS}", exc) from None
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return _projection(p, report)


# Events per in-process task: DuckDB's aggregation and the task's Arrow copies stay small beside
# the window's events, which the process holds once.
BUCKET_ROWS = 500_000


def bronze_events(fs: lake.LakeFS, p: Plan):
    """The projection's columns of every committed bronze file the plan reads, as one Arrow
    table typed as Spark's read would type it (every column nullable)."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    from pyspark.sql.pandas.types import to_arrow_schema  # pure Python: no JVM starts

    full = to_arrow_schema(schemas.BRONZE_EVENTS_SCHEMA)
    schema = pa.schema([full.field(c).with_nullable(True) for c in projection.EVENT_COLUMNS])
    afs, root = fs.arrow()
    paths = [f"{root}/{BRONZE_EVENTS}/{rel}" for m in p.bronze.values() for rel in m.files]
    if not paths:
        return schema.empty_table()
    try:
        return pads.dataset(paths, schema=schema, format="parquet", filesystem=afs).to_table()
    except OSError as exc:  # the store's failures: one line naming the lake, no secret
        raise fs._fail(f"read the committed files of {BRONZE_EVENTS}", exc) from None


def _committed_partitions(fs: lake.LakeFS, days: list[dt.date]) -> dict:
    """(client_id, date) -> its files, for every committed silver partition of `days`."""
    found: dict[tuple[int, dt.date], list[str]] = {}
    for m in lake.committed(fs, SILVER_EXECUTIONS, days).values():
        for rel in m.files:
            found.setdefault(_key(rel.rsplit("/", 1)[0]), []).append(rel)
    return found


def _projection(p: Plan, report: list[dict]) -> Projection:
    """The tasks' report (a dict per row of report_schema) as the facts the commit and the
    commit facts need."""
    files, counts, statuses, newest, by_status = [], {}, {}, {}, {}
    emptied = set()
    for r in report:
        key = (r["client_id"], r["date"])
        if r["file"] is None:
            emptied.add(key)
            continue
        files.append(r["file"])
        counts[key] = r["rows"]
        statuses[key] = json.loads(r["statuses"])
        for status, n in statuses[key].items():
            by_status[status] = by_status.get(status, 0) + n
        if r["newest_us"] is not None:
            at = from_unix_micros(r["newest_us"])
            newest[r["date"]] = max(at, newest.get(r["date"], at))
    # Every committed partition of a run day is rebuilt whole from the projection.
    run_days = set(p.days.days())
    rebuilt = {key for d, m in p.silver.items() if d in run_days for key in _partition_keys(m)}
    cleared = (rebuilt - set(counts)) | emptied
    return Projection(files, counts, cleared, by_status, newest, statuses)


def _partition_keys(m: lake.CommittedDay) -> list[tuple[int, dt.date]]:
    return [_key(part) for part in m.partitions]


def _key(partition: str) -> tuple[int, dt.date]:
    values = dict(p.split("=", 1) for p in partition.strip("/").split("/"))
    return int(values["client_id"]), dt.date.fromisoformat(values["date"])


def _folder(key: tuple[int, dt.date]) -> str:
    return f"client_id={key[0]}/date={key[1].isoformat()}"


def day_commits(p: Plan, proj: Projection) -> list[lake.CommittedDay]:
    """The facts of each changed day: its untouched partitions keep their rows, the rewritten
    and cleared ones take the new counts (or none)."""
    changed = set(proj.counts) | proj.cleared
    dates = sorted({d for _, d in changed})
    out = []
    for day in dates:
        old = p.silver.get(day)
        partitions = {
            part: rows
            for part, rows in (old.partitions if old else {}).items()
            if _key(part) not in changed
        }
        for key, rows in proj.counts.items():
            if key[1] == day:
                partitions[_folder(key)] = rows
        old_statuses = (old.details.get("statuses") or {}) if old else {}
        statuses = {part: old_statuses[part] for part in partitions if part in old_statuses} | {
            _folder(key): dict(sorted(s.items()))
            for key, s in proj.statuses.items()
            if key[1] == day
        }
        bronze_day = p.bronze.get(day)
        candidates = [proj.newest[day]] if day in proj.newest else []
        if old and old.details.get("newest_event_at"):
            candidates.append(dt.datetime.fromisoformat(old.details["newest_event_at"]))
        out.append(
            lake.CommittedDay(
                table=SILVER_EXECUTIONS,
                date=day.isoformat(),
                rows=sum(partitions.values()),
                sealed=not p.unsealed,
                files=[],
                partitions=dict(sorted(partitions.items())),
                run_id="",
                written_at="",
                details={
                    "run_days": str(p.days),
                    "bronze_days": [d.isoformat() for d in sorted(p.bronze)],
                    "bronze_sealed": bool(bronze_day and bronze_day.sealed),
                    "bronze_inputs": p.bronze_inputs,
                    "newest_event_at": max(candidates).isoformat() if candidates else None,
                    "statuses": dict(sorted(statuses.items())),
                },
            )
        )
    return out


def run(
    days: DayRange,
    lake_uri: str,
    *,
    spark: SparkSession | None = None,
    store_config: StoreConfig | None = None,
    lookback_days: int = defaults.LOOKBACK_DAYS,
    run_id: str | None = None,
    engine: str | None = None,
) -> SilverResult:
    """Project executions for `days` and commit the silver partitions they change. `engine`:
    duckdb, spark or auto (engine_for); None reads DEEP_STORAGE_SILVER_ENGINE."""
    with metrics.step("silver") as m:
        result = _run(days, lake_uri, spark, store_config, lookback_days, run_id, engine)
        m.set("rows", result.executions)
        m.set("days_written", len(result.dates_committed))
        m.set("days_unsealed", len(result.unsealed_days))
        m.set("freshness_lag_seconds", result.freshness_lag_s)
        m.set("commit_latency_seconds", result.commit_latency_s)
        return result


def engine_for(rows: int, setting: str | None = None, master: str | None = None) -> str:
    """The engine that projects a run reading `rows` bronze rows: DEEP_STORAGE_SILVER_ENGINE
    (duckdb or spark), or when it is auto (the default) DuckDB in this process up to
    SILVER_DUCKDB_MAX_ROWS on a local master, Spark above that or on a cluster's master
    (executors: what exceeds one pod)."""
    setting = config.silver_engine(setting)
    if setting != "auto":
        return setting
    master = master or config.SparkSettings.from_env().master
    local = master.startswith("local")
    return "duckdb" if local and rows <= defaults.SILVER_DUCKDB_MAX_ROWS else "spark"


def _threads(master: str) -> int:
    """The cores a local[N] master names (the platform profile sets it from the pod's CPU
    limit), 1 for `local`; for local[*] the cores this process may use: its CPU quota (cgroup
    v2's cpu.max) when it has one, else the cores it may run on."""
    inside = master.partition("[")[2].rstrip("]")
    if inside.isdigit():
        return max(1, int(inside))
    if master == "local":
        return 1
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, -(-int(quota) // int(period))))


def _run(days, lake_uri, spark, store_config, lookback_days, run_id, engine) -> SilverResult:
    run_id = config.run_id(run_id)
    store_config = object_store.checked(lake_uri, store_config)
    fs = lake.LakeFS(lake_uri, store_config)
    with writer_lock.hold(lake_uri, "silver", str(days), run_id, store_config) as lease:
        phases = metrics.Phases("silver")
        with phases("plan"):
            p = silver_plan.plan(fs, days, lookback_days, lease.previous)
        result = SilverResult(
            phases=phases,
            lake=lake_uri,
            run_id=run_id,
            days=str(p.days),
            bronze_days_read=[d.isoformat() for d in sorted(p.bronze)],
            unsealed_days=[d.isoformat() for d in p.unsealed],
            missing_lookback_days=[d.isoformat() for d in p.missing_lookback],
            resumed=p.resumed,
        )
        _warn_inputs(p, result)
        if p.skip:
            log.info(
                "silver %s: bronze unchanged since the last run: nothing to re-project", p.days
            )
            result.skipped = True
            return result
        result.engine = engine_for(p.rows, engine)
        log.info("silver %s: %d bronze rows projected on %s", p.days, p.rows, result.engine)
        proj = _project(fs, p, run_id, spark, result.engine, phases)
        commits = _commit(fs, lease, run_id, p, proj, phases)
        silver_newest = lake.newest_event(fs, SILVER_EXECUTIONS)
        bronze_newest = lake.newest_event(fs, BRONZE_EVENTS)
    _record(result, proj, commits, silver_newest, bronze_newest)
    log.info(
        "silver %s: %d executions re-projected, %d partitions written, %d emptied",
        p.days,
        result.executions,
        result.partitions_written,
        result.partitions_removed,
    )
    return result


def _project(fs: lake.LakeFS, p: Plan, run_id: str, spark, engine: str, phases) -> Projection:
    if engine == "duckdb":
        with phases("read"):
            events = bronze_events(fs, p)
        with phases("project and write"):
            master = config.SparkSettings.from_env().master
            return project_in_process(fs, p, run_id, _threads(master), events)
    with phases("start spark"):
        spark = spark_session.for_lake("silver", fs.lake, spark, fs.store)
    with phases("read, project and write"):
        return project_and_write(spark, fs, p, run_id)


def _warn_inputs(p: Plan, result: SilverResult) -> None:
    if p.missing_lookback:
        log.warning(
            "silver: look-back bronze days never ingested, read as empty: %s",
            ", ".join(result.missing_lookback_days),
        )
    if p.unsealed:
        log.warning(
            "silver: bronze days still unsealed (may change): %s",
            ", ".join(result.unsealed_days),
        )


def _commit(fs: lake.LakeFS, lease, run_id: str, p: Plan, proj: Projection, phases):
    """Count the rows the tasks landed, then commit every partition they changed."""
    writer = lake.Writer(fs, SILVER_EXECUTIONS, lease, run_id)
    written_days = sorted({d for _, d in proj.counts} | {d for _, d in proj.cleared})
    written = writer.landed_in(written_days, proj.files)
    written.expect(sum(proj.counts.values()))
    with phases("commit"):
        commits = day_commits(p, proj)
        changed = {_folder(key) for key in set(proj.counts) | proj.cleared}
        writer.commit(commits, written, replace=changed)
    return commits


def _record(
    result: SilverResult,
    proj: Projection,
    commits: list[lake.CommittedDay],
    silver_newest: dt.datetime | None,
    bronze_newest: dt.datetime | None,
) -> None:
    result.by_status = proj.by_status
    result.executions = sum(proj.by_status.values())
    result.partitions_written = len(proj.counts)
    result.partitions_removed = len(proj.cleared)
    result.dates_committed = [m.date for m in commits]
    if silver_newest is not None:
        now = dt.datetime.now(dt.UTC)
        result.commit_latency_s = max(0.0, (now - silver_newest).total_seconds())
        if bronze_newest is not None:
            result.freshness_lag_s = max(0.0, (bronze_newest - silver_newest).total_seconds())


def read_committed(spark: SparkSession, lake_uri: str, dates: list[dt.date], store_config=None):
    """Silver rows of the committed days `dates`, with client_id and date columns."""
    fs = lake.LakeFS(lake_uri, store_config)
    return lake.read_committed(
        spark, fs, SILVER_EXECUTIONS, schemas.SILVER_EXECUTIONS_SCHEMA, dates
    )
