"""The gate's verdict, in one place: each rule's outcome by its level (RuleResult), a table's
and a day's verdict (TableReport, ValidationReport), a run's over its days (GateResult), and the
error a failed gate raises (gate_error). A broken `fail` rule fails the gate; a broken `warn`
rule warns and the gate passes; nothing else decides. The engines (duckdb_rules, spark_rules,
through gx_runner) only report which rules held; validate writes what is decided here, and
report_page draws it."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deep_storage.core.defaults import LAG_SLA
from deep_storage.core.errors import QualityGateError
from deep_storage.lake import QUALITY, QUARANTINE
from deep_storage.quality.rules import FAIL

if TYPE_CHECKING:
    from deep_storage.lake import LakeFS

log = logging.getLogger(__name__)

FAILED, WARNED, PASSED = "failed", "warned", "passed"
ORDER = {FAILED: 0, WARNED: 1, PASSED: 2}  # how pages and summaries list the rules


@dataclass(frozen=True)
class RuleResult:
    """One rule judged on one table's day: whether it held, and what was seen."""

    name: str
    level: str  # rules.FAIL or rules.WARN
    success: bool
    description: str
    observed: Any = None
    percent: float | None = None  # of the table's rows, for row rules
    # Up to gx_runner.SAMPLES offending rows: the row's id and the columns that break the rule,
    # by their real values (GX's sampled unexpected values), or what a table rule's query
    # returned.
    samples: tuple[dict, ...] = ()

    @property
    def outcome(self) -> str:
        """A rule that held passed; a broken one failed at level fail, else warned."""
        if self.success:
            return PASSED
        return FAILED if self.level == FAIL else WARNED


def outcome_of(results: list[RuleResult]) -> str:
    """The verdict over some rules' results: failed if any failed, else warned if any warned."""
    outcomes = {r.outcome for r in results}
    return FAILED if FAILED in outcomes else WARNED if WARNED in outcomes else PASSED


def row_rule_broke(results: list[RuleResult], row_rules) -> bool:
    """Whether any row rule broke, at either level: the day's offending rows go to quarantine."""
    names = {r.name for r in row_rules}
    return any(not r.success for r in results if r.name in names)


def rules_table(results: list[RuleResult], observed_when_passed: bool = False) -> list[str]:
    """The rules as a Markdown table, failed first, then warned, then passed."""
    lines = ["| rule | level | result | observed |", "| --- | --- | --- | --- |"]
    for r in sorted(results, key=lambda r: (ORDER[r.outcome], r.name)):
        shown = observed_when_passed or not r.success
        observed = str(r.observed)[:120].replace("|", "\\|") if shown else ""
        lines.append(f"| {r.name} | {r.level} | **{r.outcome}** | {observed} |")
    return lines


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
        return [r for r in self.results if r.outcome == FAILED]

    @property
    def warned(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome == WARNED]

    @property
    def passed(self) -> list[RuleResult]:
        return [r for r in self.results if r.success]

    @property
    def outcome(self) -> str:
        """The table's verdict by the gate's levels: failed, warned or passed."""
        return outcome_of(self.results)

    def markdown(self) -> str:
        lines = [
            f"### {self.table} {self.date}",
            "",
            f"{self.rows} rows checked; rules: {len(self.passed)} passed, "
            f"{len(self.failed)} failed, {len(self.warned)} warned; "
            f"{self.quarantined} rows quarantined.",
            "",
            *rules_table(self.results),
        ]
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
            "verdict": outcome_of([r for t in self.tables for r in t.results]),
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
        verdict = "FAILED" if self.failed else PASSED
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


@dataclass
class GateResult:
    """The gate over a run's days: one ValidationReport per day, every report already written.
    What the CLI and the quality_gate component show, log and raise (steps.QualityResult adds
    the page)."""

    reports: list[ValidationReport]
    lake: str

    @property
    def failed(self) -> list[str]:
        return [f"{r.date}:{f}" for r in self.reports for f in r.failed]

    @property
    def warned(self) -> list[str]:
        return [f"{r.date}:{w}" for r in self.reports for w in r.warned]

    @property
    def markdown(self) -> str:
        return "\n".join(r.markdown() for r in self.reports)

    @property
    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.reports:
            for k, v in r.metrics().items():
                # Counts add up over the days; a lag is the lake's, measured once per day: the last.
                out[k] = v if k.endswith("_lag_seconds") else out.get(k, 0) + v
        return out

    def raise_if_failed(self) -> None:
        """A QualityGateError naming the broken fail rules by day and where each page is."""
        raise_if_failed(self.lake, self.reports)


def raise_if_failed(lake: str, reports: list[ValidationReport]) -> None:
    error = gate_error(lake, reports)
    if error:
        raise error


def table_report(fs: LakeFS, plan, day, results, quarantined, gx_result) -> TableReport:
    """The table's report: its results, the GX result as JSON, and the links its page shows.
    `plan` is the table's day_plan.Plan (its table, rows and notes)."""
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
