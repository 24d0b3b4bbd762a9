"""`deep-storage catalog` on a real Hive Metastore (its schema on PostgreSQL): the lake's tables by
name, idempotently, for Spark SQL (the steps' session factory) with time travel; a name taken
elsewhere refused whole, an unreachable metastore one line, no metastore a skip."""

from __future__ import annotations

import uuid

import pytest

from deep_storage import steps
from deep_storage.lake import LakeFS
from demo.local_services import free_port
from tests import catalog_lake
from tests.catalog_lake import LATE, PER_DAY, registered, run_catalog, spark_sql

pytestmark = pytest.mark.integration

TABLES = ("bronze_events", "silver_stop_executions", "gold_stop_execution_features")


@pytest.fixture(scope="module")
def built_lake(pg, spark, service_env):
    lake = f"s3a://lake/catalog-{uuid.uuid4().hex[:10]}"
    catalog_lake.build(pg, spark, lake)
    return lake


def objects(lake: str) -> list[str]:
    return LakeFS(lake).list_files(lake)


def test_every_table_is_named_at_its_location_and_registering_again_changes_nothing(
    metastore, built_lake
):
    env = {"HIVE_METASTORE_URI": metastore.uri}
    first = run_catalog("--lake", built_lake, "--database", "names", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"names.{t}: registered at {built_lake}/{path}"
        for t, path in zip(
            TABLES,
            ("bronze/events", "silver/stop_executions", "gold/stop_execution_features"),
            strict=True,
        )
    ]
    where = registered(metastore, "names")
    assert where == {
        "bronze_events": f"{built_lake}/bronze/events",
        "silver_stop_executions": f"{built_lake}/silver/stop_executions",
        "gold_stop_execution_features": f"{built_lake}/gold/stop_execution_features",
    }
    before = objects(built_lake)
    again = run_catalog("--lake", built_lake, "--database", "names", env=env)
    assert again.returncode == 0, again.stderr
    assert [line.split(":")[1].strip() for line in again.stdout.splitlines()] == [
        "already registered at s3a"
    ] * 3
    assert registered(metastore, "names") == where
    assert objects(built_lake) == before, "registering writes nothing to the lake"


def test_spark_sql_reads_by_name_sees_new_commits_and_reads_an_old_version(
    pg, spark, metastore, built_lake
):
    done = run_catalog("--lake", built_lake, "--database", "sql", "--metastore", metastore.uri)
    assert done.returncode == 0, done.stderr
    version = LakeFS(built_lake).delta("silver/stop_executions").version()
    per_day = (
        "SELECT date, count(*), sum(fill_price) FROM sql.silver_stop_executions{at} "
        "GROUP BY date ORDER BY date"
    )
    first = spark_sql({"now": per_day.format(at="")}, metastore.uri)["now"]
    assert first == [[str(d), str(n), f"{s:.8f}"] for d, (n, s) in PER_DAY.items()]

    catalog_lake.late_day(pg, spark, built_lake)  # new commits, no new registration
    out = spark_sql(
        {"now": per_day.format(at=""), "then": per_day.format(at=f" VERSION AS OF {version}")},
        metastore.uri,
    )
    both = {**PER_DAY, **LATE}
    assert out["now"] == [[str(d), str(n), f"{s:.8f}"] for d, (n, s) in both.items()]
    assert out["then"] == first, "VERSION AS OF reads the version before D2 arrived"


def test_a_name_taken_at_another_location_is_refused_whole_and_nothing_is_dropped(
    metastore, built_lake, spark, pg
):
    env = {"HIVE_METASTORE_URI": metastore.uri}
    assert run_catalog("--lake", built_lake, "--database", "taken", env=env).returncode == 0
    other = f"s3a://lake/other-{uuid.uuid4().hex[:10]}"
    catalog_lake.build(pg, spark, other)
    refused = run_catalog("--lake", other, "--database", "taken", env=env)
    assert refused.returncode == 10, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert (
        f"taken.bronze_events is registered at {built_lake}/bronze/events, "
        f"not at {other}/bronze/events" in line
    )
    assert "nothing was changed" in line
    assert set(registered(metastore, "taken").values()) == {
        f"{built_lake}/{p}"
        for p in ("bronze/events", "silver/stop_executions", "gold/stop_execution_features")
    }


def test_an_unreachable_metastore_is_one_line_with_its_own_exit_code_and_the_lake_untouched(
    built_lake,
):
    before = objects(built_lake)
    dead = f"thrift://127.0.0.1:{free_port()}"
    done = run_catalog("--lake", built_lake, "--metastore", dead)
    assert done.returncode == 9
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"deep-storage: error: metastore {dead} is unreachable")
    assert "the lake is untouched" in line
    assert objects(built_lake) == before


def test_a_metastore_that_is_not_a_thrift_uri_is_a_bad_input(built_lake):
    done = run_catalog("--lake", built_lake, "--metastore", "http://metastore:9083")
    assert done.returncode == 2
    assert "expected thrift://HOST:PORT" in done.stderr


def test_without_a_metastore_the_step_skips_and_says_why(built_lake, monkeypatch):
    monkeypatch.delenv("HIVE_METASTORE_URI", raising=False)
    done = run_catalog("--lake", built_lake, env={"HIVE_METASTORE_URI": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "catalog: skipped: no metastore: HIVE_METASTORE_URI is not set"
    out = steps.catalog(built_lake)
    assert out.metrics == {"skipped": 1, "tables": 0, "registered": 0}
