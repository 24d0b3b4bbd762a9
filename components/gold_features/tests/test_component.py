"""gold_features through its Python function, with a real Metrics artifact and a fake step."""

import pytest
from kfp.dsl import Metrics

from deep_storage import steps
from deep_storage_kfp.components import gold_features

pytestmark = pytest.mark.unit


def test_passes_the_days_on_and_returns_the_span_gold_rebuilt(monkeypatch, tmp_path):
    calls = []

    def fake_gold(lake_uri="", first_day="", last_day="", names=steps.PARAMETERS):
        calls.append((lake_uri, first_day, last_day))
        return steps.StepResult("2025-06-01", "2025-06-03", {"days": 3, "rows": 42})

    monkeypatch.setattr(steps, "gold", fake_gold, raising=False)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    first, last = gold_features.python_func(metrics=metrics, lake_uri="file:///lake")
    assert calls == [("file:///lake", "", "")]
    assert (first, last) == ("2025-06-01", "2025-06-03")
    assert metrics.metadata == {"days": 3, "rows": 42}


def test_an_explicit_range_reaches_the_step_as_given(monkeypatch, tmp_path):
    calls = []

    def fake_gold(lake_uri="", first_day="", last_day="", names=steps.PARAMETERS):
        calls.append((lake_uri, first_day, last_day))
        return steps.StepResult(first_day, last_day, {"days": 2})

    monkeypatch.setattr(steps, "gold", fake_gold, raising=False)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    out = gold_features.python_func(metrics=metrics, first_day="2025-06-01", last_day="2025-06-02")
    assert calls == [("", "2025-06-01", "2025-06-02")]
    assert tuple(out) == ("2025-06-01", "2025-06-02")
