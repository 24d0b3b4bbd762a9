"""gold_features through its Python function: gold's library call faked, a real Metrics
artifact."""

import datetime as dt

import pytest
from kfp.dsl import Metrics

from deep_storage.core.dates import DayRange
from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.tables import gold
from deep_storage.tables.gold import GoldResult
from deep_storage_kfp.components import gold_features

pytestmark = pytest.mark.unit


@pytest.fixture
def built(monkeypatch):
    """Fakes gold.run: records each call and returns `result[0]` (set by the test)."""
    calls, result = [], [None]

    def fake_run(days, lake_uri, **settings):
        calls.append((days, lake_uri))
        return result[0]

    monkeypatch.setattr(gold, "run", fake_run)
    return calls, result


def metrics_at(tmp_path) -> Metrics:
    return Metrics(name="metrics", uri=str(tmp_path / "metrics"))


def test_without_days_gold_rebuilds_what_silver_changed_and_returns_that_span(built, tmp_path):
    calls, result = built
    result[0] = GoldResult(
        "s3a://rbs", "run-1", "", rows=42, dates_committed=["2025-06-01", "2025-06-03"]
    )
    metrics = metrics_at(tmp_path)
    first, last = gold_features.python_func(metrics=metrics, lake_uri="s3a://rbs/")
    assert calls == [(None, "s3a://rbs")]
    assert (first, last) == ("2025-06-01", "2025-06-03")
    assert metrics.metadata == {"rows": 42, "days_written": 2, "skipped": 0}


def test_an_explicit_range_arrives_as_days_and_a_skipped_run_returns_no_span(built, tmp_path):
    calls, result = built
    result[0] = GoldResult("s3a://rbs", "run-1", "", skipped=True)
    metrics = metrics_at(tmp_path)
    out = gold_features.python_func(
        metrics=metrics, lake_uri="s3a://rbs", first_day="2025-06-01", last_day="2025-06-02"
    )
    assert calls == [(DayRange(dt.date(2025, 6, 1), dt.date(2025, 6, 2)), "s3a://rbs")]
    assert tuple(out) == ("", "")
    assert metrics.metadata == {"rows": 0, "days_written": 0, "skipped": 1}


def test_a_last_day_alone_is_refused_before_gold_runs(built, tmp_path):
    calls, _ = built
    with pytest.raises(InputError, match=r"^last_day needs first_day$"):
        gold_features.python_func(
            metrics=metrics_at(tmp_path), lake_uri="s3a://rbs", last_day="2025-06-02"
        )
    assert calls == []


def test_golds_own_error_fails_the_task_as_it_is(monkeypatch, tmp_path):
    def no_silver(days, lake_uri, **settings):
        raise LakeStateError("lake s3a://rbs has no silver: run `deep-storage silver` first")

    monkeypatch.setattr(gold, "run", no_silver)
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError, match="has no silver"):
        gold_features.python_func(metrics=metrics, lake_uri="s3a://rbs")
    assert metrics.metadata == {}
