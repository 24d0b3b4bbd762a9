"""train_baseline through its Python function: real artifacts, the library's train faked."""

from pathlib import Path

import joblib
import pytest
from kfp.dsl import ClassificationMetrics, Metrics, Model

from deep_storage import baseline
from deep_storage.core.errors import InputError
from deep_storage_kfp.components import train_baseline

pytestmark = pytest.mark.unit


def _fitted() -> baseline.Baseline:
    return baseline.Baseline(
        name="stop_outcome",
        version="3.1.0",
        features=["quantity", "client_success_rate_7d"],
        label="slippage_breach",
        roc_auc=0.75,
        precision=0.5,
        recall=1.0,
        fpr=[0.0, 0.5, 1.0],
        tpr=[0.0, 1.0, 1.0],
        thresholds=[1.9, 0.9, 0.1],
        categories=["false", "true"],
        confusion_matrix=[[1, 1], [0, 2]],
        model={"a": "stand-in for the fitted pipeline"},
        record={"rows_sha256": "ab" * 32, "spec": {}},
        train_rows=16,
        test_rows=4,
    )


def test_logs_the_metrics_the_curve_and_the_matrix_and_saves_the_model(monkeypatch, tmp_path):
    calls = []

    def fake_train(name, version, lake=None):
        calls.append((name, version, lake))
        return _fitted()

    monkeypatch.setattr(baseline, "train", fake_train)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    classification = ClassificationMetrics(name="classification", uri=str(tmp_path / "cls"))
    model = Model(name="model", uri=str(tmp_path / "model"))
    train_baseline.python_func(
        metrics=metrics,
        classification=classification,
        model=model,
        name="stop_outcome",
        version="3.1.0",
    )
    assert calls == [("stop_outcome", "3.1.0", None)]
    assert metrics.metadata == {
        "roc_auc": 0.75,
        "precision": 0.5,
        "recall": 1.0,
        "train_rows": 16,
        "test_rows": 4,
    }
    assert classification.metadata["confidenceMetrics"] == [
        {"confidenceThreshold": 1.9, "recall": 0.0, "falsePositiveRate": 0.0},
        {"confidenceThreshold": 0.9, "recall": 1.0, "falsePositiveRate": 0.5},
        {"confidenceThreshold": 0.1, "recall": 1.0, "falsePositiveRate": 1.0},
    ]
    assert classification.metadata["confusionMatrix"] == {
        "annotationSpecs": [{"displayName": "false"}, {"displayName": "true"}],
        "rows": [{"row": [1, 1]}, {"row": [0, 2]}],
    }
    assert joblib.load(model.path) == {"a": "stand-in for the fitted pipeline"}
    assert model.metadata == {
        "framework": "sklearn",
        "training_set": "stop_outcome",
        "training_set_version": "3.1.0",
        "rows_sha256": "ab" * 32,
        "features": ["quantity", "client_success_rate_7d"],
        "label": "slippage_breach",
        "roc_auc": 0.75,
        "precision": 0.5,
        "recall": 1.0,
        "train_rows": 16,
        "test_rows": 4,
    }


def test_a_lake_uri_is_passed_on(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(baseline, "train", lambda *a: calls.append(a) or _fitted())
    train_baseline.python_func(
        metrics=Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        classification=ClassificationMetrics(name="classification", uri=str(tmp_path / "cls")),
        model=Model(name="model", uri=str(tmp_path / "model")),
        name="stop_outcome",
        version="3.1.0",
        lake_uri="s3a://rbs",
    )
    assert calls == [("stop_outcome", "3.1.0", "s3a://rbs")]


def test_a_set_the_baseline_cannot_fit_fails_the_task_and_saves_no_model(monkeypatch, tmp_path):
    def one_class(name, version, lake=None):
        raise InputError(f"training set {name} {version}: the test split holds one class only")

    monkeypatch.setattr(baseline, "train", one_class)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    model = Model(name="model", uri=str(tmp_path / "model"))
    with pytest.raises(InputError, match=r"^training set stop_outcome 3\.1\.0: the test split"):
        train_baseline.python_func(
            metrics=metrics,
            classification=ClassificationMetrics(name="classification", uri=str(tmp_path / "cls")),
            model=model,
            name="stop_outcome",
            version="3.1.0",
        )
    assert metrics.metadata == {} and model.metadata == {} and not Path(model.path).exists()
