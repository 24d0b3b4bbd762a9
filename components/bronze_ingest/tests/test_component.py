"""bronze_ingest through its Python function: bronze's library call faked, a real Metrics
artifact. The same on the real services: tests/test_components_on_the_lake.py."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage.core.dates import DayRange
from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.tables import bronze
from deep_storage.tables.bronze import BronzeResult, DayResult
from deep_storage_kfp.components import bronze_ingest

pytestmark = pytest.mark.unit

JUNE_1, JUNE_2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


@pytest.fixture
def ingested(monkeypatch):
    """Fakes bronze.run: records each call and returns `result[0]` (set by the test)."""
    calls, result = [], [BronzeResult("s3a://rbs", "run-1")]

    def fake_run(days, lake_uri, **settings):
        calls.append({"days": days, "lake": lake_uri, **settings})
        return result[0]

    monkeypatch.setattr(bronze, "run", fake_run)
    return calls, result


def metrics_at(tmp_path) -> Metrics:
    return Metrics(name="metrics", uri=str(tmp_path / "metrics"))


def test_the_schedule_time_is_the_day_and_the_settings_arrive_typed(ingested, tmp_path):
    calls, result = ingested
    result[0] = BronzeResult(
        "s3a://rbs/lake",
        "run-1",
        days=[
            # An earlier day caught up, kept as committed; the day itself, unsealed by two writers.
            DayResult("2025-06-01", 5, sealed=True, reason=None, changed=False),
            DayResult("2025-06-02", 7, False, "open writers", ["pid 42", "pid 43"]),
        ],
        left=["2025-06-03"],
    )
    metrics = metrics_at(tmp_path)
    first, last = bronze_ingest.python_func(
        metrics=metrics,
        lake_uri="s3://rbs/lake/",
        scheduled_time="2025-06-02T23:30:00Z",
        create_time="2025-07-01T00:00:00Z",
        seal_margin_s=120,
        max_days=3,
    )
    (call,) = calls
    assert call["days"] == DayRange(JUNE_2, JUNE_2)
    assert call["lake"] == "s3a://rbs/lake"
    assert call["seal_margin"] == dt.timedelta(minutes=2)
    assert (call["max_days"], call["catch_up"]) == (3, True)
    assert (first, last) == ("2025-06-01", "2025-06-02")
    assert metrics.metadata == {
        "days": 2,
        "days_changed": 1,
        "rows": 12,
        "unsealed_days": 1,
        "days_left": 1,
        "stuck_writers": 2,
    }


def test_a_run_date_beats_the_schedule_and_an_unresolved_placeholder_means_none(ingested, tmp_path):
    calls, result = ingested
    result[0] = BronzeResult("s3a://rbs", "run-1", days=[DayResult("2025-06-01", 1, True, None)])
    bronze_ingest.python_func(
        metrics=metrics_at(tmp_path),
        lake_uri="s3a://rbs",
        run_date="2025-06-01",
        until_date="2025-06-02",
        scheduled_time="2025-06-09T23:30:00Z",
    )
    # A one-off run: KFP leaves the schedule's placeholder as it is; the creation time decides.
    bronze_ingest.python_func(
        metrics=metrics_at(tmp_path),
        lake_uri="s3a://rbs",
        scheduled_time="{{$.pipeline_job_schedule_time_utc}}",
        create_time="2025-06-01T00:30:00+02:00",  # 2025-05-31T22:30Z
    )
    assert [c["days"] for c in calls] == [
        DayRange(JUNE_1, JUNE_2),
        DayRange(dt.date(2025, 5, 31), dt.date(2025, 5, 31)),
    ]


def test_without_any_date_bronze_catches_up_to_today_in_the_bucket(ingested, tmp_path, monkeypatch):
    calls, _ = ingested
    monkeypatch.setenv("S3_BUCKET", "rbs")
    first, last = bronze_ingest.python_func(metrics=metrics_at(tmp_path))
    assert [(c["days"], c["lake"]) for c in calls] == [(None, "s3a://rbs")]
    assert (first, last) == ("", "")


def test_a_bad_run_date_is_named_as_the_parameter_before_bronze_runs(ingested, tmp_path):
    calls, _ = ingested
    metrics = metrics_at(tmp_path)
    with pytest.raises(InputError, match=r"run_date '2025-06-31'.*expected YYYY-MM-DD"):
        bronze_ingest.python_func(metrics=metrics, lake_uri="s3a://rbs", run_date="2025-06-31")
    assert calls == [] and metrics.metadata == {}


def test_a_requested_day_bronze_did_not_ingest_fails_the_task_and_logs_nothing(ingested, tmp_path):
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError, match="bronze ingested no day for 2025-06-01"):
        bronze_ingest.python_func(metrics=metrics, lake_uri="s3a://rbs", run_date="2025-06-01")
    assert metrics.metadata == {}


def test_bronzes_own_error_fails_the_task_as_it_is(monkeypatch, tmp_path):
    def held(days, lake_uri, **settings):
        raise LakeStateError("the lake s3a://rbs is held by silver (run r-9)")

    monkeypatch.setattr(bronze, "run", held)
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError, match=r"^the lake s3a://rbs is held by silver \(run r-9\)$"):
        bronze_ingest.python_func(metrics=metrics, lake_uri="s3a://rbs", run_date="2025-06-01")
    assert metrics.metadata == {}
