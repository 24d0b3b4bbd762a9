"""bronze_ingest through its Python function, with a real Metrics artifact, on real services."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage import lake as lakes
from deep_storage.lake import BRONZE_EVENTS, LakeFS
from deep_storage_kfp.components import bronze_ingest
from tests.events import event, insert
from tests.lake_fixtures import recommit

pytestmark = pytest.mark.integration


def test_resolves_the_day_from_the_schedule_time_and_logs_metrics(db, spark, lake, tmp_path):
    insert(db, [event("2025-06-01 08:00:00"), event("2025-06-01 09:00:00")])
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    first, last = bronze_ingest.python_func(
        metrics=metrics,
        lake_uri=lake,
        scheduled_time="2025-06-01T23:30:00Z",
        create_time="2025-07-01T00:00:00Z",
    )
    assert (first, last) == ("2025-06-01", "2025-06-01")
    assert metrics.metadata == {
        "days": 1,
        "days_changed": 1,
        "rows": 2,
        "unsealed_days": 0,
        "days_left": 0,
        "stuck_writers": 0,
    }
    assert lakes.committed_day(LakeFS(lake), BRONZE_EVENTS, dt.date(2025, 6, 1)).rows == 2


def test_a_run_catches_up_an_unsealed_earlier_day(db, spark, lake, tmp_path):
    insert(db, [event("2025-06-01 08:00:00"), event("2025-06-03 08:00:00")])
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    bronze_ingest.python_func(metrics=metrics, lake_uri=lake, run_date="2025-06-01")
    # as if that run had met an open transaction
    recommit(lake, BRONZE_EVENTS, dt.date(2025, 6, 1), sealed=False)
    first, last = bronze_ingest.python_func(metrics=metrics, lake_uri=lake, run_date="2025-06-03")
    assert (first, last) == ("2025-06-01", "2025-06-03")
    assert metrics.metadata["days"] == 3 and metrics.metadata["rows"] == 2
