"""The architecture, derived from the code itself (docs/architecture.md draws it).

deep_storage's subpackages are its layers, bottom to top; the modules directly in deep_storage/
are the entry points on top, and components/ and pipelines/ (KFP) sit above them. An import may
point down or stay inside its layer, never up, and no modules import each other in a cycle.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
LIBRARY = "deep_storage"
# Bottom to top. "entry" is the modules directly in deep_storage/ (steps, cli, reader, the face).
LAYERS = ("core", "io", "lake", "tables", "quality", "entry", "kfp")
# What the library never imports: KFP, and everything that is not shipped with it.
OUTSIDE = ("kfp", "kfp_kubernetes", "deep_storage_kfp", "components", "pipelines", "demo",
           "tests", "benchmarks")  # fmt: skip
# The wheel's names for the repository's KFP folders (pyproject's package-dir).
INSTALLED_AS = {
    "deep_storage_kfp.components": "components",
    "deep_storage_kfp.pipelines": "pipelines",
}
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


def _shipped_modules() -> dict[str, Path]:
    """The library and the KFP folders, without their tests."""
    paths = _tracked(f"{LIBRARY}/*.py", "components/*.py", "pipelines/*.py")
    return {_module_name(p): REPO / p for p in paths if "/tests/" not in p}


def _canonical(name: str) -> str:
    for installed, folder in INSTALLED_AS.items():
        if name == installed or name.startswith(installed + "."):
            return folder + name[len(installed) :]
    return name


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of `known` that `module` imports anywhere in its file (at the top, inside a
    function or under TYPE_CHECKING: each is a dependency). `from pkg import name` counts as an
    import of pkg.name when that is a module, else of pkg."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = _canonical(alias.name)
                while name and name not in known:
                    name = name.rpartition(".")[0]
                found.add(name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = _canonical(node.module or "")
            for alias in node.names:
                sub = _canonical(f"{node.module}.{alias.name}") if not node.level else ""
                sub = sub or f"{source}.{alias.name}"
                found.add(sub if sub in known else source)
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    modules = _shipped_modules()
    return {name: imports(path, name, set(modules)) for name, path in modules.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("components", "pipelines"):
        return "kfp"
    if parts[0] != LIBRARY:
        raise ValueError(f"{module} is in no layer")
    if len(parts) == 1 or (REPO / LIBRARY / f"{parts[1]}.py").is_file():
        return "entry"
    if parts[1] not in LAYERS:
        raise ValueError(f"{module}: deep_storage/{parts[1]}/ is not a layer of {LAYERS}")
    return parts[1]


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer into a higher one."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted(
        f"{src} ({layer_of(src)}) imports {dst} ({layer_of(dst)})"
        for src, deps in graph.items()
        for dst in deps
        if rank[layer_of(dst)] > rank[layer_of(src)]
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


# --- the checks on a made-up graph: each one can fail --------------------------------------


def test_the_checks_find_an_upward_import_and_a_cycle():
    graph = {
        "deep_storage.core.errors": {"deep_storage.lake.writer"},  # upward: core -> lake
        "deep_storage.lake.writer": {"deep_storage.lake.days"},
        "deep_storage.lake.days": {"deep_storage.lake.writer"},  # a cycle inside a layer
        "deep_storage.steps": {"deep_storage.core.errors"},
    }
    assert upward(graph) == [
        "deep_storage.core.errors (core) imports deep_storage.lake.writer (lake)"
    ]
    assert cycles(graph) == [["deep_storage.lake.days", "deep_storage.lake.writer"]]


def test_imports_are_read_from_the_code_wherever_they_sit(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from deep_storage import lake\n"  # a subpackage: that module
        "from deep_storage.core.errors import InputError\n"  # a name: its module
        "if TYPE_CHECKING:\n    from deep_storage.tables.bronze import run\n"
        "def f():\n    import deep_storage.quality.validate\n"
        "    from deep_storage_kfp.pipelines import local\n"  # the installed name
        "    from deep_storage_kfp import components\n"  # a package under its installed name
    )
    known = {
        "deep_storage",
        "deep_storage.lake",
        "deep_storage.core.errors",
        "deep_storage.tables.bronze",
        "deep_storage.quality.validate",
        "pipelines.local",
        "components",
        "deep_storage.io.metrics",
    }
    assert imports(source, "deep_storage.io.metrics", known) == known - {
        "deep_storage",
        "deep_storage.io.metrics",
    }


# --- the checks on the code ------------------------------------------------------------------


def test_the_graph_is_the_real_one():
    """Guards the checks below against an empty or misread graph."""
    graph = import_graph()
    assert "deep_storage.lake" in graph["deep_storage.tables.bronze"]
    assert "deep_storage.lake.writer" in graph["deep_storage.lake"]
    assert "deep_storage.core.errors" in graph["deep_storage.lake.writer"]
    assert "deep_storage.steps" in graph["components.bronze_ingest.component"]
    assert len(graph) > 40


def test_no_import_points_up_a_layer():
    assert upward(import_graph()) == []


def test_no_modules_import_each_other_in_a_cycle():
    assert cycles(import_graph()) == []


def test_the_library_never_imports_kfp_or_what_is_not_shipped():
    offending = []
    for name, path in _shipped_modules().items():
        if not name.startswith(LIBRARY):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offending += [f"{name}: {t}" for t in targets if t.split(".")[0] in OUTSIDE]
    assert offending == []


def test_components_and_pipelines_use_the_library_through_its_entry_points_and_core():
    graph = import_graph()
    offending = [
        f"{src} imports {dst}"
        for src, deps in graph.items()
        if layer_of(src) == "kfp"
        for dst in deps
        if layer_of(dst) not in ("kfp", "entry", "core")
    ]
    assert offending == []


def layout_table() -> str:
    """docs/architecture.md's "Layout" section: the folders of the repository and the library."""
    text = (REPO / "docs" / "architecture.md").read_text()
    return text[text.index("## Layout\n") :].split("\n## ", 1)[0]


def test_every_folder_of_the_library_is_a_layer_and_the_layout_lists_it():
    folders = {p.parent.name for p in (REPO / LIBRARY).glob("*/__init__.py")}
    assert folders == set(LAYERS) - {"entry", "kfp"}
    assert set(re.findall(rf"`{LIBRARY}/([a-z_]+)/`", layout_table())) == folders
    architecture = (REPO / "docs" / "architecture.md").read_text()
    assert all(f"{LIBRARY}/{folder}/" in architecture for folder in folders)


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
    import tomllib

    shipped = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    packages = {
        _module_name(str(p.relative_to(REPO))) for p in (REPO / LIBRARY).rglob("__init__.py")
    }
    assert packages <= shipped


def test_importing_a_layer_loads_nothing_above_it():
    """Python runs every parent package's __init__ first: the library's face must not pull the
    whole library in behind a low layer (deep_storage/__init__ loads its reader lazily)."""
    import json
    import sys

    probe = (
        "import json, sys\n"
        "import deep_storage.core.errors, deep_storage.core.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('deep_storage'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if layer_of(m) not in ("core", "entry")] == []
    assert [m for m in loaded if layer_of(m) == "entry"] == [LIBRARY]
