"""The lake's column contracts (docs/lake-contract.md), as Spark schemas."""

from __future__ import annotations

from pyspark.sql.types import (
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

PRICE = DecimalType(20, 8)
PCT = DecimalType(10, 4)

BRONZE_EVENTS_SCHEMA = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("event_seq", LongType(), True),
        StructField("occurred_at", TimestampType(), False),
        StructField("operation_id", LongType(), False),
        StructField("client_id", LongType(), False),
        StructField("symbol", StringType(), False),
        StructField("event_type", StringType(), False),
        StructField("trigger_price", PRICE, True),
        StructField("stop_price", PRICE, True),
        StructField("quantity", PRICE, True),
        StructField("side", StringType(), True),
        StructField("execution_token", StringType(), True),
        StructField("payload_json", StringType(), False),
        StructField("request_payload_hash", StringType(), True),
        StructField("exchange_order_id", StringType(), True),
        StructField("fill_price", PRICE, True),
        StructField("slippage_pct", PCT, True),
        StructField("source", StringType(), False),
        StructField("error_message", StringType(), True),
        StructField("retry_count", IntegerType(), False),
    ]
)

SILVER_EXECUTIONS_SCHEMA = StructType(
    [
        StructField("execution_id", StringType(), False),
        StructField("operation_id", LongType(), False),
        StructField("client_id", LongType(), False),
        StructField("execution_token", StringType(), True),
        StructField("symbol", StringType(), True),
        StructField("status", StringType(), False),
        StructField("stop_price", PRICE, True),
        StructField("trigger_price", PRICE, True),
        StructField("quantity", PRICE, True),
        StructField("side", StringType(), True),
        StructField("triggered_at", TimestampType(), True),
        StructField("submitted_at", TimestampType(), True),
        StructField("executed_at", TimestampType(), True),
        StructField("failed_at", TimestampType(), True),
        StructField("exchange_order_id", StringType(), True),
        StructField("fill_price", PRICE, True),
        StructField("slippage_pct", PCT, True),
        StructField("source", StringType(), True),
        StructField("error_message", StringType(), True),
        StructField("retry_count", IntegerType(), True),
        # Added by schema evolution (gold's labels need a BLOCKED execution's time): files
        # written before it lack the column and Delta reads it as NULL there.
        StructField("blocked_at", TimestampType(), True),
    ]
)

# Columns a table gained after its first files were written, by Delta's schema evolution: an
# older file may lack them (read as NULL), which the gate's contract_types accepts.
EVOLVED_COLUMNS: dict[str, tuple[str, ...]] = {"silver/stop_executions": ("blocked_at",)}

# The source's columns in table order (also bronze's column order).
SOURCE_COLUMNS: tuple[str, ...] = tuple(BRONZE_EVENTS_SCHEMA.fieldNames())

# The source table as the Django app creates it (docs/source.md); the tests and the demo
# create it from here, so the lake and its fixtures cannot drift apart.
SOURCE_DDL = """
CREATE TABLE IF NOT EXISTS stop_events (
    event_id             uuid PRIMARY KEY,
    event_seq            bigint UNIQUE,
    occurred_at          timestamptz NOT NULL,
    operation_id         bigint NOT NULL,
    client_id            bigint NOT NULL,
    symbol               varchar(20) NOT NULL,
    event_type           varchar(50) NOT NULL,
    trigger_price        numeric(20,8),
    stop_price           numeric(20,8),
    quantity             numeric(20,8),
    side                 varchar(10),
    execution_token      varchar(64),
    payload_json         jsonb NOT NULL,
    request_payload_hash varchar(64),
    exchange_order_id    varchar(100),
    fill_price           numeric(20,8),
    slippage_pct         numeric(10,4),
    source               varchar(20) NOT NULL,
    error_message        text,
    retry_count          integer NOT NULL
);
CREATE INDEX IF NOT EXISTS stop_events_occurred_at ON stop_events (occurred_at);
CREATE INDEX IF NOT EXISTS stop_events_client_occurred ON stop_events (client_id, occurred_at);
CREATE INDEX IF NOT EXISTS stop_events_type_occurred ON stop_events (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS stop_events_symbol_occurred ON stop_events (symbol, occurred_at);
CREATE INDEX IF NOT EXISTS stop_events_source_occurred ON stop_events (source, occurred_at);
CREATE INDEX IF NOT EXISTS stop_events_op_seq ON stop_events (operation_id, event_seq);
CREATE INDEX IF NOT EXISTS stop_events_token ON stop_events (execution_token);
CREATE INDEX IF NOT EXISTS stop_events_order ON stop_events (exchange_order_id);
"""
