"""quality_gate through its Python function: artifacts are written before the gate fails."""

import datetime as dt
from pathlib import Path

import pytest
from kfp.dsl import HTML, Markdown, Metrics

from deep_storage.core.errors import QualityGateError
from deep_storage_kfp.components import quality_gate
from tests.events import event
from tests.lake_fixtures import write_bronze_day

pytestmark = pytest.mark.integration


def test_a_broken_fail_rule_fails_the_task_after_writing_its_reports(spark, lake, tmp_path):
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
