"""The gold features on tiny inline silver tables: silver rows -> features_arrow -> expected.

Every expected value is worked out by hand in the test. T is Sunday 2025-06-08 12:00 UTC; the
process runs in America/Sao_Paulo (tests/conftest.py), so a local-time slip shows as a wrong hour.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from deep_storage.core.errors import InputError
from deep_storage.tables.gold_features import arrow_schema, features_arrow

pytestmark = pytest.mark.unit

DAY = dt.date(2025, 6, 8)
T = dt.datetime(2025, 6, 8, 12, 0, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")
PRICE, PCT = pa.decimal128(20, 8), pa.decimal128(10, 4)
SILVER = pa.schema(
    [
        ("execution_id", pa.string()),
        ("operation_id", pa.int64()),
        ("client_id", pa.int64()),
        ("execution_token", pa.string()),
        ("symbol", pa.string()),
        ("status", pa.string()),
        ("stop_price", PRICE),
        ("trigger_price", PRICE),
        ("quantity", PRICE),
        ("side", pa.string()),
        ("triggered_at", TS),
        ("submitted_at", TS),
        ("executed_at", TS),
        ("failed_at", TS),
        ("exchange_order_id", pa.string()),
        ("fill_price", PRICE),
        ("slippage_pct", PCT),
        ("source", pa.string()),
        ("error_message", pa.string()),
        ("retry_count", pa.int32()),
        ("blocked_at", TS),
        ("date", pa.date32()),
        ("_first_event_at", TS),
    ]
)


def at(seconds: float = 0, **delta) -> dt.datetime:
    """T plus `seconds` (and any timedelta keywords: days=, minutes=)."""
    return T + dt.timedelta(seconds=seconds, **delta)


def row(execution_id: str, as_of: dt.datetime | None = T, **kw) -> dict:
    """An open (PENDING) execution of client 1 on BTCUSDC, triggered at `as_of`; `date` and
    `_first_event_at` follow the earliest time given unless stated. Keywords override."""
    values = {
        "execution_id": execution_id,
        "operation_id": 1,
        "client_id": 1,
        "execution_token": f"token-{execution_id}",
        "symbol": "BTCUSDC",
        "status": "PENDING",
        "stop_price": Decimal("100"),
        "trigger_price": Decimal("101.5"),
        "quantity": Decimal("2.5"),
        "side": "SELL",
        "triggered_at": as_of,
        "source": "api",
        "retry_count": 0,
        **kw,
    }
    stamps = [values.get(c) for c in ("triggered_at", "submitted_at", "executed_at", "failed_at")]
    stamps = [s for s in [*stamps, values.get("blocked_at")] if s is not None]
    values.setdefault("_first_event_at", min(stamps) if stamps else None)
    values.setdefault("date", values["_first_event_at"].date() if stamps else DAY)
    return values


def silver(rows: list[dict], drop: tuple[str, ...] = ()) -> pa.Table:
    schema = pa.schema([f for f in SILVER if f.name not in drop])
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema)


def features(rows: list[dict], first=DAY, last=DAY, drop=(), **kw) -> dict[str, dict]:
    """execution_id -> its output row, for the rows dated [first, last]."""
    out = features_arrow(silver(rows, drop), first, last, **kw)
    return {r["execution_id"]: r for r in out.to_pylist()}


def column(result: dict[str, dict], name: str) -> dict[str, object]:
    return {k: v[name] for k, v in result.items()}


# --- row-wise features ---------------------------------------------------------------------


def test_stop_distance_and_notional_are_exact():
    result = features(
        [
            row("above"),  # |101.5 - 100| / 100 * 100 = 1.5; 2.5 * 100 = 250
            row("below", trigger_price=Decimal("99.25"), quantity=Decimal("0.001")),
            row("zero-stop", stop_price=Decimal("0")),
            row("no-trigger", trigger_price=None, stop_price=None, quantity=Decimal("3")),
        ]
    )
    # below: |99.25 - 100| = 0.75 -> 0.75; 0.001 * 100 = 0.1. zero stop: no distance, 2.5 * 0 = 0.
    assert column(result, "stop_distance_pct") == {
        "above": 1.5,
        "below": 0.75,
        "zero-stop": None,
        "no-trigger": None,
    }
    assert column(result, "notional") == {
        "above": 250.0,
        "below": 0.1,
        "zero-stop": 0.0,
        "no-trigger": None,
    }


def test_hour_and_iso_day_of_week_are_those_of_as_of_in_utc():
    sunday_late = dt.datetime(2025, 6, 8, 23, 30, tzinfo=dt.UTC)  # 2025-06-08 is a Sunday
    monday_midnight = dt.datetime(2025, 6, 9, 0, 0, tzinfo=dt.UTC)
    result = features(
        [row("sunday", sunday_late), row("monday", monday_midnight)], last=dt.date(2025, 6, 9)
    )
    assert column(result, "day_of_week") == {"sunday": 7, "monday": 1}
    assert column(result, "hour_of_day") == {"sunday": 23, "monday": 0}


def test_a_callers_connection_in_another_time_zone_gives_the_same_rows():
    import duckdb

    rows = [row("late", dt.datetime(2025, 6, 8, 23, 30, tzinfo=dt.UTC)), row("noon")]
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET TimeZone = 'America/Sao_Paulo'")  # 23:30 UTC is 20:30 there
    theirs = features_arrow(silver(rows), DAY, DAY, con=con)
    assert con.execute("SELECT 1").fetchone() == (1,)  # left open for the caller
    assert theirs.equals(features_arrow(silver(rows), DAY, DAY))
    assert theirs.column("hour_of_day").to_pylist() == [23, 12]  # sorted by id: late, noon


def test_as_of_is_triggered_at_else_the_earliest_event():
    result = features(
        [
            row("triggered", at(10), submitted_at=at(20), _first_event_at=at(5)),
            # A FAILED execution never triggered: its only event is the failure.
            row("failed-alone", None, status="FAILED", failed_at=at(30)),
            row("submitted-first", None, status="FAILED", submitted_at=at(40), failed_at=at(45)),
        ]
    )
    assert column(result, "as_of") == {
        "triggered": at(10),
        "failed-alone": at(30),
        "submitted-first": at(40),
    }


# --- look-backs --------------------------------------------------------------------------------


def test_client_executions_7d_counts_the_week_before_half_open():
    week = dt.timedelta(days=7)
    rows = [
        row("target"),
        row("twin"),  # the same as_of: never counted by either
        row("week", T - week),  # exactly 7 days earlier: counted
        row("too-old", T - week - dt.timedelta(seconds=1)),
        row("hour", at(hours=-1)),
        row("later", at(1)),
        row("other-client", at(hours=-1), client_id=2),
    ]
    # target, twin: week + hour = 2 (too-old is 1 s outside; later and other-client are not).
    # hour (T-1h): [T-7d-1h, T-1h) holds week and too-old = 2.
    # later (T+1s): [T-7d+1s, T+1s) holds target, twin, hour = 3 (week is 1 s outside).
    # other-client: nobody else of client 2 = 0. week and too-old are dated 06-01: not returned.
    assert column(features(rows), "client_executions_7d") == {
        "target": 2,
        "twin": 2,
        "hour": 2,
        "later": 3,
        "other-client": 0,
    }


def executed(execution_id: str, as_of: dt.datetime, done: dt.datetime, **kw) -> dict:
    return row(execution_id, as_of, status="EXECUTED", executed_at=done, **kw)


def failed(execution_id: str, as_of: dt.datetime, done: dt.datetime, **kw) -> dict:
    return row(execution_id, as_of, status="FAILED", failed_at=done, **kw)


def test_a_neighbours_outcome_one_second_after_as_of_does_not_count():
    # late: inside target's week (T-60s) but its outcome arrives at T+1s, after target's as_of.
    rows = [row("target"), executed("late", at(-60), at(1))]
    result = features(rows)
    assert result["target"]["client_executions_7d"] == 1
    assert result["target"]["client_success_rate_7d"] is None  # no outcome known before T


def test_client_success_rate_7d_is_the_share_of_outcomes_known_before_as_of():
    rows = [
        row("target"),
        executed("a", at(hours=-3), at(hours=-3, seconds=2)),  # known, success
        failed("b", at(hours=-2), at(hours=-2, seconds=5)),  # known, failure
        executed("c", at(hours=-1), at(hours=-1, seconds=1)),  # known, success
        row("d", at(minutes=-30)),  # PENDING: no outcome
        row("e", at(minutes=-10), status="BLOCKED", blocked_at=T),  # known AT T: not before
        executed("other-client", at(hours=-1), at(hours=-1, seconds=1), client_id=2),
    ]
    result = features(rows)
    # target: 5 neighbours (a..e); known before T: a, b, c -> successes a, c = 2/3.
    assert result["target"]["client_executions_7d"] == 5
    # c (T-1h): neighbours a, b, both known before T-1h, one success = 1/2.
    # a: no neighbour before it -> NULL. other-client: alone -> NULL.
    assert column(result, "client_success_rate_7d") == {
        "target": pytest.approx(2 / 3),
        "a": None,
        "b": 1.0,  # a, known at T-3h+2s < T-2h
        "c": 0.5,
        "d": pytest.approx(2 / 3),  # a, b, c
        "e": pytest.approx(2 / 3),  # a, b, c; d has no outcome
        "other-client": None,
    }


def test_clock_skew_an_outcome_stamped_before_its_as_of_counts_only_inside_the_window():
    week = dt.timedelta(days=7)
    rows = [
        row("target"),
        # Executed 1 min "before" its trigger (skewed clocks); as_of T-5m is in target's week.
        executed("skewed", at(minutes=-5), at(minutes=-6)),
        # Their outcomes fall before T, but their as_of do not fall in [T-7d, T): not neighbours.
        failed("old", T - week - dt.timedelta(seconds=1), at(hours=-1)),
        failed("future", at(minutes=5), at(minutes=-1)),
    ]
    result = features(rows)
    assert result["target"]["client_executions_7d"] == 1  # skewed
    assert result["target"]["client_success_rate_7d"] == 1.0  # 1 of 1; 1/2 or 1/3 with the others


def test_an_outcome_known_only_after_the_week_never_counts():
    d0 = T - dt.timedelta(days=7)  # 2025-06-01 12:00
    rows = [
        failed("slow", d0, d0 + dt.timedelta(days=8)),  # outcome 8 days after its as_of
        row("edge", T),  # slow exactly 7 days earlier: a neighbour, its outcome not yet known
        row("after", at(1)),  # slow 1 s out of the week
        executed("k", at(hours=-1), at(hours=-1, seconds=1)),
    ]
    result = features(rows)
    # edge: neighbours slow, k; known before T: k only -> 1/1. after: k only -> 1/1.
    assert column(result, "client_executions_7d") == {"edge": 2, "after": 2, "k": 1}
    assert column(result, "client_success_rate_7d") == {"edge": 1.0, "after": 1.0, "k": None}


def test_symbol_triggers_and_price_range_over_15_minutes():
    rows = [
        row("target", trigger_price=Decimal("100")),
        row("twin", trigger_price=Decimal("104")),  # same as_of: in the range, not a trigger
        row("edge", at(minutes=-15), trigger_price=Decimal("110"), client_id=2),  # counts
        row("old", at(minutes=-15, seconds=-1), trigger_price=Decimal("50")),
        row("no-price", at(minutes=-5), trigger_price=None),
        row("eth", at(minutes=-1), symbol="ETHUSDC", trigger_price=Decimal("1")),
        row("sol", at(minutes=-1), symbol="SOLUSDC", trigger_price=None),
    ]
    # target, twin: triggers edge, no-price = 2 (old is 1 s outside, twin has the same as_of);
    #   prices 100, 104, 110 -> (110 - 100) / 100 * 100 = 10.
    # no-price (T-5m): [T-20m, T-5m) holds edge, old = 2; prices 110, 50 -> 60 / 50 * 100 = 120.
    # edge (T-15m): old is 1 s earlier = 1; prices 110, 50 -> 120. old: 0; only 50 -> 0.
    # eth: alone, one price -> 0. sol: alone without a price -> NULL.
    result = features(rows)
    assert column(result, "symbol_triggers_15m") == {
        "target": 2,
        "twin": 2,
        "edge": 1,
        "old": 0,
        "no-price": 2,
        "eth": 0,
        "sol": 0,
    }
    assert column(result, "symbol_price_range_pct_15m") == {
        "target": 10.0,
        "twin": 10.0,
        "edge": 120.0,
        "old": 0.0,
        "no-price": 120.0,
        "eth": 0.0,
        "sol": None,
    }


# --- labels --------------------------------------------------------------------------------------


def test_labels_of_each_status():
    done = at(2.5)
    rows = [
        executed("executed", T, done, slippage_pct=Decimal("0.25")),
        # Also stamped executed (skewed clocks): the status decides which time is the label's.
        failed("failed", T, at(7), executed_at=at(3)),
        row("blocked", T, status="BLOCKED", blocked_at=at(1)),
        row("pending", T),
        row("submitted", T, status="SUBMITTED", submitted_at=at(1)),
        executed("untriggered", None, done, submitted_at=at(1)),
    ]
    result = features(rows)
    assert column(result, "execution_success") == {
        "executed": True,
        "failed": False,
        "blocked": False,
        "pending": None,
        "submitted": None,
        "untriggered": True,
    }
    assert column(result, "label_known_at") == {
        "executed": done,
        "failed": at(7),
        "blocked": at(1),
        "pending": None,
        "submitted": None,
        "untriggered": done,
    }
    # executed: 12:00:02.5 - 12:00:00 = 2.5 s; failed: 12:00:03 - 12:00:00 = 3 s; untriggered:
    # no triggered_at -> NULL.
    assert column(result, "execution_time_sec") == {
        "executed": 2.5,
        "failed": 3.0,
        "blocked": None,
        "pending": None,
        "submitted": None,
        "untriggered": None,
    }
    assert column(result, "status")["submitted"] == "SUBMITTED"
    assert column(result, "slippage_pct")["executed"] == Decimal("0.2500")


def test_slippage_breach_is_strictly_above_the_threshold():
    rows = [
        row("equal", slippage_pct=Decimal("1.0000")),
        row("above", slippage_pct=Decimal("1.0001")),
        row("below", slippage_pct=Decimal("0.9999")),
        row("none", slippage_pct=None),
    ]
    # The threshold is passed: these cases hold whatever the default becomes.
    assert column(features(rows, breach_pct=Decimal("1.0")), "slippage_breach") == {
        "equal": False,
        "above": True,
        "below": False,
        "none": None,
    }
    stricter = features(rows, breach_pct=Decimal("0.5"))
    assert column(stricter, "slippage_breach")["equal"] is True


# --- the rows returned ---------------------------------------------------------------------


def test_only_the_days_asked_are_returned_but_earlier_days_feed_the_look_backs():
    day = dt.timedelta(days=1)
    first = dt.datetime(2025, 6, 8, 0, 10, tzinfo=dt.UTC)  # the earliest as_of asked for
    rows = [
        # Exactly 7 days before `first`, its outcome known 1 s later: a neighbour of on-first.
        executed("week-before", first - 7 * day, first - 7 * day + dt.timedelta(seconds=1)),
        row("before-first", T - 3 * day),  # 2025-06-05 12:00: first - 3 days
        row("eve", first - dt.timedelta(minutes=15), trigger_price=Decimal("100")),  # 06-07
        row("on-first", first, trigger_price=Decimal("105")),
        row("on-last", T + day),  # 2025-06-09 12:00
        row("after-last", T + 2 * day),
    ]
    result = features(rows, first=DAY, last=DAY + day)
    # on-first: week-before, before-first, eve = 3; on-last: [06-02 12:00, 06-09 12:00) holds
    # before-first, eve, on-first = 3 (week-before, 06-01 00:10, is out).
    assert column(result, "client_executions_7d") == {"on-first": 3, "on-last": 3}
    # on-first: only week-before's outcome is known: 1/1. on-last: none known.
    assert column(result, "client_success_rate_7d") == {"on-first": 1.0, "on-last": None}
    # on-first: eve exactly 15 min earlier counts; prices 100, 105 -> 5 / 100 * 100 = 5.
    assert column(result, "symbol_triggers_15m") == {"on-first": 1, "on-last": 0}
    assert column(result, "symbol_price_range_pct_15m") == {"on-first": 5.0, "on-last": 0.0}


def test_schema_is_arrow_schema_and_rows_are_sorted_by_date_then_id():
    rows = [
        row("b", T + dt.timedelta(days=1)),
        row("c"),
        row("a", T + dt.timedelta(days=1)),
        row("d", at(-1)),
    ]
    out = features_arrow(silver(rows), DAY, DAY + dt.timedelta(days=1))
    assert out.schema == arrow_schema()
    assert out.schema.names[:3] == ["execution_id", "execution_token", "client_id"]
    assert out.column("execution_id").to_pylist() == ["c", "d", "a", "b"]


def test_input_without_blocked_at_and_first_event_at_and_with_extra_columns():
    rows = [
        row("blocked", status="BLOCKED", blocked_at=at(1)),
        row("failed-alone", None, status="FAILED", submitted_at=at(5), failed_at=at(9)),
    ]
    table = silver(rows, drop=("blocked_at", "_first_event_at"))
    table = table.append_column("_last_event_at", pa.array([T, T], TS))
    result = {r["execution_id"]: r for r in features_arrow(table, DAY, DAY).to_pylist()}
    # Without blocked_at a block's time is unknown; its outcome (a failure) still is.
    assert result["blocked"]["label_known_at"] is None
    assert result["blocked"]["execution_success"] is False
    assert result["failed-alone"]["as_of"] == at(5)  # least(submitted, failed)


def test_missing_columns_and_reversed_days_are_refused():
    table = silver([row("a")]).drop_columns(["symbol"])
    with pytest.raises(InputError, match="symbol"):
        features_arrow(table, DAY, DAY)
    with pytest.raises(InputError, match="after the last"):
        features_arrow(silver([row("a")]), DAY, DAY - dt.timedelta(days=1))
