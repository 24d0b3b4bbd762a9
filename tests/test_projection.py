"""The StopExecution projection on tiny inline frames: source events -> executions -> expected.

Each case runs on both of silver's engines (the `engine` fixture): in this process, as silver's
in-process engine runs it (`project_arrow` on an Arrow table: DuckDB, no JVM; marked unit), and on
Spark (`executions` on a DataFrame; marked integration, with tests/conftest.py's session).
tests/conftest.py runs the process in America/Sao_Paulo on purpose; Spark's session and DuckDB's
connection are UTC, and every timestamp here is an aware UTC datetime, so a wrong time zone shows
up as a wrong `date`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from decimal import Decimal

import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType

try:
    from pyspark.testing import assertDataFrameEqual
except ImportError:
    # pyspark 3.5's pyspark/testing/__init__.py also imports its pandas-on-Spark helpers, which
    # fail under pandas 3 (pulled in by great-expectations). assertDataFrameEqual lives in
    # pyspark.testing.utils, imported fine before that failure and still in sys.modules; it
    # tolerates the missing pandas helpers itself.
    from pyspark.testing.utils import assertDataFrameEqual

from deep_storage.core.schemas import BRONZE_EVENTS_SCHEMA, SILVER_EXECUTIONS_SCHEMA
from deep_storage.tables.projection import (
    EVENT_COLUMNS,
    execution_id,
    executions,
    project_arrow,
    with_execution_key,
)
from tests.events import event, utc

TOKEN = "101:64000.12345678:1748822399000"
T0 = "2025-06-01 10:00:00"


def at(seconds: float, base: str = T0) -> dt.datetime:
    return utc(base) + dt.timedelta(seconds=seconds)


def eid(n: int) -> str:
    """A readable, ordered event_id: eid(1) < eid(2) as strings."""
    return f"00000000-0000-4000-8000-{n:012d}"


_ids = iter(range(1, 1_000_000))


def ev(when: float | dt.datetime, event_type: str, token: str | None = TOKEN, **kw) -> dict:
    """A bronze event at `when` (seconds after T0, or an instant); keyword arguments override the
    defaults of tests.events.event."""
    kw.setdefault("event_id", eid(100_000 + next(_ids)))
    for fill_column in ("exchange_order_id", "fill_price", "slippage_pct"):
        kw.setdefault(fill_column, None)  # these tests state every fill value they rely on
    occurred_at = when if isinstance(when, dt.datetime) else at(when)
    return event(occurred_at, event_type, execution_token=token, **kw)


def bronze(spark, rows: list[dict]):
    return spark.createDataFrame(
        [tuple(r[f.name] for f in BRONZE_EVENTS_SCHEMA) for r in rows], BRONZE_EVENTS_SCHEMA
    )


def schema(*names: str) -> StructType:
    """The output columns `names`, with their contract types."""
    fields = {f.name: f for f in SILVER_EXECUTIONS_SCHEMA.fields}
    fields["date"] = StructField("date", DateType())
    fields["_events"] = StructField("_events", IntegerType())
    return StructType([fields[n] for n in names])


def bronze_arrow(rows: list[dict]) -> pa.Table:
    """The events as silver's in-process engine reads them: the projection's columns, typed as
    Spark's read types them, every column nullable (silver.bronze_events)."""
    full = to_arrow_schema(BRONZE_EVENTS_SCHEMA)
    columns = pa.schema([full.field(c).with_nullable(True) for c in EVENT_COLUMNS])
    return pa.Table.from_pylist(rows, schema=columns)


class InProcess:
    """Silver's in-process engine: `project_arrow` over the whole Arrow table (DuckDB)."""

    def assert_projects(self, rows: list[dict], names, expected: list[tuple], struct=None):
        """`rows` project to `expected` in any order, with the columns `names` typed as `struct`
        (default: their contract types), as assertDataFrameEqual checks on Spark."""
        actual = project_arrow(bronze_arrow(rows)).select(list(names))
        wanted = to_arrow_schema(struct or schema(*names))
        assert [(f.name, f.type) for f in actual.schema] == [(f.name, f.type) for f in wanted]
        assert Counter(tuple(r.values()) for r in actual.to_pylist()) == Counter(expected)


class OnSpark:
    """Silver's Spark engine: `executions` on a DataFrame (a shuffle by client_id, then the same
    projection in each task)."""

    def __init__(self, spark):
        self.spark = spark

    def assert_projects(self, rows: list[dict], names, expected: list[tuple], struct=None):
        actual = bronze(self.spark, rows).transform(executions).select(*names)
        wanted = self.spark.createDataFrame(expected, struct or schema(*names))
        assertDataFrameEqual(actual, wanted)


@pytest.fixture(
    params=[
        pytest.param("in_process", marks=pytest.mark.unit),
        pytest.param("spark", marks=pytest.mark.integration),
    ]
)
def engine(request):
    if request.param == "spark":
        return OnSpark(request.getfixturevalue("spark"))
    return InProcess()


def test_every_status_path_and_the_first_time_of_each_type(engine):
    def path(token, *steps):
        return [ev(i, t, token=token) for i, t in enumerate(steps)]

    source = [
        *path("pending", "STOP_TRIGGERED"),
        *path("submitted", "STOP_TRIGGERED", "EXECUTION_SUBMITTED"),
        *path("executed", "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "EXECUTED"),
        *path("failed-alone", "FAILED"),
        *path("triggered-failed", "STOP_TRIGGERED", "FAILED"),
        *path("blocked", "STOP_TRIGGERED", "BLOCKED"),
        *path("stale", "STOP_TRIGGERED", "STALE_PRICE"),
        *path("kill", "STOP_TRIGGERED", "KILL_SWITCH"),
        *path("slippage", "STOP_TRIGGERED", "SLIPPAGE_BREACH"),
        *path("breaker", "STOP_TRIGGERED", "CIRCUIT_BREAKER"),
        # Unknown types never set status, even when they come last.
        *path("unknown-only", "ORDER_AMENDED", "HEARTBEAT"),
        *path("submitted-unknown", "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "ORDER_AMENDED"),
        *path("executed-unknown", "STOP_TRIGGERED", "EXECUTED", "ORDER_AMENDED"),
        # A second trigger after the submit: the latest non-terminal decides; triggered_at = first.
        *path("retriggered", "STOP_TRIGGERED", "EXECUTION_SUBMITTED", "STOP_TRIGGERED"),
    ]
    names = ("execution_token", "status", "triggered_at", "submitted_at", "executed_at")
    names += ("failed_at", "blocked_at", "_events")
    n = None
    expected = [
        ("pending", "PENDING", at(0), n, n, n, n, 1),
        ("submitted", "SUBMITTED", at(0), at(1), n, n, n, 2),
        ("executed", "EXECUTED", at(0), at(1), at(2), n, n, 3),
        ("failed-alone", "FAILED", n, n, n, at(0), n, 1),
        ("triggered-failed", "FAILED", at(0), n, n, at(1), n, 2),
        ("blocked", "BLOCKED", at(0), n, n, n, at(1), 2),
        ("stale", "BLOCKED", at(0), n, n, n, at(1), 2),
        ("kill", "BLOCKED", at(0), n, n, n, at(1), 2),
        ("slippage", "BLOCKED", at(0), n, n, n, at(1), 2),
        ("breaker", "BLOCKED", at(0), n, n, n, at(1), 2),
        ("unknown-only", "PENDING", n, n, n, n, n, 2),
        ("submitted-unknown", "SUBMITTED", at(0), at(1), n, n, n, 3),
        ("executed-unknown", "EXECUTED", at(0), n, at(1), n, n, 3),
        ("retriggered", "PENDING", at(0), at(1), n, n, n, 3),
    ]
    engine.assert_projects(source, names, expected)


def test_ties_on_occurred_at_are_broken_by_rank_then_event_id(engine):
    def tie(token, *events):
        """Same-instant events (type, event_id number[, stop_price]), in order and reversed."""
        fields = {"EXECUTED": {"fill_price": Decimal("3")}, "FAILED": {"error_message": "timeout"}}
        rows = []
        for name, listed in ((token, events), (f"{token}-reversed", events[::-1])):
            for event_type, n, *stop in listed:
                extra = {"stop_price": Decimal(stop[0])} if stop else {}
                kw = {**fields.get(event_type, {}), **extra}
                rows.append(ev(0, event_type, name, event_id=eid(n), **kw))
        return rows

    source = [
        # Same instant: SUBMITTED ranks after TRIGGERED although its event_id is smaller, so
        # SUBMITTED is the latest and TRIGGERED the first (its stop_price wins).
        ev(0, "EXECUTION_SUBMITTED", "rank", event_id=eid(1), stop_price=Decimal("2")),
        ev(0, "STOP_TRIGGERED", "rank", event_id=eid(9), stop_price=Decimal("1")),
        # Same instant and rank: the larger event_id is the later event. Each case is listed in
        # both row orders, so neither "first row wins" nor "last row wins" can pass for it.
        *tie("executed-last", ("FAILED", 1), ("EXECUTED", 2)),
        *tie("failed-last", ("EXECUTED", 1), ("FAILED", 2)),
        # The first stop_price is the smaller event_id's.
        *tie("stop-of-first-id", ("STOP_TRIGGERED", 1, "1"), ("STOP_TRIGGERED", 2, "2")),
        # An unknown type ranks with the terminal ones; the same-instant TRIGGERED still precedes.
        ev(0, "ORDER_AMENDED", "unknown-tie", event_id=eid(1), side="BUY"),
        ev(0, "STOP_TRIGGERED", "unknown-tie", event_id=eid(2), side="SELL"),
    ]
    names = ("execution_token", "status", "stop_price", "side", "fill_price", "error_message")
    stop, three = Decimal("64010"), Decimal("3")
    expected = [
        ("rank", "SUBMITTED", Decimal("1"), "SELL", None, None),
        ("executed-last", "EXECUTED", stop, "SELL", three, "timeout"),
        ("executed-last-reversed", "EXECUTED", stop, "SELL", three, "timeout"),
        ("failed-last", "FAILED", stop, "SELL", three, "timeout"),
        ("failed-last-reversed", "FAILED", stop, "SELL", three, "timeout"),
        ("stop-of-first-id", "PENDING", Decimal("1"), "SELL", None, None),
        ("stop-of-first-id-reversed", "PENDING", Decimal("1"), "SELL", None, None),
        ("unknown-tie", "PENDING", stop, "SELL", None, None),
    ]
    engine.assert_projects(source, names, expected)


def test_clock_skew_the_latest_terminal_event_in_order_decides(engine):
    """The contract orders by occurred_at, not by commit: a FAILED stamped before an EXECUTED
    leaves the execution EXECUTED, and one stamped after it leaves it FAILED; either way the
    EXECUTED event's fill and the FAILED event's error are kept."""
    fill = {"exchange_order_id": "X-1", "fill_price": Decimal("63990.5"), "quantity": Decimal("1")}
    source = [
        ev(0, "STOP_TRIGGERED", "failed-then-executed"),
        ev(5, "FAILED", "failed-then-executed", error_message="exchange timeout"),
        ev(6, "EXECUTED", "failed-then-executed", **fill),
        ev(0, "STOP_TRIGGERED", "executed-then-failed"),
        ev(5, "EXECUTED", "executed-then-failed", **fill),
        ev(6, "FAILED", "executed-then-failed", error_message="exchange timeout"),
    ]
    names = ("execution_token", "status", "executed_at", "failed_at", "exchange_order_id")
    names += ("fill_price", "quantity", "error_message")
    one, timeout = Decimal("1"), "exchange timeout"
    expected = [
        ("failed-then-executed", "EXECUTED", at(6), at(5), "X-1", Decimal("63990.5"), one, timeout),
        ("executed-then-failed", "FAILED", at(5), at(6), "X-1", Decimal("63990.5"), one, timeout),
    ]
    engine.assert_projects(source, names, expected)


def test_values_come_from_the_right_event_and_decimals_stay_exact(engine):
    nulls = {"stop_price": None, "trigger_price": None, "quantity": None, "side": None}
    source = [
        # First non-NULL in order for stop/trigger/side/symbol/source; quantity and the fill from
        # the EXECUTED event; retry_count the largest. Source rows listed out of order on purpose.
        ev(
            2,
            "EXECUTED",
            "full",
            quantity=Decimal("0.49999999"),
            fill_price=Decimal("123456789012.12345678"),
            slippage_pct=Decimal("123456.0001"),
            exchange_order_id="X-9",
            retry_count=1,
            symbol="ETHUSDT",
            source="cron",
        ),
        ev(0, "STOP_TRIGGERED", "full", **{**nulls, "trigger_price": Decimal("0.00000001")}),
        ev(
            1,
            "EXECUTION_SUBMITTED",
            "full",
            stop_price=Decimal("99999999999.99999999"),
            quantity=Decimal("0.5"),
            side="BUY",
            retry_count=2,
            symbol="ETHUSDT",
            source="cron",
        ),
        # Two FAILED: the latest one's error; no EXECUTED: the first quantity seen.
        ev(0, "FAILED", "two-failures", error_message="first", **nulls),
        ev(1, "FAILED", "two-failures", error_message="second", quantity=Decimal("7")),
        ev(2, "STOP_TRIGGERED", "two-failures", quantity=Decimal("8")),
        # "From the latest FAILED event": a later FAILED without a message leaves none.
        ev(0, "FAILED", "failed-null-last", error_message="first"),
        ev(1, "FAILED", "failed-null-last", error_message=None),
        # Two EXECUTED: the latest one's fill; executed_at is the first one's time.
        ev(0, "EXECUTED", "two-fills", exchange_order_id="X-1", fill_price=Decimal("1")),
        ev(1, "EXECUTED", "two-fills", exchange_order_id="X-2", fill_price=Decimal("2")),
        # An EXECUTED without a quantity falls back to the first quantity seen.
        ev(0, "STOP_TRIGGERED", "no-executed-qty", quantity=Decimal("0.3")),
        ev(1, "EXECUTED", "no-executed-qty", quantity=None, fill_price=Decimal("5")),
    ]
    names = (
        "execution_token",
        "symbol",
        "stop_price",
        "trigger_price",
        "quantity",
        "side",
        "executed_at",
        "exchange_order_id",
        "fill_price",
        "slippage_pct",
        "source",
        "error_message",
        "retry_count",
    )
    d = Decimal
    stop, trig = d("64010"), d("64000.12345678")
    expected = [
        (
            "full",
            "BTCUSDC",
            d("99999999999.99999999"),
            d("0.00000001"),
            d("0.49999999"),
            "BUY",
            at(2),
            "X-9",
            d("123456789012.12345678"),
            d("123456.0001"),
            "ws",
            None,
            2,
        ),
        (
            "two-failures",
            "BTCUSDC",
            stop,
            trig,
            d("7"),
            "SELL",
            None,
            None,
            None,
            None,
            "ws",
            "second",
            0,
        ),
        (
            "failed-null-last",
            "BTCUSDC",
            stop,
            trig,
            d("0.001"),
            "SELL",
            None,
            None,
            None,
            None,
            "ws",
            None,
            0,
        ),
        (
            "two-fills",
            "BTCUSDC",
            stop,
            trig,
            d("0.001"),
            "SELL",
            at(0),
            "X-2",
            d("2"),
            None,
            "ws",
            None,
            0,
        ),
        (
            "no-executed-qty",
            "BTCUSDC",
            stop,
            trig,
            d("0.3"),
            "SELL",
            at(1),
            None,
            d("5"),
            None,
            "ws",
            None,
            0,
        ),
    ]
    engine.assert_projects(source, names, expected)


def test_null_tokens_group_by_operation_and_clients_stay_apart(engine):
    token = "101:64000:1748822399000"
    source = [
        # client 7, operation 101, NULL token: one execution of two events.
        ev(0, "STOP_TRIGGERED", None, client_id=7, operation_id=101),
        ev(1, "FAILED", None, client_id=7, operation_id=101),
        # client 7, operation 102, NULL token: another execution.
        ev(0, "FAILED", None, client_id=7, operation_id=102),
        # client 7, operation 101 with a token: not the NULL-token execution of operation 101.
        ev(2, "STOP_TRIGGERED", token, client_id=7, operation_id=101),
        ev(3, "EXECUTION_SUBMITTED", token, client_id=7, operation_id=101),
        # client 8 reuses operation id 101 and the very same token: two more executions.
        ev(0, "EXECUTED", None, client_id=8, operation_id=101),
        ev(4, "STOP_TRIGGERED", token, client_id=8, operation_id=101),
    ]
    names = ("execution_id", "client_id", "operation_id", "execution_token", "status", "_events")
    expected = [
        (execution_id(7, 101, None), 7, 101, None, "FAILED", 2),
        (execution_id(7, 102, None), 7, 102, None, "FAILED", 1),
        (execution_id(7, 101, token), 7, 101, token, "SUBMITTED", 2),
        (execution_id(8, 101, None), 8, 101, None, "EXECUTED", 1),
        (execution_id(8, 101, token), 8, 101, token, "PENDING", 1),
    ]
    engine.assert_projects(source, names, expected)


def test_an_execution_spanning_midnight_is_one_row_on_its_first_day(engine):
    source = [
        ev(utc("2025-06-01 23:59:59.999999"), "STOP_TRIGGERED", "midnight"),
        ev(utc("2025-06-02 00:00:00.000001"), "EXECUTION_SUBMITTED", "midnight"),
        ev(utc("2025-06-02 00:00:02"), "EXECUTED", "midnight"),
        # 00:30Z is still June 1st in America/Sao_Paulo (the process's zone): date is UTC's.
        ev(utc("2025-06-02 00:30:00"), "STOP_TRIGGERED", "next-day"),
        # Rows listed late-first: the date comes from the earliest event, not the first row.
        ev(utc("2025-06-03 00:00:00"), "EXECUTED", "early"),
        ev(utc("2025-06-02 23:00:00"), "STOP_TRIGGERED", "early"),
    ]
    names = ("execution_token", "status", "date", "_first_event_at", "_last_event_at", "_events")
    expected = [
        (
            "midnight",
            "EXECUTED",
            dt.date(2025, 6, 1),
            utc("2025-06-01 23:59:59.999999"),
            utc("2025-06-02 00:00:02"),
            3,
        ),
        (
            "next-day",
            "PENDING",
            dt.date(2025, 6, 2),
            utc("2025-06-02 00:30:00"),
            utc("2025-06-02 00:30:00"),
            1,
        ),
        (
            "early",
            "EXECUTED",
            dt.date(2025, 6, 2),
            utc("2025-06-02 23:00:00"),
            utc("2025-06-03 00:00:00"),
            2,
        ),
    ]
    extras = StructType(
        [
            *schema("execution_token", "status", "date").fields,
            StructField("_first_event_at", SILVER_EXECUTIONS_SCHEMA["triggered_at"].dataType),
            StructField("_last_event_at", SILVER_EXECUTIONS_SCHEMA["triggered_at"].dataType),
            StructField("_events", IntegerType()),
        ]
    )
    engine.assert_projects(source, names, expected, extras)


CASES = [
    (7, 101, None),
    (7, 101, "101:64000.12345678:1748822399000"),
    (8, 101, "101:64000.12345678:1748822399000"),
    (9_223_372_036_854_775_807, 1, "ação:ü:€"),  # max bigint, non-ASCII token
    (7, 102, ""),  # an empty token is a token, not NULL
]


def key_events() -> list[dict]:
    """One event per case of CASES: five executions."""
    return [
        ev(i, "STOP_TRIGGERED", tok, client_id=c, operation_id=o)
        for i, (c, o, tok) in enumerate(CASES)
    ]


def test_execution_id_is_uuid5_and_equals_the_python_function(engine):
    names = ("client_id", "operation_id", "execution_token", "execution_id")
    expected = [(c, o, tok, execution_id(c, o, tok)) for c, o, tok in CASES]
    engine.assert_projects(key_events(), names, expected)


@pytest.mark.integration
def test_the_spark_key_column_and_its_uuid5_equal_the_python_functions(spark):
    actual = bronze(spark, key_events()).transform(with_execution_key)
    actual = actual.select("client_id", "operation_id", "_execution_key", "execution_id")
    keys = [
        "op:7:101",
        "token:7:101:64000.12345678:1748822399000",
        "token:8:101:64000.12345678:1748822399000",
        "token:9223372036854775807:ação:ü:€",
        "token:7:",
    ]
    expected = [
        (c, o, key, execution_id(c, o, tok)) for (c, o, tok), key in zip(CASES, keys, strict=True)
    ]
    expected_schema = StructType(
        [
            SILVER_EXECUTIONS_SCHEMA["client_id"],
            SILVER_EXECUTIONS_SCHEMA["operation_id"],
            StructField("_execution_key", StringType()),
            SILVER_EXECUTIONS_SCHEMA["execution_id"],
        ]
    )
    assertDataFrameEqual(actual, spark.createDataFrame(expected, expected_schema))


@pytest.mark.unit
def test_execution_id_is_pinned_across_releases():
    """Changing the namespace or the key format would re-key the whole lake: pinned values."""
    namespace = uuid.UUID("297dd833-e786-5eb0-a340-ebb788350e3a")
    token = "101:64000.12345678:1748822399000"
    assert execution_id(7, 101, token) == str(uuid.uuid5(namespace, f"token:7:{token}"))
    assert execution_id(7, 101, None) == str(uuid.uuid5(namespace, "op:7:101"))
    assert execution_id(7, 101, None) == "4ac76bb0-d76e-5e30-aa5e-481b8731394a"
    assert execution_id(7, 101, token) == "382fdc3a-670d-57b0-b632-dca3413ba35d"
    parsed = uuid.UUID(execution_id(7, 101, token))
    assert (parsed.version, parsed.variant) == (5, uuid.RFC_4122)


def output_columns() -> list[tuple]:
    """SILVER_EXECUTIONS_SCHEMA's columns, then date and the extras (Spark types)."""
    at = SILVER_EXECUTIONS_SCHEMA["failed_at"].dataType
    expected = [(f.name, f.dataType) for f in SILVER_EXECUTIONS_SCHEMA]
    expected += [("date", DateType()), ("_first_event_at", at), ("_last_event_at", at)]
    return [*expected, ("_events", IntegerType())]


@pytest.mark.unit
def test_output_columns_are_silver_executions_then_date_and_extras():
    # Extra bronze columns (the date partition, underscore metadata) do not leak into the output.
    events = bronze_arrow([ev(0, "STOP_TRIGGERED")])
    events = events.append_column("_ingested_at", pa.array([at(5)], pa.timestamp("us", "UTC")))
    events = events.append_column("date", pa.array([dt.date(2025, 6, 1)], pa.date32()))
    actual = [(f.name, f.type) for f in project_arrow(events).schema]
    wanted = to_arrow_schema(StructType([StructField(n, t) for n, t in output_columns()]))
    assert actual == [(f.name, f.type) for f in wanted]


@pytest.mark.integration
def test_output_columns_on_spark_are_silver_executions_then_date_and_extras(spark):
    events = bronze(spark, [ev(0, "STOP_TRIGGERED")]).selectExpr(
        "*", "current_timestamp() AS _ingested_at", "to_date(occurred_at) AS date"
    )
    assert [(f.name, f.dataType) for f in executions(events).schema] == output_columns()
