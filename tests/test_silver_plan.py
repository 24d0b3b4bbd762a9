"""Which days a silver run rebuilds (deep_storage.tables.silver_plan), from commit facts alone:
no Spark, no lake, no rows."""

from __future__ import annotations

import datetime as dt

import pytest

from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.lake import CommittedDay
from deep_storage.tables import silver_plan

pytestmark = pytest.mark.unit

D = dt.date(2025, 6, 10)


def day(table: str, d: dt.date, version: int, sealed: bool = True, rows: int = 10, **details):
    return CommittedDay(table, d.isoformat(), rows, sealed, [], {}, "run", "", details=details,
                        version=version)  # fmt: skip


def bronze(*days: dt.date, version: int = 3, **kw) -> dict:
    return {d: day("bronze/events", d, version, **kw) for d in days}


def back(n: int) -> dt.date:
    return D - dt.timedelta(days=n)


def test_a_run_reads_its_days_the_look_back_before_and_whatever_is_committed_after():
    committed = bronze(back(9), back(2), back(1), D, D + dt.timedelta(days=1),
                       D + dt.timedelta(days=3))  # fmt: skip
    p = silver_plan.decide(DayRange(D, D), 2, committed, {})
    # [D-2, D+2]: D-9 is outside the window, D+3 too; D+2 was never committed.
    assert sorted(p.bronze) == [back(2), back(1), D, D + dt.timedelta(days=1)]
    assert p.missing_lookback == []
    assert p.rows == 40
    assert p.bronze_inputs == {
        "2025-06-08": "v3", "2025-06-09": "v3", "2025-06-10": "v3", "2025-06-11": "v3",
    }  # fmt: skip


def test_look_back_days_never_ingested_are_named_and_later_ones_are_not():
    p = silver_plan.decide(DayRange(D, D), 3, bronze(back(1), D), {})
    assert p.missing_lookback == [back(3), back(2)]


def test_a_run_day_not_in_bronze_stops_the_run_with_the_command_that_fixes_it():
    with pytest.raises(LakeStateError, match=r"bronze day 2025-06-11 is not committed: run "
                       r"`deep-storage bronze --date 2025-06-11`"):  # fmt: skip
        silver_plan.decide(DayRange(D, D + dt.timedelta(days=1)), 1, bronze(D), {})


def test_unsealed_bronze_days_read_are_listed_oldest_first():
    committed = {**bronze(back(1), D + dt.timedelta(days=1), sealed=False), **bronze(D)}
    p = silver_plan.decide(DayRange(D, D), 1, committed, {})
    assert p.unsealed == [back(1), D + dt.timedelta(days=1)]


def test_a_run_whose_days_were_built_from_the_same_bronze_versions_is_skipped():
    committed = bronze(back(1), D)
    inputs = {"2025-06-09": "v3", "2025-06-10": "v3"}
    built = {D: day("silver/stop_executions", D, 5, bronze_inputs=inputs)}
    assert silver_plan.decide(DayRange(D, D), 1, committed, built).skip


def test_a_newer_bronze_version_of_any_day_read_means_re_projecting():
    committed = {**bronze(back(1), version=4), **bronze(D)}  # the look-back day changed
    built = {D: day("silver/stop_executions", D, 5,
                    bronze_inputs={"2025-06-09": "v3", "2025-06-10": "v3"})}  # fmt: skip
    p = silver_plan.decide(DayRange(D, D), 1, committed, built)
    assert p.bronze_inputs == {"2025-06-09": "v4", "2025-06-10": "v3"}
    assert not p.skip


def test_a_run_day_without_silver_is_never_skipped():
    p = silver_plan.decide(DayRange(D, D), 0, bronze(D), {})
    assert not p.unchanged() and not p.skip


def test_a_dead_silver_runs_days_join_ours_and_are_never_skipped():
    days, resumed = silver_plan.resume(DayRange(D, D), "silver", "2025-06-07..2025-06-08")
    assert (days, resumed) == (DayRange(back(3), D), "2025-06-07..2025-06-08")
    committed = bronze(back(3), back(2), back(1), D)
    inputs = {d.isoformat(): "v3" for d in sorted(committed)}
    built = {d: day("silver/stop_executions", d, 5, bronze_inputs=inputs) for d in committed}
    p = silver_plan.decide(days, 0, committed, built, resumed)
    assert p.unchanged() and not p.skip


@pytest.mark.parametrize(
    "step, their_days",
    [("bronze", "2025-06-01..2025-06-02"), ("silver", None), ("silver", "yesterday..today")],
)
def test_only_a_silver_runs_readable_days_are_resumed(step, their_days):
    assert silver_plan.resume(DayRange(D, D), step, their_days) == (DayRange(D, D), None)


def test_plan_reads_the_facts_of_the_widened_window(monkeypatch):
    asked = []

    def committed(fs, table, days, with_files=True):
        asked.append((table, days[0], days[-1]))
        return bronze(*days) if table == "bronze/events" else {}

    monkeypatch.setattr(silver_plan.lake, "committed", committed)

    class Holder:
        step, days = "silver", "2025-06-12..2025-06-12"

    p = silver_plan.plan(object(), DayRange(D, D), 1, Holder())
    assert p.days == DayRange(D, dt.date(2025, 6, 12)) and p.resumed == "2025-06-12"
    assert asked == [("bronze/events", back(1), dt.date(2025, 6, 13)),
                     ("silver/stop_executions", back(1), dt.date(2025, 6, 13))]  # fmt: skip
