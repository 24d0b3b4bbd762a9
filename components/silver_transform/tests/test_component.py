"""silver_transform through its Python function: silver's library call faked, a real Metrics
artifact. The same on the real services: tests/test_components_on_the_lake.py."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage.core.dates import DayRange
from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.tables import silver
from deep_storage.tables.silver import SilverResult
from deep_storage_kfp.components import silver_transform

pytestmark = pytest.mark.unit


@pytest.fixture
def rebuilt(monkeypatch):
    """Fakes silver.run: records each call; three executions over two days."""
    calls = []

    def fake_run(days, lake_uri, **settings):
        calls.append({"days": days, "lake": lake_uri, **settings})
        return SilverResult(
            lake_uri,
            "run-1",
            days=str(days),
            executions=3,
            partitions_written=2,
            dates_committed=["2025-06-01", "2025-06-02"],
            by_status={"EXECUTED": 2, "FAILED": 1},
        )

    monkeypatch.setattr(silver, "run", fake_run)
    return calls


def metrics_at(tmp_path) -> Metrics:
    return Metrics(name="metrics", uri=str(tmp_path / "metrics"))


def test_the_days_and_the_look_back_arrive_typed_and_executions_are_logged_by_status(
    rebuilt, tmp_path
):
    metrics = metrics_at(tmp_path)
    silver_transform.python_func(
        metrics=metrics,
        first_day="2025-06-01",
        last_day="2025-06-02",
        lake_uri="s3://rbs/",
        lookback_days=3,
    )
    assert rebuilt == [
        {
            "days": DayRange(dt.date(2025, 6, 1), dt.date(2025, 6, 2)),
            "lake": "s3a://rbs",
            "lookback_days": 3,
        }
    ]
    assert metrics.metadata == {
        "executions": 3,
        "partitions_written": 2,
        "dates_committed": 2,
        "skipped": 0,
        "status_executed": 2,
        "status_failed": 1,
    }


def test_a_reversed_range_is_refused_naming_the_parameters_before_silver_runs(rebuilt, tmp_path):
    metrics = metrics_at(tmp_path)
    with pytest.raises(InputError, match="last_day 2025-05-31 is before first_day 2025-06-01"):
        silver_transform.python_func(
            metrics=metrics, first_day="2025-06-01", last_day="2025-05-31", lake_uri="s3a://rbs"
        )
    assert rebuilt == [] and metrics.metadata == {}


def test_silvers_own_error_fails_the_task_as_it_is(monkeypatch, tmp_path):
    def unsealed(days, lake_uri, **settings):
        raise LakeStateError("bronze day 2025-06-01 has no commit: run `deep-storage bronze`")

    monkeypatch.setattr(silver, "run", unsealed)
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError, match=r"^bronze day 2025-06-01 has no commit"):
        silver_transform.python_func(
            metrics=metrics, first_day="2025-06-01", last_day="2025-06-01", lake_uri="s3a://rbs"
        )
    assert metrics.metadata == {}
