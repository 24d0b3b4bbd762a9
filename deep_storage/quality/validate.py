"""`deep-storage validate --date D`: the quality gate for one day of bronze and silver.

Per table: read the committed day once, add the helper columns and the rules' evidence, run the
GX suite once, quarantine the rows that break row rules (they stay where they are: nothing is
lost), write the results under {lake}/_quality/<table>/date=D/ and the day's page under
{lake}/_quality/summary/date=D/report.html, and fail only when a `fail` rule broke.

Two engines judge the rows, with the same rules' text: DuckDB in this process for a day of up to
GATE_DUCKDB_MAX_ROWS rows (no JVM; the day read once into Arrow: duckdb_rules.py), Spark
above that or when DEEP_STORAGE_GATE_ENGINE says so (executors; rule_columns.py). GX judges
either engine's evidence columns.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from deep_storage import lake
from deep_storage.core import config, defaults, schemas
from deep_storage.core.config import SourceConfig, StoreConfig
from deep_storage.core.dates import window
from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.core.version import __version__
from deep_storage.io import metrics, object_store, source_db, spark_session
from deep_storage.lake import (
    BRONZE_EVENTS,
    QUALITY,
    QUARANTINE,
    SILVER_EXECUTIONS,
    LakeFS,
    writer_lock,
)
from deep_storage.quality import (
    duckdb_rules,
    file_types,
    gx_runner,
    report_page,
    rule_columns,
    rules,
)
from deep_storage.quality.gx_runner import RuleResult
from deep_storage.quality.verdict import (
    LAG_SLA,
    TableReport,
    ValidationReport,
    gate_error,
    report_uri,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

BRONZE_TABLE = "bronze_events"
SILVER_TABLE = "silver_stop_executions"
BRONZE_SLA = dt.timedelta(hours=2)
SILVER_SLA = dt.timedelta(hours=24)
HISTORY_DAYS = defaults.HISTORY_DAYS


def _write_report(fs: LakeFS, report: TableReport) -> None:
    """The table's files, once every result is in (the lag is judged after the tables)."""
    report.data_docs = gx_runner.render_html(
        report.gx_result,
        f"{report.table} {report.date}",
        report.outcome,
        report_uri(fs.lake, report.date),
    )
    folder = f"{fs.lake}/{QUALITY}/{report.table}/date={report.date}"
    fs.write_text(f"{folder}/results.json", report.results_json)
    fs.write_text(f"{folder}/data_docs.html", report.data_docs)
    fs.write_text(f"{folder}/summary.md", report.markdown())


QUARANTINED = "_quarantined"  # in the gate's cached flags: an offending row whole, else NULL


def _quarantine(
    fs: LakeFS, flags: DataFrame, table: str, day: dt.date, run_id: str, broken: bool = True
) -> int:
    """Rows breaking a row rule -> {lake}/quarantine/<table>/date=D/ with `_reasons`, copied from
    the gate's cached `flags` frame (its `_quarantined` column holds each offending row whole,
    NULL for a good row): the day is not read again. The folder is replaced on every run, so
    re-validating a fixed day empties it. With no row rule `broken`, it is only emptied."""
    folder = f"{fs.lake}/{QUARANTINE}/{table}/date={day.isoformat()}"
    if not broken:
        fs.delete_tree(folder)
        return 0
    bad = (
        flags.where(F.col(QUARANTINED).isNotNull())
        .select(f"{QUARANTINED}.*")
        .withColumn("_run_id", F.lit(run_id))
        .withColumn("_quarantined_at", F.current_timestamp())
    )
    # repartition, not coalesce: coalesce(1) would run the whole scan in one task; this scans
    # the cache in parallel and moves only the quarantined rows to one writer.
    bad = bad.cache()
    count = bad.count()
    fs.delete_tree(folder)
    if count:
        bad.repartition(1).write.mode("overwrite").parquet(folder)
    bad.unpersist()
    return count


def _freshness_applies(day: dt.date, as_of: dt.datetime, sla: dt.timedelta) -> bool:
    start, end = window(day)
    return start <= as_of < end + sla


def _source_count(src: SourceConfig | None, day: dt.date) -> int | None:
    if src is None:
        return None
    with source_db.connect(src) as conn:
        return source_db.window_summary(conn, src, day)[0]


@dataclass
class _Plan:
    """What the gate judges of one table's day, from the commit facts alone: the rules judged on
    the rows, the fact rules (on the facts, every run), notes and results known without GX."""

    table: str
    rows: int
    table_rules: list[rules.TableRule]
    fact_rules: list[rules.FactRule]
    facts: dict
    notes: list[str]
    more_results: list[RuleResult] = field(default_factory=list)


def _check(
    frame: DataFrame,
    plan: _Plan,
    day: dt.date,
    schema,
    extras,
    row_rules,
    fs: LakeFS,
    run_id: str,
    phases: metrics.Phases,
    files: tuple[str, list[str]],
) -> TableReport:
    """Judge `plan` on the day's `frame`; `files` = (lake table, its day's files relative to
    it), whose own footers the contract's types are judged on."""
    started = time.monotonic()
    table = plan.table
    types, expected, mismatched = _file_types(fs, table, files[0], files[1], schema, phases)
    if mismatched:
        return _unreadable(frame, plan, day, schema, extras, fs, phases, types, expected)
    augmented, extras, flags = _flagged(frame, table, extras, row_rules)
    with phases(f"{table}: read and flag rows"):
        flags.count()  # fills the cache every rule and the quarantine read
    timings: dict[str, float] = {}
    with phases(f"{table}: great expectations"):
        gx_result, results = gx_runner.validate(
            augmented,
            flags,
            table,
            schema,
            extras,
            row_rules,
            plan.table_rules,
            plan.fact_rules,
            plan.facts,
            types,
            expected,
            timings,
        )
    log.info(
        "%s %s: Great Expectations done at %.1f s (%s)",
        table,
        day,
        time.monotonic() - started,
        ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
    )
    row_rule_names = {r.name for r in row_rules}
    broken = any(not r.success for r in results if r.name in row_rule_names)
    with phases(f"{table}: quarantine"):
        quarantined = _quarantine(fs, flags, table, day, run_id, broken)
    flags.unpersist()
    log.info("%s %s: quarantine done at %.1f s", table, day, time.monotonic() - started)
    return _table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


def _flagged(frame: DataFrame, table: str, extras, row_rules):
    """(the day with the rules' helper columns, every helper column's name, the narrow frame
    the rules are judged on, cached but not yet filled)."""
    columns = frame.columns
    augmented = frame.transform(lambda f: rule_columns.with_rule_flags(f, row_rules)).transform(
        lambda f: rule_columns.with_evidence(f, row_rules, rules.ROW_ID[table])
    )
    extras = [
        *extras,
        *(rule_columns.ok_column(r) for r in row_rules),
        *(rule_columns.evidence_column(r) for r in row_rules),
    ]
    keep = [c for c in columns if c not in extras]
    all_ok = F.expr(" AND ".join(rule_columns.ok_column(r) for r in row_rules))
    # The rules are judged on a narrow cached frame: their evidence columns (NULL for a good
    # row; the table rules only count rows) and each offending row whole (NULL for a good one:
    # the quarantine copies them from here, so the day is read once). The contract's columns and
    # types are judged on the schema.
    flags = augmented.select(
        *(rule_columns.evidence_column(r) for r in row_rules),
        F.when(
            ~all_ok,
            F.struct(*(F.col(c) for c in keep), rule_columns.reasons(row_rules).alias("_reasons")),
        ).alias(QUARANTINED),
    ).cache()
    return augmented, extras, flags


def _file_types(fs, table: str, lake_table: str, files: list[str], schema, phases):
    """(each file's column types from its own footer, the contract's, whether any differs): what
    contract_types is judged on, the same for either engine. No files: (None, expected, False)."""
    expected = file_types.expected(schema, lake_table)
    with phases(f"{table}: file types"):
        types = file_types.frame(fs, lake_table, files, expected) if files else None
    return types, expected, types is not None and file_types.mismatched(types, expected)


def _unreadable(
    frame, plan: _Plan, day, schema, extras, fs, phases, types, expected, engine="spark"
):
    """A day with a file whose column types are not the contract's: reading it with the
    contract's schema would fail (or silently cast), so GX judges the contract on the files'
    footers and the fact rules, and no row rule is judged. The gate fails on contract_types,
    which names the column, the type found and the files' count."""
    with phases(f"{plan.table}: great expectations"):
        gx_result, results = gx_runner.validate(
            frame,
            None,
            plan.table,
            schema,
            extras,
            (),
            [],
            plan.fact_rules,
            plan.facts,
            types,
            expected,
            engine=engine,
        )
    plan.notes.append(
        "the row rules were not judged: a file of the day does not hold the contract's types "
        "(see contract_types); rewrite the day, then run the gate again"
    )
    return _table_report(fs, plan, day, [*results, *plan.more_results], 0, gx_result)


def _table_report(fs, plan: _Plan, day, results, quarantined, gx_result) -> TableReport:
    table = plan.table
    report = TableReport(table, day.isoformat(), plan.rows, results, quarantined, plan.notes)
    report.gx_result = gx_result
    report.results_json = json.dumps(gx_result.to_json_dict(), indent=1, default=str)
    folder = f"{fs.lake}/{QUALITY}/{table}/date={day.isoformat()}"
    report.links = {
        "results (JSON)": f"{folder}/results.json",
        "Great Expectations Data Docs": f"{folder}/data_docs.html",
    }
    if quarantined:
        report.links["quarantined rows"] = f"{fs.lake}/{QUARANTINE}/{table}/date={day.isoformat()}/"
    for r in report.failed + report.warned:
        log.warning(
            "%s %s: rule %s %s (%s): %s", table, day, r.name, r.outcome, r.level, r.observed
        )
    return report


def _history_rules(day, history, volume_k, notes) -> list[rules.TableRule]:
    """Volume against the earlier days, where it applies; a note when it does not."""
    volume = rules.volume_rule(history, volume_k)
    if volume:
        return [volume]
    notes.append(f"volume_within_history not checked: {len(history)} earlier days (need 3)")
    return []


def _fact_rules(day, as_of, sla, notes) -> list[rules.FactRule]:
    """Freshness against the run's time on the day's own runs; a note on the others."""
    if _freshness_applies(day, as_of, sla):
        return [rules.freshness_rule(as_of, sla)]
    notes.append(f"fresh_within_sla not checked: {as_of.isoformat()} is not this day's run")
    return []


def _facts(manifest: lake.Manifest | None) -> dict:
    newest = (manifest.details.get("newest_event_at") if manifest else None) or None
    return {"newest_event_at": dt.datetime.fromisoformat(newest) if newest else None}


def _window(day: dt.date) -> list[dt.date]:
    """The day and the HISTORY_DAYS before it: what the volume rule and the page's charts read."""
    return [day - dt.timedelta(days=i) for i in range(HISTORY_DAYS, -1, -1)]


def _window_manifests(fs: LakeFS, day: dt.date) -> dict[str, dict[dt.date, lake.Manifest]]:
    """Each table's manifests of the window (`lake` the module here: _validate's `lake` is the
    URI)."""
    return {t: lake.committed(fs, t, _window(day)) for t in (BRONZE_EVENTS, SILVER_EXECUTIONS)}


def _bronze_plan(day, manifests, as_of, volume_k, src, judge_rows: bool) -> _Plan:
    """Bronze's rules for `day`; the source is counted only when the rows are judged."""
    earlier = [day - dt.timedelta(days=i) for i in range(1, HISTORY_DAYS + 1)]
    manifest = manifests.get(day)
    if manifest is None:
        raise LakeStateError(
            f"bronze day {day} is not committed: run `deep-storage bronze --date {day}` first"
        )
    notes: list[str] = []
    table_rules: list[rules.TableRule] = []
    if not manifest.sealed:
        notes.append(
            "rows_match_source not checked: the day is not sealed yet "
            f"({manifest.details.get('unsealed_reason')})"
        )
    elif src is None:
        notes.append("rows_match_source not checked: no source database configured")
    elif judge_rows:
        table_rules.append(rules.source_count_rule(_source_count(src, day)))
    for stuck in manifest.details.get("stuck_writers") or []:
        notes.append(f"stuck writer at the source keeps the day unsealed: {stuck}")
    extra = manifest.details.get("extra_columns") or []
    history = [manifests[d].rows for d in earlier if d in manifests]
    table_rules += _history_rules(day, history, volume_k, notes)
    fact_rules = _fact_rules(day, as_of, BRONZE_SLA, notes)
    # Schema drift at the source: kept in bronze after the contract's columns, warned here.
    drift = RuleResult(
        "source_columns_known",
        rules.WARN,
        not extra,
        "the source has exactly the contract's columns (new ones are kept in bronze, after "
        "them, as text)",
        ", ".join(f"{c['name']} ({c['source_type']})" for c in extra) or None,
    )
    return _Plan(
        BRONZE_TABLE, manifest.rows, table_rules, fact_rules, _facts(manifest), notes, [drift]
    )


def _silver_plan(day, manifests, as_of, volume_k) -> _Plan:
    notes: list[str] = []
    earlier = [day - dt.timedelta(days=i) for i in range(1, HISTORY_DAYS + 1)]
    counts = {d: m.rows for d, m in manifests.items()}
    history = [counts[d] for d in earlier if d in counts]
    table_rules = _history_rules(day, history, volume_k, notes)
    fact_rules = _fact_rules(day, as_of, SILVER_SLA, notes)
    return _Plan(
        SILVER_TABLE, counts.get(day, 0), table_rules, fact_rules, _facts(manifests.get(day)), notes
    )


def _bronze_report(spark, fs, day, manifests, plan: _Plan, run_id, phases) -> TableReport:
    files = lake.file_uris(fs, [manifests[day]])
    frame = (
        spark.read.schema(schemas.BRONZE_EVENTS_SCHEMA).parquet(*files)
        if files
        else spark.createDataFrame([], schemas.BRONZE_EVENTS_SCHEMA)
    )
    with phases(f"{BRONZE_TABLE}: read and helpers"):
        frame = frame.transform(rule_columns.bronze_helpers)
    return _check(
        frame,
        plan,
        day,
        schemas.BRONZE_EVENTS_SCHEMA,
        rule_columns.BRONZE_HELPERS,
        rules.BRONZE_ROW_RULES,
        fs,
        run_id,
        phases,
        (BRONZE_EVENTS, list(manifests[day].files)),
    )


def _silver_report(spark, fs, day, plan: _Plan, run_id, phases) -> TableReport:
    committed = lake.committed(fs, SILVER_EXECUTIONS, [day])
    frame = lake.read_files(
        spark,
        fs,
        SILVER_EXECUTIONS,
        schemas.SILVER_EXECUTIONS_SCHEMA,
        lake.file_uris(fs, committed.values()),
    ).drop("date")
    with phases(f"{SILVER_TABLE}: read and helpers"):
        frame = frame.transform(rule_columns.silver_helpers)
    return _check(
        frame,
        plan,
        day,
        schemas.SILVER_EXECUTIONS_SCHEMA,
        rule_columns.SILVER_HELPERS,
        rules.SILVER_ROW_RULES,
        fs,
        run_id,
        phases,
        (SILVER_EXECUTIONS, [f for m in committed.values() for f in m.files]),
    )


# --- an unchanged day: re-judged from its last verdict -----------------------------------------

JUDGED = "judged.json"


def _fingerprint(manifests, day: dt.date, tables, volume_k: float, src) -> str:
    """What the rules' verdicts on the rows depend on: every day of the window as committed (its
    Delta version, rows, sealed), the rules themselves, the package, the gate's settings. Equal
    fingerprints: the same rows judged by the same rules, so only the time rules can change."""
    import hashlib

    parts = {
        "package": __version__,
        "rules": repr((rules.BRONZE_ROW_RULES, rules.SILVER_ROW_RULES, rules.TIME_RULES)),
        "day": day.isoformat(),
        "tables": sorted(tables),
        "volume_k": volume_k,
        "history_days": HISTORY_DAYS,
        "source": src is not None,
        **{
            table: {d.isoformat(): [m.version, m.rows, m.sealed] for d, m in sorted(days.items())}
            for table, days in manifests.items()
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _prior(fs: LakeFS, day: dt.date, fingerprint: str, tables) -> dict | None:
    """The last verdict's record when it judged the same rows by the same rules, else None."""
    text = fs.read_text(f"{fs.lake}/{QUALITY}/summary/date={day.isoformat()}/{JUDGED}")
    try:
        prior = json.loads(text) if text else None
    except ValueError:
        return None
    if not prior or prior.get("fingerprint") != fingerprint:
        return None
    names = {"bronze": BRONZE_TABLE, "silver": SILVER_TABLE}
    if any(names[t] not in prior.get("tables", {}) for t in tables):
        return None
    return prior


def _rejudged(fs: LakeFS, plan: _Plan, day: dt.date, prior: dict) -> TableReport | None:
    """The table's report from its last verdict (results.json), the time rules judged again by
    GX on the commit's facts. None when the stored result is gone or unreadable: judge it
    whole."""
    judged = prior["tables"][plan.table]
    folder = f"{fs.lake}/{QUALITY}/{plan.table}/date={day.isoformat()}"
    stored = fs.read_text(f"{folder}/results.json")
    if not stored:
        return None
    rejudged = gx_runner.rejudge(
        stored, plan.table, plan.fact_rules, plan.facts, judged["descriptions"]
    )
    if rejudged is None:
        log.warning("%s %s: stored results.json unreadable: judging the rows", plan.table, day)
        return None
    gx_result, results = rejudged
    plan.notes.append(
        f"unchanged since the verdict of {prior['judged_at']} (run {prior['run_id']}): its row "
        "and table rules stand, the rows were not read again; freshness and lag judged now"
    )
    results = [*results, *plan.more_results]
    return _table_report(fs, plan, day, results, judged["quarantined"], gx_result)


def _judged_record(report: ValidationReport, fingerprint: str, prior: dict | None) -> str:
    tables = {
        t.table: {
            "quarantined": t.quarantined,
            "descriptions": {r.name: r.description for r in t.results},
        }
        for t in report.tables
    }
    when = prior or {"judged_at": dt.datetime.now(dt.UTC).isoformat(), "run_id": report.run_id}
    record = {
        "fingerprint": fingerprint,
        "judged_at": when["judged_at"],
        "run_id": when["run_id"],
        "tables": tables,
    }
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def run(
    day: dt.date,
    lake: str,
    *,
    spark: SparkSession | None = None,
    store_config: StoreConfig | None = None,
    src: SourceConfig | None = None,
    as_of: dt.datetime | None = None,
    volume_k: float = defaults.VOLUME_K,
    tables: tuple[str, ...] = ("bronze", "silver"),
    run_id: str | None = None,
    raise_on_failure: bool = True,
    full: bool = False,
) -> ValidationReport:
    """Validate one day. Raises QualityGateError (after writing every report) when a `fail`
    rule broke, unless raise_on_failure is False. A day whose tables did not change since its
    last verdict is re-judged on the time rules alone (no row read) unless `full`."""
    with metrics.step("validate", day=day.isoformat()) as m:
        report = _validate(
            day, lake, spark, store_config, src, as_of, volume_k, tables, run_id, full
        )
        m.set("rows", sum(t.rows for t in report.tables))
        m.by_level = {"fail": len(report.failed), "warn": len(report.warned)}
        m.succeeded = not report.failed
        for table, lag in report.lag_s.items():
            m.set_lake(f"{table}_freshness_lag_seconds", lag)
        return _finish(report, lake, day, raise_on_failure)


def _validate(day, lake, spark, store_config, src, as_of, volume_k, tables, run_id, full):
    unknown = set(tables) - {"bronze", "silver"}
    if unknown:
        raise InputError(f"unknown table(s) {sorted(unknown)}: expected bronze and/or silver")
    run_id = config.run_id(run_id)
    as_of = (as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if src is None:
        src = _source_from_env()
    store_config = object_store.checked(lake, store_config)
    fs = LakeFS(lake, store_config)
    report = ValidationReport(day.isoformat(), lake, run_id)
    # The gate reads committed files while it runs: no writer may supersede (delete) them.
    phases = report.phases = metrics.Phases("validate")
    with writer_lock.hold(lake, "validate", day.isoformat(), run_id, store_config):
        # The source's newest event, asked before anything is checked or replaced: an
        # unreachable database fails the gate here, with the day's reports and quarantine as they
        # were. The lake cannot change while the lease is held, so the lag is the same.
        with phases("freshness"):
            source_newest = _source_newest(src)
        # Each table's manifests of the window, read once: the volume rule, the charts.
        manifests = _window_manifests(fs, day)
        fingerprint = _fingerprint(manifests, day, tables, volume_k, src)
        prior = None if full else _prior(fs, day, fingerprint, tables)
        if prior is not None:
            with phases("re-judge unchanged day"):
                rejudged = _rejudge_all(fs, day, manifests, as_of, volume_k, src, tables, prior)
            report.tables = rejudged or []
        if not report.tables:
            prior = None
            report.tables = _judge_all(
                spark, fs, day, manifests, as_of, volume_k, src, tables, run_id, phases
            )
        _measure_lag(fs, source_newest, report, day, as_of)
        for table_report in report.tables:
            _write_report(fs, table_report)
        report.history = _history(manifests, day)
        report.endpoint = store_config.endpoint_url if store_config else None
        folder = f"{lake}/{QUALITY}/summary/date={day.isoformat()}"
        fs.write_text(f"{folder}/summary.md", report.markdown())
        fs.write_text(f"{folder}/report.html", report_page.render([report]))
        fs.write_text(f"{folder}/verdict.json", json.dumps(report.verdict(), indent=1) + "\n")
        fs.write_text(f"{folder}/{JUDGED}", _judged_record(report, fingerprint, prior))
    return report


def engine_for(rows: int, setting: str | None = None) -> str:
    """The engine that judges a day of `rows` rows: DEEP_STORAGE_GATE_ENGINE (duckdb or spark),
    or by size when it is auto (the default): DuckDB up to GATE_DUCKDB_MAX_ROWS."""
    setting = config.gate_engine(setting)
    if setting != "auto":
        return setting
    return "duckdb" if rows <= defaults.GATE_DUCKDB_MAX_ROWS else "spark"


def _judge_all(spark, fs, day, manifests, as_of, volume_k, src, tables, run_id, phases):
    """Judge every rule on the day's rows (each table's day read once)."""
    plans = []
    if "bronze" in tables:
        plans.append(_bronze_plan(day, manifests[BRONZE_EVENTS], as_of, volume_k, src, True))
    if "silver" in tables:
        plans.append(_silver_plan(day, manifests[SILVER_EXECUTIONS], as_of, volume_k))
    engines = {plan.table: engine_for(plan.rows) for plan in plans}
    if "spark" in engines.values():
        with phases("start spark"):
            spark = spark_session.for_lake("validate", fs.lake, spark, fs.store)
    gx_runner.preload()  # after Spark's start, which would wait for it (spark_session.build)
    out = []
    for plan in plans:
        log.info("%s %s: %d rows judged on %s", plan.table, day, plan.rows, engines[plan.table])
        if engines[plan.table] == "duckdb":
            out.append(_duckdb_report(fs, day, manifests, plan, run_id, phases))
        elif plan.table == BRONZE_TABLE:
            out.append(
                _bronze_report(spark, fs, day, manifests[BRONZE_EVENTS], plan, run_id, phases)
            )
        else:
            out.append(_silver_report(spark, fs, day, plan, run_id, phases))
    return out


_DUCKDB_TABLES = {
    BRONZE_TABLE: ("bronze", BRONZE_EVENTS, schemas.BRONZE_EVENTS_SCHEMA, rules.BRONZE_ROW_RULES),
    SILVER_TABLE: (
        "silver",
        SILVER_EXECUTIONS,
        schemas.SILVER_EXECUTIONS_SCHEMA,
        rules.SILVER_ROW_RULES,
    ),
}


def _duckdb_report(fs, day, manifests, plan: _Plan, run_id, phases) -> TableReport:
    """`plan` judged on DuckDB: the day's committed files read once into DuckDB, the evidence
    computed there and judged by GX as a pandas frame, the quarantine copied from the same
    table."""
    import pandas as pd

    kind, lake_table, schema, row_rules = _DUCKDB_TABLES[plan.table]
    committed = manifests[lake_table].get(day)
    files = list(committed.files) if committed else []
    helpers = rule_columns.BRONZE_HELPERS if kind == "bronze" else rule_columns.SILVER_HELPERS
    extras = [
        *helpers,
        *(rule_columns.ok_column(r) for r in row_rules),
        *(rule_columns.evidence_column(r) for r in row_rules),
    ]
    # The contract's columns, judged on the columns the rules are judged with (no rows).
    columns = pd.DataFrame(columns=[*schema.fieldNames(), *extras])
    types, expected, mismatched = _file_types(fs, plan.table, lake_table, files, schema, phases)
    if mismatched:
        return _unreadable(
            columns, plan, day, schema, extras, fs, phases, types, expected, engine="pandas"
        )
    memory, arrow_schema = config.SparkSettings.from_env().driver_memory, to_arrow_schema(schema)
    with duckdb_rules.connected(memory) as con:
        with phases(f"{plan.table}: read"):
            duckdb_rules.read_day(con, fs, lake_table, files, arrow_schema)
        with phases(f"{plan.table}: flag rows"):
            duckdb_rules.flag(con, kind, row_rules, rules.ROW_ID[plan.table], arrow_schema)
            flags = duckdb_rules.evidence(con, row_rules)
        timings: dict[str, float] = {}
        with phases(f"{plan.table}: great expectations"):
            gx_result, results = gx_runner.validate(
                columns, flags, plan.table, schema, extras, row_rules, plan.table_rules,
                plan.fact_rules, plan.facts, types, expected, timings, engine="pandas",
            )  # fmt: skip
        log.info("%s %s: Great Expectations (%s)", plan.table, day, _timed(timings))
        row_rule_names = {r.name for r in row_rules}
        broken = any(not r.success for r in results if r.name in row_rule_names)
        folder = f"{QUARANTINE}/{plan.table}/date={day.isoformat()}"
        with phases(f"{plan.table}: quarantine"):
            fs.delete_tree(f"{fs.lake}/{folder}")
            quarantined = 0
            if broken:
                quarantined = duckdb_rules.quarantine(con, fs, folder, schema.fieldNames(), run_id)
    return _table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


def _timed(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())


def _rejudge_all(fs, day, manifests, as_of, volume_k, src, tables, prior):
    """The unchanged day's reports, no row read and no Spark; None when a stored result is gone."""
    plans = []
    if "bronze" in tables:
        plans.append(_bronze_plan(day, manifests[BRONZE_EVENTS], as_of, volume_k, src, False))
    if "silver" in tables:
        plans.append(_silver_plan(day, manifests[SILVER_EXECUTIONS], as_of, volume_k))
    out = [_rejudged(fs, plan, day, prior) for plan in plans]
    return None if any(r is None for r in out) else out


def _history(manifests: dict, day: dt.date) -> dict[str, dict[str, dict]]:
    """Rows per day of both tables and silver's rows per status, over the HISTORY_DAYS up to
    `day`, from the window's manifests (already read)."""
    first = day - dt.timedelta(days=HISTORY_DAYS - 1)
    out: dict[str, dict[str, dict]] = {}
    for name, table in (("bronze", BRONZE_EVENTS), ("silver", SILVER_EXECUTIONS)):
        out[name] = {}
        for d, m in sorted(manifests[table].items()):
            if d < first:
                continue
            statuses: dict[str, int] = {}
            for counts in (m.details.get("statuses") or {}).values():
                for status, n in counts.items():
                    statuses[status] = statuses.get(status, 0) + n
            out[name][d.isoformat()] = {"rows": m.rows, "statuses": statuses}
    return out


def _source_from_env() -> SourceConfig | None:
    """The source for the completeness and freshness checks: None only when no DJANGO_DB_*
    variable is set at all (a gate run without the database, noted in the report). A partial
    or invalid setting is an error: silently skipping the only completeness check is worse."""
    if not any(os.environ.get(k) for k in config.DB_ENV):
        return None
    return SourceConfig.from_env()


def _source_newest(src: SourceConfig | None) -> dt.datetime | None:
    if src is None:
        return None
    with source_db.connect(src) as conn:
        return source_db.newest_event(conn, src)


def _measure_lag(
    fs: LakeFS, newest: dt.datetime | None, report: ValidationReport, day: dt.date, as_of
) -> None:
    """The lake's lag behind the source's newest event (`newest`), per table; on the day's own
    runs (not a backfill of an old day) a lag past the table's SLA is a warn-level result."""
    if newest is None:
        return
    tables = {t.table: t for t in report.tables}
    for name, table, report_name in (
        ("bronze", BRONZE_EVENTS, BRONZE_TABLE),
        ("silver", SILVER_EXECUTIONS, SILVER_TABLE),
    ):
        committed = lake.newest_event(fs, table)
        if committed is None:
            continue
        lag = max(0.0, (newest - committed).total_seconds())
        report.lag_s[name] = lag
        sla = LAG_SLA[name]
        if report_name in tables and _freshness_applies(day, as_of, sla):
            tables[report_name].results.append(
                RuleResult(
                    "lag_within_sla",
                    rules.WARN,
                    lag <= sla.total_seconds(),
                    f"the newest committed event is at most {sla} behind the source's newest",
                    f"{lag:.0f} s behind",
                )
            )


def _finish(report: ValidationReport, lake: str, day: dt.date, raise_on_failure: bool):
    error = gate_error(lake, [report])
    if error and raise_on_failure:
        raise error
    return report
