"""The app's StopExecution projection, rebuilt from bronze events (lake-contract.md, "Silver").

Pure `DataFrame -> DataFrame` transforms: no I/O and no actions. Chain them with `transform`:

    events.transform(with_execution_key).transform(executions)

(`executions` adds the key itself, so `events.transform(executions)` is the same.)

The whole projection is one `groupBy` with ordered aggregates (`min_by` / `max_by` over the event
order), so it costs one shuffle: no window per execution, no self-join.
"""

from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType, TimestampType

from deep_storage.schemas import SILVER_EXECUTIONS

__all__ = [
    "EXECUTION_NAMESPACE",
    "EXTRA_COLUMNS",
    "NO_EVENT_STATUS",
    "OUTPUT_SCHEMA",
    "PROGRESS_STATUS",
    "RANK",
    "TERMINAL_STATUS",
    "execution_id",
    "execution_key",
    "executions",
    "with_event_order",
    "with_execution_key",
]

# uuid5(NAMESPACE_URL, "https://example.invalid/deep-storage/silver/stop_executions"), frozen as a
# literal. Changing it (or the key format below) changes every execution_id in the lake, which the
# contract forbids: an execution keeps its id across runs and rebuilds.
EXECUTION_NAMESPACE = uuid.UUID("297dd833-e786-5eb0-a340-ebb788350e3a")

# Event order inside an execution is (occurred_at, rank, event_id); unknown types rank with the
# terminal ones, as "every other type".
RANK: dict[str, int] = {"STOP_TRIGGERED": 0, "EXECUTION_SUBMITTED": 1}
OTHER_RANK = 2

TERMINAL_STATUS: dict[str, str] = {
    "EXECUTED": "EXECUTED",
    "FAILED": "FAILED",
    "BLOCKED": "BLOCKED",
    "STALE_PRICE": "BLOCKED",
    "KILL_SWITCH": "BLOCKED",
    "SLIPPAGE_BREACH": "BLOCKED",
    "CIRCUIT_BREAKER": "BLOCKED",
}
PROGRESS_STATUS: dict[str, str] = {
    "EXECUTION_SUBMITTED": "SUBMITTED",
    "STOP_TRIGGERED": "PENDING",
}
# Status of an execution none of whose events has a known type: "no known event yet". Unknown
# types never set a status, but the execution exists (its events are not dropped) and status is
# never NULL, so it reads as PENDING.
NO_EVENT_STATUS = "PENDING"

EXTRA_COLUMNS = StructType(
    [
        StructField("date", DateType(), True),
        StructField("_first_event_at", TimestampType(), True),
        StructField("_last_event_at", TimestampType(), True),
        StructField("_events", IntegerType(), True),
    ]
)
# What `executions` returns: SILVER_EXECUTIONS' columns in order, then `date` and the extras.
OUTPUT_SCHEMA = StructType(SILVER_EXECUTIONS.fields + EXTRA_COLUMNS.fields)

_KEY = "_execution_key"
_RANK = "_rank"
_ORDER = "_order"


# --- the execution key and id -------------------------------------------------------------------
# Execution = all events sharing an execution_token; NULL-token events of one operation_id form
# one execution. Both keys also carry client_id: the token is "{operation_id}:{price}:{epoch_ms}"
# and operation ids belong to a tenant, so two clients can produce the same operation id and the
# same token; keyed by client they stay two executions with two ids. client_id is an integer
# (no ':'), so "token:{client}:{token}" parses unambiguously whatever the token holds, and the
# "token:" / "op:" prefixes keep the two kinds of key apart.


def execution_key(client_id: int, operation_id: int, token: str | None) -> str:
    """The name an execution's id is derived from (pure Python twin of `with_execution_key`)."""
    if token is None:
        return f"op:{client_id}:{operation_id}"
    return f"token:{client_id}:{token}"


def execution_id(client_id: int, operation_id: int, token: str | None) -> str:
    """UUIDv5(EXECUTION_NAMESPACE, execution_key(...)), as the Spark column computes it."""
    return str(uuid.uuid5(EXECUTION_NAMESPACE, execution_key(client_id, operation_id, token)))


def _key_column() -> Column:
    client = F.col("client_id").cast("string")
    return F.when(
        F.col("execution_token").isNull(),
        F.concat(F.lit("op:"), client, F.lit(":"), F.col("operation_id").cast("string")),
    ).otherwise(F.concat(F.lit("token:"), client, F.lit(":"), F.col("execution_token")))


def _uuid5(name: Column) -> Column:
    """RFC 4122 UUIDv5 in Spark SQL: SHA-1(namespace bytes + UTF-8 name), first 16 bytes, version
    nibble 5, variant bits 10, formatted 8-4-4-4-12 in lower case. No Python UDF."""
    digest = F.sha1(F.concat(F.unhex(F.lit(EXECUTION_NAMESPACE.hex)), F.encode(name, "utf-8")))
    # The 17th hex digit is the variant's: keep its two low bits, set the top two to 10.
    variant_nibble = F.conv(digest.substr(17, 1), 16, 10).cast("int").bitwiseAND(3).bitwiseOR(8)
    variant = F.lower(F.hex(variant_nibble))
    return F.concat_ws(
        "-",
        digest.substr(1, 8),
        digest.substr(9, 4),
        F.concat(F.lit("5"), digest.substr(14, 3)),
        F.concat(variant, digest.substr(18, 3)),
        digest.substr(21, 12),
    )


def with_execution_key(events: DataFrame) -> DataFrame:
    """Add `_execution_key` and `execution_id` to bronze events (other columns untouched)."""
    return events.withColumn(_KEY, _key_column()).withColumn("execution_id", _uuid5(F.col(_KEY)))


def with_event_order(events: DataFrame) -> DataFrame:
    """Add `_rank` and `_order` = struct(occurred_at, _rank, event_id), the event order."""
    rank = F.lit(OTHER_RANK)
    for event_type, value in RANK.items():
        rank = F.when(F.col("event_type") == event_type, F.lit(value)).otherwise(rank)
    return events.withColumn(_RANK, rank).withColumn(
        _ORDER, F.struct(F.col("occurred_at"), F.col(_RANK), F.col("event_id"))
    )


# --- the projection -----------------------------------------------------------------------------
# min_by / max_by skip rows whose ordering is NULL, so `F.when(condition, order)` restricts an
# ordered aggregate to the events that meet the condition, inside the one groupBy.


def _status_of(mapping: dict[str, str]) -> Column:
    status = F.lit(None).cast("string")
    for event_type, value in mapping.items():
        status = F.when(F.col("event_type") == event_type, F.lit(value)).otherwise(status)
    return status


def _is_type(*event_types: str) -> Column:
    return F.col("event_type").isin(*event_types)


def _first_non_null(name: str) -> Column:
    """Value of `name` on the first event (in order) where it is not NULL."""
    return F.min_by(F.col(name), F.when(F.col(name).isNotNull(), F.col(_ORDER)))


def _latest_of(value: str | Column, *event_types: str) -> Column:
    """`value` on the latest event (in order) of one of `event_types`."""
    value = F.col(value) if isinstance(value, str) else value
    return F.max_by(value, F.when(_is_type(*event_types), F.col(_ORDER)))


def _first_at(event_type: str) -> Column:
    return F.min(F.when(F.col("event_type") == event_type, F.col("occurred_at")))


def executions(events: DataFrame) -> DataFrame:
    """One row per execution, with OUTPUT_SCHEMA's columns, from bronze events.

    `events` has at least BRONZE_EVENTS' columns; any others (`_ingested_at`, a `date` partition
    column, the key from `with_execution_key`) are ignored. The rules are the contract's:

    - status: the latest terminal event (by order) if there is one, else the latest of
      EXECUTION_SUBMITTED / STOP_TRIGGERED; unknown types never set it (NO_EVENT_STATUS if no
      event has a known type).
    - triggered_at / submitted_at / executed_at / failed_at: occurred_at of the first event of
      that type.
    - exchange_order_id, fill_price, slippage_pct: from the latest EXECUTED event. quantity: the
      latest EXECUTED event's (the executed quantity); without one, or when it is NULL there, the
      first quantity seen.
    - error_message: from the latest FAILED event.
    - stop_price, trigger_price, side, symbol, source: the first non-NULL value, in order.
    - retry_count: the largest seen. operation_id: the first event's (one per execution).
    - date: UTC date of the first event (the session time zone is UTC); `_first_event_at`,
      `_last_event_at`, `_events` describe the events seen.
    """
    keyed = events.transform(with_execution_key).transform(with_event_order)
    grouped = keyed.groupBy(_KEY, "execution_id", "client_id", "execution_token").agg(
        F.min_by(F.col("operation_id"), F.col(_ORDER)).alias("operation_id"),
        _latest_of(_status_of(TERMINAL_STATUS), *TERMINAL_STATUS).alias("_terminal_status"),
        _latest_of(_status_of(PROGRESS_STATUS), *PROGRESS_STATUS).alias("_progress_status"),
        _first_non_null("symbol").alias("symbol"),
        _first_non_null("stop_price").alias("stop_price"),
        _first_non_null("trigger_price").alias("trigger_price"),
        _latest_of("quantity", "EXECUTED").alias("_executed_quantity"),
        _first_non_null("quantity").alias("_first_quantity"),
        _first_non_null("side").alias("side"),
        _first_at("STOP_TRIGGERED").alias("triggered_at"),
        _first_at("EXECUTION_SUBMITTED").alias("submitted_at"),
        _first_at("EXECUTED").alias("executed_at"),
        _first_at("FAILED").alias("failed_at"),
        _latest_of("exchange_order_id", "EXECUTED").alias("exchange_order_id"),
        _latest_of("fill_price", "EXECUTED").alias("fill_price"),
        _latest_of("slippage_pct", "EXECUTED").alias("slippage_pct"),
        _first_non_null("source").alias("source"),
        _latest_of("error_message", "FAILED").alias("error_message"),
        F.max("retry_count").alias("retry_count"),
        F.min("occurred_at").alias("_first_event_at"),
        F.max("occurred_at").alias("_last_event_at"),
        F.count(F.lit(1)).cast("int").alias("_events"),
    )
    derived = {
        "status": F.coalesce(
            F.col("_terminal_status"), F.col("_progress_status"), F.lit(NO_EVENT_STATUS)
        ),
        "quantity": F.coalesce(F.col("_executed_quantity"), F.col("_first_quantity")),
        "date": F.to_date(F.col("_first_event_at")),
    }
    columns = [derived.get(f.name, F.col(f.name)).alias(f.name) for f in OUTPUT_SCHEMA]
    return grouped.select(*columns)
