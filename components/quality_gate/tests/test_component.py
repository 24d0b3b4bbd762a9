"""quality_gate through its Python function: the gate's library call faked with hand-made
reports, real HTML, Markdown and Metrics artifacts. A broken fail rule fails the task after the
reports are written. The same on the real services: tests/test_components_on_the_lake.py."""

import datetime as dt
from pathlib import Path

import pytest
from kfp.dsl import HTML, Markdown, Metrics

from deep_storage.core.errors import InputError, QualityGateError
from deep_storage.quality import validate
from deep_storage.quality.verdict import RuleResult, TableReport, ValidationReport
from deep_storage_kfp.components import quality_gate

pytestmark = pytest.mark.unit

JUNE_1, JUNE_2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


def report(day: dt.date, lake: str, symbol_present: bool) -> ValidationReport:
    """bronze's day: 2 rows on 06-01, 3 on 06-02 (one without a symbol when not
    symbol_present), judged on two fail rules and one warn rule that broke."""
    rules = [
        RuleResult("required_not_null", "fail", symbol_present, "symbol is set", observed=1),
        RuleResult("unique_event_id", "fail", True, "event_id is unique", observed=0),
        RuleResult("volume_within_band", "warn", False, "rows within mean ± k·stdev", observed=3),
    ]
    rows, quarantined = (2, 0) if day == JUNE_1 else (3, 0 if symbol_present else 1)
    table = TableReport("bronze", day.isoformat(), rows, rules, quarantined)
    return ValidationReport(day.isoformat(), lake, "run-1", tables=[table])


@pytest.fixture
def judged(monkeypatch):
    """Fakes validate.run: records each call; 06-02 breaks required_not_null."""
    calls = []

    def fake_run(day, lake, **settings):
        calls.append({"day": day, "lake": lake, **settings})
        return report(day, lake, symbol_present=day != JUNE_2)

    monkeypatch.setattr(validate, "run", fake_run)
    return calls


def artifacts(tmp_path) -> dict:
    return {
        "report": HTML(name="report", uri=str(tmp_path / "report")),
        "summary": Markdown(name="summary", uri=str(tmp_path / "summary")),
        "metrics": Metrics(name="metrics", uri=str(tmp_path / "metrics")),
    }


def test_a_broken_fail_rule_fails_the_task_after_the_reports_are_written(judged, tmp_path):
    out = artifacts(tmp_path)
    with pytest.raises(QualityGateError) as failed:
        quality_gate.python_func(
            **out,
            first_day="2025-06-01",
            last_day="2025-06-02",
            lake_uri="s3://rbs/",
            as_of="2025-06-10T00:00:00Z",
            volume_k=2.5,
        )
    assert str(failed.value) == (
        "quality gate failed for 2025-06-02: bronze.required_not_null "
        "(report: s3a://rbs/_quality/summary/date=2025-06-02/report.html)"
    )
    # Each day once, typed, and never asked to raise: the component writes first.
    when = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)
    assert [(c["day"], c["lake"], c["as_of"], c["volume_k"]) for c in judged] == [
        (JUNE_1, "s3a://rbs", when, 2.5),
        (JUNE_2, "s3a://rbs", when, 2.5),
    ]
    assert {c["raise_on_failure"] for c in judged} == {False}
    summary = Path(out["summary"].path).read_text()
    assert "## Data quality 2025-06-01: passed" in summary
    assert "## Data quality 2025-06-02: FAILED" in summary
    assert "| required_not_null | fail | **failed** | 1 |" in summary
    page = Path(out["report"].path).read_text()
    assert page.lstrip().startswith("<") and "required_not_null" in page
    # 2 + 3 rows; 06-01: 2 rules held, 1 warned; 06-02: 1 held, 1 failed, 1 warned.
    assert out["metrics"].metadata == {
        "rows_checked": 5,
        "rules_passed": 3,
        "rules_failed": 1,
        "rules_warned": 2,
        "rows_quarantined": 1,
    }


def test_warnings_alone_pass_the_gate(monkeypatch, tmp_path):
    monkeypatch.setattr(
        validate, "run", lambda day, lake, **settings: report(day, lake, symbol_present=True)
    )
    out = artifacts(tmp_path)
    quality_gate.python_func(
        **out, first_day="2025-06-02", last_day="2025-06-02", lake_uri="s3a://rbs"
    )
    assert "## Data quality 2025-06-02: passed" in Path(out["summary"].path).read_text()
    assert out["metrics"].metadata["rules_warned"] == 1
    assert out["metrics"].metadata["rules_failed"] == 0


def test_a_bad_first_day_is_named_as_the_parameter_before_anything_is_judged(judged, tmp_path):
    with pytest.raises(InputError, match="first_day '06/01/2025'"):
        quality_gate.python_func(
            **artifacts(tmp_path), first_day="06/01/2025", last_day="", lake_uri="s3a://rbs"
        )
    assert judged == []
