"""Each committed file's own column types, from its Parquet footer, for the contract's type rule.

The gate reads a day with the contract's schema forced (so every rule sees the same columns),
which hides what a file really holds: a file whose `retry_count` was written as a string reads
as the contract says, or fails the read with a cast error that names no rule. The footers tell
the truth and cost one small ranged read per file and no Spark (LakeFS.file_schemas). They
become a small frame (one row per file, one column per contract column, each cell the file's
Arrow type) that Great Expectations judges against the contract's types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pyspark.sql.types import StructType

from deep_storage.lake import PARTITION_COLUMNS, LakeFS
from deep_storage.quality import gx_runner
from deep_storage.quality.verdict import table_report

if TYPE_CHECKING:
    from deep_storage.quality.day_plan import Plan

MISSING = "(missing)"
FILE = "_file"


def expected(schema: StructType, table: str) -> dict[str, list[str]]:
    """Contract column -> the Arrow types its Parquet files may hold: the contract's, and for a
    column the table gained by schema evolution also MISSING (a file written before it: Delta
    reads NULL there). The table's partition columns live in the folder names and Delta's log,
    not in the files."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from deep_storage.core.schemas import EVOLVED_COLUMNS

    partition = set(PARTITION_COLUMNS.get(table, ()))
    evolved = set(EVOLVED_COLUMNS.get(table, ()))
    return {
        f.name: [str(f.type), MISSING] if f.name in evolved else [str(f.type)]
        for f in to_arrow_schema(schema)
        if f.name not in partition
    }


def frame(fs: LakeFS, table: str, files: list[str], names: Iterable[str]):
    """pandas frame: `_file` (relative to the table) and, for each of `names` (the expected
    columns), its Arrow type in that file, MISSING where the file lacks it."""
    import pandas as pd

    names = list(names)
    rows = []
    for rel, schema in fs.file_schemas(table, files):
        types = {f.name: str(f.type) for f in schema}
        rows.append({FILE: rel, **{c: types.get(c, MISSING) for c in names}})
    return pd.DataFrame(rows, columns=[FILE, *names], dtype="object")


def mismatched(types, expected_types: dict[str, list[str]]) -> list[str]:
    """Columns some file holds with a type `expected_types` does not allow (a quick look that
    decides whether the rows can be read at all; GX still judges and reports contract_types)."""
    return [c for c, ok in expected_types.items() if c in types and (~types[c].isin(ok)).any()]


def check(fs, table: str, lake_table: str, files: list[str], schema, phases):
    """(each file's column types from its own footer, the contract's, whether any differs): what
    contract_types is judged on, the same for either engine. No files: (None, expected, False)."""
    wanted = expected(schema, lake_table)
    with phases(f"{table}: file types"):
        types = frame(fs, lake_table, files, wanted) if files else None
    return types, wanted, types is not None and mismatched(types, wanted)


def unreadable(frame, plan: Plan, day, schema, extras, fs, phases, types, expected, engine="spark"):
    """A day with a file whose column types are not the contract's: reading it with the
    contract's schema would fail (or silently cast), so GX judges the contract on the files'
    footers and the fact rules, and no row rule is judged. The gate fails on contract_types,
    which names the column, the type found and the files' count."""
    with phases(f"{plan.table}: great expectations"):
        gx_result, results = gx_runner.validate(
            frame,
            None,
            plan.table,
            schema,
            extras,
            (),
            [],
            plan.fact_rules,
            plan.facts,
            types,
            expected,
            engine=engine,
        )
    plan.notes.append(
        "the row rules were not judged: a file of the day does not hold the contract's types "
        "(see contract_types); rewrite the day, then run the gate again"
    )
    return table_report(fs, plan, day, [*results, *plan.more_results], 0, gx_result)
