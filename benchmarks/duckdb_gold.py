"""The reference for gold: DuckDB running gold's own query (gold_features.FEATURES_SQL, with the
$first/$last/$breach_pct parameters features_arrow passes) over local copies of the same silver
files, the result written as Parquet partitioned by date. Run in a fresh process:

    python -m benchmarks.duckdb_gold SILVER_DIR OUT_DIR --first D --last D [--threads 1]

prints {"seconds": ..., "rows": ..., "threads": ...} on stdout: the seconds of reading, computing
and writing (interpreter start and imports excluded), and the rows written. SILVER_DIR holds the
silver table's files as the table lays them out (client_id=N/date=D/*.parquet): the partition
columns come from the folder names, as a Delta reader takes them from the log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

from deep_storage.core import defaults
from deep_storage.tables import gold_features

_HIVE_TYPES = "{'client_id': BIGINT, 'date': DATE}"


def _executions_view(con, silver_dir: Path) -> None:
    """`executions`: the silver columns FEATURES_SQL reads, the optional ones NULL when no file
    holds them (what features_arrow does for an Arrow table)."""
    files = (
        f"read_parquet('{silver_dir}/**/*.parquet', hive_partitioning = true, "
        f"hive_types = {_HIVE_TYPES}, union_by_name = true)"
    )
    held = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {files}").fetchall()}
    columns = list(gold_features.INPUT_COLUMNS)
    for name in gold_features.OPTIONAL_COLUMNS:
        columns.append(name if name in held else f"CAST(NULL AS TIMESTAMPTZ) AS {name}")
    con.execute(f"CREATE VIEW executions AS SELECT {', '.join(columns)} FROM {files}")


def run(
    silver_dir: Path,
    out_dir: Path,
    first: dt.date,
    last: dt.date,
    *,
    breach_pct: Decimal = defaults.SLIPPAGE_BREACH_PCT,
    threads: int = 1,
) -> tuple[float, int]:
    """Seconds to read the silver files, compute the features of [first, last] and write them,
    and the rows written."""
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    params = {"first": first, "last": last, "breach_pct": breach_pct}
    start = time.perf_counter()
    _executions_view(con, silver_dir)
    con.execute(
        f"COPY ({gold_features.FEATURES_SQL}) TO '{out_dir}' "
        "(FORMAT parquet, PARTITION_BY (date), OVERWRITE_OR_IGNORE true)",
        params,
    )
    seconds = time.perf_counter() - start
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out_dir}/**/*.parquet')").fetchone()[0]
    con.close()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("silver_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--breach-pct", type=Decimal, default=defaults.SLIPPAGE_BREACH_PCT)
    parser.add_argument("--threads", type=int, default=1, help="DuckDB's threads")
    args = parser.parse_args(argv)
    seconds, rows = run(
        args.silver_dir,
        args.out_dir,
        args.first,
        args.last,
        breach_pct=args.breach_pct,
        threads=args.threads,
    )
    print(json.dumps({"seconds": seconds, "rows": rows, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
