"""Bronze ingest: stop_events -> bronze/events/date=D/, one committed folder per UTC day.

One read of the day's half-open window, written under new file names, committed as one Delta
transaction (lake/writer.py). The Arrow engine reads and keeps the day in BRONZE_SLICES hourly
slices and re-reads, on a later run, only the slices whose count or newest event changed at the
source (`changed_slices`, `kept_slices`): the hourly run at the end of a big day reads its last
hour. Two engines, chosen by `read_path` (DEEP_STORAGE_READ_PATH):
  arrow (default)  binary COPY into Arrow, streamed to Parquet by pyarrow (io/source_copy.py): no
                   JVM, bounded memory; measured about 2-3x faster than Spark here (benchmarks/).
  jdbc             Spark JDBC: extract -> conform (pure) -> load, for a Spark cluster.
Both give the same rows, types and Parquet encoding (tests/test_bronze.py runs both). The seal
check runs before the read, so every row it allowed for is committed by the time the read's
snapshot is taken.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import Observation
from pyspark.sql import functions as F

from deep_storage import lake
from deep_storage.core import config, defaults, schemas
from deep_storage.core.config import SourceConfig, StoreConfig
from deep_storage.core.dates import DayRange, from_unix_micros, window
from deep_storage.core.errors import InputError
from deep_storage.io import metrics, object_store, source_copy, source_db, spark_session
from deep_storage.lake import BRONZE_EVENTS, retention, writer_lock

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

READ_PATHS = ("arrow", "jdbc")


@dataclass(frozen=True)
class DayResult:
    date: str
    rows: int
    sealed: bool
    reason: str | None
    stuck_writers: list[str] = field(default_factory=list)
    changed: bool = True  # False: the source had nothing new, the day was kept as committed


@dataclass
class BronzeResult:
    lake: str
    run_id: str
    days: list[DayResult] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # due days over the per-run cap
    source_newest_event_at: str | None = None
    lake_newest_event_at: str | None = None
    freshness_lag_s: float | None = None  # the source's newest event minus the lake's
    commit_latency_s: float | None = None  # now minus the lake's newest event
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase

    def measure_freshness(self, source_newest, lake_newest) -> None:
        now = dt.datetime.now(dt.UTC)
        self.source_newest_event_at = _iso(source_newest)
        self.lake_newest_event_at = _iso(lake_newest)
        if lake_newest is not None:
            self.commit_latency_s = max(0.0, (now - lake_newest).total_seconds())
            if source_newest is not None:
                self.freshness_lag_s = max(0.0, (source_newest - lake_newest).total_seconds())

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
            "left": self.left,
            "source_newest_event_at": self.source_newest_event_at,
            "lake_newest_event_at": self.lake_newest_event_at,
            "freshness_lag_s": self.freshness_lag_s,
            "commit_latency_s": self.commit_latency_s,
            "phases": dict(self.phases),
        }


def extract_jdbc(
    spark: SparkSession, src: SourceConfig, day: dt.date, partitions: int = defaults.READ_PARTITIONS
) -> DataFrame:
    """The source rows of the UTC window [day, day+1) through Spark JDBC.

    Spark's JDBC source cannot bind parameters; the bounds reach PostgreSQL as typed timestamp
    filters that Spark renders itself, in a JVM and session pinned to UTC (spark_session.py),
    never as text built from user input.
    """
    start, end = window(day)
    fmt = "%Y-%m-%d %H:%M:%S"
    frame = (
        spark.read.format("jdbc")
        .options(**spark_session.jdbc_options(src))
        .option("dbtable", f'"{src.table}"')
        .option("partitionColumn", "occurred_at")
        .option("lowerBound", start.strftime(fmt))
        .option("upperBound", end.strftime(fmt))
        .option("numPartitions", str(partitions))
        .load()
    )
    return frame.where((F.col("occurred_at") >= F.lit(start)) & (F.col("occurred_at") < F.lit(end)))


def conform(frame: DataFrame, extra: tuple[str, ...] = ()) -> DataFrame:
    """The contract's columns, names, order and types (event_id lower-case canonical), then the
    source's `extra` columns as strings."""
    columns = []
    for f in schemas.BRONZE_EVENTS_SCHEMA.fields:
        col = F.col(f.name)
        if f.name == "event_id":
            col = F.lower(col.cast("string"))
        columns.append(col.cast(f.dataType).alias(f.name))
    columns += [F.col(f"`{c}`").cast("string").alias(c) for c in extra]
    return frame.select(*columns)


def load(
    writer: lake.Writer,
    frame: DataFrame,
    day: dt.date,
    check: source_db.SealCheck,
    extra: list[source_db.SourceColumn] | None = None,
) -> lake.CommittedDay:
    """Spark engine: write the day under new file names, check that every row read landed, then
    commit it (lake/writer.py): readers see the previous version of the day until the commit
    swaps it."""
    observed = Observation(f"bronze-{day}")
    counted = frame.observe(
        observed,
        F.count(F.lit(1)).alias("rows"),
        F.max(F.unix_micros("occurred_at")).alias("newest_us"),  # a long crosses py4j exactly
    )
    written = writer.write(
        counted.sortWithinPartitions("occurred_at", "event_id"),
        [day],
        folder=lake.day_uri(writer.fs.lake, BRONZE_EVENTS, day),
    )
    seen = observed.get
    written.expect(seen["rows"])
    return commit_day(writer, day, check, written, from_unix_micros(seen["newest_us"]), extra)


def load_arrow(
    writer: lake.Writer,
    src: SourceConfig,
    day: dt.date,
    check: source_db.SealCheck,
    parts: int,
    phases: metrics.Phases,
    extra: list[source_db.SourceColumn] | None = None,
    kept: Kept | None = None,
) -> lake.CommittedDay:
    """Arrow engine (io/source_copy.py): binary COPY streamed into new Parquet files, their rows
    counted from the footers against the rows read, then the same commit. With `kept` (the
    committed slices that stay, `kept_slices`), only the other slices are read and replaced."""
    names = tuple(c.name for c in extra or [])
    count = defaults.BRONZE_SLICES
    only = None if kept is None else [i for i in range(count) if i not in kept.facts]
    with phases("read and write"):
        landed = source_copy.write_day(
            writer.fs, BRONZE_EVENTS, src, day, parts, names, count, only
        )
    facts = {i: (rows, _iso(newest)) for i, (rows, newest) in landed.slices.items()}
    facts |= kept.facts if kept else {}
    with phases("count landed rows"):
        written = writer.landed(day, landed.files)
        written.expect(landed.rows)
    newest = max((dt.datetime.fromisoformat(n) for _, n in facts.values() if n), default=None)
    with phases("commit"):
        return commit_day(
            writer, day, check, written, newest, extra,
            keep=kept.files if kept else [], kept_rows=kept.rows if kept else 0,
            slices=[list(facts[i]) for i in range(count)], schema=source_copy.schema_id(names),
        )  # fmt: skip


@dataclass(frozen=True)
class Kept:
    """The committed slices of a day that a run keeps: their files, rows and facts."""

    files: list[str]
    rows: int
    facts: dict[int, tuple[int, str | None]]


def changed_slices(old: lake.CommittedDay | None, summary: list, schema: str) -> list[int] | None:
    """The slices whose source rows changed since `old` was committed: another count or newest
    event (the log is append-only: the same count means the same rows). None when `old` cannot
    tell (no slice facts for as many slices, files of another schema, facts that do not add up
    to its rows): then the whole day is read."""
    facts = old.details.get("slices") if old else None
    if (
        not facts
        or len(facts) != len(summary)
        or old.details.get("slices_schema") != schema
        or sum(f[0] for f in facts) != old.rows
    ):
        return None
    return [i for i, (rows, newest) in enumerate(summary) if [rows, _iso(newest)] != list(facts[i])]


def kept_slices(
    fs: lake.LakeFS, day: dt.date, old: lake.CommittedDay, changed: list[int]
) -> Kept | None:
    """The committed files of the slices not in `changed`, their rows counted from their
    footers and checked against the slices' facts (a commit records only rows it counted); None
    when a file's name names no slice or a count differs: then the whole day is read."""
    files = lake.committed(fs, BRONZE_EVENTS, [day])[day].files
    slice_by_file = {f: source_copy.slice_of(f) for f in files}
    if None in slice_by_file.values():
        return None
    keep = sorted(f for f, i in slice_by_file.items() if i not in changed)
    counted: dict[int, int] = {}
    for data_file in fs.describe_files(BRONZE_EVENTS, keep)[0] if keep else []:
        i = slice_by_file[data_file.path]
        counted[i] = counted.get(i, 0) + data_file.rows
    facts = {i: tuple(f) for i, f in enumerate(old.details["slices"]) if i not in changed}
    if any(counted.get(i, 0) != rows for i, (rows, _) in facts.items()):
        log.warning("bronze %s: kept slices' files hold other counts than recorded", day)
        return None
    return Kept(keep, sum(counted.values()), facts)


def commit_day(
    writer: lake.Writer,
    day: dt.date,
    check: source_db.SealCheck,
    written: lake.Written,
    newest: dt.datetime | None,
    extra: list[source_db.SourceColumn] | None = None,
    *,
    keep: list[str] = (),
    kept_rows: int = 0,
    slices: list | None = None,
    schema: str | None = None,
) -> lake.CommittedDay:
    """Commit the day: `written`'s files, plus `keep` (committed files of the day that stay,
    holding `kept_rows` rows); `slices`: each slice's [rows, newest] as committed, of files of
    `schema` (source_copy.schema_id)."""
    start, end = window(day)
    rows = written.rows + kept_rows
    commit = lake.CommittedDay(
        table=BRONZE_EVENTS,
        date=day.isoformat(),
        rows=rows,
        sealed=check.sealed,
        files=sorted([*keep, *written.files[day]]),
        partitions={f"date={day}": rows},
        run_id=writer.run_id,
        written_at="",
        details={
            "window": [start.isoformat(), end.isoformat()],
            "checked_at": check.checked_at.isoformat(),
            "snapshot_xmin": check.snapshot_xmin,
            "unsealed_reason": check.reason,
            "stuck_writers": check.stuck,
            "newest_event_at": _iso(newest),
            # Source columns beyond the contract (schema drift), stored after it as strings.
            "extra_columns": [{"name": c.name, "source_type": c.data_type} for c in extra or []],
        },
    )
    if slices is not None:
        commit.details["slices"] = slices
        commit.details["slices_schema"] = schema
    writer.commit([commit], written, keep=keep)
    return commit


def _iso(instant: dt.datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(dt.UTC).isoformat()


def _unchanged(conn, src: SourceConfig, day: dt.date, old: lake.CommittedDay, check) -> bool:
    """The committed day already holds exactly the source's rows of its window, with the seal
    this check gives (the log is append-only: same count and newest event, same rows)."""
    if old.sealed != check.sealed:
        return False
    rows, newest = source_db.window_summary(conn, src, day)
    return rows == old.rows and _iso(newest) == old.details.get("newest_event_at")


@dataclass(frozen=True)
class Plan:
    days: list[dt.date]
    left: list[dt.date]  # due, but over the per-run cap: the next run takes them


def plan_days(
    fs: lake.LakeFS,
    conn,
    src: SourceConfig,
    requested: DayRange | None,
    max_days: int = defaults.MAX_DAYS,
) -> Plan:
    """The days a run ingests: the requested ones plus every day that is missing or unsealed
    between the oldest ingested day and the horizon (the last requested day, else the source's
    today), gaps included, oldest first, at most `max_days`. On an empty lake, from the day of the
    source's oldest event within retention. Never from before retention's floor as of the horizon
    (retention.floor): a day retention removed is not caught up again."""
    horizon = requested.last if requested is not None else source_db.server_now(conn).date()
    keep_from = retention.floor(BRONZE_EVENTS, horizon)
    ingested = lake.committed(fs, BRONZE_EVENTS, with_files=False)
    if ingested:
        first = max(min(ingested), keep_from)
    else:
        first = source_db.oldest_event_day(conn, src, since=keep_from) or horizon
    due = set()
    day = first
    while day <= horizon:
        m = ingested.get(day)
        if m is None or not m.sealed:
            due.add(day)
        day += dt.timedelta(days=1)
    if requested is not None:
        due |= set(requested.days())
    ordered = sorted(due)
    return Plan(ordered[:max_days], ordered[max_days:])


def run(
    days: DayRange | None,
    lake_uri: str,
    *,
    src: SourceConfig | None = None,
    store_config: StoreConfig | None = None,
    spark: SparkSession | None = None,
    seal_margin: dt.timedelta = dt.timedelta(seconds=defaults.SEAL_MARGIN_S),
    read_partitions: int = defaults.READ_PARTITIONS,
    read_path: str | None = None,
    run_id: str | None = None,
    catch_up: bool = False,
    max_days: int = defaults.MAX_DAYS,
) -> BronzeResult:
    """Ingest `days`; with `catch_up` (or when `days` is None) also every missing or unsealed
    day since the oldest ingested one, oldest first, at most `max_days` in one run.

    Checks the database and the bucket before Spark starts or anything is written; holds the
    lake's writer lease while it writes.
    """
    with metrics.step("bronze") as m:
        result = _ingest(
            days, lake_uri, src, store_config, spark, seal_margin, read_partitions, read_path,
            run_id, catch_up, max_days,
        )  # fmt: skip
        m.set("rows", result.rows)
        m.set("days_written", sum(d.changed for d in result.days))
        m.set("days_unsealed", len(result.unsealed))
        m.set("days_left", len(result.left))
        m.set("freshness_lag_seconds", result.freshness_lag_s)
        m.set("commit_latency_seconds", result.commit_latency_s)
        return result


def _ingest(
    days, lake_uri, src, store_config, spark, seal_margin, read_partitions, read_path, run_id,
    catch_up, max_days,
) -> BronzeResult:  # fmt: skip
    src = src or SourceConfig.from_env()
    read_path = _checked_read_path(read_path)
    run_id = config.run_id(run_id)
    with source_db.connect(src) as conn:
        extra = source_db.check_table(conn, src)
        _warn_extra_columns(src, extra)
        store_config = object_store.checked(lake_uri, store_config)
        fs = lake.LakeFS(lake_uri, store_config)
        with writer_lock.hold(
            lake_uri, "bronze", str(days or "catch-up"), run_id, store_config
        ) as lease:
            phases = metrics.Phases("bronze")
            if read_path == "jdbc":
                with phases("start spark"):
                    spark = spark_session.for_lake("bronze", lake_uri, spark, store_config)
            with phases("plan"):
                plan = _plan_run(fs, conn, src, days, catch_up, max_days)
            result = BronzeResult(
                lake=lake_uri, run_id=run_id, left=[d.isoformat() for d in plan.left], phases=phases
            )
            if not plan.days:
                log.info("bronze: nothing to ingest")
                return result
            _log_plan(plan, lake_uri, max_days)
            writer = lake.Writer(fs, BRONZE_EVENTS, lease, run_id)
            before = lake.committed(fs, BRONZE_EVENTS, plan.days, with_files=False)
            for day in plan.days:
                day_result = _ingest_day(
                    conn, src, writer, spark, day, before.get(day), seal_margin, read_path,
                    read_partitions, extra, phases,
                )  # fmt: skip
                result.days.append(day_result)
            result.measure_freshness(
                source_db.newest_event(conn, src), lake.newest_event(fs, BRONZE_EVENTS)
            )
            return result


def _checked_read_path(read_path: str | None) -> str:
    read_path = config.read_path(read_path)
    if read_path not in READ_PATHS:
        raise InputError(
            f"read path {read_path!r} is unknown: expected one of {', '.join(READ_PATHS)} "
            "(--read-path or DEEP_STORAGE_READ_PATH)"
        )
    return read_path


def _warn_extra_columns(src: SourceConfig, extra: list[source_db.SourceColumn]) -> None:
    for c in extra:
        log.warning(
            "bronze: %s has a column beyond the contract, %s (%s): stored after the "
            "contract's columns as text; the gate warns",
            src.table,
            c.name,
            c.data_type,
        )


def _plan_run(
    fs: lake.LakeFS, conn, src: SourceConfig, days: DayRange | None, catch_up: bool, max_days: int
) -> Plan:
    if days is None or catch_up:
        return plan_days(fs, conn, src, days, max_days)
    return Plan(list(days.days()), [])


def _log_plan(plan: Plan, lake_uri: str, max_days: int) -> None:
    log.info("bronze: ingesting %s into %s", ", ".join(map(str, plan.days)), lake_uri)
    if plan.left:
        log.warning(
            "bronze: %d more days are due (%s..%s): over the cap of %d days per run; "
            "the next run continues",
            len(plan.left),
            plan.left[0],
            plan.left[-1],
            max_days,
        )


def _ingest_day(
    conn, src, writer, spark, day, old, seal_margin, read_path, read_partitions, extra, phases
) -> DayResult:
    """Check the day's seal, then keep it when the source has nothing new, else read, write and
    commit it with the run's engine (the Arrow engine: only the slices that changed)."""
    with phases("seal check"):
        check = source_db.seal_check(conn, src, day, seal_margin)
    for stuck in check.stuck:
        log.warning("bronze %s: stuck writer at the source: %s", day, stuck)
    changed = None
    with phases("seal check"):
        # The day's count and newest event first (an index-only scan): a quiet hour stops here.
        unchanged = old is not None and _unchanged(conn, src, day, old, check)
        if not unchanged and old is not None and read_path == "arrow":
            bounds = source_copy.slices(day, defaults.BRONZE_SLICES)
            summary = source_db.slice_summary(conn, src, bounds)
            schema = source_copy.schema_id(tuple(c.name for c in extra))
            changed = changed_slices(old, summary, schema)
    if unchanged:
        # An hourly run over a quiet hour: nothing to rewrite, nothing to commit.
        log.info("bronze %s: %d rows, unchanged at the source: kept", day, old.rows)
        return DayResult(
            day.isoformat(), old.rows, old.sealed, check.reason, check.stuck, changed=False
        )
    kept = None if changed is None else kept_slices(writer.fs, day, old, changed)
    if kept is not None:
        log.info("bronze %s: slices changed at the source: %s", day, changed or "none (seal)")
        commit = load_arrow(writer, src, day, check, read_partitions, phases, extra, kept)
    else:
        commit = _load_day(
            writer, spark, src, day, check, read_path, read_partitions, extra, phases
        )
    state = "sealed" if commit.sealed else f"unsealed ({check.reason})"
    log.info("bronze %s: %d rows, %s", day, commit.rows, state)
    return DayResult(day.isoformat(), commit.rows, commit.sealed, check.reason, check.stuck)


def _load_day(
    writer, spark, src, day, check, read_path, read_partitions, extra, phases
) -> lake.CommittedDay:
    if read_path == "arrow":
        return load_arrow(writer, src, day, check, read_partitions, phases, extra)
    with phases("read, write and commit (spark)"):
        frame = extract_jdbc(spark, src, day, read_partitions)
        frame = conform(frame, tuple(c.name for c in extra))
        return load(writer, frame, day, check, extra)
