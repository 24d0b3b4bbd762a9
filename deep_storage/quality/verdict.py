"""The gate's verdict: what one day's judgement holds (TableReport per table, ValidationReport
per day), how it reads as Markdown and as metrics, where its page lives, and the error a failed
gate raises. Plain data: validate builds it, report_page draws it, steps turns it into outputs."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deep_storage.core.errors import QualityGateError
from deep_storage.lake import QUALITY, QUARANTINE
from deep_storage.quality.gx_runner import RuleResult

if TYPE_CHECKING:
    from deep_storage.lake import LakeFS
    from deep_storage.quality.day_plan import Plan

log = logging.getLogger(__name__)

# How far each table may lag the source's newest event: bronze fresher than 2 h, an event in
# silver within 1 h of being written (docs/source.md).
LAG_SLA = {"bronze": dt.timedelta(hours=2), "silver": dt.timedelta(hours=1)}


def _outcome(failed: bool, warned: bool) -> str:
    return "failed" if failed else "warned" if warned else "passed"


@dataclass
class TableReport:
    table: str
    date: str
    rows: int
    results: list[RuleResult]
    quarantined: int
    notes: list[str] = field(default_factory=list)
    data_docs: str = ""  # GX's own Data Docs page
    gx_result: object = field(default=None, repr=False)
    results_json: str = ""
    links: dict[str, str] = field(default_factory=dict)  # what the page links to: label -> URI

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def warned(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == "warned"]

    @property
    def passed(self) -> list[RuleResult]:
        return [r for r in self.results if r.success]

    @property
    def outcome(self) -> str:
        """The table's verdict by the gate's levels: failed, warned or passed."""
        return _outcome(bool(self.failed), bool(self.warned))

    def markdown(self) -> str:
        lines = [
            f"### {self.table} {self.date}",
            "",
            f"{self.rows} rows checked; rules: {len(self.passed)} passed, "
            f"{len(self.failed)} failed, {len(self.warned)} warned; "
            f"{self.quarantined} rows quarantined.",
            "",
            "| rule | level | result | observed |",
            "| --- | --- | --- | --- |",
        ]
        order = {"failed": 0, "warned": 1, "passed": 2}
        for r in sorted(self.results, key=lambda r: (order[r.outcome], r.name)):
            observed = "" if r.success else str(r.observed)[:120].replace("|", "\\|")
            lines.append(f"| {r.name} | {r.level} | **{r.outcome}** | {observed} |")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class ValidationReport:
    date: str
    lake: str
    run_id: str
    tables: list[TableReport] = field(default_factory=list)
    lag_s: dict[str, float] = field(default_factory=dict)  # table -> seconds behind the source
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    # "bronze"/"silver" -> ISO day -> {"rows": n, "statuses": {status: n}}, the last 14 days
    # from the days' commit facts alone (`_days`: the page's charts)
    history: dict[str, dict[str, dict]] = field(default_factory=dict)
    endpoint: str | None = None  # the object store's, for the page's links

    def freshness(self) -> str:
        """The lake's lag behind the source at the gate's time, as numbers, against the SLAs."""
        if not self.lag_s:
            return "Freshness: not measured (no source database configured)."
        parts = []
        for table, lag in self.lag_s.items():
            sla = LAG_SLA[table]
            state = "within" if lag <= sla.total_seconds() else "PAST"
            parts.append(f"{table} {lag:.0f} s behind the source ({state} its SLA of {sla})")
        return "Freshness: " + "; ".join(parts) + "."

    @property
    def failed(self) -> list[str]:
        return [f"{t.table}.{r.name}" for t in self.tables for r in t.failed]

    @property
    def warned(self) -> list[str]:
        return [f"{t.table}.{r.name}" for t in self.tables for r in t.warned]

    def verdict(self) -> dict:
        """The gate's verdict by its own levels, per table and overall (what `status` shows)."""

        return {
            "date": self.date,
            "run_id": self.run_id,
            "checked_at": dt.datetime.now(dt.UTC).isoformat(),
            "verdict": _outcome(bool(self.failed), bool(self.warned)),
            "tables": {t.table: t.outcome for t in self.tables},
            "failed": self.failed,
            "warned": self.warned,
        }

    def metrics(self) -> dict[str, float]:
        return {
            "rows_checked": sum(t.rows for t in self.tables),
            "rules_passed": sum(len(t.passed) for t in self.tables),
            "rules_failed": sum(len(t.failed) for t in self.tables),
            "rules_warned": sum(len(t.warned) for t in self.tables),
            "rows_quarantined": sum(t.quarantined for t in self.tables),
            **{f"{t}_freshness_lag_seconds": round(v, 3) for t, v in self.lag_s.items()},
        }

    def markdown(self) -> str:
        m = self.metrics()
        verdict = "FAILED" if self.failed else "passed"
        head = (
            f"## Data quality {self.date}: {verdict}\n\n"
            f"{m['rows_checked']} rows checked; {m['rules_passed']} rules passed, "
            f"{m['rules_failed']} failed, {m['rules_warned']} warned; "
            f"{m['rows_quarantined']} rows quarantined.\n\n"
            f"{self.freshness()}\n\n"
        )
        return head + "\n".join(t.markdown() for t in self.tables)


def report_uri(lake_uri: str, day: dt.date | str) -> str:
    """Where the gate's page for `day` lives in the lake."""
    return f"{lake_uri.rstrip('/')}/{QUALITY}/summary/date={day}/report.html"


def gate_error(lake: str, reports: list[ValidationReport]) -> QualityGateError | None:
    """The gate's verdict as an error, the same for the CLI, the component and the library:
    the broken fail rules by day and where each day's page is. None when none broke."""
    failed = [r for r in reports if r.failed]
    if not failed:
        return None
    rules = "; ".join(f"{r.date}: {', '.join(r.failed)}" for r in failed)
    pages = ", ".join(report_uri(lake, r.date) for r in failed)
    return QualityGateError(f"quality gate failed for {rules} (report: {pages})")


def table_report(fs: LakeFS, plan: Plan, day, results, quarantined, gx_result) -> TableReport:
    """The table's report: its results, the GX result as JSON, and the links its page shows."""
    table = plan.table
    report = TableReport(table, day.isoformat(), plan.rows, results, quarantined, plan.notes)
    report.gx_result = gx_result
    report.results_json = json.dumps(gx_result.to_json_dict(), indent=1, default=str)
    folder = f"{fs.lake}/{QUALITY}/{table}/date={day.isoformat()}"
    report.links = {
        "results (JSON)": f"{folder}/results.json",
        "Great Expectations Data Docs": f"{folder}/data_docs.html",
    }
    if quarantined:
        report.links["quarantined rows"] = f"{fs.lake}/{QUARANTINE}/{table}/date={day.isoformat()}/"
    for r in report.failed + report.warned:
        log.warning(
            "%s %s: rule %s %s (%s): %s", table, day, r.name, r.outcome, r.level, r.observed
        )
    return report
