"""The app's StopExecution projection, rebuilt from bronze events (docs/lake-contract.md, "Silver").

Pure `DataFrame -> DataFrame` transforms: no I/O and no actions. Chain them with `transform`:

    events.transform(executions)                 one row per execution
    events.transform(with_execution_key)         each event with its execution's key and id

The projection is one shuffle (the events, hash-partitioned by client_id) and one DuckDB
aggregation per task over its Arrow batches (`project_arrow`, which silver's tasks also call
directly): no window per execution, no self-join, no Python per row.
"""

from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType, TimestampType

from deep_storage.core.event_types import (
    BLOCK_TYPES,
    PROGRESS_STATUS,
    SUBMITTED,
    TERMINAL_STATUS,
    TRIGGERED,
)
from deep_storage.core.schemas import SILVER_EXECUTIONS_SCHEMA

__all__ = [
    "EVENT_COLUMNS",
    "EXECUTION_NAMESPACE",
    "EXTRA_COLUMNS",
    "NO_EVENT_STATUS",
    "OUTPUT_SCHEMA",
    "PROGRESS_STATUS",
    "PROJECTION_SQL",
    "RANK",
    "TERMINAL_STATUS",
    "arrow_output_schema",
    "execution_id",
    "execution_key",
    "executions",
    "project_arrow",
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


# --- the projection -----------------------------------------------------------------------------
# Each execution's events meet in one task: the events are split by client_id (an execution never
# spans clients) and each task runs the projection as one DuckDB aggregation over its Arrow
# batches. Ordered picks are arg_min/arg_max over the event order, numbered by one Arrow sort
# before DuckDB sees the events (`_ordered`: a number compared in every aggregate measured 20%
# faster than a struct of (occurred_at, rank, event_id), and, unlike a window in the query, it
# holds no second copy of the events);
# arg_max_null keeps the latest event's value even when it is NULL ("the latest EXECUTED event's
# fill_price").
# Measured on a 5M-event day against the earlier all-Spark formulation (collect_list, array_sort
# and higher-order functions per execution): 16.8 s against 25.8 s for the same rows.

EVENT_COLUMNS: tuple[str, ...] = (
    "client_id",
    "execution_token",
    "occurred_at",
    "event_type",
    "event_id",
    "operation_id",
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


def _case(mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE event_type {whens} END"


def _in(types) -> str:
    return "(" + ", ".join(f"'{t}'" for t in types) + ")"


def _first(column: str) -> str:
    return f"arg_min({column}, _order) FILTER (WHERE {column} IS NOT NULL) AS {column}"


def _latest(column: str, event_type: str) -> str:
    return f"arg_max_null({column}, _order) FILTER (WHERE event_type = '{event_type}')"


def _first_at(event_type: str) -> str:
    return f"min(occurred_at) FILTER (WHERE event_type = '{event_type}')"


# RFC 4122 UUIDv5 of the key: SHA-1(namespace bytes + UTF-8 name), version nibble 5, variant
# bits 10 (the 17th hex digit n becomes (n & 3) | 8, looked up in a 16-character table).
_UUID5 = (
    "concat_ws('-', h[1:8], h[9:12], '5' || h[14:16], "
    "substr('89ab89ab89ab89ab', strpos('0123456789abcdef', h[17]), 1) || h[18:20], h[21:32])"
)

PROJECTION_SQL = f"""
WITH ordered AS (
  SELECT *,
    CASE WHEN execution_token IS NULL THEN operation_id END AS _operation
  FROM events
), executions AS (
  SELECT
    CASE WHEN execution_token IS NULL THEN 'op:' || client_id || ':' || _operation
         ELSE 'token:' || client_id || ':' || execution_token END AS _key,
    arg_min(operation_id, _order) AS operation_id,
    client_id,
    execution_token,
    {_first("symbol")},
    coalesce(
      arg_max({_case(TERMINAL_STATUS)}, _order) FILTER (WHERE event_type IN {_in(TERMINAL_STATUS)}),
      arg_max({_case(PROGRESS_STATUS)}, _order) FILTER (WHERE event_type IN {_in(PROGRESS_STATUS)}),
      '{NO_EVENT_STATUS}') AS status,
    {_first("stop_price")},
    {_first("trigger_price")},
    coalesce({_latest("quantity", "EXECUTED")},
             arg_min(quantity, _order) FILTER (WHERE quantity IS NOT NULL)) AS quantity,
    {_first("side")},
    {_first_at(TRIGGERED)} AS triggered_at,
    {_first_at(SUBMITTED)} AS submitted_at,
    {_first_at("EXECUTED")} AS executed_at,
    {_first_at("FAILED")} AS failed_at,
    min(occurred_at) FILTER (WHERE event_type IN {_in(BLOCK_TYPES)}) AS blocked_at,
    {_latest("exchange_order_id", "EXECUTED")} AS exchange_order_id,
    {_latest("fill_price", "EXECUTED")} AS fill_price,
    {_latest("slippage_pct", "EXECUTED")} AS slippage_pct,
    {_first("source")},
    {_latest("error_message", "FAILED")} AS error_message,
    max(retry_count) AS retry_count,
    CAST(min(occurred_at) AS DATE) AS date,
    min(occurred_at) AS _first_event_at,
    max(occurred_at) AS _last_event_at,
    CAST(count(*) AS INTEGER) AS _events
  FROM ordered
  GROUP BY client_id, execution_token, _operation
)
SELECT * EXCLUDE (_key, h), {_UUID5} AS execution_id
FROM (SELECT *, sha1(unhex('{EXECUTION_NAMESPACE.hex}') || encode(_key)) AS h FROM executions)
"""


def _ordered(events):
    """`events` (a pyarrow Table) with `_order`: each event's place in the order (occurred_at,
    rank, event_id), NULLs last, as ORDER BY sorts them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = events["event_type"]
    rank = pa.array(np.full(events.num_rows, OTHER_RANK, dtype=np.int8))
    for event_type, value in RANK.items():
        rank = pc.if_else(pc.fill_null(pc.equal(kind, event_type), False), value, rank)
    keys = pa.table({"t": events["occurred_at"], "r": rank, "e": events["event_id"]})
    by = [("t", "ascending", "at_end"), ("r", "ascending", "at_end"), ("e", "ascending", "at_end")]
    indices = pc.sort_indices(keys, sort_keys=by).to_numpy()
    order = np.empty(events.num_rows, dtype=np.int64)
    order[indices] = np.arange(events.num_rows, dtype=np.int64)
    return events.append_column("_order", pa.array(order))


def arrow_output_schema():
    """OUTPUT_SCHEMA as Arrow (timestamps in UTC), what `project_arrow` returns."""
    from pyspark.sql.pandas.types import to_arrow_schema  # pure Python: no JVM starts

    return to_arrow_schema(OUTPUT_SCHEMA)


def project_arrow(events, con=None):
    """One row per execution (OUTPUT_SCHEMA, as a pyarrow Table) from bronze events (a pyarrow
    Table or RecordBatchReader with at least EVENT_COLUMNS): every event of an execution must be
    in `events`. `con` is a DuckDB connection whose TimeZone is UTC (a new one-thread one when
    None)."""
    import duckdb
    import pyarrow as pa

    if not isinstance(events, pa.Table):  # a RecordBatchReader
        events = events.read_all()
    events = _ordered(events)
    own = con is None
    if own:
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
    try:
        con.register("events", events)
        result = con.sql(PROJECTION_SQL).to_arrow_table()
        con.unregister("events")
    finally:
        if own:
            con.close()
    target = arrow_output_schema()
    return result.select(target.names).cast(target)


def executions(events: DataFrame) -> DataFrame:
    """One row per execution, with OUTPUT_SCHEMA's columns, from bronze events.

    `events` has at least BRONZE_EVENTS' columns; any others (`_ingested_at`, a `date` partition
    column) are ignored. The rules are the contract's:

    - status: the latest terminal event (by order) if there is one, else the latest of
      EXECUTION_SUBMITTED / STOP_TRIGGERED; unknown types never set it (NO_EVENT_STATUS if no
      event has a known type).
    - triggered_at / submitted_at / executed_at / failed_at: occurred_at of the first event of
      that type; blocked_at: of the first event of any block type (BLOCKED, STALE_PRICE, ...).
    - exchange_order_id, fill_price, slippage_pct: from the latest EXECUTED event. quantity: the
      latest EXECUTED event's (the executed quantity); without one, or when it is NULL there, the
      first quantity seen.
    - error_message: from the latest FAILED event.
    - stop_price, trigger_price, side, symbol, source: the first non-NULL value, in order.
    - retry_count: the largest seen. operation_id: the first event's (one per execution).
    - date: UTC date of the first event; `_first_event_at`, `_last_event_at`, `_events`
      describe the events seen.

    One shuffle (the events, by client_id), then `project_arrow` in each task.
    """

    def project(batches):
        import pyarrow as pa

        table = pa.Table.from_batches(list(batches), schema=schema)
        if table.num_rows:
            yield from project_arrow(table).to_batches()

    from pyspark.sql.pandas.types import to_arrow_schema

    keyed = events.select(*EVENT_COLUMNS).repartition("client_id")
    schema = to_arrow_schema(keyed.schema)
    return keyed.mapInArrow(project, OUTPUT_SCHEMA)
