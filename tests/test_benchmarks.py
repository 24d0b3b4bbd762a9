"""The benchmarks' own helpers (benchmarks/): the end-of-day hour they write, and the table of
targets they report."""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks import report
from benchmarks.run import last_hour
from demo import synthetic

pytestmark = pytest.mark.unit


def test_the_end_of_day_benchmark_writes_its_hour_in_the_last_hour_a_few_late():
    day = dt.date(2025, 6, 2)
    rows = list(last_hour(synthetic.generate(day, 1000, seed=4, clients=5, spill_minutes=0), day))
    at = synthetic.COLUMNS.index("occurred_at")
    hour = dt.datetime(2025, 6, 2, 23, tzinfo=dt.UTC)
    late = [r[at] for r in rows if r[at] < hour]
    assert len(rows) == 1000 and len(late) == 5  # every 200th row
    assert all(hour - dt.timedelta(hours=1) <= t < hour for t in late)
    assert all(hour <= r[at] < hour + dt.timedelta(hours=1) for r in rows if r[at] >= hour)


def test_benchmark_table_marks_each_target_met_or_missed_and_flags_memory_over_limit():
    run = {
        "events": 5_000_000,
        "seed": 2,
        "clients": 500,
        "machine": "vm",
        "reference_copy": {"seconds": 10.0},
        "reference_duckdb_silver": {"seconds": 10.0},
        "bronze": {"seconds": 19.0, "peak_rss_mib": 500, "phases": {"read and write": 18.0}},
        "silver": {"seconds": 30.0, "peak_rss_mib": 9000},
        "validate": {"seconds": 10.0, "peak_rss_mib": 100},
        "ratios": {
            "bronze_throughput_vs_copy": 0.526,
            "silver_vs_duckdb": 3.0,
            "validate_vs_bronze_plus_silver": 0.204,
        },
    }
    (row,) = report.scaling([run]).splitlines()[2:]
    assert "| 5,000,000 | 2 | 500 |" in row
    assert "0.53 (met)" in row and "3.00x (missed)" in row and "0.20 (met)" in row
    assert "500 / 9000 (over) / 100" in row
    assert "read and write 18.0" in report.phases(run)
