"""The gold features table's rows: one per silver execution, with what was knowable at its `as_of`
(the features) next to what happened to it (the labels).

Pure: one DuckDB query (FEATURES_SQL) over an Arrow table of silver rows, no I/O. The caller
reads silver from `first` - 7 days to `last` (the look-backs cross partitions) and writes the
rows `features_arrow` returns, which are only the executions dated [first, last].

The look-backs (see "the look-backs" below for why each is exact): the symbol's 15 minutes are
window frames, the client's 7 days one running sum over +1/-1 steps; each is one sort, where a
self-join would pair every execution with a whole week of its client's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from deep_storage.core import defaults
from deep_storage.core.errors import InputError

__all__ = [
    "CLIENT_WINDOW_US",
    "FEATURES_SQL",
    "INPUT_COLUMNS",
    "OPTIONAL_COLUMNS",
    "SYMBOL_WINDOW_US",
    "arrow_schema",
    "features_arrow",
]


CLIENT_WINDOW_US = 7 * 24 * 3600 * 1_000_000  # client look-back: 7 days
SYMBOL_WINDOW_US = 15 * 60 * 1_000_000  # symbol look-back: 15 minutes

# The silver columns the query reads; any other input column is ignored.
INPUT_COLUMNS: tuple[str, ...] = (
    "execution_id",
    "execution_token",
    "client_id",
    "symbol",
    "side",
    "source",
    "date",
    "status",
    "stop_price",
    "trigger_price",
    "quantity",
    "slippage_pct",
    "triggered_at",
    "submitted_at",
    "executed_at",
    "failed_at",
)
# Columns silver may not hold yet: read as NULL when absent. Without `_first_event_at`, an
# untriggered execution's as_of is its earliest stamped time instead.
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {
    "blocked_at": pa.timestamp("us", tz="UTC"),
    "_first_event_at": pa.timestamp("us", tz="UTC"),
}

# --- the look-backs ----------------------------------------------------------------------------
# t is as_of and known is label_known_at, in epoch microseconds: integer frames and steps are
# exact at their edges and do not depend on the session's time zone. t0 and t1 are the smallest
# and largest t of the rows asked for ([first, last]). A row with a NULL as_of falls in nobody's
# window; its own counts are 0, its rate and price range NULL.
#
# Per symbol (15 minutes): window frames over the rows from t0 - 15 min (earlier ones are in no
# asked row's window). symbol_triggers_15m is count(*) over [t - 15m, t] EXCLUDE GROUP, which
# drops the row's peers (every row with the same t, itself included): [t - 15m, t).
# symbol_price_range_pct_15m takes min and max over [t - 15m, t], peers kept; they skip NULLs.
#
# Per client (7 days): one running sum over steps. Row i's neighbours j (t_i - 7d <= t_j < t_i)
# are the sum of every j's steps +1 at t_j and -1 at t_j + 7d placed strictly before t_i.
# j's outcome counts for i iff also known_j < t_i, i.e. iff
#     max(t_j, known_j) < t_i <= t_j + 7d,
# so its steps are +1 at a_j = max(t_j, known_j) and -1 at t_j + 7d (and success as 1/0 for the
# numerator); when known_j >= t_j + 7d the interval is empty and j takes no outcome step (its
# -1 alone would be applied). The asked rows are queries (kind 0) sorted with the steps (kind 1)
# by (client, time, kind): a step at exactly t_i sorts after the query, "strictly before" holds.
# Exact at every edge:
# - j = i, and any j with t_j = t_i: every step of j is at t_i or later: not counted;
# - t_j = t_i - 7d exactly: its -1 lands at t_i, not before it: counted;
# - known_j < t_j (clock skew): a_j = t_j, so j counts exactly while it is in the window (a +1
#   at known_j would also count a j later than i);
# - j in the window but known_j >= t_i, if only by a second: a_j >= t_i: not counted yet.
# A step before t0 precedes every query: those are summed per client (GROUP BY), and only the
# steps in [t0, t1) are sorted (one at or after t1 precedes no query). A self-join on client_id
# would pair every execution with its client's whole week, tens of thousands for a busy client.

_W7 = CLIENT_WINDOW_US
_W15 = SYMBOL_WINDOW_US

FEATURES_SQL = f"""
WITH base AS MATERIALIZED (
  SELECT row_number() OVER () AS _row, execution_id, execution_token, client_id, symbol, side,
    source, date, status, stop_price, trigger_price, quantity, slippage_pct, triggered_at,
    executed_at,
    coalesce(triggered_at, _first_event_at,
             least(submitted_at, executed_at, failed_at, blocked_at)) AS as_of,
    CASE status WHEN 'EXECUTED' THEN executed_at WHEN 'FAILED' THEN failed_at
                WHEN 'BLOCKED' THEN blocked_at END AS label_known_at,
    CASE WHEN status = 'EXECUTED' THEN true
         WHEN status IN ('FAILED', 'BLOCKED') THEN false END AS execution_success,
    epoch_us(as_of) AS _t,
    epoch_us(label_known_at) AS _known,
    greatest(_t, _known) AS _a,
    CASE WHEN _known < _t + {_W7} THEN 1 ELSE 0 END AS _outcome,
    _outcome * CAST(execution_success AS INTEGER) AS _success,
    date BETWEEN $first AND $last AS _wanted
  FROM executions
), asked AS (
  SELECT min(_t) AS _t0, max(_t) AS _t1 FROM base WHERE _wanted
), steps AS (
  SELECT client_id, _t AS _at, 1 AS _dc,
         CASE WHEN _a = _t THEN _outcome ELSE 0 END AS _dn,
         CASE WHEN _a = _t THEN _success ELSE 0 END AS _ds
  FROM base WHERE _t IS NOT NULL
  UNION ALL
  SELECT client_id, _a, 0, 1, _success FROM base WHERE _outcome = 1 AND _a > _t
  UNION ALL
  SELECT client_id, _t + {_W7}, -1, -_outcome, -_success FROM base WHERE _t IS NOT NULL
), before_t0 AS (
  SELECT client_id, sum(_dc) AS _c0, sum(_dn) AS _n0, sum(_ds) AS _s0
  FROM steps, asked WHERE _at < _t0
  GROUP BY client_id
), running AS (
  SELECT _row, client_id, sum(_dc) OVER client_stream AS _c1,
    sum(_dn) OVER client_stream AS _n1, sum(_ds) OVER client_stream AS _s1
  FROM (SELECT client_id, _t AS _at, 0 AS _kind, _row, 0 AS _dc, 0 AS _dn, 0 AS _ds
        FROM base WHERE _wanted
        UNION ALL BY NAME
        SELECT steps.*, 1 AS _kind FROM steps, asked WHERE _at >= _t0 AND _at < _t1)
  WINDOW client_stream AS (PARTITION BY client_id ORDER BY _at, _kind ROWS UNBOUNDED PRECEDING)
  QUALIFY _kind = 0
), client_looks AS (
  SELECT _row,
    coalesce(_c0, 0) + _c1 AS _client_n,
    coalesce(_n0, 0) + _n1 AS _known_n,
    coalesce(_s0, 0) + _s1 AS _success_n
  FROM running LEFT JOIN before_t0 USING (client_id)
), symbol_looks AS (
  SELECT _row,
    count(*) OVER (PARTITION BY symbol ORDER BY _t
      RANGE BETWEEN {_W15} PRECEDING AND CURRENT ROW EXCLUDE GROUP) AS _symbol_n,
    min(trigger_price) OVER symbol_upto AS _lo,
    max(trigger_price) OVER symbol_upto AS _hi
  FROM base, asked WHERE _wanted OR _t >= _t0 - {_W15}
  WINDOW symbol_upto AS (PARTITION BY symbol ORDER BY _t
                         RANGE BETWEEN {_W15} PRECEDING AND CURRENT ROW)
  QUALIFY _wanted
)
SELECT execution_id, execution_token, client_id, symbol, side, source, date, as_of,
  CAST(abs(trigger_price - stop_price) * 100 AS DOUBLE)
    / CAST(nullif(stop_price, 0) AS DOUBLE) AS stop_distance_pct,
  CAST(quantity * stop_price AS DOUBLE) AS notional,
  CAST(hour(as_of AT TIME ZONE 'UTC') AS INTEGER) AS hour_of_day,
  CAST(isodow(as_of AT TIME ZONE 'UTC') AS INTEGER) AS day_of_week,
  CASE WHEN _t IS NULL THEN 0 ELSE _client_n END AS client_executions_7d,
  CASE WHEN _t IS NOT NULL AND _known_n > 0
       THEN CAST(_success_n AS DOUBLE) / CAST(_known_n AS DOUBLE) END AS client_success_rate_7d,
  CASE WHEN _t IS NULL THEN 0 ELSE _symbol_n END AS symbol_triggers_15m,
  CASE WHEN _t IS NOT NULL THEN CAST((_hi - _lo) * 100 AS DOUBLE)
                                / CAST(nullif(_lo, 0) AS DOUBLE) END AS symbol_price_range_pct_15m,
  status, execution_success, slippage_pct,
  slippage_pct > $breach_pct AS slippage_breach,
  (epoch_us(executed_at) - epoch_us(triggered_at)) / 1e6 AS execution_time_sec,
  label_known_at
FROM base JOIN client_looks USING (_row) JOIN symbol_looks USING (_row)
ORDER BY date, execution_id
"""


def arrow_schema() -> pa.Schema:
    """The columns `features_arrow` returns, in order: keys, features, labels."""
    ts, f64 = pa.timestamp("us", tz="UTC"), pa.float64()
    keys = [
        ("execution_id", pa.string()),
        ("execution_token", pa.string()),
        ("client_id", pa.int64()),
        ("symbol", pa.string()),
        ("side", pa.string()),
        ("source", pa.string()),
        ("date", pa.date32()),
        ("as_of", ts),
    ]
    features = [
        ("stop_distance_pct", f64),
        ("notional", f64),
        ("hour_of_day", pa.int32()),
        ("day_of_week", pa.int32()),
        ("client_executions_7d", pa.int64()),
        ("client_success_rate_7d", f64),
        ("symbol_triggers_15m", pa.int64()),
        ("symbol_price_range_pct_15m", f64),
    ]
    labels = [
        ("status", pa.string()),
        ("execution_success", pa.bool_()),
        ("slippage_pct", pa.decimal128(10, 4)),
        ("slippage_breach", pa.bool_()),
        ("execution_time_sec", f64),
        ("label_known_at", ts),
    ]
    return pa.schema(keys + features + labels)


def _silver_columns(executions: pa.Table) -> pa.Table:
    """The columns FEATURES_SQL reads, the optional ones as NULL when absent."""
    missing = [c for c in INPUT_COLUMNS if c not in executions.column_names]
    if missing:
        raise InputError(
            f"silver executions lack the columns {missing}: features need {list(INPUT_COLUMNS)}; "
            "read them from the silver table, not from a projection of it"
        )
    table = executions.select(list(INPUT_COLUMNS))
    for name, type_ in OPTIONAL_COLUMNS.items():
        column = (
            executions.column(name)
            if name in executions.column_names
            else pa.nulls(executions.num_rows, type_)
        )
        table = table.append_column(name, column)
    return table


def features_arrow(
    executions: pa.Table,
    first: dt.date,
    last: dt.date,
    *,
    breach_pct: Decimal = defaults.SLIPPAGE_BREACH_PCT,
    con=None,
) -> pa.Table:
    """The features rows (`arrow_schema()`) of the executions dated [first, last], sorted by
    (date, execution_id).

    Args:
        executions: silver rows dated first - 7 days to last; the look-backs read all of them.
        first: the first day whose executions are returned.
        last: the last day (inclusive).
        breach_pct: slippage_pct above this (strictly) is a breach.
        con: a DuckDB connection, left open (a new one-thread one when None); the rows do not
            depend on its TimeZone.
    """
    import duckdb

    if first > last:
        raise InputError(f"features' first day {first} is after the last {last}: swap them")
    table = _silver_columns(executions)
    own = con is None
    if own:
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
    con.register("executions", table)
    try:
        params = {"first": first, "last": last, "breach_pct": breach_pct}
        result = con.sql(FEATURES_SQL, params=params).to_arrow_table()
    finally:
        con.unregister("executions")
        if own:
            con.close()
    target = arrow_schema()
    return result.select(target.names).cast(target)
