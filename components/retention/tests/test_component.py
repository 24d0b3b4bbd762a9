"""retention through its Python function, with a real Metrics artifact."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage import lake as lakes
from deep_storage.lake import BRONZE_EVENTS, LakeFS
from deep_storage_kfp.components import retention
from tests.events import event
from tests.lake_fixtures import write_bronze_day

pytestmark = pytest.mark.integration


def test_removes_the_days_past_the_window_as_of_the_day_given_and_logs_them(spark, lake, tmp_path):
    old, kept = dt.date(2025, 3, 21), dt.date(2025, 3, 22)  # bronze keeps 90 days: from 03-22
    for day in (old, kept):
        write_bronze_day(spark, lake, day, [event(f"{day} 08:00:00")], sealed=True)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    retention.python_func(metrics=metrics, lake_uri=lake, as_of="2025-06-20")
    assert metrics.metadata == {
        "dry_run": 0,
        "bronze_days_removed": 1,
        "silver_days_removed": 0,
        "bronze_files_vacuumed": 0,
        "silver_files_vacuumed": 0,
        "days_files_vacuumed": 0,
    }
    assert list(lakes.committed(LakeFS(lake), BRONZE_EVENTS)) == [kept]
