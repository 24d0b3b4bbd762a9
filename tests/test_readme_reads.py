"""The README's "From a notebook" blocks, run as a user would paste them: each block marked
`<!-- notebook-read: NAME` is executed against a lake in SeaweedFS, with the settings in the
environment the way the lake's secret sets them, and checked against the committed rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from deep_storage import lake as lakes
from tests.events import event
from tests.lake_fixtures import silver_row, write_bronze_day, write_silver_day

pytestmark = pytest.mark.integration

README = Path(__file__).parent.parent / "README.md"
D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


def block(name: str) -> str:
    """The ```python block after the marker `<!-- notebook-read: {name}`."""
    text = README.read_text()
    section = text[text.index("## From a notebook") :].split("\n## ", 1)[0]
    marker = f"<!-- notebook-read: {name}"
    assert marker in section, f"README's From a notebook section lost the block {name!r}"
    after = section[section.index(marker) :]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def run(*names: str, namespace: dict | None = None) -> dict:
    """Execute the named blocks in order in one namespace, as cells of one notebook."""
    namespace = {} if namespace is None else namespace
    for name in names:
        code = compile(block(name), f"README.md <{name}>", "exec", dont_inherit=True)
        exec(code, namespace)
    return namespace


def executed(execution_id: str, client_id: int) -> dict:
    return silver_row(
        execution_id=execution_id,
        client_id=client_id,
        status="EXECUTED",
        fill_price=Decimal("64005.50000000"),
        slippage_pct=Decimal("0.00700000"),
    )


@pytest.fixture()
def readme_lake(spark, lake, monkeypatch):
    """Two days of bronze and silver, committed through the lake's commit path; the lake named
    in DEEP_STORAGE_LAKE as a notebook would have it (the AWS_* are the test services')."""
    write_bronze_day(
        spark, lake, D1, [event("2025-06-01 10:00:00"), event("2025-06-01 11:00:00")], sealed=True
    )
    write_bronze_day(spark, lake, D2, [event("2025-06-02 09:00:00")], sealed=True)
    write_silver_day(spark, lake, D1, [executed("a", 1001), silver_row(execution_id="b")])
    write_silver_day(
        spark,
        lake,
        D2,
        [executed("c", 1001), executed("d", 1002), silver_row(execution_id="e", client_id=1001)],
    )
    monkeypatch.setenv("DEEP_STORAGE_LAKE", lake)
    return lake


# A later run's day 2: client 1001's execution "c" is now "f" (a rebuilt day replaces each of its
# partitions).
NEWER_D2 = [executed("f", 1001), executed("d", 1002)]


def committed_rows(lake: str, table: str, day: dt.date | None = None) -> int:
    facts = lakes.committed(lakes.LakeFS(lake), table, None if day is None else [day])
    return sum(m.rows for m in facts.values())


def test_delta_rs_and_pandas_read_the_committed_rows(readme_lake):
    ns = run("delta-rs")
    current = lakes.LakeFS(readme_lake).delta(lakes.SILVER_EXECUTIONS).version()
    assert ns["version"] == current
    assert len(ns["day"]) == committed_rows(readme_lake, lakes.SILVER_EXECUTIONS, D2) == 3
    assert sorted(ns["day"]["execution_id"]) == ["c", "d", "e"]


def test_duckdb_over_the_arrow_dataset_counts_the_committed_rows(readme_lake):
    ns = run("delta-rs", "duckdb")
    counts = ns["by_status"]
    assert int(counts["executions"].sum()) == committed_rows(readme_lake, lakes.SILVER_EXECUTIONS)
    assert {(str(r.date)[:10], r.status): r.executions for r in counts.itertuples()} == {
        ("2025-06-01", "EXECUTED"): 1,
        ("2025-06-01", "PENDING"): 1,
        ("2025-06-02", "EXECUTED"): 2,
        ("2025-06-02", "PENDING"): 1,
    }


def test_spark_sql_reads_the_table_and_a_version_of_it_and_writes_nothing(spark, readme_lake):
    fs = lakes.LakeFS(readme_lake)
    before = fs.delta(lakes.SILVER_EXECUTIONS).version()
    spark.sql("DROP TABLE IF EXISTS stop_executions")  # the session is shared by the test run
    try:
        ns = run("delta-rs", "spark-sql")
        per_day = {r.date: r.executions for r in ns["per_day"].collect()}
        assert per_day == {
            D1: committed_rows(readme_lake, lakes.SILVER_EXECUTIONS, D1),
            D2: committed_rows(readme_lake, lakes.SILVER_EXECUTIONS, D2),
        }
        write_silver_day(spark, readme_lake, D2, NEWER_D2)
        assert ns["then"].first().executions == 5, "VERSION AS OF reads the pinned version"
        after = spark.sql("SELECT count(*) AS n FROM stop_executions").first().n
        assert after == committed_rows(readme_lake, lakes.SILVER_EXECUTIONS) == 4
    finally:
        spark.sql("DROP TABLE IF EXISTS stop_executions")
    assert fs.delta(lakes.SILVER_EXECUTIONS).version() == before + 1, "only the test committed"


def test_deep_storage_read_pins_a_version_that_a_newer_commit_does_not_change(spark, readme_lake):
    ns = run("deep_storage.read")
    week, version = ns["week"], ns["version"]
    assert len(week) == committed_rows(readme_lake, lakes.SILVER_EXECUTIONS) == 5
    assert version == lakes.LakeFS(readme_lake).delta(lakes.SILVER_EXECUTIONS).version()
    assert list(ns["mine"]["execution_id"]) == ["c"]
    assert ns["events"].num_rows == committed_rows(readme_lake, lakes.BRONZE_EVENTS, D2) == 1

    write_silver_day(spark, readme_lake, D2, NEWER_D2)
    run("time travel", namespace=ns)
    assert ns["same_week"].attrs["delta_version"] == version
    assert sorted(ns["same_week"]["execution_id"]) == sorted(week["execution_id"])
    now = run("deep_storage.read")["week"]
    assert now.attrs["delta_version"] == version + 1
    assert sorted(now["execution_id"]) == ["a", "b", "d", "f"] != sorted(week["execution_id"])
