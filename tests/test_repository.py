"""The repository stands on its own: its README's layout is its tree, and nothing points outside
it for what defines the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests import test_architecture as architecture

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_the_readme_layout_lists_every_top_level_folder_and_only_those():
    folders = {p.split("/", 1)[0] for p in _tracked() if "/" in p and not p.startswith(".")}
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Layout") : readme.index("## Commands")]
    listed = set(re.findall(r"`([a-z_]+)/`", table))
    assert listed == folders


def test_nothing_refers_to_files_outside_the_repository():
    offending = [
        f"{path}:{n}"
        for path in _tracked()
        if path.endswith((".py", ".md")) and path != "tests/test_repository.py"
        for n, line in enumerate((REPO / path).read_text().splitlines(), 1)
        if any(ref in line for ref in ("shared" + "/", "source-schema" + ".md", "pitfalls" + ".md"))
    ]
    assert offending == []


ROOTS = ("deep_storage", "components", "pipelines", "tests", "benchmarks", "demo", "spark_image",
         "deploy", "docs", "examples", "compiled")  # fmt: skip
LAYERS = [layer for layer in architecture.LAYERS if layer not in ("entry", "kfp")]
WRITTEN_BY_RUNS = {"benchmarks/results/latest.json"}  # `make bench` writes it; not kept


def test_every_path_the_docs_name_exists():
    """A path in backticks in the README or docs/ (`deep_storage/lake/writer.py`, or a layer's
    `lake/writer.py`) is a file or folder of the repository: docs move with the code."""
    rooted = re.compile(rf"`((?:{'|'.join(ROOTS)})/[\w./-]*)`")
    in_library = re.compile(rf"`((?:{'|'.join(LAYERS)})/\w+\.py)`")
    docs = [
        "README.md",
        "spark_image/README.md",
        *sorted(p.name for p in (REPO / "docs").glob("*.md")),
    ]
    missing = []
    for doc in docs:
        path = REPO / doc if "/" in doc or doc == "README.md" else REPO / "docs" / doc
        text = path.read_text()
        named = rooted.findall(text) + [f"deep_storage/{p}" for p in in_library.findall(text)]
        missing += [
            f"{doc}: {p}"
            for p in named
            if "*" not in p and p not in WRITTEN_BY_RUNS and not (REPO / p).exists()
        ]
    assert sorted(set(missing)) == []
