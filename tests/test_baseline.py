"""deep_storage/baseline.py on tiny hand-made training sets (the set's loader faked): what the
baseline reports, its curve, its matrix and its model, and the errors it names."""

from __future__ import annotations

import math
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest

import deep_storage
from deep_storage import baseline
from deep_storage.core.errors import InputError

pytestmark = pytest.mark.unit

RECORD = {
    "name": "stop_outcome",
    "version": "1.0.0",
    "rows_sha256": "0f" * 32,
    "spec": {"features": ["quantity", "spread_bps", "is_buy"], "label": "slippage_breach"},
}


def _split(rows: list[tuple], record: dict = RECORD) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["quantity", "spread_bps", "is_buy", "slippage_breach"])
    frame["is_buy"] = frame["is_buy"].astype("boolean")
    frame["slippage_breach"] = frame["slippage_breach"].astype("boolean")
    frame.attrs["record"] = record
    return frame


# A breach comes with a wide spread; quantity and side carry little. One missing value per split.
TRAIN = [
    (10, 1.0, True, False),
    (12, 2.0, False, False),
    (8, 1.5, True, False),
    (11, None, False, False),
    (9, 2.5, True, False),
    (14, 3.0, False, False),
    (10, 9.0, True, True),
    (13, 11.0, False, True),
    (7, 8.5, True, True),
    (12, 12.0, None, True),
    (9, 10.0, False, True),
    (11, 7.5, True, True),
]
TEST = [
    (10, 1.2, True, False),
    (12, 2.2, False, False),
    (9, None, True, False),
    (11, 6.0, False, False),  # wide, yet no breach: one false positive
    (10, 9.5, True, True),
    (13, 10.5, False, True),
    (8, 2.8, True, True),  # narrow, yet a breach: one false negative
]


@pytest.fixture
def loaded(monkeypatch):
    """Fakes deep_storage.training_set with the given splits; records each call."""
    calls = []

    def use(train_rows, test_rows, record=RECORD):
        splits = (_split(train_rows, record), _split(test_rows, record))

        def fake(name, version, lake=None):
            calls.append((name, version, lake))
            return splits

        monkeypatch.setattr(deep_storage, "training_set", fake, raising=False)
        return calls

    return use


def test_the_baseline_is_judged_on_the_test_split(loaded):
    calls = loaded(TRAIN, TEST)
    out = baseline.train("stop_outcome", "1.0.0", "file:///lake")
    assert calls == [("stop_outcome", "1.0.0", "file:///lake")]
    assert (out.train_rows, out.test_rows) == (12, 7)
    for value in (out.roc_auc, out.precision, out.recall):
        assert 0.0 <= value <= 1.0
    assert out.categories == ["false", "true"]
    assert sum(map(sum, out.confusion_matrix)) == len(TEST)
    assert [sum(row) for row in out.confusion_matrix] == [4, 3]  # actual negatives, positives
    assert len(out.fpr) == len(out.tpr) == len(out.thresholds) >= 2
    assert all(math.isfinite(t) for t in out.thresholds)
    assert out.thresholds == sorted(out.thresholds, reverse=True)
    assert (out.fpr[0], out.tpr[0], out.fpr[-1], out.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert out.features == ["quantity", "spread_bps", "is_buy"]
    assert out.label == "slippage_breach" and out.record == RECORD


def test_the_model_pickles_and_predicts_the_features_it_was_fitted_on(loaded, tmp_path):
    loaded(TRAIN, TEST)
    out = baseline.train("stop_outcome", "1.0.0")
    again = pickle.loads(pickle.dumps(out.model))
    probe = pd.DataFrame(
        {"quantity": [10.0, 10.0], "spread_bps": [1.0, 12.0], "is_buy": [1.0, np.nan]}
    )
    assert list(again.predict(probe)) == [0, 1]  # narrow spread: no breach; wide: a breach
    out.save(tmp_path / "model.joblib")
    scores = joblib.load(tmp_path / "model.joblib").predict_proba(probe)[:, 1]
    assert scores[0] < 0.5 < scores[1]
    meta = out.model_metadata
    assert meta["rows_sha256"] == "0f" * 32 and meta["training_set_version"] == "1.0.0"
    assert meta["features"] == ["quantity", "spread_bps", "is_buy"]
    assert meta["label"] == "slippage_breach" and meta["roc_auc"] == out.roc_auc


def test_a_test_split_the_spread_separates_has_an_auc_of_one(loaded):
    separable = [TEST[0], TEST[1], TEST[4], TEST[5]]  # narrow without, wide with a breach
    loaded(TRAIN, separable)
    out = baseline.train("stop_outcome", "1.0.0")
    assert out.roc_auc == 1.0
    assert out.confusion_matrix == [[2, 0], [0, 2]]
    assert (out.precision, out.recall) == (1.0, 1.0)


def test_a_long_curve_is_thinned_to_at_most_the_points_kfp_draws(loaded):
    rng = np.random.default_rng(0)
    spread = rng.uniform(0, 12, size=1200)
    breach = (spread + rng.normal(0, 3, size=1200)) > 6
    rows = [(10, float(s), True, bool(b)) for s, b in zip(spread, breach, strict=True)]
    loaded(TRAIN, rows)
    out = baseline.train("stop_outcome", "1.0.0")
    assert len(out.thresholds) <= baseline.MAX_CURVE_POINTS
    assert (out.fpr[0], out.tpr[0], out.fpr[-1], out.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert all(math.isfinite(t) for t in out.thresholds)
    assert sum(map(sum, out.confusion_matrix)) == 1200


def test_a_test_split_with_one_class_names_the_set_and_version(loaded):
    loaded(TRAIN, [row for row in TEST if not row[3]])
    with pytest.raises(InputError) as caught:
        baseline.train("stop_outcome", "1.0.0")
    message = str(caught.value)
    assert "training set 'stop_outcome' version '1.0.0' (test split)" in message
    assert "'slippage_breach' is false in every row" in message


def test_a_record_without_features_or_label_is_refused(loaded):
    loaded(TRAIN, TEST, record={"name": "stop_outcome", "spec": {"features": []}})
    with pytest.raises(InputError, match="expected at least one feature and a label"):
        baseline.train("stop_outcome", "1.0.0")


def test_a_text_feature_is_refused_by_name(loaded, monkeypatch):
    record = {**RECORD, "spec": {"features": ["quantity", "side"], "label": "slippage_breach"}}
    loaded(TRAIN, TEST, record=record)
    with pytest.raises(InputError, match="has no column side"):
        baseline.train("stop_outcome", "1.0.0")
    train = _split(TRAIN, record).assign(side="BUY")
    test = _split(TEST, record).assign(side="SELL")
    monkeypatch.setattr(deep_storage, "training_set", lambda *a: (train, test))
    with pytest.raises(InputError, match="feature 'side' is str, expected numbers"):
        baseline.train("stop_outcome", "1.0.0")


def test_an_unlabelled_row_is_refused(loaded):
    loaded(TRAIN, [*TEST, (10, 1.0, True, None)])
    with pytest.raises(InputError, match="1 rows have no 'slippage_breach'"):
        baseline.train("stop_outcome", "1.0.0")


def test_an_empty_version_is_refused_before_loading(loaded):
    calls = loaded(TRAIN, TEST)
    with pytest.raises(InputError, match="expected both"):
        baseline.train("stop_outcome", " ")
    assert calls == []
