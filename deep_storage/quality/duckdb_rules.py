"""The gate's rows on DuckDB, for a day that fits one process (validate.py picks the engine;
spark_rules.py is the other engine).

The day's committed files are read once, by pyarrow from the lake's store, into one Arrow table
that DuckDB scans in place.
Everything else is computed there from that table: the helper counts across rows, each row
rule's evidence column (NULL for a good row, else a JSON object of the row's id and the columns
that break the rule) and each row's reasons. The rules are the same SQL text the Spark path runs
(rules.py). Great Expectations then judges the evidence columns as a pandas frame, and the
quarantine copies the offending rows out of the same table: the day is never read twice.
No JVM is started.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING

from pyspark.sql.pandas.types import to_arrow_schema

from deep_storage.core import config, schemas
from deep_storage.io import duckdb_session
from deep_storage.lake import (
    BRONZE_EVENTS,
    PARTITION_COLUMNS,
    QUARANTINE,
    SILVER_EXECUTIONS,
)
from deep_storage.quality import file_types, gx_runner, rule_columns, rules
from deep_storage.quality.day_plan import BRONZE_TABLE, SILVER_TABLE, Plan
from deep_storage.quality.rule_columns import evidence_column
from deep_storage.quality.verdict import TableReport, row_rule_broke, table_report

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from deep_storage.lake import LakeFS

log = logging.getLogger(__name__)

# The helper columns the row rules read (as rule_columns.py computes them on Spark): only the
# offending keys are aggregated and joined back; every other row gets 1.
_HELPERS = {
    "bronze": """
        WITH dups AS (
          SELECT event_id, count(*) AS _event_id_count FROM day
          WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1
        ), crossing AS (
          SELECT execution_token, 2 AS _token_tenants FROM day
          WHERE execution_token IS NOT NULL GROUP BY execution_token
          HAVING min(client_id) <> max(client_id) OR min(operation_id) <> max(operation_id)
              OR min(symbol) <> max(symbol)
        )
        SELECT day.*,
               coalesce(dups._event_id_count, 1) AS _event_id_count,
               coalesce(crossing._token_tenants, 1) AS _token_tenants
        FROM day LEFT JOIN dups USING (event_id) LEFT JOIN crossing USING (execution_token)
    """,
    "silver": """
        WITH dups AS (
          SELECT execution_id, count(*) AS _execution_id_count FROM day
          WHERE execution_id IS NOT NULL GROUP BY execution_id HAVING count(*) > 1
        ), repeated AS (
          SELECT client_id, execution_token, count(*) AS _token_count FROM day
          WHERE execution_token IS NOT NULL GROUP BY client_id, execution_token
          HAVING count(*) > 1
        )
        SELECT day.*,
               coalesce(dups._execution_id_count, 1) AS _execution_id_count,
               coalesce(repeated._token_count, 1) AS _token_count
        FROM day LEFT JOIN dups USING (execution_id)
                 LEFT JOIN repeated USING (client_id, execution_token)
    """,
}


def read_day(
    con: duckdb.DuckDBPyConnection, fs: LakeFS, table: str, files: list[str], schema: pa.Schema
) -> int:
    """The table `day`: the rows of `files` (relative to the lake table `table`) read with the
    contract's `schema` (extra columns in a file are not read; partition columns come from the
    folder names), numbered in `_row`. Returns its row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as pads

    # Nullable throughout: a NULL in a required column is what required_not_null must see.
    schema = pa.schema([f.with_nullable(True) for f in schema])
    if files:
        afs, root = fs.arrow()
        partition_fields = [schema.field(c) for c in PARTITION_COLUMNS[table] if c in schema.names]
        source = pads.dataset(
            [f"{root}/{table}/{rel}" for rel in files],
            schema=schema,
            format="parquet",
            filesystem=afs,
            partitioning=pads.partitioning(pa.schema(partition_fields), flavor="hive"),
            partition_base_dir=f"{root}/{table}",
        )
        # pyarrow decodes the files in parallel into one Arrow table, which DuckDB then scans in
        # place: copying it into DuckDB's own (compressed) storage cost more than every query.
        try:
            day = source.to_table()
        except OSError as exc:  # the store's failures: one line naming the lake, no secret
            raise fs._fail(f"read the committed files of {table}", exc) from None
    else:
        day = schema.empty_table()
    day = day.append_column("_row", pa.array(np.arange(day.num_rows, dtype=np.int64)))
    con.register("day", day)
    return day.num_rows


def _shown(item: str, types: dict[str, pa.DataType]) -> str:
    """One `shows` item as a struct_pack field, valued as Spark's to_json writes it: decimals by
    their exact digits (as text: JSON numbers would lose trailing zeros), timestamps in ISO-8601
    UTC with milliseconds."""
    import pyarrow as pa

    expr, _, alias = item.rpartition(" AS ") if " AS " in item else ("", "", item)
    expr = expr or item
    kind = types.get(expr)
    if kind is not None and pa.types.is_decimal(kind):
        expr = f"CAST({expr} AS VARCHAR)"
    elif kind is not None and pa.types.is_timestamp(kind):
        expr = f"strftime({expr}, '%Y-%m-%dT%H:%M:%S.%gZ')"
    return f"{alias} := {expr}"


def flag(
    con: duckdb.DuckDBPyConnection, kind: str, row_rules, row_id: str, schema: pa.Schema
) -> None:
    """The table `flagged`: per row of `day` (`_row`), each rule's evidence column and
    `_reasons`, the names of the rules the row breaks (empty when none)."""
    types = {f.name: f.type for f in schema}
    ok = ", ".join(f"coalesce(({r.ok}), false) AS _ok_{r.name}" for r in row_rules)
    evidence = ", ".join(
        f"CASE WHEN _ok_{r.name} THEN NULL ELSE CAST(to_json(struct_pack("
        f"{', '.join(_shown(s, types) for s in (row_id, *r.shows))})) AS VARCHAR) END "
        f"AS {evidence_column(r)}"
        for r in row_rules
    )
    reasons = ", ".join(f"CASE WHEN NOT _ok_{r.name} THEN '{r.name}' END" for r in row_rules)
    con.execute(
        f"""CREATE OR REPLACE TABLE flagged AS
        WITH helped AS ({_HELPERS[kind]}), judged AS (SELECT *, {ok} FROM helped)
        SELECT _row, {evidence}, [x FOR x IN [{reasons}] IF x IS NOT NULL] AS _reasons
        FROM judged"""
    )


def evidence(con: duckdb.DuckDBPyConnection, row_rules) -> pd.DataFrame:
    """The evidence columns, one row per row of the day in its order: what GX judges."""
    columns = ", ".join(evidence_column(r) for r in row_rules) or "NULL AS _none"
    return con.sql(f"SELECT {columns} FROM flagged ORDER BY _row").to_arrow_table().to_pandas()


def quarantine(
    con: duckdb.DuckDBPyConnection,
    fs: LakeFS,
    folder: str,
    columns: list[str],
    run_id: str,
) -> int:
    """The offending rows whole (`columns` of `day`), with `_reasons`, `_run_id` and
    `_quarantined_at`, written as one Parquet file into `folder` (relative to the lake).
    Returns their count."""
    import pyarrow.parquet as pq

    selected = ", ".join(f'day."{c}"' for c in columns)
    rows = con.sql(
        f"""SELECT {selected}, f._reasons, $run_id AS _run_id, $at AS _quarantined_at
        FROM flagged f JOIN day ON day._row = f._row
        WHERE len(f._reasons) > 0 ORDER BY f._row""",
        params={"run_id": run_id, "at": dt.datetime.now(dt.UTC)},
    ).to_arrow_table()
    if rows.num_rows:
        afs, root = fs.arrow()
        if fs.bucket is None:  # a local lake: the folder must exist (S3 has no folders)
            afs.create_dir(f"{root}/{folder}", recursive=True)
        path = f"{root}/{folder}/part-00000-{uuid.uuid4()}.snappy.parquet"
        try:
            pq.write_table(rows, path, filesystem=afs, compression="snappy")
        except OSError as exc:
            raise fs._fail(f"write the quarantine {folder}", exc) from None
    return rows.num_rows


_TABLES = {
    BRONZE_TABLE: ("bronze", BRONZE_EVENTS, schemas.BRONZE_EVENTS_SCHEMA, rules.BRONZE_ROW_RULES),
    SILVER_TABLE: (
        "silver",
        SILVER_EXECUTIONS,
        schemas.SILVER_EXECUTIONS_SCHEMA,
        rules.SILVER_ROW_RULES,
    ),
}


def report(fs, day, committed, plan: Plan, run_id, phases) -> TableReport:
    """`plan` judged on DuckDB: the day's committed files read once into DuckDB, the evidence
    computed there and judged by GX as a pandas frame, the quarantine copied from the same
    table."""
    import pandas as pd

    kind, lake_table, schema, row_rules = _TABLES[plan.table]
    commit = committed[lake_table].get(day)
    files = list(commit.files) if commit else []
    helpers = rule_columns.BRONZE_HELPERS if kind == "bronze" else rule_columns.SILVER_HELPERS
    extras = [
        *helpers,
        *(rule_columns.ok_column(r) for r in row_rules),
        *(rule_columns.evidence_column(r) for r in row_rules),
    ]
    # The contract's columns, judged on the columns the rules are judged with (no rows).
    columns = pd.DataFrame(columns=[*schema.fieldNames(), *extras])
    types, expected, mismatched = file_types.check(
        fs, plan.table, lake_table, files, schema, phases
    )
    if mismatched:
        return file_types.unreadable(
            columns, plan, day, schema, extras, fs, phases, types, expected, engine="pandas"
        )
    memory, arrow_schema = config.SparkSettings.from_env().driver_memory, to_arrow_schema(schema)
    with duckdb_session.connected(memory, prefix="deep-storage-gate-") as con:
        with phases(f"{plan.table}: read"):
            read_day(con, fs, lake_table, files, arrow_schema)
        with phases(f"{plan.table}: flag rows"):
            flag(con, kind, row_rules, rules.ROW_ID[plan.table], arrow_schema)
            flags = evidence(con, row_rules)
        timings: dict[str, float] = {}
        with phases(f"{plan.table}: great expectations"):
            gx_result, results = gx_runner.validate(
                columns, flags, plan.table, schema, extras, row_rules, plan.table_rules,
                plan.fact_rules, plan.facts, types, expected, timings, engine="pandas",
            )  # fmt: skip
        log.info("%s %s: Great Expectations (%s)", plan.table, day, _timed(timings))
        broken = row_rule_broke(results, row_rules)
        folder = f"{QUARANTINE}/{plan.table}/date={day.isoformat()}"
        with phases(f"{plan.table}: quarantine"):
            fs.delete_tree(f"{fs.lake}/{folder}")
            quarantined = 0
            if broken:
                quarantined = quarantine(con, fs, folder, schema.fieldNames(), run_id)
    return table_report(fs, plan, day, [*results, *plan.more_results], quarantined, gx_result)


def _timed(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
