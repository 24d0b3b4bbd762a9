"""Gold features: silver/stop_executions -> gold/stop_execution_features/date=D/.

One row per silver execution, its features computed only from what was known at its `as_of`
and its labels beside them (gold_features.py: one DuckDB query, no Spark: a day's executions
and their week of look-back fit one process). One run, under the lake's writer lease:
  plan     which days to build: the asked ones, or (without --date) every day whose silver
           inputs changed since gold built it;
  compute  silver's days [first - 7, last] read once through delta-rs, the features of [first,
           last] computed over all of them (the look-backs cross partitions);
  write    one new Parquet file per day, invisible until the commit;
  commit   one Delta transaction replacing every built day (lake.Writer).

A day's inputs are the silver versions of its own day and the 7 before it (`silver_inputs` in
its facts, as silver keeps `bronze_inputs`): a late execution that changes silver's day D
changes the inputs of gold's days D ... D+7, and the next run without --date rebuilds exactly
those.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import asdict, dataclass, field

from deep_storage import lake
from deep_storage.core import config, defaults
from deep_storage.core.config import StoreConfig
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.io import duckdb_session, metrics, object_store, parquet_files
from deep_storage.lake import GOLD_FEATURES, SILVER_EXECUTIONS, writer_lock
from deep_storage.tables import gold_features

log = logging.getLogger(__name__)

LOOKBACK = dt.timedelta(days=defaults.GOLD_LOOKBACK_DAYS)


@dataclass
class GoldResult:
    lake: str
    run_id: str
    days: str
    rows: int = 0
    dates_committed: list[str] = field(default_factory=list)
    silver_version: int | None = None
    skipped: bool = False  # no day's silver inputs changed since gold built it
    phases: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "phases": dict(self.phases)}


def inputs_of(day: dt.date, silver_versions: dict[dt.date, int]) -> dict[str, int]:
    """The silver versions day `day`'s features are built from: its own day's and the look-back's
    (ISO date -> the Delta version that committed that silver day)."""
    first = day - LOOKBACK
    return {d.isoformat(): v for d, v in sorted(silver_versions.items()) if first <= d <= day}


def stale_days(
    silver_versions: dict[dt.date, int], gold: dict[dt.date, lake.CommittedDay]
) -> list[dt.date]:
    """Silver's days whose gold day is missing, or was built from other silver versions or with
    another slippage threshold. A look-back day that retention removed from silver is no change:
    gold is kept for good, and its rows stay as they were built."""
    breach = str(defaults.SLIPPAGE_BREACH_PCT)
    out = []
    for day in sorted(silver_versions):
        built = gold.get(day)
        if built is None or built.details.get("breach_pct") != breach:
            out.append(day)
            continue
        recorded = {
            d: v
            for d, v in (built.details.get("silver_inputs") or {}).items()
            if dt.date.fromisoformat(d) in silver_versions
        }
        if recorded != inputs_of(day, silver_versions):
            out.append(day)
    return out


def spans(days: list[dt.date]) -> list[DayRange]:
    """Consecutive days as ranges: a run reads silver once per span, not for the gaps."""
    out: list[DayRange] = []
    for day in days:
        if out and day == out[-1].last + dt.timedelta(days=1):
            out[-1] = DayRange(out[-1].first, day)
        else:
            out.append(DayRange(day, day))
    return out


def plan(
    fs: lake.LakeFS, days: DayRange | None
) -> tuple[list[DayRange], dict[dt.date, lake.CommittedDay]]:
    """(the spans to build, silver's committed days). Asked days must be committed in silver."""
    silver = lake.committed(fs, SILVER_EXECUTIONS, with_files=False)
    if days is None:
        gold = lake.committed(fs, GOLD_FEATURES, with_files=False)
        return spans(stale_days(_versions(silver), gold)), silver
    for day in days.days():
        if day not in silver:
            raise LakeStateError(
                f"silver day {day} is not committed: run `deep-storage silver --date {day}` first"
            )
    return [days], silver


def _versions(silver: dict[dt.date, lake.CommittedDay]) -> dict[dt.date, int]:
    """Silver's day -> the Delta version that committed it."""
    return {d: m.version for d, m in silver.items()}


def read_silver(fs: lake.LakeFS, table, span: DayRange):
    """Silver's rows of [span.first - 7, span.last] from `table` (silver's loaded DeltaTable) as
    one Arrow table: only those date partitions' files are read."""
    wanted = list(DayRange(span.first - LOOKBACK, span.last).days())
    held = set(table.schema().to_arrow().names)
    columns = [*gold_features.INPUT_COLUMNS, *gold_features.OPTIONAL_COLUMNS]
    return fs.scan(
        SILVER_EXECUTIONS,
        table,
        columns=[c for c in columns if c in held],
        filters=[("date", "in", wanted)],
    )


def write_days(fs: lake.LakeFS, features, span: DayRange, tag: str) -> tuple[list[str], dict]:
    """One new file per day of `span` that has rows (relative to the table root), and the rows
    per day. Nothing is visible before the commit."""
    import pyarrow.compute as pc

    afs, root = fs.arrow()
    target = gold_features.arrow_schema()
    data_schema = target.remove(target.get_field_index("date"))
    files, counts = [], {}
    for day in span.days():
        rows = features.filter(pc.equal(features["date"], day))
        counts[day] = rows.num_rows
        if rows.num_rows:
            rel = f"date={day.isoformat()}/{parquet_files.new_name('gold', 0, tag)}"
            parquet_files.write_file(afs, f"{root}/{GOLD_FEATURES}", rel, rows, data_schema)
            files.append(rel)
    return files, counts


def day_commits(span, counts, silver, silver_version: int) -> list[lake.CommittedDay]:
    """Each built day's facts: rows, its silver inputs (and the silver table's version read),
    sealed when silver's day is."""
    out = []
    for day in span.days():
        silver_day = silver.get(day)
        out.append(
            lake.CommittedDay(
                table=GOLD_FEATURES,
                date=day.isoformat(),
                rows=counts[day],
                sealed=bool(silver_day and silver_day.sealed),
                files=[],
                partitions={f"date={day.isoformat()}": counts[day]},
                run_id="",
                written_at="",
                details={
                    "silver_inputs": inputs_of(day, _versions(silver)),
                    "silver_version": silver_version,
                    "breach_pct": str(defaults.SLIPPAGE_BREACH_PCT),
                },
            )
        )
    return out


def run(
    days: DayRange | None,
    lake_uri: str,
    *,
    store_config: StoreConfig | None = None,
    run_id: str | None = None,
) -> GoldResult:
    """Build the features of `days` (None: every day whose silver inputs changed) and commit."""
    with metrics.step("gold") as m:
        result = _run(days, lake_uri, store_config, run_id)
        m.set("rows", result.rows)
        m.set("days_written", len(result.dates_committed))
        return result


def _run(days, lake_uri, store_config, run_id) -> GoldResult:
    run_id = config.run_id(run_id)
    store_config = object_store.checked(lake_uri, store_config)
    fs = lake.LakeFS(lake_uri, store_config)
    label = str(days) if days else "changed"
    with writer_lock.hold(lake_uri, "gold", label, run_id, store_config) as lease:
        phases = metrics.Phases("gold")
        with phases("plan"):
            todo, silver = plan(fs, days)
        result = GoldResult(lake_uri, run_id, label, phases=phases)
        if not todo:
            log.info("gold: silver unchanged since gold built its days: nothing to build")
            result.skipped = True
            return result
        # One version of silver for every span (the lease keeps it from moving meanwhile).
        table = fs.delta(SILVER_EXECUTIONS)
        writer = lake.Writer(fs, GOLD_FEATURES, lease, run_id, schema=gold_features.arrow_schema())
        for span in todo:
            _build(fs, writer, (table, silver), span, result, phases)
    log.info("gold %s: %d rows over %d days", label, result.rows, len(result.dates_committed))
    return result


def _build(fs, writer, source, span: DayRange, result: GoldResult, phases) -> None:
    """One span: read, compute, write, commit (one Delta transaction per span). `source`:
    (silver's loaded DeltaTable, its committed days)."""
    table, silver = source
    with phases(f"read silver {span}"):
        rows = read_silver(fs, table, span)
    memory = config.SparkSettings.from_env().driver_memory  # the step's engine memory
    with phases(f"features {span}"), duckdb_session.connected(memory, "deep-storage-gold-") as con:
        features = gold_features.features_arrow(
            rows, span.first, span.last, breach_pct=defaults.SLIPPAGE_BREACH_PCT, con=con
        )
    tag = f"{result.run_id[:8]}-{uuid.uuid4().hex}"
    with phases(f"write {span}"):
        files, counts = write_days(fs, features, span, tag)
    written = writer.landed_in(list(span.days()), files)
    written.expect(features.num_rows)
    with phases(f"commit {span}"):
        commits = day_commits(span, counts, silver, table.version())
        writer.commit(commits, written)
    result.rows += features.num_rows
    result.dates_committed += [m.date for m in commits]
    result.silver_version = table.version()
