"""Helper columns the row rules refer to: counts across rows, computed once per frame."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

BRONZE_HELPERS = ["_event_id_count", "_token_tenants"]
SILVER_HELPERS = ["_execution_id_count", "_token_count"]


def bronze_helpers(events: DataFrame) -> DataFrame:
    by_token = Window.partitionBy("execution_token")
    return events.withColumn(
        "_event_id_count", F.count(F.lit(1)).over(Window.partitionBy("event_id"))
    ).withColumn(
        "_token_tenants",
        F.size(F.collect_set(F.struct("client_id", "operation_id", "symbol")).over(by_token)),
    )


def silver_helpers(executions: DataFrame) -> DataFrame:
    return executions.withColumn(
        "_execution_id_count", F.count(F.lit(1)).over(Window.partitionBy("execution_id"))
    ).withColumn(
        "_token_count",
        F.count(F.lit(1)).over(Window.partitionBy("client_id", "execution_token")),
    )


def ok_column(rule) -> str:
    return f"_ok_{rule.name}"


def with_rule_flags(frame: DataFrame, rules) -> DataFrame:
    """One boolean column per row rule (`_ok_<name>`, never NULL: NULL counts as broken), so
    Great Expectations checks them all in one aggregation pass and the quarantine reads the
    same flags."""
    return frame.withColumns({ok_column(r): F.coalesce(F.expr(r.ok), F.lit(False)) for r in rules})


def reasons(rules) -> F.Column:
    """array<string> of the names of the row rules a row breaks (empty when it breaks none)."""
    broken = [F.when(~F.coalesce(F.expr(r.ok), F.lit(False)), F.lit(r.name)) for r in rules]
    return F.filter(F.array(*broken), lambda x: x.isNotNull())
