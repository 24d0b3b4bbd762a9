"""training_set through its Python function, with real artifacts and a fake step."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from kfp.dsl import Markdown, Metrics

from deep_storage import steps
from deep_storage.core.errors import InputError
from deep_storage_kfp.components import training_set

pytestmark = pytest.mark.unit

PAGE = "# stop_outcome 1.0.0\n\n| split | rows |\n| --- | --- |\n| train | 80 |\n| test | 20 |\n"


def _artifacts(tmp_path):
    return {
        "metrics": Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        "report": Markdown(name="report", uri=str(tmp_path / "report")),
    }


def test_writes_the_record_page_and_logs_the_counts(monkeypatch, tmp_path):
    calls = []

    def fake_training_set(lake_uri, name, version, from_day, to_day, test_from=""):
        calls.append((lake_uri, name, version, from_day, to_day, test_from))
        return SimpleNamespace(
            metrics={"train_rows": 80, "test_rows": 20},
            markdown=PAGE,
            outcome="released",
            record={"name": name, "version": version},
        )

    monkeypatch.setattr(steps, "training_set", fake_training_set, raising=False)
    artifacts = _artifacts(tmp_path)
    training_set.python_func(
        **artifacts,
        name="stop_outcome",
        version="1.0.0",
        from_day="2025-06-01",
        to_day="2025-06-28",
        lake_uri="file:///lake",
    )
    assert calls == [("file:///lake", "stop_outcome", "1.0.0", "2025-06-01", "2025-06-28", "")]
    assert Path(artifacts["report"].path).read_text() == PAGE
    assert artifacts["metrics"].metadata == {"train_rows": 80, "test_rows": 20}


def test_a_refused_version_fails_the_task_with_the_steps_error(monkeypatch, tmp_path):
    def refused(*args, **kwargs):
        raise InputError("training set 'stop_outcome' version '1.0.0' is released with other rows")

    monkeypatch.setattr(steps, "training_set", refused, raising=False)
    with pytest.raises(InputError, match="released with other rows"):
        training_set.python_func(
            **_artifacts(tmp_path),
            name="stop_outcome",
            version="1.0.0",
            from_day="2025-06-01",
            to_day="2025-06-28",
        )
