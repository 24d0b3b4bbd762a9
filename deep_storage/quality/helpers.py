"""Helper columns the row rules refer to: counts across rows, computed once per frame.

Each is a hash aggregate keeping only the offending keys (duplicates, tokens crossing tenants:
normally none), broadcast back with a left join. Window functions would sort the whole frame
once per helper; these cost one hash shuffle each and a join with an (almost) empty side.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BRONZE_HELPERS = ["_event_id_count", "_token_tenants"]
SILVER_HELPERS = ["_execution_id_count", "_token_count"]


def _with_count(frame: DataFrame, keys: list[str], name: str, offending) -> DataFrame:
    """`name` = per-key value from `offending` (key columns + `name`), 1 where the key is absent.

    `offending` is computed once, here (an eager local checkpoint), so the gate's several passes
    over the frame join a small materialised table instead of re-aggregating every key."""
    offending = offending.localCheckpoint(eager=True)
    return frame.join(F.broadcast(offending), keys, "left").withColumn(
        name, F.coalesce(F.col(name), F.lit(1))
    )


def bronze_helpers(events: DataFrame) -> DataFrame:
    """_event_id_count: rows sharing the event_id; _token_tenants: 1, or 2 when the token's
    events disagree on client_id, operation_id or symbol."""
    duplicates = (
        events.groupBy("event_id")
        .agg(F.count(F.lit(1)).alias("_event_id_count"))
        .where("_event_id_count > 1")
    )
    crossing = (
        events.where(F.col("execution_token").isNotNull())
        .groupBy("execution_token")
        .agg(
            *(
                c
                for col in ("client_id", "operation_id", "symbol")
                for c in (F.min(col).alias(f"_min_{col}"), F.max(col).alias(f"_max_{col}"))
            )
        )
        .where(
            " OR ".join(f"_min_{c} <> _max_{c}" for c in ("client_id", "operation_id", "symbol"))
        )
        .select("execution_token", F.lit(2).alias("_token_tenants"))
    )
    with_ids = _with_count(events, ["event_id"], "_event_id_count", duplicates)
    # NULL tokens never join (a NULL key matches nothing), so they keep 1.
    return _with_count(with_ids, ["execution_token"], "_token_tenants", crossing)


def silver_helpers(executions: DataFrame) -> DataFrame:
    duplicates = (
        executions.groupBy("execution_id")
        .agg(F.count(F.lit(1)).alias("_execution_id_count"))
        .where("_execution_id_count > 1")
    )
    repeated = (
        executions.where(F.col("execution_token").isNotNull())
        .groupBy("client_id", "execution_token")
        .agg(F.count(F.lit(1)).alias("_token_count"))
        .where("_token_count > 1")
    )
    with_ids = _with_count(executions, ["execution_id"], "_execution_id_count", duplicates)
    return _with_count(with_ids, ["client_id", "execution_token"], "_token_count", repeated)


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
