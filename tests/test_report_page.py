"""The gate's page from hand-built results (no services): verdict by the gate's levels, rules in
order, offending values as they are, charts, no external reference. The browser test renders a
real one."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from deep_storage.quality import report_page
from deep_storage.quality.verdict import RuleResult, TableReport, ValidationReport

pytestmark = pytest.mark.unit


def _report(results, lag=None, history=None) -> ValidationReport:
    table = TableReport("bronze_events", "2025-06-01", 1000, results, quarantined=3)
    table.links = {
        "results (JSON)": "s3a://lake/_quality/bronze_events/date=2025-06-01/results.json"
    }
    report = ValidationReport("2025-06-01", "s3a://lake", "run-1", [table])
    report.lag_s = lag or {}
    report.history = history or {}
    report.endpoint = "http://127.0.0.1:8333"
    return report


WARNED = RuleResult(
    "event_type_known",
    "warn",
    False,
    "event_type is one the projection understands",
    3,
    0.3,
    (
        {"event_id": "e-1", "event_type": "AUDIT_NOTE"},
        {"event_id": "e-2", "event_type": "<script>alert(1)</script>"},
        {"event_id": "e-3", "event_type": None},
    ),
)
PASSED = RuleResult("event_id_unique", "fail", True, "event_id appears once", 0, 0.0)


def test_a_warn_only_day_reads_warned_where_great_expectations_says_failed():
    report = _report([PASSED, WARNED])
    page = report_page.render([report])
    assert report.verdict()["verdict"] == "warned"
    verdict = re.search(r'data-verdict="(\w+)"', page).group(1)
    assert verdict == "warned"
    assert page.index('id="verdict"') < page.index("<table")  # the verdict comes first
    assert "The gate passed with warnings" in page and "Failed" not in page


def test_offending_rows_show_their_real_values_escaped_with_nulls_marked():
    page = report_page.render([_report([PASSED, WARNED])])
    section = page[page.index('data-offending="event_type_known"') :]
    assert "AUDIT_NOTE" in section and "e-1" in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>" not in page
    assert '<span class="null">NULL</span>' in section
    # the broken rule is listed before the passed one
    assert page.index('data-rule="event_type_known"') < page.index('data-rule="event_id_unique"')


def test_the_page_references_nothing_outside_itself():
    history = {
        "bronze": {f"2025-05-{d:02d}": {"rows": 900 + d, "statuses": {}} for d in range(19, 32)},
        "silver": {
            f"2025-05-{d:02d}": {"rows": 300, "statuses": {"EXECUTED": 250, "FAILED": 50}}
            for d in range(19, 32)
        },
    }
    page = report_page.render([_report([WARNED], {"bronze": 60.0, "silver": 7200.0}, history)])
    assert "default-src 'none'" in page  # the Content-Security-Policy forbids any request
    for pattern in (r"<script", r"<link", r"<img", r"\bsrc=", r"url\(", r"@import"):
        assert not re.search(pattern, page), pattern
    # links are for people to follow, never loaded: the store's address, path-style
    assert 'href="http://127.0.0.1:8333/lake/_quality/bronze_events/' in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
    assert "2.0 h behind" in page  # silver past its 1 h SLA: drawn in the failed colour
    assert report_page.COLOURS["failed"] in page


def test_several_days_get_one_verdict_the_worst_of_them():
    passed = _report([PASSED])
    failed = _report([RuleResult("event_id_unique", "fail", False, "once", 2, 0.2)])
    failed.date = "2025-06-02"
    page = report_page.render([passed, failed])
    assert re.search(r'data-verdict="(\w+)"', page).group(1) == "failed"
    assert "2025-06-01 to 2025-06-02" in page


def test_money_in_a_sample_keeps_its_exact_digits():
    rule = RuleResult(
        "prices_positive", "warn", False, "> 0", 1, 0.1, ({"stop_price": Decimal("-0.00000001")},)
    )
    assert "-1E-8" not in report_page.render([_report([rule])])
    assert "-0.00000001" in report_page.render([_report([rule])])
