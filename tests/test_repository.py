"""The repository stands on its own: its layout (docs/architecture.md) is its tree, its README is a
front page whose links all land, and nothing points outside it for what defines the project."""

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


def test_the_layout_lists_every_top_level_folder_and_only_those():
    folders = {p.split("/", 1)[0] for p in _tracked() if "/" in p and not p.startswith(".")}
    listed = set(re.findall(r"`([a-z_]+)/`", architecture.layout_table()))
    assert listed == folders


README_MAX_LINES = 200
# The pages the README links to and that link to each other; each is checked like the README.
DOCS = [
    "README.md",
    "spark_image/README.md",
    "deploy/README.md",
    "benchmarks/README.md",
    *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")),
]


def test_the_readme_is_a_front_page_of_at_most_200_lines():
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, expected at most {README_MAX_LINES}: move the detail to"
        " docs/, deploy/README.md or benchmarks/README.md and link it"
    )


def _outside_code(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` in a bash block is no heading)."""
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation but - and _ dropped,
    spaces as -, a repeated heading numbered -1, -2..."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _outside_code(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        found.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
    return found


def broken_links(doc: str, root: Path = REPO) -> list[str]:
    """The relative links of a Markdown page (`[text](path#anchor)`, `![alt](path)`) whose file
    does not exist, or whose anchor is no heading of the Markdown page it names."""
    path = root / doc
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _outside_code(path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{doc}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{doc}: {target} (no such heading)")
    return broken


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_lands_on_a_file_and_heading(doc):
    assert broken_links(doc) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## The `x` part, again\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#the-x-part-again) [ok](#front) [gone](docs/b.md) [bad](docs/a.md#nope)\n"
        "# Front\n```\n[in code](nowhere.md)\n```\n[web](https://example.com/x.md)\n"
    )
    assert broken_links("README.md", tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#nope (no such heading)",
    ]


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
    """A path in backticks in the README or the pages it links (`deep_storage/lake/writer.py`, or
    a layer's `lake/writer.py`) is a file or folder of the repository: docs move with the code."""
    rooted = re.compile(rf"`((?:{'|'.join(ROOTS)})/[\w./-]*)`")
    in_library = re.compile(rf"`((?:{'|'.join(LAYERS)})/\w+\.py)`")
    missing = []
    for doc in DOCS:
        text = (REPO / doc).read_text()
        named = rooted.findall(text) + [f"deep_storage/{p}" for p in in_library.findall(text)]
        missing += [
            f"{doc}: {p}"
            for p in named
            if "*" not in p and p not in WRITTEN_BY_RUNS and not (REPO / p).exists()
        ]
    assert sorted(set(missing)) == []
