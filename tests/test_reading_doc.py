"""docs/reading.md's blocks, run as a user would paste them: each block marked
`<!-- notebook-read: NAME` is executed against a lake in SeaweedFS, with the settings in the
environment the way the lake's secret sets them, and checked against the committed rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from deep_storage import lake as lakes
from tests.catalog_lake import run_catalog
from tests.events import event
from tests.lake_fixtures import silver_row, write_bronze_day, write_silver_day

pytestmark = pytest.mark.integration

READING = Path(__file__).parent.parent / "docs" / "reading.md"
D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


def block(name: str) -> str:
    """The ```python block after the marker `<!-- notebook-read: {name}`."""
    text = READING.read_text()
    marker = f"<!-- notebook-read: {name}"
    assert marker in text, f"docs/reading.md lost the block {name!r}"
    after = text[text.index(marker) :]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def run(*names: str, namespace: dict | None = None) -> dict:
    """Execute the named blocks in order in one namespace, as cells of one notebook."""
    namespace = {} if namespace is None else namespace
    for name in names:
        code = compile(block(name), f"docs/reading.md <{name}>", "exec", dont_inherit=True)
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


def write_silver_days(spark, lake: str) -> None:
    """Silver's two days: D1 "a" executed and "b" pending; D2 "c", "d" executed, "e" pending."""
    write_silver_day(spark, lake, D1, [executed("a", 1001), silver_row(execution_id="b")])
    write_silver_day(
        spark,
        lake,
        D2,
        [executed("c", 1001), executed("d", 1002), silver_row(execution_id="e", client_id=1001)],
    )


@pytest.fixture()
def reading_lake(spark, lake, monkeypatch):
    """Two days of bronze and silver, committed through the lake's commit path; the lake named
    in DEEP_STORAGE_LAKE as a notebook would have it (the AWS_* are the test services')."""
    write_bronze_day(
        spark, lake, D1, [event("2025-06-01 10:00:00"), event("2025-06-01 11:00:00")], sealed=True
    )
    write_bronze_day(spark, lake, D2, [event("2025-06-02 09:00:00")], sealed=True)
    write_silver_days(spark, lake)
    monkeypatch.setenv("DEEP_STORAGE_LAKE", lake)
    return lake


# A later run's day 2: client 1001's execution "c" is now "f" (a rebuilt day replaces each of its
# partitions).
NEWER_D2 = [executed("f", 1001), executed("d", 1002)]


def committed_rows(lake: str, table: str, day: dt.date | None = None) -> int:
    facts = lakes.committed(lakes.LakeFS(lake), table, None if day is None else [day])
    return sum(m.rows for m in facts.values())


def test_delta_rs_and_pandas_read_the_committed_rows(reading_lake):
    ns = run("delta-rs")
    current = lakes.LakeFS(reading_lake).delta(lakes.SILVER_EXECUTIONS).version()
    assert ns["version"] == current
    assert len(ns["day"]) == committed_rows(reading_lake, lakes.SILVER_EXECUTIONS, D2) == 3
    assert sorted(ns["day"]["execution_id"]) == ["c", "d", "e"]


def test_duckdb_over_the_arrow_dataset_counts_the_committed_rows(reading_lake):
    ns = run("delta-rs", "duckdb")
    counts = ns["by_status"]
    assert int(counts["executions"].sum()) == committed_rows(reading_lake, lakes.SILVER_EXECUTIONS)
    assert {(str(r.date)[:10], r.status): r.executions for r in counts.itertuples()} == {
        ("2025-06-01", "EXECUTED"): 1,
        ("2025-06-01", "PENDING"): 1,
        ("2025-06-02", "EXECUTED"): 2,
        ("2025-06-02", "PENDING"): 1,
    }


@pytest.fixture(scope="module")
def named_lake(spark, service_env, metastore):
    """The same two days, in a lake the catalog named in the metastore database `deep_storage`
    (the name docs/reading.md reads: no other test registers there)."""
    lake = f"s3a://lake/reading-{uuid.uuid4().hex[:10]}"
    write_silver_days(spark, lake)
    done = run_catalog("--lake", lake, "--metastore", metastore.uri)
    assert done.returncode == 0, done.stderr
    return lake


@pytest.fixture(scope="module")
def pinned(spark, named_lake):
    """(the version a notebook pinned, the lake) after one more commit on top of it."""
    version = lakes.LakeFS(named_lake).delta(lakes.SILVER_EXECUTIONS).version()
    write_silver_day(spark, named_lake, D2, NEWER_D2)
    return version, named_lake


def test_spark_sql_reads_by_name_the_latest_version_and_a_pinned_one(metastore, pinned):
    """The block in a fresh process (Spark's catalog is fixed when a session starts), as a new
    notebook with HIVE_METASTORE_URI set would run it."""
    version, lake = pinned
    script = "\n".join(
        [
            f"version = {version}",
            block("spark-sql"),
            "import json",
            "print(json.dumps({'per_day': {str(r.date): r.executions for r in per_day.collect()},"
            " 'then': then.first().executions}))",
        ]
    )
    env = {**os.environ, "HIVE_METASTORE_URI": metastore.uri, "DEEP_STORAGE_LAKE": lake}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["per_day"] == {
        str(D1): committed_rows(lake, lakes.SILVER_EXECUTIONS, D1),
        str(D2): committed_rows(lake, lakes.SILVER_EXECUTIONS, D2),
    }
    assert out["per_day"] == {str(D1): 2, str(D2): 2}, "the newest commit, not a registered copy"
    assert out["then"] == 5, "VERSION AS OF reads the pinned version"


def test_trino_reads_by_name_the_latest_version_and_a_pinned_one(trino, pinned, monkeypatch):
    version, lake = pinned
    monkeypatch.setenv("TRINO_HOST", "127.0.0.1")
    monkeypatch.setenv("TRINO_PORT", str(trino.port))
    # Trino's start ends once it schedules a scan of the table (TrinoServer.execute); the
    # block then runs as a user's would, against a server that is up.
    trino.execute("SELECT count(*) FROM silver_stop_executions")
    ns = run("trino", namespace={"version": version, "os": os})
    fill = Decimal("64005.50000000")
    assert ns["per_day_trino"] == [[D1, 2, fill], [D2, 2, 2 * fill]]
    assert [n for _, n, _ in ns["per_day_trino"]] == [
        committed_rows(lake, lakes.SILVER_EXECUTIONS, D1),
        committed_rows(lake, lakes.SILVER_EXECUTIONS, D2),
    ]
    assert ns["then_trino"] == 5


def test_deep_storage_read_pins_a_version_that_a_newer_commit_does_not_change(spark, reading_lake):
    ns = run("deep_storage.read")
    week, version = ns["week"], ns["version"]
    assert len(week) == committed_rows(reading_lake, lakes.SILVER_EXECUTIONS) == 5
    assert version == lakes.LakeFS(reading_lake).delta(lakes.SILVER_EXECUTIONS).version()
    assert list(ns["mine"]["execution_id"]) == ["c"]
    assert ns["events"].num_rows == committed_rows(reading_lake, lakes.BRONZE_EVENTS, D2) == 1

    write_silver_day(spark, reading_lake, D2, NEWER_D2)
    run("time travel", namespace=ns)
    assert ns["same_week"].attrs["delta_version"] == version
    assert sorted(ns["same_week"]["execution_id"]) == sorted(week["execution_id"])
    now = run("deep_storage.read")["week"]
    assert now.attrs["delta_version"] == version + 1
    assert sorted(now["execution_id"]) == ["a", "b", "d", "f"] != sorted(week["execution_id"])
