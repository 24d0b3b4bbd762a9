"""The app's StopExecution projection, rebuilt from bronze events (docs/lake-contract.md, "Silver").

Pure `DataFrame -> DataFrame` transforms: no I/O and no actions. Chain them with `transform`:

    events.transform(executions)                 one row per execution
    events.transform(with_execution_key)         each event with its execution's key and id

The whole projection is one `groupBy` that collects each execution's events and sorts them by
the event order, so it costs one shuffle: no window per execution, no self-join.
"""

from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType, TimestampType

from deep_storage.event_types import PROGRESS_STATUS, SUBMITTED, TERMINAL_STATUS, TRIGGERED
from deep_storage.schemas import SILVER_EXECUTIONS_SCHEMA

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
RANK: dict[str, int] = {TRIGGERED: 0, SUBMITTED: 1}
OTHER_RANK = 2

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
# What `executions` returns: SILVER_EXECUTIONS_SCHEMA' columns in order, then `date` and the extras.
OUTPUT_SCHEMA = StructType(SILVER_EXECUTIONS_SCHEMA.fields + EXTRA_COLUMNS.fields)

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


def _key_column(operation: Column | None = None) -> Column:
    client = F.col("client_id").cast("string")
    operation = F.col("operation_id") if operation is None else operation
    return F.when(
        F.col("execution_token").isNull(),
        F.concat(F.lit("op:"), client, F.lit(":"), operation.cast("string")),
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
# One hash aggregation: each execution's events are collected (collect_list runs in Spark's
# object hash aggregate; the ordered aggregates min_by/max_by forced a sort-based aggregate of
# every event, measured 1.5x slower end to end), sorted by the event order, and every column is
# read off the sorted array. The execution id (a SHA-1 per row) is computed once per execution,
# after the grouping, not once per event.

_EVENTS = "_events_sorted"
_CARRIED = (
    "event_id",
    "operation_id",
    "event_type",
    "symbol",
    "stop_price",
    "trigger_price",
    "quantity",
    "side",
    "exchange_order_id",
    "fill_price",
    "slippage_pct",
    "source",
    "error_message",
    "retry_count",
)


def _status_of(mapping: dict[str, str], event_type: Column) -> Column:
    status = F.lit(None).cast("string")
    for name, value in mapping.items():
        status = F.when(event_type == name, F.lit(value)).otherwise(status)
    return status


def _first_non_null(name: str) -> Column:
    """Value of `name` on the first event (in order) where it is not NULL."""
    events = F.filter(F.col(_EVENTS), lambda e: e[name].isNotNull())
    return F.get(events, F.lit(0))[name]


def _latest(*event_types: str) -> Column:
    """The latest event (in order) of one of `event_types`, NULL when there is none."""
    events = F.filter(F.col(_EVENTS), lambda e: e["event_type"].isin(*event_types))
    return F.try_element_at(events, F.lit(-1))


def _first_at(event_type: str) -> Column:
    events = F.filter(F.col(_EVENTS), lambda e: e["event_type"] == event_type)
    return F.get(events, F.lit(0))["occurred_at"]


def executions(events: DataFrame) -> DataFrame:
    """One row per execution, with OUTPUT_SCHEMA's columns, from bronze events.

    `events` has at least BRONZE_EVENTS' columns; any others (`_ingested_at`, a `date` partition
    column) are ignored. The rules are the contract's:

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
    ordered = events.transform(with_event_order)
    # The execution: its client and token, or (token NULL) its client and operation.
    operation = F.when(F.col("execution_token").isNull(), F.col("operation_id"))
    # Sorting structs compares their fields in order: (occurred_at, _rank, event_id) first.
    event = F.struct("occurred_at", _RANK, *_CARRIED)
    grouped = ordered.groupBy("client_id", "execution_token", operation.alias("_operation")).agg(
        F.array_sort(F.collect_list(event)).alias(_EVENTS)
    )
    e = F.col(_EVENTS)
    # The events read more than once, computed once (a select of its own, which Spark does not
    # inline into the next where that would repeat the filter).
    picked = grouped.select(
        "client_id",
        "execution_token",
        "_operation",
        e,
        _latest(*TERMINAL_STATUS).alias("_terminal"),
        _latest(*PROGRESS_STATUS).alias("_progress"),
        _latest("EXECUTED").alias("_executed"),
        _latest("FAILED")["error_message"].alias("error_message"),
        F.get(e, F.lit(0)).alias("_first"),
    )
    executed, first = F.col("_executed"), F.col("_first")
    derived = {
        "execution_id": _uuid5(_key_column(F.col("_operation"))),
        "operation_id": first["operation_id"],
        "status": F.coalesce(
            _status_of(TERMINAL_STATUS, F.col("_terminal")["event_type"]),
            _status_of(PROGRESS_STATUS, F.col("_progress")["event_type"]),
            F.lit(NO_EVENT_STATUS),
        ),
        "symbol": _first_non_null("symbol"),
        "stop_price": _first_non_null("stop_price"),
        "trigger_price": _first_non_null("trigger_price"),
        "quantity": F.coalesce(executed["quantity"], _first_non_null("quantity")),
        "side": _first_non_null("side"),
        "triggered_at": _first_at(TRIGGERED),
        "submitted_at": _first_at("EXECUTION_SUBMITTED"),
        "executed_at": _first_at("EXECUTED"),
        "failed_at": _first_at("FAILED"),
        "exchange_order_id": executed["exchange_order_id"],
        "fill_price": executed["fill_price"],
        "slippage_pct": executed["slippage_pct"],
        "source": _first_non_null("source"),
        "retry_count": F.array_max(F.transform(e, lambda x: x["retry_count"])),
        "date": F.to_date(first["occurred_at"]),
        "_first_event_at": first["occurred_at"],
        "_last_event_at": F.array_max(F.transform(e, lambda x: x["occurred_at"])),
        "_events": F.size(e),
    }
    columns = [derived.get(f.name, F.col(f.name)).alias(f.name) for f in OUTPUT_SCHEMA]
    return picked.select(*columns)
