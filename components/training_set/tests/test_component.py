"""training_set through its Python function: the release faked, real Markdown and Metrics
artifacts."""

import datetime as dt
from pathlib import Path

import pytest
from kfp.dsl import Markdown, Metrics

from deep_storage import training
from deep_storage.core.errors import InputError
from deep_storage.quality.verdict import RuleResult
from deep_storage.tables.training_sets import ReleasedVersionError
from deep_storage.training import TrainingSetRelease
from deep_storage_kfp.components import training_set

pytestmark = pytest.mark.unit

PAGE = "# stop_outcome 1.0.1\n\n| split | rows |\n| --- | --- |\n| train | 80 |\n| test | 20 |\n"
REFUSED = (
    "training set stop_outcome 1.0.0 exists with other rows (sha256 0f0f0f0f0f0f.. vs "
    "abababababab..): release a new version, e.g. --version 1.0.1"
)


@pytest.fixture
def released(monkeypatch):
    """Fakes release_training_set: records each call; releases 1.0.1 with one rule warned."""
    calls = []

    def fake_release(name, version, first, last, test_from=None, *, lake=None, **settings):
        calls.append((name, version, first, last, test_from, lake))
        record = {
            "name": name,
            "version": "1.0.1",
            "rows": {"train": 80, "test": 20},
            "positive_share": {"train": 0.5, "test": 0.25, "overall": 0.45},
        }
        results = [
            RuleResult("splits_disjoint", "fail", True, "no execution in both splits", 0),
            RuleResult("label_share_within_range", "warn", False, "share in [0.1, 0.9]", 0.95),
        ]
        return TrainingSetRelease("released", record, results, PAGE)

    monkeypatch.setattr(training, "release_training_set", fake_release)
    return calls


def artifacts(tmp_path) -> dict:
    return {
        "metrics": Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        "report": Markdown(name="report", uri=str(tmp_path / "report")),
    }


def test_the_days_arrive_typed_and_the_record_page_and_counts_are_written(released, tmp_path):
    out = artifacts(tmp_path)
    (version,) = training_set.python_func(
        **out,
        name="stop_outcome",
        from_day="2025-06-01",
        to_day="2025-06-28",
        test_from="2025-06-23",
        lake_uri="s3://rbs/",
    )
    first, last, split = dt.date(2025, 6, 1), dt.date(2025, 6, 28), dt.date(2025, 6, 23)
    assert released == [("stop_outcome", "", first, last, split, "s3a://rbs")]
    assert version == "1.0.1"  # no version given: the one the release chose
    assert Path(out["report"].path).read_text() == PAGE
    assert out["metrics"].metadata == {
        "released": 1,
        "rows_train": 80,
        "rows_test": 20,
        "positive_share_train": 0.5,
        "positive_share_test": 0.25,
        "positive_share_overall": 0.45,
        "rules_warned": 1,
    }


def test_no_days_mean_the_default_window_and_a_version_is_passed_as_given(released, tmp_path):
    training_set.python_func(**artifacts(tmp_path), version="2.0.0", lake_uri="s3a://rbs")
    assert released == [("stop_outcome", "2.0.0", None, None, None, "s3a://rbs")]


def test_one_end_of_the_range_alone_is_refused_before_anything_is_released(released, tmp_path):
    out = artifacts(tmp_path)
    with pytest.raises(InputError, match="give both from_day and to_day, or neither"):
        training_set.python_func(**out, from_day="2025-06-01", lake_uri="s3a://rbs")
    assert released == [] and not Path(out["report"].path).exists()


def test_a_refused_version_fails_the_task_with_the_releases_error(monkeypatch, tmp_path):
    def refused(*args, **kwargs):
        raise ReleasedVersionError(REFUSED)

    monkeypatch.setattr(training, "release_training_set", refused)
    out = artifacts(tmp_path)
    with pytest.raises(ReleasedVersionError) as failed:
        training_set.python_func(**out, version="1.0.0", lake_uri="s3a://rbs")
    assert str(failed.value) == REFUSED
    assert out["metrics"].metadata == {} and not Path(out["report"].path).exists()
