"""The repository stands on its own: its README's layout is its tree, and nothing points outside
it for what defines the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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
