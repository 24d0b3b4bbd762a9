"""catalog_tables through its Python function: the metastore's registration faked, a real Metrics
artifact. The real metastore: tests/test_catalog.py."""

import pytest
from kfp.dsl import Metrics

from deep_storage import catalog
from deep_storage.catalog import CatalogResult, Registration
from deep_storage.core.errors import LakeStateError
from deep_storage_kfp.components import catalog_tables

pytestmark = pytest.mark.unit


def metrics_at(tmp_path) -> Metrics:
    return Metrics(name="metrics", uri=str(tmp_path / "metrics"))


def test_the_lake_and_database_reach_the_metastore_and_each_table_is_named(
    monkeypatch, tmp_path, capsys
):
    calls = []

    def fake_register(lake=None, metastore=None, database="", **settings):
        calls.append((lake, metastore, database))
        return CatalogResult(
            "thrift://metastore:9083",
            database,
            [
                Registration("lake_db.bronze_events", "s3a://b/bronze/events", "present"),
                Registration("lake_db.silver_stop_executions", "s3a://b/silver/x", "registered"),
            ],
        )

    monkeypatch.setattr(catalog, "register", fake_register)
    metrics = metrics_at(tmp_path)
    catalog_tables.python_func(metrics=metrics, lake_uri="s3a://b", database="lake_db")
    # The metastore is the ConfigMap's (HIVE_METASTORE_URI), never a parameter.
    assert calls == [("s3a://b", None, "lake_db")]
    assert metrics.metadata == {"skipped": 0, "tables": 2, "registered": 1}
    assert capsys.readouterr().out.splitlines() == [
        "lake_db.bronze_events: present at s3a://b/bronze/events",
        "lake_db.silver_stop_executions: registered at s3a://b/silver/x",
    ]


def test_without_a_metastore_it_says_it_skipped_and_passes(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HIVE_METASTORE_URI", raising=False)
    metrics = metrics_at(tmp_path)
    catalog_tables.python_func(metrics=metrics, lake_uri="file:///nowhere")
    assert capsys.readouterr().out.strip() == (
        "catalog: skipped: no metastore: HIVE_METASTORE_URI is not set"
    )
    assert metrics.metadata == {"skipped": 1, "tables": 0, "registered": 0}


def test_a_name_taken_elsewhere_fails_the_task_as_the_catalog_says(monkeypatch, tmp_path):
    taken = (
        "deep_storage.bronze_events is registered at s3a://other/bronze/events, not at "
        "s3a://b/bronze/events: nothing was registered"
    )

    def refuse(lake=None, metastore=None, database="", **settings):
        raise LakeStateError(taken)

    monkeypatch.setattr(catalog, "register", refuse)
    metrics = metrics_at(tmp_path)
    with pytest.raises(LakeStateError) as failed:
        catalog_tables.python_func(metrics=metrics, lake_uri="s3a://b")
    assert str(failed.value) == taken and metrics.metadata == {}
