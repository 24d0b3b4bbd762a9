"""The reference for silver: DuckDB computing the same execution projection over the same bronze
Parquet files (downloaded to a local folder first: DuckDB's S3 support is an extension it would
download at run time), written as Parquet partitioned by client_id and date."""

from __future__ import annotations

import time
from pathlib import Path

TERMINAL = (
    "EXECUTED",
    "FAILED",
    "BLOCKED",
    "STALE_PRICE",
    "KILL_SWITCH",
    "SLIPPAGE_BREACH",
    "CIRCUIT_BREAKER",
)

PROJECTION = """
WITH ev AS (
  SELECT *,
    CASE event_type WHEN 'STOP_TRIGGERED' THEN 0 WHEN 'EXECUTION_SUBMITTED' THEN 1 ELSE 2 END
      AS rnk,
    CASE WHEN execution_token IS NULL THEN 'op:' || client_id || ':' || operation_id
         ELSE 'token:' || client_id || ':' || execution_token END AS k
  FROM read_parquet('{files}')
), o AS (SELECT *, struct_pack(t := occurred_at, r := rnk, e := event_id) AS ord FROM ev)
SELECT
  md5(k) AS execution_id,
  arg_min(operation_id, ord) AS operation_id,
  any_value(client_id) AS client_id,
  any_value(execution_token) AS execution_token,
  arg_min(symbol, ord) FILTER (WHERE symbol IS NOT NULL) AS symbol,
  coalesce(
    arg_max(CASE event_type WHEN 'EXECUTED' THEN 'EXECUTED' WHEN 'FAILED' THEN 'FAILED'
            ELSE 'BLOCKED' END, ord) FILTER (WHERE event_type IN {terminal}),
    arg_max(CASE event_type WHEN 'EXECUTION_SUBMITTED' THEN 'SUBMITTED' ELSE 'PENDING' END, ord)
      FILTER (WHERE event_type IN ('EXECUTION_SUBMITTED', 'STOP_TRIGGERED')),
    'PENDING') AS status,
  arg_min(stop_price, ord) FILTER (WHERE stop_price IS NOT NULL) AS stop_price,
  arg_min(trigger_price, ord) FILTER (WHERE trigger_price IS NOT NULL) AS trigger_price,
  coalesce(arg_max(quantity, ord) FILTER (WHERE event_type = 'EXECUTED'),
           arg_min(quantity, ord) FILTER (WHERE quantity IS NOT NULL)) AS quantity,
  arg_min(side, ord) FILTER (WHERE side IS NOT NULL) AS side,
  min(occurred_at) FILTER (WHERE event_type = 'STOP_TRIGGERED') AS triggered_at,
  min(occurred_at) FILTER (WHERE event_type = 'EXECUTION_SUBMITTED') AS submitted_at,
  min(occurred_at) FILTER (WHERE event_type = 'EXECUTED') AS executed_at,
  min(occurred_at) FILTER (WHERE event_type = 'FAILED') AS failed_at,
  arg_max(exchange_order_id, ord) FILTER (WHERE event_type = 'EXECUTED') AS exchange_order_id,
  arg_max(fill_price, ord) FILTER (WHERE event_type = 'EXECUTED') AS fill_price,
  arg_max(slippage_pct, ord) FILTER (WHERE event_type = 'EXECUTED') AS slippage_pct,
  arg_min(source, ord) FILTER (WHERE source IS NOT NULL) AS source,
  arg_max(error_message, ord) FILTER (WHERE event_type = 'FAILED') AS error_message,
  max(retry_count) AS retry_count,
  CAST(min(occurred_at) AT TIME ZONE 'UTC' AS DATE) AS date
FROM o GROUP BY k
"""


def run(bronze_dir: Path, out_dir: Path, threads: int = 2) -> tuple[float, int]:
    """Seconds to project and write, and the number of executions."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    sql = PROJECTION.format(files=f"{bronze_dir}/*.parquet", terminal=str(TERMINAL))
    start = time.perf_counter()
    con.execute(
        f"COPY ({sql}) TO '{out_dir}' (FORMAT parquet, PARTITION_BY (client_id, date), "
        "OVERWRITE_OR_IGNORE true)"
    )
    seconds = time.perf_counter() - start
    count = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    return seconds, count
