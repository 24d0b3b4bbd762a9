"""What the gate judges of a day's freshness, from the commit facts and the source's newest event
of the day: pure Python (Great Expectations on a one-row pandas frame, no JVM, no service)."""

from __future__ import annotations

import datetime as dt

import pytest

from deep_storage.core.config import SourceConfig
from deep_storage.quality import day_plan, gx_runner

pytestmark = pytest.mark.unit

D = dt.date(2025, 6, 1)
SLA = dt.timedelta(hours=2)
SRC = SourceConfig(host="127.0.0.1", port=5432, dbname="trading", user="u", password="p")


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 6, 1, hour, minute, tzinfo=dt.UTC)


def judged(source_newest, lake_newest, as_of=None):
    """The fresh_within_sla result the gate would record, and its notes."""
    as_of = as_of or at(23)
    notes: list[str] = []
    facts = {"newest_event_at": lake_newest}
    fact_rules, known = day_plan.freshness_rules(
        D, as_of, SLA, SRC, source_newest, lake_newest, notes
    )
    if fact_rules:
        import pandas as pd

        columns = pd.DataFrame(columns=["x"])
        _, results = gx_runner.validate(
            columns, None, "t", _schema(), [], (), [], fact_rules, facts, engine="pandas"
        )
        known = [*known, *(r for r in results if r.name == "fresh_within_sla")]
    return known, notes


def _schema():
    from pyspark.sql.types import StringType, StructField, StructType  # pure Python, no JVM

    return StructType([StructField("x", StringType())])


def test_a_day_whose_newest_event_is_eleven_hours_old_is_fresh_when_the_source_has_nothing_newer():
    (fresh,), notes = judged(source_newest=at(10), lake_newest=at(10), as_of=at(21))
    assert fresh.outcome == "passed" and notes == []
    assert fresh.observed == (
        "newest event 2025-06-01T10:00:00+00:00; "
        "the source's newest of the day 2025-06-01T10:00:00+00:00"
    )


def test_a_source_three_hours_ahead_warns_and_shows_both_times():
    # 13:00 - 10:00 = 3 h > the 2 h SLA
    (fresh,), _ = judged(source_newest=at(13), lake_newest=at(10))
    assert fresh.outcome == "warned"
    assert fresh.observed == (
        "newest event 2025-06-01T10:00:00+00:00; "
        "the source's newest of the day 2025-06-01T13:00:00+00:00"
    )


def test_exactly_the_sla_behind_is_still_fresh():
    (fresh,), _ = judged(source_newest=at(12), lake_newest=at(10))  # 2 h exactly
    assert fresh.outcome == "passed"


def test_an_empty_day_warns_only_when_the_source_has_rows_for_it():
    (empty_both,), _ = judged(source_newest=None, lake_newest=None)
    assert empty_both.outcome == "passed"
    assert empty_both.observed == "no rows; the source has no event of the day"
    (empty_lake,), _ = judged(source_newest=at(9), lake_newest=None)
    assert empty_lake.outcome == "warned"
    assert (
        empty_lake.observed == "no rows; the source's newest of the day 2025-06-01T09:00:00+00:00"
    )


def test_without_a_source_it_is_a_note_and_no_result():
    notes: list[str] = []
    rules_, known = day_plan.freshness_rules(D, at(23), SLA, None, None, at(1), notes)
    assert (rules_, known) == ([], [])
    assert notes == [
        "fresh_within_sla not checked: no source database configured (freshness is the lake's "
        "lag behind the source's newest event of the day)"
    ]


def test_silver_counts_the_newest_event_of_executions_started_up_to_the_look_back_earlier():
    from deep_storage.lake import CommittedDay

    def m(day: dt.date, newest: str | None) -> CommittedDay:
        return CommittedDay("silver", day.isoformat(), 1, True, [], {}, "", "", details={
            "newest_event_at": newest})  # fmt: skip

    # An execution started on May 31 at 23:50 executed on June 1 at 00:05: silver holds it
    # in May 31's partition, and June 1 is empty.
    committed = {
        dt.date(2025, 5, 24): m(dt.date(2025, 5, 24), "2025-05-24T08:00:00+00:00"),
        dt.date(2025, 5, 31): m(dt.date(2025, 5, 31), "2025-06-01T00:05:00+00:00"),
        dt.date(2025, 6, 2): m(dt.date(2025, 6, 2), "2025-06-02T09:00:00+00:00"),  # after D
    }
    assert day_plan.silver_facts(committed, D) == {"newest_event_at": at(0, 5)}
