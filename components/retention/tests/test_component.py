"""retention through its Python function: the lake's retention call faked, a real Metrics
artifact. The same on the real services: tests/test_components_on_the_lake.py."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.lake import retention as lake_retention
from deep_storage.lake.retention import RetentionResult
from deep_storage_kfp.components import retention

pytestmark = pytest.mark.unit


@pytest.fixture
def removed(monkeypatch):
    """Fakes the lake's retention.run: records each call; two bronze days go."""
    calls = []

    def fake_run(lake_uri, *, as_of=None, dry_run=False, **settings):
        calls.append((lake_uri, as_of, dry_run))
        return RetentionResult(
            lake_uri,
            "run-1",
            str(as_of),
            dry_run,
            days_removed={
                "bronze/events": ["2025-03-20", "2025-03-21"],
                "silver/stop_executions": [],
            },
            files_vacuumed={"bronze/events": 4, "silver/stop_executions": 0, "_days": 1},
        )

    monkeypatch.setattr(lake_retention, "run", fake_run)
    return calls


def metrics_at(tmp_path) -> Metrics:
    return Metrics(name="metrics", uri=str(tmp_path / "metrics"))


def test_the_day_given_is_the_end_of_the_windows_and_what_went_is_logged(removed, tmp_path):
    metrics = metrics_at(tmp_path)
    retention.python_func(metrics=metrics, lake_uri="s3://rbs/", as_of="2025-06-20")
    assert removed == [("s3a://rbs", dt.datetime(2025, 6, 20, tzinfo=dt.UTC), False)]
    assert metrics.metadata == {
        "dry_run": 0,
        "bronze_days_removed": 2,
        "silver_days_removed": 0,
        "bronze_files_vacuumed": 4,
        "silver_files_vacuumed": 0,
        "days_files_vacuumed": 1,
    }


def test_a_dry_run_says_so_and_no_time_means_now(removed, tmp_path):
    metrics = metrics_at(tmp_path)
    retention.python_func(metrics=metrics, lake_uri="s3a://rbs", dry_run=True)
    assert removed == [("s3a://rbs", None, True)]
    assert metrics.metadata["dry_run"] == 1


def test_a_bad_time_is_named_as_the_parameter_before_anything_is_removed(removed, tmp_path):
    with pytest.raises(InputError, match="as_of 'last monday' is not a time"):
        retention.python_func(
            metrics=metrics_at(tmp_path), lake_uri="s3a://rbs", as_of="last monday"
        )
    assert removed == []


def test_the_lakes_own_error_fails_the_task_as_it_is(monkeypatch, tmp_path):
    def held(lake_uri, **settings):
        raise LakeStateError("the lake s3a://rbs is held by bronze (run r-7)")

    monkeypatch.setattr(lake_retention, "run", held)
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError, match="held by bronze"):
        retention.python_func(metrics=metrics, lake_uri="s3a://rbs")
    assert metrics.metadata == {}
