"""Trino (the real 476 server, Java 25) reads the lake's tables by name through the Hive Metastore:
the same figures as delta-rs on the same version, new commits without registering again, time
travel, and a day's query reads only that day's partition."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

import pytest

from deep_storage.lake import SILVER_EXECUTIONS, LakeFS
from tests import catalog_lake
from tests.catalog_lake import D1, LATE, PER_DAY, run_catalog

pytestmark = pytest.mark.integration

PER_DAY_SQL = (
    "SELECT date, count(*), sum(fill_price) FROM silver_stop_executions{at} "
    "GROUP BY date ORDER BY date"
)


@pytest.fixture(scope="module")
def named_lake(pg, spark, service_env, metastore):
    lake = f"s3a://lake/trino-{uuid.uuid4().hex[:10]}"
    catalog_lake.build(pg, spark, lake)
    done = run_catalog("--lake", lake, "--database", "trino_t", "--metastore", metastore.uri)
    assert done.returncode == 0, done.stderr
    return lake


def query(trino, sql: str) -> tuple[list[list], dict]:
    return trino.execute(sql, schema="trino_t")


def delta_rs_per_day(lake: str, version: int) -> dict:
    """date -> (executions, sum of fills) from delta-rs's reading of `version`, not from ours."""
    fs = LakeFS(lake)
    rows = fs.scan(SILVER_EXECUTIONS, fs.delta(SILVER_EXECUTIONS, version=version)).to_pylist()
    out: dict = defaultdict(lambda: [0, Decimal(0)])
    for row in rows:
        out[row["date"]][0] += 1
        out[row["date"]][1] += row["fill_price"] or 0
    return {d: (n, s) for d, (n, s) in out.items()}


def test_per_day_counts_and_sums_equal_delta_rs_on_the_same_version(trino, named_lake):
    version = LakeFS(named_lake).delta(SILVER_EXECUTIONS).version()
    rows, _ = query(trino, PER_DAY_SQL.format(at=f" FOR VERSION AS OF {version}"))
    by_trino = {d: (n, s) for d, n, s in rows}
    assert by_trino == delta_rs_per_day(named_lake, version) == PER_DAY


def test_a_new_commit_is_seen_without_registering_again_and_the_old_version_stays(
    trino, named_lake, pg, spark
):
    before = LakeFS(named_lake).delta(SILVER_EXECUTIONS).version()
    catalog_lake.late_day(pg, spark, named_lake)
    now, _ = query(trino, PER_DAY_SQL.format(at=""))
    assert {d: (n, s) for d, n, s in now} == {**PER_DAY, **LATE}
    then, _ = query(trino, PER_DAY_SQL.format(at=f" FOR VERSION AS OF {before}"))
    assert {d: (n, s) for d, n, s in then} == PER_DAY


def test_a_days_query_reads_only_that_days_partition(trino, named_lake):
    version = LakeFS(named_lake).delta(SILVER_EXECUTIONS).version()
    total = sum(n for n, _ in delta_rs_per_day(named_lake, version).values())
    rows, stats = query(
        trino,
        "SELECT count(*), sum(fill_price) FROM silver_stop_executions "
        f"FOR VERSION AS OF {version} WHERE date = DATE '{D1}'",
    )
    assert rows == [[PER_DAY[D1][0], PER_DAY[D1][1]]]
    # Trino's own count of the rows its scan read: D1's two executions of the table's total.
    assert stats["processedRows"] == PER_DAY[D1][0] < total
    plan, _ = query(
        trino,
        "EXPLAIN ANALYZE SELECT sum(fill_price) FROM silver_stop_executions "
        f"FOR VERSION AS OF {version} WHERE date = DATE '{D1}'",
    )
    assert f"Input: {PER_DAY[D1][0]} rows" in plan[0][0]
