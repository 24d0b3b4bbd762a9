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


def _duplicates(frame: DataFrame, key: str, name: str) -> DataFrame:
    """(key, name) for the keys that appear more than once, name = their count. The shuffle moves
    a 64-bit hash per row instead of the key (a hash aggregate of longs); the few keys whose hash
    repeats are then counted exactly."""
    hashed = frame.select(key, F.xxhash64(key).alias("_hash"))
    repeated = (
        hashed.groupBy("_hash").agg(F.count(F.lit(1)).alias("_n")).where("_n > 1").select("_hash")
    )
    return (
        hashed.join(F.broadcast(repeated), "_hash", "left_semi")
        .groupBy(key)
        .agg(F.count(F.lit(1)).alias(name))
        .where(f"{name} > 1")
    )


def bronze_helpers(events: DataFrame) -> DataFrame:
    """_event_id_count: rows sharing the event_id; _token_tenants: 1, or 2 when the token's
    events disagree on client_id, operation_id or symbol."""
    duplicates = _duplicates(events, "event_id", "_event_id_count")
    # min/max of longs keep the aggregation hash-based (a string's min/max would sort every
    # row); symbols are compared by their 64-bit hash.
    compared = {
        "client_id": F.col("client_id"),
        "operation_id": F.col("operation_id"),
        # NULL stays NULL (min/max skip it, as they skipped a NULL symbol before).
        "symbol": F.when(F.col("symbol").isNotNull(), F.xxhash64("symbol")),
    }
    crossing = (
        events.where(F.col("execution_token").isNotNull())
        .groupBy("execution_token")
        .agg(
            *(
                c
                for name, col in compared.items()
                for c in (F.min(col).alias(f"_min_{name}"), F.max(col).alias(f"_max_{name}"))
            )
        )
        .where(" OR ".join(f"_min_{c} <> _max_{c}" for c in compared))
        .select("execution_token", F.lit(2).alias("_token_tenants"))
    )
    with_ids = _with_count(events, ["event_id"], "_event_id_count", duplicates)
    # NULL tokens never join (a NULL key matches nothing), so they keep 1.
    return _with_count(with_ids, ["execution_token"], "_token_tenants", crossing)


def silver_helpers(executions: DataFrame) -> DataFrame:
    duplicates = _duplicates(executions, "execution_id", "_execution_id_count")
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


def evidence_column(rule) -> str:
    return f"_bad_{rule.name}"


def with_evidence(frame: DataFrame, rules, row_id: str) -> DataFrame:
    """One string column per row rule (`_bad_<name>`): NULL for a good row; for an offending row,
    a JSON object of its id and the columns that break the rule, by their real values (NULLs kept
    as null). Great Expectations judges each rule by expecting its column to be NULL, so its
    sampled unexpected values, and the report built from them, are the offending values
    themselves. Reads the `_ok_` flags of with_rule_flags."""
    return frame.withColumns(
        {
            evidence_column(r): F.when(
                ~F.col(ok_column(r)),
                F.to_json(
                    F.struct(F.col(row_id), *(F.expr(s) for s in r.shows)),
                    {"ignoreNullFields": "false"},
                ),
            )
            for r in rules
        }
    )
