"""compiled/: the pipeline's and each component's YAML, generated here and nowhere else."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from kfp import compiler

from deep_storage_kfp import components
from deep_storage_kfp.pipelines.deep_storage_pipeline import deep_storage_pipeline
from deep_storage_kfp.pipelines.training_pipeline import deep_storage_training_pipeline

REPO = Path(__file__).resolve().parent.parent
COMPILED = REPO / "compiled"
PIPELINE_FILE = "deep_storage_pipeline.yaml"
TRAINING_FILE = "training_pipeline.yaml"
# Each pipeline's file, named after its module (pipelines/<module>.py -> compiled/<module>.yaml).
PIPELINES = {
    PIPELINE_FILE: deep_storage_pipeline,
    TRAINING_FILE: deep_storage_training_pipeline,
}


def _targets():
    yield from PIPELINES.items()
    for name in components.__all__:
        yield f"components/{name}.yaml", getattr(components, name)


def compile_all(out_dir: Path = COMPILED) -> list[Path]:
    written = []
    for rel, func in _targets():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _compile(func, path)
        written.append(path)
    return written


def _compile(func, path: Path) -> None:
    """Caching off, in every spec: a cached bronze or gate would skip reading the source or
    judging the lake. The pipeline sets it per task (the platform profile). A component compiled
    on its own is wrapped by the SDK in a one-task pipeline whose task caches (KFP 2.17 ignores
    `--disable-execution-caching-by-default` there): its one task is switched off here."""
    compiler.Compiler().compile(func, str(path))
    if any(func is pipeline for pipeline in PIPELINES.values()):
        return
    text = path.read_text()
    cached = "cachingOptions:\n          enableCache: true\n"
    if text.count(cached) != 1:
        raise RuntimeError(f"{path.name}: expected one cached task to switch off")
    path.write_text(text.replace(cached, "cachingOptions: {}\n"))


def _comparable(text: str) -> list[str]:
    # The SDK version is stamped into the spec; a patch release of kfp is not a change of ours.
    return [line for line in text.splitlines() if "sdkVersion:" not in line]


def stale(out_dir: Path = COMPILED) -> list[str]:
    """Files of compiled/ that differ from a fresh compile, with a short diff each."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in compile_all(Path(tmp)):
            rel = fresh.relative_to(tmp)
            current = out_dir / rel
            if not current.exists():
                problems.append(f"{rel}: missing")
                continue
            diff = list(
                difflib.unified_diff(
                    _comparable(current.read_text()),
                    _comparable(fresh.read_text()),
                    lineterm="",
                    n=0,
                )
            )
            if diff:
                problems.append(f"{rel}: differs ({'; '.join(diff[2:5])[:200]})")
    return problems
