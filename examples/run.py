"""Execute every notebook in examples/ top to bottom, the way CI does (`make notebooks`), against
the lake in DEEP_STORAGE_LAKE (default: the demo lake of `make demo`). Outputs are not saved: the
notebooks stay committed without them."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv or [])] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"):
            print(f"{path.name}: committed with outputs; clear them first", file=sys.stderr)
            return 1
        client = NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": HERE}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            print(f"{path.name}: a cell failed:\n{exc}", file=sys.stderr)
            return 1
        print(f"{path.name}: ran {len(notebook.cells)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
