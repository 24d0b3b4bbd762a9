"""Run the whole pipeline on this machine with kfp.local's SubprocessRunner (no Docker)."""

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
    from kfp import local

    from deep_storage_kfp.pipelines.deep_storage_pipeline import build

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    before = set(pipeline_root.iterdir())
    try:
        build(local=True)(
            run_date=first.isoformat(),
            until_date=last.isoformat() if last else "",
            lake_uri=lake,
            lookback_days=lookback_days,
        )
    except RuntimeError as exc:
        raise LocalRunError(
            f"local pipeline run failed: {str(exc).splitlines()[0]} (the task's log is above)"
        ) from None
    runs = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    result = LocalRun(runs[-1] if runs else pipeline_root)
    for task_dir in sorted(p for p in result.root.iterdir() if p.is_dir()):
        for name in ("report", "summary"):
            if (task_dir / name).exists():
                result.outputs[name] = task_dir / name
        executor_output = task_dir / "executor_output.json"
        if executor_output.exists():
            data = json.loads(executor_output.read_text())
            for artifact in data.get("artifacts", {}).get("metrics", {}).get("artifacts", []):
                result.metrics[task_dir.name] = artifact.get("metadata", {})
    return result
