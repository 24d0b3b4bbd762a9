"""Synthetic `stop_events` rows for the demo, the tests and the benchmarks.

The rows follow the lifecycles of docs/source.md, including the awkward parts the lake has to
survive (single FAILED rows, block reasons, unknown event types, NULL tokens, retries, executions
that finish after midnight, operation ids reused by different clients), so a pipeline that passes
on this data has met them all. Output is a pure function of (day, seed, parameters): a benchmark
can be rerun on the same data and a failing test can be replayed.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from deep_storage.core.event_types import EXECUTED, FAILED, SUBMITTED, TRIGGERED
from deep_storage.core.schemas import SOURCE_COLUMNS

# The column order of schemas.SOURCE_DDL; rows are positional so COPY needs no per-row dicts.
COLUMNS: tuple[str, ...] = SOURCE_COLUMNS

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDC", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")

# Not one of the known types on purpose: bronze must keep it and silver must not choke on it.
UNKNOWN_TYPE = "PRICE_REFRESHED"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One shape of execution: its event types in order and its share of executions (percent)."""

    name: str
    events: tuple[str, ...]
    weight: float


LIFECYCLES: tuple[Lifecycle, ...] = (
    Lifecycle("executed", (TRIGGERED, SUBMITTED, EXECUTED), 73.0),
    Lifecycle("executed_with_unknown", (TRIGGERED, UNKNOWN_TYPE, SUBMITTED, EXECUTED), 2.0),
    # The attempt's transaction rolled back and only the FAILED row was written afterwards.
    Lifecycle("failed_alone", (FAILED,), 8.0),
    Lifecycle("triggered_failed", (TRIGGERED, FAILED), 5.0),
    Lifecycle("blocked", (TRIGGERED, "BLOCKED"), 4.0),
    Lifecycle("stale_price", (TRIGGERED, "STALE_PRICE"), 2.5),
    Lifecycle("kill_switch", (TRIGGERED, "KILL_SWITCH"), 1.5),
    Lifecycle("slippage_breach", (TRIGGERED, "SLIPPAGE_BREACH"), 2.0),
    Lifecycle("circuit_breaker", (TRIGGERED, "CIRCUIT_BREAKER"), 2.0),
)
_LC_INDEX = {lc.name: index for index, lc in enumerate(LIFECYCLES)}
_EXECUTED_LC = _LC_INDEX["executed"]
# Used to end a day on exactly n_events rows without cutting an execution in half.
_FILLER_BY_SIZE = {
    1: _LC_INDEX["failed_alone"],
    2: _LC_INDEX["triggered_failed"],
    3: _EXECUTED_LC,
}

NULL_TOKEN_RATE = 0.015
RETRY_RATE = 0.04
PARTIAL_FILL_RATE = 0.03

_BASE_PRICES = {
    "BTCUSDC": 65_000.0,
    "BTCUSDT": 65_000.0,
    "ETHUSDT": 3_500.0,
    "ETHUSDC": 3_500.0,
    "SOLUSDT": 150.0,
    "BNBUSDT": 600.0,
    "XRPUSDT": 0.6,
}
_ERRORS = (
    "Exchange timeout after 10000 ms",
    "Order rejected: MIN_NOTIONAL",
    "Insufficient balance for requested action",
    "Rate limit exceeded (HTTP 429)",
    "Connection reset by peer",
    "Order would immediately trigger",
)
_BLOCK_MESSAGES = {
    "BLOCKED": "Blocked by risk policy: daily loss limit reached",
    "STALE_PRICE": "Market price older than 5000 ms",
    "KILL_SWITCH": "Kill switch active for tenant",
    "SLIPPAGE_BREACH": "Expected slippage above the configured limit",
    "CIRCUIT_BREAKER": "Circuit breaker open after repeated exchange errors",
}
_TRIGGER_TYPES = ("stop_loss", "stop_loss", "stop_loss", "trailing_stop")
# 14:5:1 gives ws 70 %, cron 25 %, manual 5 %; a table makes the draw one index.
_SOURCES = ("ws",) * 14 + ("cron",) * 5 + ("manual",)
_RETRY_COUNTS = (1, 1, 1, 1, 1, 1, 2, 2, 2, 3)

_UNITS = 100_000_000  # prices and quantities are integers of 1e-8 until they become Decimals
_DAY_US = 86_400_000_000
# Ordinary executions start early enough to finish inside the day (the longest takes ~4 s).
_LAST_ORDINARY_START_US = _DAY_US - 15_000_000
# Spilling executions start within the last seconds of the day.
_SPILL_WINDOW_US = 5_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PCT = Decimal("0.0001")
_HUNDRED = Decimal(100)
_OPS_PER_CLIENT = (2, 12)
# Operation ids come from one small range shared by every tenant, so different clients reuse the
# same ids, as they do in the app; anything keyed by operation_id alone mixes tenants up.
_OPERATION_ID_RANGE = 1_000


@dataclass(frozen=True, slots=True)
class _Operation:
    client_id: int
    operation_id: int
    symbol: str
    side: str
    stop_u: int
    entry_u: int
    qty_u: int
    stop: Decimal
    qty: Decimal
    entry_s: str
    trigger_type: str


def _dec8(units: int) -> Decimal:
    # scaleb keeps the exponent at -8, so the Decimal always has scale 8 (numeric(20,8)).
    return Decimal(units).scaleb(-8)


def _plain8(units: int) -> str:
    # str(Decimal) turns small values into "1E-7"; the token needs the plain numeric form.
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // _UNITS}.{units % _UNITS:08d}"


def _world(
    seed: int, clients: int, symbols: tuple[str, ...]
) -> tuple[list[list[_Operation]], list[int]]:
    """Clients and their operations; seeded without the day so they stay the same across days,
    as real tenants and their open positions do."""
    rng = random.Random(f"deep-storage-world:{seed}:{clients}:{','.join(symbols)}")
    base = {s: _BASE_PRICES.get(s) or rng.uniform(1.0, 1_000.0) for s in symbols}
    ops_by_client: list[list[_Operation]] = []
    for i in range(clients):
        client_id = 1_001 + i
        n_ops = rng.randint(*_OPS_PER_CLIENT)
        ops = []
        for operation_id in rng.sample(range(1, _OPERATION_ID_RANGE + 1), n_ops):
            symbol = rng.choice(symbols)
            side = "SELL" if rng.random() < 0.7 else "BUY"  # mostly closing longs
            price = base[symbol] * rng.uniform(0.97, 1.03)
            # The stop sits below the entry for a long (closed by SELL), above it for a short.
            if side == "SELL":
                stop, entry = price, price * rng.uniform(1.01, 1.10)
            else:
                stop, entry = price, price * rng.uniform(0.90, 0.99)
            stop_u, entry_u = round(stop * _UNITS), round(entry * _UNITS)
            qty_u = max(1, round(rng.uniform(50.0, 5_000.0) / stop * _UNITS))
            ops.append(
                _Operation(
                    client_id,
                    operation_id,
                    symbol,
                    side,
                    stop_u,
                    entry_u,
                    qty_u,
                    _dec8(stop_u),
                    _dec8(qty_u),
                    _plain8(entry_u),
                    rng.choice(_TRIGGER_TYPES),
                )
            )
        ops_by_client.append(ops)
    # A few large tenants and a long tail (Zipf-like); a lookup table makes a draw one index.
    cum, total = [], 0.0
    for i in range(clients):
        total += 1.0 / (i + 1) ** 0.8
        cum.append(total)
    size = max(8_192, 4 * clients)
    table = [min(bisect_right(cum, (j + 0.5) / size * total), clients - 1) for j in range(size)]
    return ops_by_client, table


def _plan(rng: random.Random, n_rows: int) -> bytearray:
    """Lifecycle indices whose sizes add up to exactly n_rows; the tail is filled with whole
    lifecycles of the right size, so no execution is ever cut off."""
    table = bytearray()
    for index, lc in enumerate(LIFECYCLES):
        table.extend([index] * round(lc.weight * 10))
    sizes = [len(lc.events) for lc in LIFECYCLES]
    plan = bytearray()
    remaining, rand, n = n_rows, rng.random, len(table)
    while remaining:
        index = table[int(rand() * n)]
        if sizes[index] > remaining:
            index = _FILLER_BY_SIZE[remaining]
        plan.append(index)
        remaining -= sizes[index]
    return plan


def _spill_count(n_events: int, spill_minutes: int) -> int:
    if spill_minutes <= 0:
        return 0
    return min(n_events // 3, max(1, min(n_events // 1_000, 100)))


def generate(
    day: dt.date,
    n_events: int,
    *,
    seed: int = 0,
    clients: int = 200,
    symbols: Iterable[str] = DEFAULT_SYMBOLS,
    spill_minutes: int = 10,
) -> Iterator[tuple]:
    """Yield exactly `n_events` stop_events rows for `day`, as tuples in `COLUMNS` order.

    Count: exactly n_events rows, and every execution is complete: the plan ends on a lifecycle
    of exactly the rows left (1 → FAILED alone, 2 → TRIGGERED → FAILED, 3 → executed), so the
    mix at the very end is slightly off the weights of `LIFECYCLES` rather than cut in half.

    Time: rows come in execution start order (rows of overlapping executions are not globally
    sorted by occurred_at). No row is before `day` 00:00 UTC. With spill_minutes > 0 the last
    max(1, min(n_events // 1000, 100)) executions (at most n_events // 3) start in the last 5 s of
    the day and are always TRIGGERED → SUBMITTED → EXECUTED with EXECUTED (and sometimes
    SUBMITTED) after midnight, at most spill_minutes later: those rows fall outside
    [day, day + 1) on purpose, like the app's transaction that waits for the exchange.
    spill_minutes=0 keeps every row inside the day.

    Determinism: the same (day, n_events, seed, clients, symbols, spill_minutes) gives identical
    rows. The day is part of the event seed, so consecutive days never share event_ids; the
    clients and their operations depend only on (seed, clients, symbols), so they are the same
    tenants on every day.
    """
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise TypeError(f"day must be a datetime.date, not {type(day).__name__}")
    symbols = tuple(symbols)
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    if not symbols or any(not s or len(s) > 20 for s in symbols):
        raise ValueError("symbols must be non-empty strings of at most 20 characters")
    if spill_minutes < 0:
        raise ValueError(f"spill_minutes must be >= 0, got {spill_minutes}")
    # Validated eagerly above; the generator below only starts on the first next().
    return _rows(day, n_events, seed, clients, symbols, spill_minutes)


# Not frozen: one is made per execution, and a frozen dataclass's slower __init__ showed in the
# generator's time.
@dataclass(slots=True)
class _Attempt:
    """What every row of one execution shares: drawn once, before its first row."""

    op: _Operation
    sell: bool
    start_us: int
    trigger_u: int
    trigger: Decimal
    source: str
    retry: int
    token: str | None
    payload_head: str
    payload: str


def _rows(
    day: dt.date,
    n_events: int,
    seed: int,
    clients: int,
    symbols: tuple[str, ...],
    spill_minutes: int,
) -> Iterator[tuple]:
    ops_by_client, client_table = _world(seed, clients, symbols)
    rng = random.Random(f"deep-storage-events:{seed}:{day.isoformat()}")
    rand, bits = rng.random, rng.getrandbits
    n_spill = _spill_count(n_events, spill_minutes)
    plan = _plan(rng, n_events - 3 * n_spill)
    plan.extend([_EXECUTED_LC] * n_spill)
    n_ordinary = len(plan) - n_spill

    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    day_ms = (midnight - _EPOCH) // dt.timedelta(milliseconds=1)
    spill_us = spill_minutes * 60_000_000
    lifecycles = [lc.events for lc in LIFECYCLES]
    # zip takes the plan's next entry before the next start time, so each execution still
    # draws its start time first, then its attempt, then its rows.
    starts = _start_times(rand, n_ordinary, n_spill)
    for i, (lc_index, t0) in enumerate(zip(plan, starts, strict=True)):
        attempt = _draw_attempt(rand, ops_by_client, client_table, t0, day_ms)
        spill = spill_us if i >= n_ordinary else None
        yield from _attempt_rows(rand, bits, attempt, lifecycles[lc_index], midnight, spill)


def _start_times(rand, n_ordinary: int, n_spill: int) -> Iterator[int]:
    """Start times (microseconds into the day) of the ordinary executions, then of the spilling
    ones, in increasing order: one draw each, taken when the next one is asked for."""
    # Sorted uniform start times streamed without storing them: the maximum of k uniforms is
    # U ** (1 / k), so walking down from the top yields the order statistics one by one.
    top = 1.0
    for i in range(n_ordinary):
        top *= rand() ** (1.0 / (n_ordinary - i))
        yield int((1.0 - top) * _LAST_ORDINARY_START_US)
    # Evenly spaced over the last seconds with jitter, still in increasing start order.
    spacing = _SPILL_WINDOW_US // (n_spill + 1)
    for k in range(n_spill, 0, -1):
        yield _DAY_US - 1 - k * spacing - int(rand() * spacing / 2)


def _draw_attempt(
    rand, ops_by_client: list[list[_Operation]], client_table: list[int], t0: int, day_ms: int
) -> _Attempt:
    """The execution's operation, trigger price, source, retries and token, in draw order."""
    ops = ops_by_client[client_table[int(rand() * len(client_table))]]
    op = ops[int(rand() * len(ops))]
    sell = op.side == "SELL"
    # The market crossed the stop: below it for a SELL stop, above it for a BUY stop.
    move = int(op.stop_u * rand() * 0.003)
    trigger_u = op.stop_u - move if sell else op.stop_u + move
    source = _SOURCES[int(rand() * len(_SOURCES))]
    r = rand()
    retry = _RETRY_COUNTS[int(r / RETRY_RATE * 10)] if r < RETRY_RATE else 0
    token = (
        None
        if rand() < NULL_TOKEN_RATE
        else f"{op.operation_id}:{_plain8(trigger_u)}:{day_ms + t0 // 1_000}"
    )
    expected = (trigger_u - op.entry_u) * op.qty_u if sell else (op.entry_u - trigger_u) * op.qty_u
    payload_head = (
        f'{{"trigger_type": "{op.trigger_type}", "entry_price": "{op.entry_s}", '
        f'"expected_pnl": "{expected / 1e16:.8f}"'
    )
    return _Attempt(
        op,
        sell,
        t0,
        trigger_u,
        _dec8(trigger_u),
        source,
        retry,
        token,
        payload_head,
        payload_head + "}",
    )


def _attempt_rows(
    rand,
    bits,
    attempt: _Attempt,
    events: tuple[str, ...],
    midnight: dt.datetime,
    spill_us: int | None,
) -> Iterator[tuple]:
    """The rows of one execution, one per event type of its lifecycle."""
    op = attempt.op
    request_hash = None
    t = attempt.start_us
    uuid4, td = uuid.UUID, dt.timedelta
    for position, event_type in enumerate(events):
        t = _event_time(rand, t, position, event_type, spill_us)
        quantity, row_payload = op.qty, attempt.payload
        order_id = fill = slippage = error = None
        if event_type == SUBMITTED:
            request_hash = f"{bits(256):064x}"
        elif event_type == EXECUTED:
            quantity, fill, slippage, row_payload, order_id = _fill(rand, bits, attempt)
        elif event_type == FAILED:
            error = _ERRORS[int(rand() * len(_ERRORS))]
        elif event_type in _BLOCK_MESSAGES:
            error = _BLOCK_MESSAGES[event_type]

        yield (
            str(uuid4(int=bits(128), version=4)),
            None,
            midnight + td(microseconds=t),
            op.operation_id,
            op.client_id,
            op.symbol,
            event_type,
            attempt.trigger,
            op.stop,
            quantity,
            op.side,
            attempt.token,
            row_payload,
            request_hash,
            order_id,
            fill,
            slippage,
            attempt.source,
            error,
            attempt.retry,
        )


def _event_time(rand, t: int, position: int, event_type: str, spill_us: int | None) -> int:
    """When the event happens (microseconds into the day), from when the one before it did;
    `spill_us` is set for an execution whose EXECUTED row lands after midnight."""
    if position == 0:
        if event_type == FAILED:  # rolled back, FAILED written on its own a bit later
            return t + 200_000 + int(rand() * 2_800_000)
        return t
    if event_type == SUBMITTED:
        return t + 20_000 + int(rand() * 380_000)
    if event_type == EXECUTED:
        if spill_us is not None:
            gap = 1 + int(rand() ** 3 * (spill_us - 1))
            return max(t + 1, _DAY_US + gap)
        return t + 150_000 + int(rand() * 2_850_000)  # waiting for the exchange
    if event_type == FAILED:
        return t + 50_000 + int(rand() * 1_950_000)
    # Block reasons and the unknown type come quickly after the trigger.
    return t + 2_000 + int(rand() * 148_000)


def _fill(rand, bits, attempt: _Attempt) -> tuple[Decimal, Decimal, Decimal, str, str]:
    """The EXECUTED row's quantity, fill price, slippage, payload and exchange order id."""
    op, trigger_u = attempt.op, attempt.trigger_u
    slip_u = int(trigger_u * rand() * 0.002)
    fill_u = trigger_u - slip_u if attempt.sell else trigger_u + slip_u
    fill = _dec8(fill_u)
    slippage = abs((fill - op.stop) / op.stop * _HUNDRED).quantize(_PCT, rounding=ROUND_HALF_EVEN)
    qty_u, quantity = op.qty_u, op.qty
    if rand() < PARTIAL_FILL_RATE:
        qty_u = max(1, int(qty_u * (0.5 + rand() * 0.5)))
        quantity = _dec8(qty_u)
    pnl = (fill_u - op.entry_u) * qty_u if attempt.sell else (op.entry_u - fill_u) * qty_u
    fee = fill_u * qty_u * 0.001
    payload = f'{attempt.payload_head}, "pnl": "{pnl / 1e16:.8f}", "fee": "{fee / 1e16:.8f}"}}'
    return quantity, fill, slippage, payload, str(10_000_000_000 + bits(36))


def copy_into(conn, rows: Iterable[tuple], table: str = "stop_events") -> int:
    """Load rows (in `COLUMNS` order) with COPY and return how many were written.

    COPY rather than INSERT because seeding millions of rows row by row would dominate a
    benchmark. The load runs in one transaction block (a savepoint if the caller already has a
    transaction open), so a failure leaves no half-seeded table behind.
    """
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    count = 0
    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def seed_days(conn, days: list[dt.date], events_per_day: int, seed: int = 0, **kw) -> int:
    """Generate and COPY `events_per_day` rows for each day; returns the total written.

    All days share one seed: the day itself varies the events, while the tenants and their
    operations stay the same, as in a real multi-day history. `kw` goes to `generate`
    (clients, symbols, spill_minutes; `table` goes to `copy_into`).
    """
    table = kw.pop("table", "stop_events")
    return sum(
        copy_into(conn, generate(day, events_per_day, seed=seed, **kw), table) for day in days
    )
