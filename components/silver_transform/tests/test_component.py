"""silver_transform through its Python function, with a real Metrics artifact."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage.core.dates import DayRange
from deep_storage.tables import bronze
from deep_storage_kfp.components import silver_transform
from tests.events import event, insert

pytestmark = pytest.mark.integration


def test_rebuilds_the_days_and_logs_executions_per_status(db, spark, lake, tmp_path):
    insert(
        db,
        [
            event("2025-06-01 08:00:00", "STOP_TRIGGERED", execution_token="a"),
            event("2025-06-01 08:00:01", "FAILED", execution_token="a", error_message="rejected"),
            event("2025-06-01 09:00:00", "STOP_TRIGGERED", execution_token="b"),
        ],
    )
    bronze.run(DayRange(dt.date(2025, 6, 1), dt.date(2025, 6, 1)), lake, spark=spark)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    silver_transform.python_func(
        metrics=metrics,
        first_day="2025-06-01",
        last_day="2025-06-01",
        lake_uri=lake,
        lookback_days=1,
    )
    assert metrics.metadata == {
        "executions": 2,
        "partitions_written": 1,
        "dates_committed": 1,
        "skipped": 0,
        "status_failed": 1,
        "status_pending": 1,
    }
