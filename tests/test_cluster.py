"""The steps with executors in other processes: a Spark standalone cluster on loopback (a master
and two one-core workers, started with the pinned pyspark's `spark-class`), against the same
steps in local mode. Every executor-side assumption (JARs, the Python environment, the S3
credentials, the committers, the UTC pinning, files on the driver's disk) breaks the equality.

Bronze's default engine reads PostgreSQL without Spark, so it is the same in both modes; its
Spark JDBC engine (`--read-path jdbc`) runs on the executors here too.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import pytest

from deep_storage import lake as lakes
from deep_storage import reader
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, LakeFS
from demo import synthetic
from demo.local_services import SparkStandalone
from tests.services import BUCKET, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = [dt.date(2025, 6, 1), dt.date(2025, 6, 2)]
WORKERS = 2


@pytest.fixture(scope="module")
def cluster():
    """spark://127.0.0.1:PORT with two one-core workers (demo.local_services.SparkStandalone)."""
    with SparkStandalone(workers=WORKERS, cores=1, memory="2g") as standalone:
        yield standalone


def _run(step: str, lake: str, master: str | None, *extra: str) -> subprocess.CompletedProcess:
    # On the cluster the gate judges on Spark (its executors); in local mode on its default,
    # DuckDB for days this small: the equal figures below also say the two engines agree.
    env = {"DEEP_STORAGE_SPARK_MASTER": master, "DEEP_STORAGE_GATE_ENGINE": "spark"}
    env = env if master else {}
    args = [step, "--date", DAYS[0].isoformat(), "--until", DAYS[-1].isoformat(), "--lake", lake]
    args += extra
    done = run_cli(*args, "--json", env=env, timeout=600)
    assert done.returncode in (0, 6), f"{step} on {master or 'local'}: {done.stderr[-2000:]}"
    return done


def _lake(fs_lake: str) -> dict:
    fs = LakeFS(fs_lake)
    rows = {
        table: {d.isoformat(): m.rows for d, m in lakes.committed(fs, table, DAYS).items()}
        for table in (BRONZE_EVENTS, SILVER_EXECUTIONS)
    }
    silver = reader.read("silver", DAYS[0], DAYS[-1], engine="arrow", lake=fs_lake)
    content = sorted(silver.drop_columns(["_sealed"]).to_pylist(), key=lambda r: r["execution_id"])
    return {"rows": rows, "silver": content}


def test_silver_and_the_gate_on_executors_build_the_same_lake_as_local_mode(
    cluster, db, service_env
):
    master = cluster.url
    synthetic.seed_days(db, DAYS, events_per_day=2000, seed=17, clients=8, spill_minutes=0)
    local = f"s3a://{BUCKET}/local-{uuid.uuid4().hex[:8]}"
    remote = f"s3a://{BUCKET}/cluster-{uuid.uuid4().hex[:8]}"

    for lake in (local, remote):
        _run("bronze", lake, None)  # the arrow engine: no Spark in either mode
    _run("silver", local, None)
    _run("silver", remote, master)
    checked = {
        lake: json.loads(_run("validate", lake, master if lake == remote else None).stdout)
        for lake in (local, remote)
    }

    built_locally, built_on_the_cluster = _lake(local), _lake(remote)
    assert built_locally["rows"][SILVER_EXECUTIONS], "silver committed nothing"
    assert sum(built_locally["rows"][BRONZE_EVENTS].values()) == 4000
    assert built_on_the_cluster["rows"] == built_locally["rows"]
    assert built_on_the_cluster["silver"] == built_locally["silver"]
    for key in ("rows_checked", "rules_failed", "rules_warned", "rows_quarantined"):
        assert checked[remote][key] == checked[local][key], key

    # The work ran in executors of the standalone cluster, not in a local-mode driver.
    apps = {a["name"] for a in cluster.state()["completedapps"]}
    assert {"deep-storage-silver", "deep-storage-validate"} <= apps, apps


def test_bronze_through_spark_jdbc_on_executors_commits_every_row(cluster, db, service_env):
    master = cluster.url
    synthetic.seed_days(db, DAYS, events_per_day=2000, seed=18, clients=8, spill_minutes=0)
    lake = f"s3a://{BUCKET}/cluster-jdbc-{uuid.uuid4().hex[:8]}"
    done = _run("bronze", lake, master, "--read-path", "jdbc")
    assert done.returncode == 0, done.stderr[-2000:]
    days = {d["date"]: d["rows"] for d in json.loads(done.stdout)["days"]}
    assert days == {d.isoformat(): 2000 for d in DAYS}
    committed = lakes.committed(LakeFS(lake), BRONZE_EVENTS, DAYS)
    assert {d.isoformat(): m.rows for d, m in committed.items()} == days
