"""The synthetic stop_events generator: shape, determinism and the awkward cases it must contain."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter, defaultdict
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from deep_storage.core import event_types
from deep_storage.core.schemas import SOURCE_DDL
from demo import synthetic
from demo.synthetic import COLUMNS, LIFECYCLES, generate

# Not a module-wide pytestmark: the one PostgreSQL test would then also be selected by `-m unit`.
unit = pytest.mark.unit

DAY = dt.date(2025, 6, 1)
START = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)
COL = {name: index for index, name in enumerate(COLUMNS)}


@pytest.fixture(scope="module")
def day_rows() -> list[tuple]:
    return list(generate(DAY, 5000, seed=7))


def col(row: tuple, name: str):
    return row[COL[name]]


def by_token(rows: list[tuple]) -> dict[str, list[tuple]]:
    groups: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        if col(row, "execution_token") is not None:
            groups[col(row, "execution_token")].append(row)
    return groups


@unit
def test_columns_match_the_source_ddl():
    body = SOURCE_DDL.split("CREATE TABLE IF NOT EXISTS stop_events (")[1].split(");")[0]
    names = tuple(line.split()[0] for line in body.strip().splitlines())
    assert names == COLUMNS


@unit
def test_same_seed_same_rows_and_other_seed_or_day_differs():
    first = list(generate(DAY, 1000, seed=3))
    assert first == list(generate(DAY, 1000, seed=3))
    other_seed = list(generate(DAY, 1000, seed=4))
    assert other_seed != first
    assert not {r[0] for r in first} & {r[0] for r in other_seed}
    next_day = list(generate(DAY + dt.timedelta(days=1), 1000, seed=3))
    assert not {r[0] for r in first} & {r[0] for r in next_day}


@unit
def test_same_tenants_and_operations_on_every_day():
    def operations(day: dt.date) -> set[tuple]:
        return {
            (
                col(r, "client_id"),
                col(r, "operation_id"),
                col(r, "symbol"),
                col(r, "side"),
                col(r, "stop_price"),
            )
            for r in generate(day, 20_000, seed=1, clients=5)
        }

    today, tomorrow = operations(DAY), operations(DAY + dt.timedelta(days=1))
    assert len(today & tomorrow) > 0.8 * len(today)


@unit
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 10, 101, 2_999])
def test_exactly_n_rows_and_no_execution_cut(n):
    rows = list(generate(DAY, n, seed=n))
    assert len(rows) == n
    shapes = {lc.events for lc in LIFECYCLES}
    for token, events in by_token(rows).items():
        assert tuple(col(r, "event_type") for r in events) in shapes, token


@unit
def test_every_event_type_of_the_lifecycles_appears(day_rows):
    seen = {col(r, "event_type") for r in day_rows}
    expected = {event for lc in LIFECYCLES for event in lc.events}
    assert expected == seen
    assert {
        "STOP_TRIGGERED",
        "EXECUTION_SUBMITTED",
        "EXECUTED",
        "FAILED",
        "BLOCKED",
        "STALE_PRICE",
        "KILL_SWITCH",
        "SLIPPAGE_BREACH",
        "CIRCUIT_BREAKER",
        "PRICE_REFRESHED",
    } <= seen


@unit
def test_lifecycle_mix_follows_the_weights():
    shapes = Counter(
        tuple(col(r, "event_type") for r in events)
        for events in by_token(list(generate(DAY, 60_000, seed=2))).values()
    )
    total = sum(shapes.values())
    for lc in LIFECYCLES:
        share = 100 * shapes[lc.events] / total
        assert abs(share - lc.weight) < max(1.5, lc.weight * 0.25), (lc.name, share)


@unit
def test_events_of_one_token_share_client_operation_symbol_and_move_forward(day_rows):
    groups = by_token(day_rows)
    assert len(groups) > 1500
    for token, events in groups.items():
        first = events[0]
        for name in (
            "client_id",
            "operation_id",
            "symbol",
            "side",
            "stop_price",
            "trigger_price",
            "source",
            "retry_count",
        ):
            assert {col(r, name) for r in events} == {col(first, name)}, (token, name)
        times = [col(r, "occurred_at") for r in events]
        assert times == sorted(times) and len(set(times)) == len(times), token
        operation, price, epoch_ms = token.split(":")
        assert operation == str(col(first, "operation_id"))
        assert price == f"{col(first, 'trigger_price'):f}"
        detected = dt.datetime.fromtimestamp(int(epoch_ms) / 1000, dt.UTC)
        assert detected <= times[0] < detected + dt.timedelta(seconds=4)
        assert len(token) <= 64


@unit
def test_some_null_tokens_whole_executions(day_rows):
    nulls = [r for r in day_rows if col(r, "execution_token") is None]
    assert 0 < len(nulls) < 0.05 * len(day_rows)
    # Whole executions lose their token, never single events: the NULL rows pair up by type.
    types = Counter(col(r, "event_type") for r in nulls)
    assert types["EXECUTION_SUBMITTED"] == types["EXECUTED"]


@unit
def test_rows_spill_past_midnight_but_never_before_the_day(day_rows):
    times = [col(r, "occurred_at") for r in day_rows]
    assert min(times) >= START
    late = [r for r in day_rows if col(r, "occurred_at") >= END]
    assert late
    assert max(times) < END + dt.timedelta(minutes=10)
    # The late rows belong to executions triggered before midnight, in the same day's output.
    groups = by_token(day_rows)
    for row in late:
        token = col(row, "execution_token")
        if token is not None:
            assert col(groups[token][0], "occurred_at") < END


@unit
def test_no_spill_when_disabled():
    times = [col(r, "occurred_at") for r in generate(DAY, 3000, spill_minutes=0)]
    assert min(times) >= START and max(times) < END


@unit
def test_types_and_decimal_scales(day_rows):
    ids = [col(r, "event_id") for r in day_rows]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    for row in day_rows:
        assert col(row, "event_seq") is None
        assert col(row, "occurred_at").utcoffset() == dt.timedelta(0)
        assert type(col(row, "retry_count")) is int
        assert col(row, "side") in ("BUY", "SELL")
        assert col(row, "source") in ("ws", "cron", "manual")
        for name in ("trigger_price", "stop_price", "quantity", "fill_price"):
            value = col(row, name)
            if value is not None:
                assert isinstance(value, Decimal) and value.as_tuple().exponent == -8
                assert value > 0
        if col(row, "event_type") == "EXECUTED":
            fill, stop, slip = (
                col(row, "fill_price"),
                col(row, "stop_price"),
                col(row, "slippage_pct"),
            )
            assert slip.as_tuple().exponent == -4 and slip >= 0
            assert slip == abs((fill - stop) / stop * 100).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_EVEN
            )
            assert col(row, "exchange_order_id") and len(col(row, "request_payload_hash")) == 64
        else:
            assert col(row, "fill_price") is None and col(row, "slippage_pct") is None
        if col(row, "event_type") in ("FAILED", *event_types.BLOCK_TYPES):
            assert col(row, "error_message")
    assert any(col(r, "retry_count") > 0 for r in day_rows)


@unit
def test_payload_is_json_with_string_values(day_rows):
    for row in day_rows:
        payload = json.loads(col(row, "payload_json"))
        assert all(isinstance(v, str) for v in payload.values())
        assert {"trigger_type", "entry_price", "expected_pnl"} <= payload.keys()
        if col(row, "event_type") == "EXECUTED":
            assert {"pnl", "fee"} <= payload.keys()
            assert Decimal(payload["fee"]) > 0 and Decimal(payload["pnl"]).is_finite()


@unit
def test_different_clients_share_operation_ids(day_rows):
    clients_by_operation: dict[int, set[int]] = defaultdict(set)
    for row in day_rows:
        clients_by_operation[col(row, "operation_id")].add(col(row, "client_id"))
    assert any(len(clients) > 1 for clients in clients_by_operation.values())
    assert len({col(r, "client_id") for r in day_rows}) > 50


@unit
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"n_events": -1}, ValueError),
        ({"clients": 0}, ValueError),
        ({"symbols": ()}, ValueError),
        ({"symbols": ("X" * 21,)}, ValueError),
        ({"spill_minutes": -1}, ValueError),
        ({"day": dt.datetime(2025, 6, 1)}, TypeError),
        ({"day": "2025-06-01"}, TypeError),
    ],
)
def test_bad_arguments_fail_at_call_time(kwargs, error):
    args = {"day": DAY, "n_events": 10, **kwargs}
    with pytest.raises(error):
        generate(args.pop("day"), args.pop("n_events"), **args)


@unit
def test_custom_symbols_and_clients():
    rows = list(generate(DAY, 500, clients=3, symbols=["DOGEUSDT"]))
    assert {col(r, "symbol") for r in rows} == {"DOGEUSDT"}
    assert {col(r, "client_id") for r in rows} <= {1001, 1002, 1003}


@pytest.mark.integration
def test_copy_into_postgres_round_trip():
    from demo.local_services import PostgresServer

    rows = list(generate(DAY, 2000, seed=11))
    with PostgresServer() as server, server.connect("postgres") as conn:
        conn.execute(SOURCE_DDL)
        assert synthetic.copy_into(conn, iter(rows)) == 2000
        assert conn.execute("SELECT count(*) FROM stop_events").fetchone()[0] == 2000
        stored = {
            str(event_id): (payload, occurred_at, slippage)
            for event_id, payload, occurred_at, slippage in conn.execute(
                "SELECT event_id, payload_json::text, occurred_at, slippage_pct FROM stop_events"
            )
        }
        for row in rows:
            payload, occurred_at, slippage = stored[col(row, "event_id")]
            assert json.loads(payload) == json.loads(col(row, "payload_json"))
            assert occurred_at == col(row, "occurred_at")
            assert slippage == col(row, "slippage_pct")
        assert synthetic.seed_days(conn, [dt.date(2025, 6, 2), dt.date(2025, 6, 3)], 300) == 600
        assert conn.execute("SELECT count(*) FROM stop_events").fetchone()[0] == 2600
