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
from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from deep_storage import lake
from deep_storage.core import config, defaults, schemas
from deep_storage.core.config import SourceConfig, StoreConfig
from deep_storage.core.errors import InputError
from deep_storage.io import duckdb_session, metrics, object_store, source_db, spark_session
from deep_storage.lake import (
    BRONZE_EVENTS,
    QUALITY,
    QUARANTINE,
    SILVER_EXECUTIONS,
    LakeFS,
    writer_lock,
)
from deep_storage.quality import (
    day_plan,
    duckdb_rules,
    file_types,
    gx_runner,
    report_page,
    rule_columns,
    rules,
)
from deep_storage.quality.day_plan import (
    BRONZE_TABLE,
    SILVER_TABLE,
    Plan,
    chart_history,
    window_days,
)
from deep_storage.quality.gx_runner import RuleResult
from deep_storage.quality.unchanged import (
    JUDGED,
    fingerprint_of,
    judged_record,
    prior_verdict,
    rejudge_all,
)
from deep_storage.quality.verdict import (
    LAG_SLA,
    TableReport,
    ValidationReport,
    gate_error,
    report_uri,
    table_report,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


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


def _check(
    frame: DataFrame,
    plan: Plan,
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
    return table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


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
    frame, plan: Plan, day, schema, extras, fs, phases, types, expected, engine="spark"
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
    return table_report(fs, plan, day, [*results, *plan.more_results], 0, gx_result)


def _bronze_report(spark, fs, day, committed, plan: Plan, run_id, phases) -> TableReport:
    files = lake.file_uris(fs, [committed[day]])
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
        (BRONZE_EVENTS, list(committed[day].files)),
    )


def _silver_report(spark, fs, day, plan: Plan, run_id, phases) -> TableReport:
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
            source_newest, day_newest = _source_newest(src, day)
        # Each table's committed of the window, read once: the volume rule, the charts.
        committed = window_days(fs, day)
        fingerprint = fingerprint_of(committed, day, tables, volume_k, src)
        prior = None if full else prior_verdict(fs, day, fingerprint, tables)
        if prior is not None:
            with phases("re-judge unchanged day"):
                rejudged = rejudge_all(
                    fs, day, committed, as_of, volume_k, src, day_newest, tables, prior
                )
            report.tables = rejudged or []
        if not report.tables:
            prior = None
            report.tables = _judge_all(
                spark, fs, day, committed, as_of, volume_k, (src, day_newest), tables, run_id,
                phases,
            )  # fmt: skip
        _measure_lag(fs, source_newest, report, day, as_of)
        for table_report in report.tables:
            _write_report(fs, table_report)
        report.history = chart_history(committed, day)
        report.endpoint = store_config.endpoint_url if store_config else None
        folder = f"{lake}/{QUALITY}/summary/date={day.isoformat()}"
        fs.write_text(f"{folder}/summary.md", report.markdown())
        fs.write_text(f"{folder}/report.html", report_page.render([report]))
        fs.write_text(f"{folder}/verdict.json", json.dumps(report.verdict(), indent=1) + "\n")
        fs.write_text(f"{folder}/{JUDGED}", judged_record(report, fingerprint, prior))
    return report


def engine_for(rows: int, setting: str | None = None) -> str:
    """The engine that judges a day of `rows` rows: DEEP_STORAGE_GATE_ENGINE (duckdb or spark),
    or by size when it is auto (the default): DuckDB up to GATE_DUCKDB_MAX_ROWS."""
    setting = config.gate_engine(setting)
    if setting != "auto":
        return setting
    return "duckdb" if rows <= defaults.GATE_DUCKDB_MAX_ROWS else "spark"


def _judge_all(spark, fs, day, committed, as_of, volume_k, source, tables, run_id, phases):
    """Judge every rule on the day's rows (each table's day read once). `source`: (the source's
    settings, its newest event of the day)."""
    src, day_newest = source
    plans = day_plan.plans(
        day, committed, as_of, volume_k, src, day_newest, tables, judge_rows=True
    )
    engines = {plan.table: engine_for(plan.rows) for plan in plans}
    if "spark" in engines.values():
        with phases("start spark"):
            spark = spark_session.for_lake("validate", fs.lake, spark, fs.store)
    gx_runner.preload()  # after Spark's start, which would wait for it (spark_session.build)
    out = []
    for plan in plans:
        log.info("%s %s: %d rows judged on %s", plan.table, day, plan.rows, engines[plan.table])
        if engines[plan.table] == "duckdb":
            out.append(_duckdb_report(fs, day, committed, plan, run_id, phases))
        elif plan.table == BRONZE_TABLE:
            out.append(
                _bronze_report(spark, fs, day, committed[BRONZE_EVENTS], plan, run_id, phases)
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


def _duckdb_report(fs, day, committed, plan: Plan, run_id, phases) -> TableReport:
    """`plan` judged on DuckDB: the day's committed files read once into DuckDB, the evidence
    computed there and judged by GX as a pandas frame, the quarantine copied from the same
    table."""
    import pandas as pd

    kind, lake_table, schema, row_rules = _DUCKDB_TABLES[plan.table]
    commit = committed[lake_table].get(day)
    files = list(commit.files) if commit else []
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
    with duckdb_session.connected(memory, prefix="deep-storage-gate-") as con:
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
    return table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


def _timed(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())


def _source_from_env() -> SourceConfig | None:
    """The source for the completeness and freshness checks: None only when no DJANGO_DB_*
    variable is set at all (a gate run without the database, noted in the report). A partial
    or invalid setting is an error: silently skipping the only completeness check is worse."""
    if not any(os.environ.get(k) for k in config.DB_ENV):
        return None
    return SourceConfig.from_env()


def _source_newest(src: SourceConfig | None, day: dt.date):
    """(the source's newest event, its newest of `day`'s window): what the lag and the day's
    freshness are measured against. (None, None) without a source."""
    if src is None:
        return None, None
    with source_db.connect(src) as conn:
        return source_db.newest_event(conn, src), source_db.window_newest(conn, src, day)


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
        if report_name in tables and day_plan.freshness_applies(day, as_of, sla):
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
