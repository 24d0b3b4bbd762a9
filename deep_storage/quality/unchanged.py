"""A day unchanged since its last verdict: the same rows judged by the same rules, so only the
time rules (freshness, lag) can change. The gate re-judges those on the commit's facts and keeps
the rest of the stored verdict, without reading a row or starting Spark (`--full` judges whole).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from deep_storage.core import defaults
from deep_storage.core.version import __version__
from deep_storage.lake import QUALITY, LakeFS
from deep_storage.quality import day_plan, gx_runner, rules
from deep_storage.quality.day_plan import BRONZE_TABLE, SILVER_TABLE, Plan
from deep_storage.quality.verdict import TableReport, ValidationReport, table_report

log = logging.getLogger(__name__)

JUDGED = "judged.json"  # the day's record of its last verdict, beside report.html


def fingerprint_of(committed, day: dt.date, tables, volume_k: float, src) -> str:
    """What the rules' verdicts on the rows depend on: every day of the window as committed (its
    Delta version, rows, sealed), the rules themselves, the package, the gate's settings. Equal
    fingerprints: the same rows judged by the same rules, so only the time rules can change."""
    import hashlib

    parts = {
        "package": __version__,
        "rules": repr((rules.BRONZE_ROW_RULES, rules.SILVER_ROW_RULES, rules.TIME_RULES)),
        "day": day.isoformat(),
        "tables": sorted(tables),
        "volume_k": volume_k,
        "history_days": defaults.HISTORY_DAYS,
        "source": src is not None,
        **{
            table: {d.isoformat(): [m.version, m.rows, m.sealed] for d, m in sorted(days.items())}
            for table, days in committed.items()
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def prior_verdict(fs: LakeFS, day: dt.date, fingerprint: str, tables) -> dict | None:
    """The last verdict's record when it judged the same rows by the same rules, else None."""
    text = fs.read_text(f"{fs.lake}/{QUALITY}/summary/date={day.isoformat()}/{JUDGED}")
    try:
        prior = json.loads(text) if text else None
    except ValueError:
        return None
    if not prior or prior.get("fingerprint") != fingerprint:
        return None
    names = {"bronze": BRONZE_TABLE, "silver": SILVER_TABLE}
    if any(names[t] not in prior.get("tables", {}) for t in tables):
        return None
    return prior


def rejudged(fs: LakeFS, plan: Plan, day: dt.date, prior: dict) -> TableReport | None:
    """The table's report from its last verdict (results.json), the time rules judged again by
    GX on the commit's facts. None when the stored result is gone or unreadable: judge it
    whole."""
    judged = prior["tables"][plan.table]
    folder = f"{fs.lake}/{QUALITY}/{plan.table}/date={day.isoformat()}"
    stored = fs.read_text(f"{folder}/results.json")
    if not stored:
        return None
    rejudged = gx_runner.rejudge(
        stored, plan.table, plan.fact_rules, plan.facts, judged["descriptions"]
    )
    if rejudged is None:
        log.warning("%s %s: stored results.json unreadable: judging the rows", plan.table, day)
        return None
    gx_result, results = rejudged
    plan.notes.append(
        f"unchanged since the verdict of {prior['judged_at']} (run {prior['run_id']}): its row "
        "and table rules stand, the rows were not read again; freshness and lag judged now"
    )
    results = [*results, *plan.more_results]
    return table_report(fs, plan, day, results, judged["quarantined"], gx_result)


def judged_record(report: ValidationReport, fingerprint: str, prior: dict | None) -> str:
    tables = {
        t.table: {
            "quarantined": t.quarantined,
            "descriptions": {r.name: r.description for r in t.results},
        }
        for t in report.tables
    }
    when = prior or {"judged_at": dt.datetime.now(dt.UTC).isoformat(), "run_id": report.run_id}
    record = {
        "fingerprint": fingerprint,
        "judged_at": when["judged_at"],
        "run_id": when["run_id"],
        "tables": tables,
    }
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def rejudge_all(fs, day, committed, as_of, volume_k, src, day_newest, tables, prior):
    """The unchanged day's reports, no row read and no Spark; None when a stored result is gone.
    `day_newest`: the source's newest event of the day."""
    plans = day_plan.plans(
        day, committed, as_of, volume_k, src, day_newest, tables, judge_rows=False
    )
    out = [rejudged(fs, plan, day, prior) for plan in plans]
    return None if any(r is None for r in out) else out
