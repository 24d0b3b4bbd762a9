"""Every data-quality rule, in one readable place: a suite per table.

A rule has a level: `fail` stops the pipeline, `warn` is printed and recorded. Rules flag rows;
they never remove one from a table (quarantine holds copies, with reasons). `fail` is kept for
conditions that mean the lake itself is wrong: a duplicate id, a NULL where the source forbids
one, a status or timestamp the projection can never produce, a sealed day whose rows differ from
the source. Everything the source's own data may do (out-of-order clocks, odd prices, unknown
types, a token shared across tenants) is `warn`: the log is the truth. Row rules are a
Spark SQL expression that is TRUE for a good row; the same text drives the Great Expectations
check (an expectation that the rule's evidence column, NULL for a good row, is NULL) and the
quarantine, so the report and the quarantined rows can never disagree. `shows` names the columns
the report shows of an offending row. The row rules' SQL is the subset Spark SQL and DuckDB share
(the gate judges small days on DuckDB, large ones on Spark: validate.py), so one text serves both.
Table rules bound the day's row count (GX's own row-count expectations, on either engine).
Columns starting with `_` are helpers the validator adds (rule_columns.py, duckdb_rules.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from deep_storage.core.event_types import KNOWN_EVENT_TYPES, STATUSES

FAIL = "fail"
WARN = "warn"

BRONZE_REQUIRED = (
    "event_id", "occurred_at", "operation_id", "client_id", "symbol", "event_type",
    "payload_json", "source", "retry_count",
)  # fmt: skip


@dataclass(frozen=True)
class RowRule:
    name: str
    level: str
    ok: str  # Spark SQL, TRUE for a good row; NULL counts as broken
    description: str
    # What the report shows of an offending row, beside its id: the columns that break the rule
    # (Spark SQL expressions, `AS name` where a helper or a derived value needs a readable name).
    shows: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableRule:
    """The day's row count within [min_rows, max_rows] (equal bounds: exactly that many)."""

    name: str
    level: str
    min_rows: int
    max_rows: int
    description: str


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# The column that names a row in the report's offending rows, per table.
ROW_ID = {"bronze_events": "event_id", "silver_stop_executions": "execution_id"}


def _null_columns(columns: tuple[str, ...]) -> str:
    named = ", ".join(f"CASE WHEN {c} IS NULL THEN '{c}' END" for c in columns)
    return f"concat_ws(', ', {named}) AS null_columns"


BRONZE_ROW_RULES = (
    RowRule(
        "event_id_unique",
        FAIL,
        "event_id IS NOT NULL AND _event_id_count = 1",
        "event_id is present and appears once in the day",
        ("_event_id_count AS rows_with_this_id",),
    ),
    RowRule(
        "required_not_null",
        FAIL,
        " AND ".join(f"{c} IS NOT NULL" for c in BRONZE_REQUIRED),
        "columns NOT NULL at the source are present: " + ", ".join(BRONZE_REQUIRED),
        (_null_columns(BRONZE_REQUIRED),),
    ),
    RowRule(
        "event_type_known",
        WARN,
        f"event_type IN ({_quoted(KNOWN_EVENT_TYPES)})",
        "event_type is one the projection understands (unknown types are kept, never dropped)",
        ("event_type",),
    ),
    RowRule(
        "side_buy_sell",
        WARN,
        "side IS NULL OR side IN ('BUY', 'SELL')",
        "side is BUY or SELL where present",
        ("side",),
    ),
    RowRule(
        "prices_positive",
        WARN,
        " AND ".join(
            f"coalesce({c} > 0, true)"
            for c in ("trigger_price", "stop_price", "quantity", "fill_price")
        ),
        "trigger_price, stop_price, quantity and fill_price are > 0 where present",
        ("trigger_price", "stop_price", "quantity", "fill_price"),
    ),
    RowRule(
        "slippage_in_range",
        WARN,
        "slippage_pct IS NULL OR slippage_pct BETWEEN 0 AND 50",
        "slippage_pct lies within [0, 50] where present",
        ("slippage_pct",),
    ),
    RowRule(
        "token_single_tenant",
        WARN,
        "execution_token IS NULL OR _token_tenants = 1",
        "all events of one execution_token share client_id, operation_id and symbol",
        ("execution_token", "client_id", "operation_id", "symbol"),
    ),
)

SILVER_ROW_RULES = (
    RowRule(
        "execution_id_unique",
        FAIL,
        "execution_id IS NOT NULL AND _execution_id_count = 1",
        "execution_id is present and unique",
        ("_execution_id_count AS rows_with_this_id",),
    ),
    RowRule(
        "one_row_per_execution",
        FAIL,
        "execution_token IS NULL OR _token_count = 1",
        "one row per (client_id, execution_token)",
        ("client_id", "execution_token", "_token_count AS rows_with_this_token"),
    ),
    RowRule(
        "status_known",
        FAIL,
        f"status IN ({_quoted(STATUSES)})",
        "status is one of " + ", ".join(STATUSES),
        ("status",),
    ),
    RowRule(
        "executed_is_complete",
        WARN,
        "status <> 'EXECUTED' OR (executed_at IS NOT NULL AND fill_price IS NOT NULL "
        "AND exchange_order_id IS NOT NULL)",
        "EXECUTED implies executed_at, fill_price and exchange_order_id",
        ("status", "executed_at", "fill_price", "exchange_order_id"),
    ),
    RowRule(
        "failed_has_failed_at",
        FAIL,
        "status <> 'FAILED' OR failed_at IS NOT NULL",
        "FAILED implies failed_at",
        ("status", "failed_at"),
    ),
    RowRule(
        "timestamps_ordered",
        WARN,
        "coalesce(triggered_at <= submitted_at, true) AND "
        "coalesce(submitted_at <= executed_at, true) AND "
        "coalesce(triggered_at <= executed_at, true)",
        "triggered_at <= submitted_at <= executed_at where present (services stamp events with "
        "their own clocks, so an execution's events can be out of causal order)",
        ("triggered_at", "submitted_at", "executed_at"),
    ),
)


def source_count_rule(expected: int) -> TableRule:
    return TableRule(
        "rows_match_source",
        FAIL,
        expected,
        expected,
        f"a sealed day holds exactly the source's {expected} rows of its window",
    )


def volume_rule(history: list[int], k: float) -> TableRule | None:
    """Row count against the previous days' mean ± k·stdev; None with under 3 days of history."""
    if len(history) < 3:
        return None
    mean = sum(history) / len(history)
    std = (sum((h - mean) ** 2 for h in history) / (len(history) - 1)) ** 0.5
    low, high = max(0, int(mean - k * std)), int(mean + k * std + 0.999999)
    return TableRule(
        "volume_within_history",
        WARN,
        low,
        high,
        f"row count within mean ± {k:g}·stdev of the previous {len(history)} days [{low}, {high}]",
    )


@dataclass(frozen=True)
class FactRule:
    """A rule judged on the day's commit facts, not on its rows: Great Expectations (pandas, one
    row of facts) expects `column` to be present and at least `min_value`. It reads no data, so
    an hourly gate re-judges it on an unchanged day without scanning anything. `reference` is
    what the fact was held against, shown beside it."""

    name: str
    level: str
    column: str
    min_value: dt.datetime
    description: str
    reference: str = ""


# Rules whose verdict depends on the run's time, not only on the data: re-judged every run.
TIME_RULES = ("fresh_within_sla", "lag_within_sla")


def freshness_rule(source_newest: dt.datetime, sla: dt.timedelta) -> FactRule:
    """The day's newest event in the lake (the commit's `newest_event_at`) at most `sla` older
    than the source's newest event of the same day. Freshness is lag behind the source: a day
    whose newest event is old because the source has nothing newer is fresh."""
    return FactRule(
        "fresh_within_sla",
        WARN,
        "newest_event_at",
        source_newest - sla,
        f"the day's newest event in the lake is at most {sla} older than the source's newest "
        "event of the day",
        f"the source's newest of the day {source_newest.isoformat()}",
    )
