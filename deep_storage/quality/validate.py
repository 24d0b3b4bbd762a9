"""`deep-storage validate --date D`: the quality gate for one day of bronze and silver.

Per table: plan what to judge from the day's commit facts (day_plan), judge the rules on the
day's rows with one of two engines, quarantine the rows that break row rules (they stay where
they are: nothing is lost), write the results under {lake}/_quality/<table>/date=D/ and the
day's page under {lake}/_quality/summary/date=D/report.html. Whether the gate fails is decided in
verdict.py, and only a broken `fail` rule fails it.

The engines judge the same rules' text (rules.py): DuckDB in this process for a day of up to
GATE_DUCKDB_MAX_ROWS rows (no JVM: duckdb_rules.py), Spark above that or when
DEEP_STORAGE_GATE_ENGINE says so (executors: spark_rules.py). Great Expectations judges either
engine's evidence columns (gx_runner.py). A day unchanged since its last verdict is re-judged on
its time rules alone (unchanged.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import TYPE_CHECKING

from deep_storage import lake
from deep_storage.core import config, defaults
from deep_storage.core.config import SourceConfig, StoreConfig
from deep_storage.core.errors import InputError
from deep_storage.io import metrics, object_store, source_db, spark_session
from deep_storage.lake import (
    BRONZE_EVENTS,
    QUALITY,
    SILVER_EXECUTIONS,
    LakeFS,
    writer_lock,
)
from deep_storage.quality import (
    day_plan,
    duckdb_rules,
    gx_runner,
    report_page,
    rules,
    spark_rules,
)
from deep_storage.quality.day_plan import (
    BRONZE_TABLE,
    SILVER_TABLE,
    chart_history,
    window_days,
)
from deep_storage.quality.unchanged import (
    JUDGED,
    fingerprint_of,
    judged_record,
    prior_verdict,
    rejudge_all,
)
from deep_storage.quality.verdict import (
    RuleResult,
    TableReport,
    ValidationReport,
    gate_error,  # noqa: F401  still importable from here
    raise_if_failed,
    report_uri,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
        if raise_on_failure:
            raise_if_failed(lake, [report])
        return report


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
            out.append(duckdb_rules.report(fs, day, committed, plan, run_id, phases))
        else:
            out.append(spark_rules.report(spark, fs, day, committed, plan, run_id, phases))
    return out


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
        sla = defaults.LAG_SLA[name]
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
