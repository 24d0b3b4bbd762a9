"""A baseline model for a released training set: the number any later model has to beat.

`train(name, version)` loads the set's train and test splits (`deep_storage.training_set`), fits
one fixed scikit-learn pipeline on the train split (median imputation, standard scaling, a
logistic regression, random_state 0) on the features and label the set's record names, and
judges it on the test split: ROC AUC, precision and recall at 0.5, the ROC curve and the
confusion matrix. Everything about the baseline is decided here; the KFP component
`train_baseline` only logs what this returns and saves the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deep_storage.core.errors import InputError

# What a curve may carry: KFP's UI draws every point it is given, and an ROC curve of a large
# test split has one per distinct score.
MAX_CURVE_POINTS = 200
CATEGORIES = ["false", "true"]  # the confusion matrix's rows (actual) and columns (predicted)


@dataclass
class Baseline:
    """The fitted baseline and how it did on the set's test split."""

    name: str
    version: str
    features: list[str]
    label: str
    roc_auc: float
    precision: float
    recall: float
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]  # finite, descending; the first lies above every score
    categories: list[str]
    confusion_matrix: list[list[int]]  # rows: actual false, true; columns: predicted
    model: Any  # sklearn.pipeline.Pipeline; predict_proba takes a frame of `features`
    record: dict = field(default_factory=dict)
    train_rows: int = 0
    test_rows: int = 0

    @property
    def metrics(self) -> dict[str, float]:
        return {
            "roc_auc": self.roc_auc,
            "precision": self.precision,
            "recall": self.recall,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
        }

    @property
    def model_metadata(self) -> dict[str, Any]:
        """What a saved model says about itself: which set made it, on what, and how it did."""
        meta: dict[str, Any] = {
            "framework": "sklearn",
            "training_set": self.name,
            "training_set_version": self.version,
            "features": list(self.features),
            "label": self.label,
            **self.metrics,
        }
        if self.record.get("rows_sha256"):
            meta["rows_sha256"] = self.record["rows_sha256"]
        return meta

    def save(self, path: str | Path) -> None:
        """The fitted pipeline, with joblib: `joblib.load(path).predict_proba(frame[features])`."""
        import joblib

        joblib.dump(self.model, path)


def train(name: str, version: str, lake: str | None = None) -> Baseline:
    """Fit the baseline on training set `name` at `version` and judge it on its test split.

    Raises InputError when the set's record names no features or label, a column is missing or
    not numeric, a label is missing or not boolean, or a split does not hold both classes."""
    import deep_storage

    if not name.strip() or not version.strip():
        raise InputError(
            f"training set name {name!r} and version {version!r}: expected both, e.g. "
            "name 'stop_outcome' and version '1.0.0'"
        )
    train_frame, test_frame = deep_storage.training_set(name, version, lake)
    where = f"training set {name!r} version {version!r}"
    record = dict(train_frame.attrs.get("record") or test_frame.attrs.get("record") or {})
    features, label = _spec(record, where)
    x_train, y_train = _columns(train_frame, features, label, f"{where} (train split)")
    x_test, y_test = _columns(test_frame, features, label, f"{where} (test split)")
    model = _pipeline().fit(x_train, y_train)
    scores = model.predict_proba(x_test)[:, 1]
    return Baseline(
        name=name,
        version=version,
        features=features,
        label=label,
        model=model,
        record=record,
        train_rows=len(y_train),
        test_rows=len(y_test),
        categories=list(CATEGORIES),
        **_judged(y_test, scores),
    )


def _spec(record: dict, where: str) -> tuple[list[str], str]:
    spec = record.get("spec") or {}
    features, label = list(spec.get("features") or []), spec.get("label") or ""
    if not features or not label:
        raise InputError(
            f"{where}: its record's spec names features {features} and label {label!r}: "
            "expected at least one feature and a label (is the version released?)"
        )
    return features, label


def _columns(frame, features: list[str], label: str, where: str):
    """The features as a float frame (NaN for missing values) and the label as 0/1."""
    import pandas as pd

    missing = [c for c in (*features, label) if c not in frame.columns]
    if missing:
        raise InputError(f"{where} has no column {', '.join(missing)}: the record names it")
    if frame.empty:
        raise InputError(f"{where} has no rows: expected some in each split")
    x = {}
    for column in features:
        try:
            x[column] = frame[column].to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            raise InputError(
                f"{where}: feature {column!r} is {frame[column].dtype}, expected numbers or "
                "booleans (the baseline takes numeric features only)"
            ) from None
    y = _binary(frame[label], label, where)
    return pd.DataFrame(x, index=frame.index, columns=features), y


def _binary(series, label: str, where: str) -> np.ndarray:
    unlabelled = int(series.isna().sum())
    if unlabelled:
        raise InputError(
            f"{where}: {unlabelled} rows have no {label!r}: expected every row labelled"
        )
    try:
        values = series.to_numpy(dtype="float64")
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if not set(np.unique(values)) <= {0.0, 1.0}:
        raise InputError(f"{where}: label {label!r} is {series.dtype}, expected booleans or 0/1")
    if len(np.unique(values)) < 2:
        only = CATEGORIES[int(values[0])]
        raise InputError(
            f"{where}: label {label!r} is {only} in every row: the baseline needs both classes "
            "in each split; widen from_day..to_day or move test_from"
        )
    return values.astype(int)


def _pipeline():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=1000, random_state=0)),
        ]
    )


def _judged(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC AUC, precision and recall at 0.5, the ROC curve (at most MAX_CURVE_POINTS points,
    finite thresholds) and the confusion matrix over CATEGORIES."""
    from sklearn import metrics

    predicted = (scores >= 0.5).astype(int)
    fpr, tpr, thresholds = metrics.roc_curve(y, scores)
    finite = thresholds[np.isfinite(thresholds)]
    # sklearn's first threshold is +inf ("nothing is positive"); KFP takes finite numbers only.
    top = 1.0 + float(finite.max()) if finite.size else 1.0
    thresholds = np.where(np.isfinite(thresholds), thresholds, top)
    keep = _thin(len(fpr), MAX_CURVE_POINTS)
    return {
        "roc_auc": float(metrics.roc_auc_score(y, scores)),
        "precision": float(metrics.precision_score(y, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(y, predicted, zero_division=0)),
        "fpr": [float(v) for v in fpr[keep]],
        "tpr": [float(v) for v in tpr[keep]],
        "thresholds": [float(v) for v in thresholds[keep]],
        "confusion_matrix": metrics.confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
    }


def _thin(points: int, most: int) -> np.ndarray:
    """Indices of at most `most` points, evenly spread, the first and the last always kept."""
    if points <= most:
        return np.arange(points)
    return np.unique(np.linspace(0, points - 1, most).round().astype(int))
