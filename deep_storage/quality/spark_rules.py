"""The gate's rows on Spark, for a day above what one process holds (validate.py picks the engine).

The day's committed files are read once with the contract's schema; the rules' helper columns and
evidence columns (rule_columns.py: the same SQL text DuckDB runs, duckdb_rules.py) are added, and a
narrow frame of the evidence and each offending row whole is cached. Great Expectations judges
that cached frame (gx_runner), and the quarantine copies the offending rows out of it: the day is
read once. The verdict is not decided here (verdict.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from deep_storage import lake
from deep_storage.core import schemas
from deep_storage.io import metrics
from deep_storage.lake import BRONZE_EVENTS, QUARANTINE, SILVER_EXECUTIONS, LakeFS
from deep_storage.quality import file_types, gx_runner, rule_columns, rules
from deep_storage.quality.day_plan import BRONZE_TABLE, SILVER_TABLE, Plan
from deep_storage.quality.verdict import TableReport, row_rule_broke, table_report

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

QUARANTINED = "_quarantined"  # in the gate's cached flags: an offending row whole, else NULL


def quarantine(
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


def judge(
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
    types, expected, mismatched = file_types.check(fs, table, files[0], files[1], schema, phases)
    if mismatched:
        return file_types.unreadable(frame, plan, day, schema, extras, fs, phases, types, expected)
    augmented, extras, flags = flagged(frame, table, extras, row_rules)
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
    broken = row_rule_broke(results, row_rules)
    with phases(f"{table}: quarantine"):
        quarantined = quarantine(fs, flags, table, day, run_id, broken)
    flags.unpersist()
    log.info("%s %s: quarantine done at %.1f s", table, day, time.monotonic() - started)
    return table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


def flagged(frame: DataFrame, table: str, extras, row_rules):
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


# What the Spark engine reads and adds for each table the gate judges.
_TABLES = {
    BRONZE_TABLE: (
        BRONZE_EVENTS,
        schemas.BRONZE_EVENTS_SCHEMA,
        rule_columns.bronze_helpers,
        rule_columns.BRONZE_HELPERS,
        rules.BRONZE_ROW_RULES,
    ),
    SILVER_TABLE: (
        SILVER_EXECUTIONS,
        schemas.SILVER_EXECUTIONS_SCHEMA,
        rule_columns.silver_helpers,
        rule_columns.SILVER_HELPERS,
        rules.SILVER_ROW_RULES,
    ),
}


def report(spark, fs, day, committed, plan: Plan, run_id, phases) -> TableReport:
    """`plan` judged on Spark: the day's files, as the window's commit facts the gate read
    once (`committed`: lake table -> day -> CommittedDay) list them, read with the contract's
    schema (the folder's date is the day itself, so it is not a column here)."""
    lake_table, schema, add_helpers, helpers, row_rules = _TABLES[plan.table]
    commit = committed[lake_table].get(day)
    files = list(commit.files) if commit else []
    uris = [f"{fs.lake}/{lake_table}/{f}" for f in files]
    frame = lake.read_files(spark, fs, lake_table, schema, uris).drop("date")
    with phases(f"{plan.table}: read and helpers"):
        frame = frame.transform(add_helpers)
    return judge(
        frame, plan, day, schema, helpers, row_rules, fs, run_id, phases, (lake_table, files)
    )
