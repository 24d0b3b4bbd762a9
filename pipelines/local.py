"""Run a whole pipeline on this machine with kfp.local's SubprocessRunner (no Docker): the hourly
one (`run`, `deep-storage run-local`) or the training one (`run_training_local`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from deep_storage.core import defaults
from deep_storage.core.errors import DeepStorageError


class LocalRunError(DeepStorageError):
    exit_code = 7


@dataclass
class LocalRun:
    root: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


def run(
    first: dt.date,
    last: dt.date | None,
    lake: str,
    pipeline_root: Path,
    lookback_days: int = defaults.LOOKBACK_DAYS,
) -> LocalRun:
    """The hourly pipeline (bronze -> silver -> gate -> retention) for first..last."""
    from deep_storage_kfp.pipelines.deep_storage_pipeline import build

    return _run_pipeline(
        build(local=True),
        {
            "run_date": first.isoformat(),
            "until_date": last.isoformat() if last else "",
            "lake_uri": lake,
            "lookback_days": lookback_days,
        },
        pipeline_root,
        outputs=("report", "summary"),
    )


def run_training_local(
    version: str,
    lake: str,
    pipeline_root: Path,
    name: str = "",
    from_day: str = "",
    to_day: str = "",
    test_from: str = "",
) -> LocalRun:
    """The training pipeline (gold features -> training set -> baseline) for one version of a
    training set; an empty name means the pipeline's default set, empty days its default window.
    The outputs are the training set's Markdown `report` and the baseline's `model`."""
    from deep_storage_kfp.pipelines.training_pipeline import build

    arguments = {
        "version": version,
        "lake_uri": lake,
        "from_day": from_day,
        "to_day": to_day,
        "test_from": test_from,
    }
    if name:
        arguments["name"] = name
    return _run_pipeline(build(local=True), arguments, pipeline_root, outputs=("report", "model"))


def _run_pipeline(pipeline, arguments: dict, pipeline_root: Path, outputs: tuple) -> LocalRun:
    """Run `pipeline` through kfp.local's SubprocessRunner in this venv; the run's folder, the
    `outputs` artifacts found in its tasks' folders, and each task's Metrics."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    before = set(pipeline_root.iterdir())
    try:
        pipeline(**arguments)
    except RuntimeError as exc:
        raise LocalRunError(
            f"local pipeline run failed: {str(exc).splitlines()[0]} (the task's log is above)"
        ) from None
    runs = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    return _collected(runs[-1] if runs else pipeline_root, outputs)


def _collected(root: Path, outputs: tuple) -> LocalRun:
    result = LocalRun(root)
    for task_dir in sorted(p for p in result.root.iterdir() if p.is_dir()):
        for name in outputs:
            if (task_dir / name).exists():
                result.outputs[name] = task_dir / name
        executor_output = task_dir / "executor_output.json"
        if executor_output.exists():
            data = json.loads(executor_output.read_text())
            for artifact in data.get("artifacts", {}).get("metrics", {}).get("artifacts", []):
                result.metrics[task_dir.name] = artifact.get("metadata", {})
    return result
