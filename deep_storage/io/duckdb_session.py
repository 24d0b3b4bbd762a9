"""The one DuckDB connection factory for the steps that compute in this process (the gate's rows
on a small day, gold's features): every connection held to the step's engine memory, spilling to
a temporary folder past it, in UTC, on every core the pod has."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@contextlib.contextmanager
def connected(memory: str, prefix: str = "deep-storage-") -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB whose own work (hash tables, sorts, windows) is held to `memory`
    (Spark's notation, "2g", "4915m": the step's engine memory, DEEP_STORAGE_DRIVER_MEMORY, which
    the platform profile sizes from the pod's limit), spilling to a temporary folder past it;
    closed and the folder removed on leaving. Arrow tables it reads are outside that limit."""
    import duckdb

    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    text = memory.strip().lower().removesuffix("b")
    mib = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text) / 2**20
    with tempfile.TemporaryDirectory(prefix=prefix) as spill:
        con = duckdb.connect(
            config={"temp_directory": spill, "memory_limit": f"{max(64, int(mib))}MiB"}
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
