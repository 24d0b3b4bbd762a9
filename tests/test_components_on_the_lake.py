"""The components that read or write the lake, through their Python functions with real KFP
artifacts, on the real services. Each component's fast test with fakes is in
components/<name>/tests/."""

import datetime as dt
from pathlib import Path

import pytest
from kfp.dsl import HTML, Markdown, Metrics

from deep_storage import lake as lakes
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import QualityGateError
from deep_storage.lake import BRONZE_EVENTS, LakeFS
from deep_storage.tables import bronze
from deep_storage_kfp.components import bronze_ingest, quality_gate, retention, silver_transform
from tests.events import event, insert
from tests.lake_fixtures import recommit, write_bronze_day

pytestmark = pytest.mark.integration


def test_bronze_resolves_the_day_from_the_schedule_time_and_logs_metrics(db, spark, lake, tmp_path):
    insert(db, [event("2025-06-01 08:00:00"), event("2025-06-01 09:00:00")])
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    first, last = bronze_ingest.python_func(
        metrics=metrics,
        lake_uri=lake,
        scheduled_time="2025-06-01T23:30:00Z",
        create_time="2025-07-01T00:00:00Z",
    )
    assert (first, last) == ("2025-06-01", "2025-06-01")
    assert metrics.metadata == {
        "days": 1,
        "days_changed": 1,
        "rows": 2,
        "unsealed_days": 0,
        "days_left": 0,
        "stuck_writers": 0,
    }
    assert lakes.committed_day(LakeFS(lake), BRONZE_EVENTS, dt.date(2025, 6, 1)).rows == 2


def test_a_bronze_run_catches_up_an_unsealed_earlier_day(db, spark, lake, tmp_path):
    insert(db, [event("2025-06-01 08:00:00"), event("2025-06-03 08:00:00")])
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    bronze_ingest.python_func(metrics=metrics, lake_uri=lake, run_date="2025-06-01")
    # as if that run had met an open transaction
    recommit(lake, BRONZE_EVENTS, dt.date(2025, 6, 1), sealed=False)
    first, last = bronze_ingest.python_func(metrics=metrics, lake_uri=lake, run_date="2025-06-03")
    assert (first, last) == ("2025-06-01", "2025-06-03")
    assert metrics.metadata["days"] == 3 and metrics.metadata["rows"] == 2


def test_silver_rebuilds_the_days_and_logs_executions_per_status(db, spark, lake, tmp_path):
    insert(
        db,
        [
            event("2025-06-01 08:00:00", "STOP_TRIGGERED", execution_token="a"),
            event("2025-06-01 08:00:01", "FAILED", execution_token="a", error_message="rejected"),
            event("2025-06-01 09:00:00", "STOP_TRIGGERED", execution_token="b"),
        ],
    )
    bronze.run(DayRange(dt.date(2025, 6, 1), dt.date(2025, 6, 1)), lake, spark=spark)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    silver_transform.python_func(
        metrics=metrics,
        first_day="2025-06-01",
        last_day="2025-06-01",
        lake_uri=lake,
        lookback_days=1,
    )
    assert metrics.metadata == {
        "executions": 2,
        "partitions_written": 1,
        "dates_committed": 1,
        "skipped": 0,
        "status_failed": 1,
        "status_pending": 1,
    }


def test_a_broken_fail_rule_fails_the_gate_after_writing_its_reports(spark, lake, tmp_path):
    write_bronze_day(
        spark,
        lake,
        dt.date(2025, 6, 1),
        [event("2025-06-01 08:00:00", symbol=None), event("2025-06-01 09:00:00")],
    )
    report = HTML(name="report", uri=str(tmp_path / "report"))
    summary = Markdown(name="summary", uri=str(tmp_path / "summary"))
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    with pytest.raises(QualityGateError, match="required_not_null"):
        quality_gate.python_func(
            report=report,
            summary=summary,
            metrics=metrics,
            first_day="2025-06-01",
            last_day="2025-06-01",
            lake_uri=lake,
            as_of="2025-06-10T00:00:00Z",
        )
    assert "| required_not_null | fail | **failed** |" in Path(summary.path).read_text()
    html = Path(report.path).read_text()
    assert html.lstrip().startswith("<") and "required_not_null" in html
    assert metrics.metadata["rules_failed"] == 1
    assert metrics.metadata["rows_quarantined"] == 1


def test_retention_removes_the_days_past_the_window_as_of_the_day_given(spark, lake, tmp_path):
    old, kept = dt.date(2025, 3, 21), dt.date(2025, 3, 22)  # bronze keeps 90 days: from 03-22
    for day in (old, kept):
        write_bronze_day(spark, lake, day, [event(f"{day} 08:00:00")], sealed=True)
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    retention.python_func(metrics=metrics, lake_uri=lake, as_of="2025-06-20")
    assert metrics.metadata == {
        "dry_run": 0,
        "bronze_days_removed": 1,
        "silver_days_removed": 0,
        "bronze_files_vacuumed": 0,
        "silver_files_vacuumed": 0,
        "days_files_vacuumed": 0,
    }
    assert list(lakes.committed(LakeFS(lake), BRONZE_EVENTS)) == [kept]
