"""deep_storage.io.source_db without a database: when a day may seal against the writers still
open at the source, and which source columns fit the bronze contract."""

from __future__ import annotations

import datetime as dt

import pytest

from deep_storage.core import schemas
from deep_storage.io.source_db import SourceColumn, Writer, _fits, decide_seal

pytestmark = pytest.mark.unit

UTC = dt.UTC
D = dt.date(2025, 6, 1)
END = dt.datetime(2025, 6, 2, tzinfo=UTC)
MARGIN = dt.timedelta(minutes=5)


def test_a_day_cannot_seal_before_its_window_closed_plus_the_margin():
    sealed, reason = decide_seal(D, END + MARGIN - dt.timedelta(microseconds=1), [], MARGIN)
    assert not sealed and "closes for late commits" in reason
    assert decide_seal(D, END + MARGIN, [], MARGIN) == (True, None)


def test_a_writer_that_began_before_the_horizon_keeps_the_day_open():
    old = Writer(pid=42, xact_start=END - dt.timedelta(seconds=1), prepared=False)
    sealed, reason = decide_seal(D, END + dt.timedelta(hours=1), [old], MARGIN)
    assert not sealed and "pid 42" in reason


def test_a_writer_that_began_after_the_horizon_cannot_write_into_the_day():
    young = Writer(pid=43, xact_start=END + MARGIN + dt.timedelta(seconds=1), prepared=False)
    assert decide_seal(D, END + dt.timedelta(hours=1), [young], MARGIN) == (True, None)


@pytest.mark.parametrize(
    "writer",
    [Writer(None, None, prepared=True), Writer(pid=44, xact_start=None, prepared=False)],
    ids=["prepared", "start-not-visible"],
)
def test_writers_we_cannot_date_keep_every_day_open(writer):
    sealed, _ = decide_seal(D, END + dt.timedelta(days=30), [writer], MARGIN)
    assert not sealed


@pytest.mark.parametrize(
    "column, udt, precision, scale, fits",
    [
        ("event_id", "uuid", None, None, True),
        ("event_id", "text", None, None, True),
        ("retry_count", "int4", None, None, True),
        ("retry_count", "int8", None, None, False),  # may overflow the contract's int
        ("client_id", "int4", None, None, True),  # widening into bigint is safe
        ("fill_price", "numeric", 20, 8, True),
        ("fill_price", "numeric", 18, 6, True),
        ("fill_price", "numeric", 30, 10, False),
        ("fill_price", "numeric", 21, 9, False),
        ("fill_price", "numeric", None, None, False),  # unconstrained numeric may not fit
        ("occurred_at", "timestamp", None, None, False),  # no time zone: ambiguous instants
        ("symbol", "text", None, None, True),
        ("payload_json", "jsonb", None, None, True),
    ],
)
def test_a_source_column_fits_the_contract_only_when_every_value_does(
    column, udt, precision, scale, fits
):
    contract = schemas.BRONZE_EVENTS_SCHEMA[column]
    assert _fits(SourceColumn(column, udt, udt, precision, scale), contract)[0] is fits
