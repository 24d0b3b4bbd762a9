"""catalog_tables through its Python function, with a real Metrics artifact and a fake step."""

import pytest
from kfp.dsl import Metrics

from deep_storage import steps
from deep_storage.catalog import CatalogResult, Registration
from deep_storage_kfp.components import catalog_tables

pytestmark = pytest.mark.unit


def test_passes_the_lake_and_database_on_and_logs_what_it_registered(monkeypatch, tmp_path, capsys):
    calls = []
    result = CatalogResult(
        "thrift://metastore:9083",
        "lake_db",
        [
            Registration("lake_db.bronze_events", "s3a://b/bronze/events", "present"),
            Registration("lake_db.silver_stop_executions", "s3a://b/silver/x", "registered"),
        ],
    )

    def fake_catalog(lake_uri="", metastore="", database=""):
        calls.append((lake_uri, metastore, database))
        return steps.StepResult("", "", {"skipped": 0, "tables": 2, "registered": 1}, result)

    monkeypatch.setattr(steps, "catalog", fake_catalog)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    catalog_tables.python_func(metrics=metrics, lake_uri="s3a://b", database="lake_db")
    assert calls == [("s3a://b", "", "lake_db")]
    assert metrics.metadata == {"skipped": 0, "tables": 2, "registered": 1}
    assert capsys.readouterr().out.splitlines() == [
        "lake_db.bronze_events: present at s3a://b/bronze/events",
        "lake_db.silver_stop_executions: registered at s3a://b/silver/x",
    ]


def test_without_a_metastore_it_says_it_skipped_and_passes(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HIVE_METASTORE_URI", raising=False)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    catalog_tables.python_func(metrics=metrics, lake_uri="file:///nowhere")
    assert capsys.readouterr().out.strip() == (
        "catalog: skipped: no metastore: HIVE_METASTORE_URI is not set"
    )
    assert metrics.metadata == {"skipped": 1, "tables": 0, "registered": 0}
