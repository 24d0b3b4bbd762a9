"""The architecture (docs/architecture.md draws it).

deep_storage's subpackages are its layers, bottom to top; the modules directly in deep_storage/
are the entry points on top, and components/ and pipelines/ (KFP) sit above them. The import
rules are import-linter contracts in pyproject.toml ([tool.importlinter]): no import up a layer,
no cycles, the library never imports kfp or what is not shipped, components/ and pipelines/ use
the library only through its entry points and core. `make lint` runs them and so does the first
test here; the second proves they catch a violation. What import-linter cannot say stays here:
function length, the lazy face (importing a layer loads nothing above it), the public names, the
wheel's packages, and the docs' layout and picture.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
LIBRARY = "deep_storage"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CONTRACTS = PYPROJECT["tool"]["importlinter"]["contracts"]
MAX_FUNCTION_LINES = 60


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [p for p in out.stdout.split() if (REPO / p).is_file()]


def _module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def library_layers() -> list[str]:
    """The library's folders, top to bottom, as the layers contract lists them (its first
    layer is the entry points, the modules directly in deep_storage/)."""
    (contract,) = [c for c in CONTRACTS if c["type"] == "layers" and c.get("containers")]
    assert contract["containers"] == [LIBRARY] and contract["exhaustive"]
    return contract["layers"][1:]


# Bottom to top: the library's folders, then "entry" (the modules directly in deep_storage/) and
# "kfp" (components/, pipelines/). tests/test_repository.py reads it too.
LAYERS = (*reversed(library_layers()), "entry", "kfp")


# --- the import rules: import-linter's contracts ----------------------------------------------


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`lint-imports` from this venv on pyproject's contracts, with `cwd` first on the path."""
    command = Path(sys.executable).parent / "lint-imports"
    assert command.is_file(), f"{command} is missing: `make install` (dev extra: import-linter)"
    return subprocess.run(
        [str(command), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "300", **(env or {})},  # one line per contract
        capture_output=True,
        text=True,
    )


def verdicts(output: str) -> dict[str, str]:
    """Each contract's name and its verdict (KEPT or BROKEN) from lint-imports' summary."""
    found = {}
    for contract in CONTRACTS:
        line = re.search(rf"^{re.escape(contract['name'])} (KEPT|BROKEN)\b", output, re.M)
        found[contract["name"]] = line.group(1) if line else "missing"
    return found


def test_the_import_contracts_are_kept():
    done = lint_imports(REPO)
    assert done.returncode == 0, f"lint-imports:\n{done.stdout}{done.stderr}"
    assert set(verdicts(done.stdout).values()) == {"KEPT"}, done.stdout


# One violation per contract, written into a copy of the code (files of its own, so the
# real modules' names and imports may change without touching this test).
VIOLATIONS = {
    "deep_storage/core/upward.py": "from deep_storage.tables import bronze\n",
    "deep_storage/lake/loop_a.py": "from deep_storage.lake import loop_b\n",
    "deep_storage/lake/loop_b.py": "from deep_storage.lake import loop_a\n",
    "deep_storage/io/face.py": "import deep_storage\n",
    "deep_storage/io/kfp_leak.py": "import kfp\nfrom deep_storage_kfp.components import _image\n",
    "deep_storage/unplaced/__init__.py": "",
    "deep_storage_kfp/components/bronze_ingest/leak.py": (
        "from deep_storage.lake import layout\n"
        "from deep_storage_kfp.components.silver_transform import component\n"
    ),
}


def test_the_import_contracts_catch_a_violation(tmp_path):
    """A copy of the library and the KFP folders, as installed (deep_storage_kfp/...), with the
    violations above: every contract must break, naming the offending import."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / LIBRARY, tmp_path / LIBRARY, ignore=skip)
    for folder in ("components", "pipelines"):
        shutil.copytree(REPO / folder, tmp_path / "deep_storage_kfp" / folder, ignore=skip)
    for path, text in VIOLATIONS.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)

    done = lint_imports(tmp_path, {"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1, f"lint-imports:\n{done.stdout}{done.stderr}"
    assert set(verdicts(done.stdout).values()) == {"BROKEN"}, done.stdout
    for reported in (
        "deep_storage.core.upward -> deep_storage.tables.bronze",
        "- deep_storage.unplaced",  # the exhaustive layers: a folder that is no layer
        "deep_storage.io.face -> deep_storage (l.1)",
        "deep_storage.io.kfp_leak -> kfp (l.1)",
        "deep_storage.io.kfp_leak -> deep_storage_kfp.components._image",
        "deep_storage_kfp.components.bronze_ingest.leak -> deep_storage.lake.layout",
        "bronze_ingest.leak -> deep_storage_kfp.components.silver_transform.component",
        ".loop_b -> .loop_a",
    ):
        assert reported in done.stdout, f"not reported: {reported}\n{done.stdout}"


# --- what import-linter cannot say --------------------------------------------------------------


def layout_table() -> str:
    """docs/architecture.md's "Layout" section: the folders of the repository and the library."""
    text = (REPO / "docs" / "architecture.md").read_text()
    return text[text.index("## Layout\n") :].split("\n## ", 1)[0]


def test_the_layout_lists_every_layer_of_the_contract():
    """The contract is exhaustive (every folder of the library is a layer); the docs list each."""
    layers = set(library_layers())
    assert set(re.findall(rf"`{LIBRARY}/([a-z_]+)/`", layout_table())) == layers
    architecture = (REPO / "docs" / "architecture.md").read_text()
    assert all(f"{LIBRARY}/{folder}/" in architecture for folder in layers)


def long_functions(paths: list[str], root: Path = REPO) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse((root / path).read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_outside_the_tests_is_longer_than_60_lines():
    paths = [
        p
        for p in _tracked("*.py")
        if not p.startswith("tests/") and "/tests/" not in p and p != "conftest.py"
    ]
    assert long_functions(paths) == []


def test_the_length_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert long_functions(["long.py"], tmp_path) == ["long.py:1 long (62 lines)"]


def test_the_public_names_stay_importable():
    """What users import, wherever the modules behind them move."""
    from importlib.metadata import entry_points

    import deep_storage
    from deep_storage.baseline import train
    from deep_storage.lake import LakeFS  # the example notebook's
    from deep_storage_kfp.components import (
        bronze_ingest,
        gold_features,
        quality_gate,
        retention,
        silver_transform,
        train_baseline,
        training_set,
    )
    from deep_storage_kfp.pipelines.platform import apply_platform_profile
    from deep_storage_kfp.pipelines.training_pipeline import deep_storage_training_pipeline

    assert callable(deep_storage.read) and callable(deep_storage.status)
    assert deep_storage.__version__
    assert all(hasattr(c, "component_spec") for c in (bronze_ingest, quality_gate, retention))
    assert hasattr(silver_transform, "component_spec") and callable(apply_platform_profile)
    assert all(hasattr(c, "component_spec") for c in (gold_features, training_set, train_baseline))
    assert callable(train) and hasattr(deep_storage_training_pipeline, "component_spec")
    assert callable(LakeFS)
    (script,) = entry_points(group="console_scripts", name="deep-storage")
    assert callable(script.load())


def _drawn_layers() -> dict[str, set[str]]:
    """docs/architecture.md's layer diagram: each box's folder and the modules it names."""
    text = (REPO / "docs" / "architecture.md").read_text()
    diagram = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = {}
    for folder, names in re.findall(r'\["(deep_storage/[a-z_/]*)[^"]*?<br/>([^"]*)"\]', diagram):
        words = re.split(r"<br/>| · ", names)
        drawn[folder] = {re.sub(r"\.py$|\s*\(.*\)$", "", w).strip() for w in words}
    return drawn


def test_the_architecture_picture_draws_each_module_in_its_layer():
    """docs/architecture.md's layer diagram stays true as modules come and go."""
    actual = {
        f"{LIBRARY}/{folder.name}/": {p.stem for p in folder.glob("*.py")} - {"__init__"}
        for folder in (REPO / LIBRARY).iterdir()
        if (folder / "__init__.py").is_file()
    }
    actual[f"{LIBRARY}/"] = {p.stem for p in (REPO / LIBRARY).glob("*.py")}
    assert _drawn_layers() == actual


def test_the_wheel_ships_every_package_of_the_library():
    shipped = set(PYPROJECT["tool"]["setuptools"]["packages"])
    packages = {
        _module_name(str(p.relative_to(REPO))) for p in (REPO / LIBRARY).rglob("__init__.py")
    }
    assert packages <= shipped


def test_importing_a_layer_loads_nothing_above_it():
    """Python runs every parent package's __init__ first: the library's face must not pull the
    whole library in behind a low layer (deep_storage/__init__ loads its reader lazily)."""
    probe = (
        "import json, sys\n"
        "import deep_storage.core.errors, deep_storage.core.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('deep_storage'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    assert LIBRARY in loaded
    assert [m for m in loaded if m.split(".")[:2] not in ([LIBRARY], [LIBRARY, "core"])] == []
