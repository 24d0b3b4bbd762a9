"""What the gate judges of one day, from the commit facts alone (no row read): each table's
rules for the day (the source count when sealed, volume against the earlier days, freshness on
the day's own runs, the source's schema drift), the window of days they read, and the charts'
history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from deep_storage import lake
from deep_storage.core import defaults
from deep_storage.core.config import SourceConfig
from deep_storage.core.dates import window
from deep_storage.core.errors import LakeStateError
from deep_storage.io import source_db
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, LakeFS
from deep_storage.quality import rules
from deep_storage.quality.verdict import RuleResult

BRONZE_TABLE = "bronze_events"
SILVER_TABLE = "silver_stop_executions"


@dataclass
class Plan:
    """What the gate judges of one table's day, from the commit facts alone: the rules judged on
    the rows, the fact rules (on the facts, every run), notes and results known without GX."""

    table: str
    rows: int
    table_rules: list[rules.TableRule]
    fact_rules: list[rules.FactRule]
    facts: dict
    notes: list[str]
    more_results: list[RuleResult] = field(default_factory=list)


def freshness_applies(day: dt.date, as_of: dt.datetime, sla: dt.timedelta) -> bool:
    start, end = window(day)
    return start <= as_of < end + sla


def source_count(src: SourceConfig | None, day: dt.date) -> int | None:
    if src is None:
        return None
    with source_db.connect(src) as conn:
        return source_db.window_summary(conn, src, day)[0]


def history_rules(day, history, volume_k, notes, sealed: bool) -> list[rules.TableRule]:
    """Volume against the earlier days, where it applies; a note when it does not. A day not
    sealed yet is still growing (today, hour by hour): its count says nothing about volume."""
    if not sealed:
        notes.append("volume_within_history not checked: the day is not sealed yet (it grows)")
        return []
    volume = rules.volume_rule(history, volume_k)
    if volume:
        return [volume]
    notes.append(f"volume_within_history not checked: {len(history)} earlier days (need 3)")
    return []


def freshness_rules(day, as_of, sla, src, source_newest, lake_newest, notes):
    """Freshness of the day against the source (`source_newest`: its newest event of the day),
    on the day's own runs: (fact rules for GX, results known without it). A note instead when it
    is not the day's run or no source is configured: quiet is not stale, so the lake's own age
    says nothing."""
    if not freshness_applies(day, as_of, sla):
        notes.append(f"fresh_within_sla not checked: {as_of.isoformat()} is not this day's run")
        return [], []
    if src is None:
        notes.append(
            "fresh_within_sla not checked: no source database configured (freshness is the "
            "lake's lag behind the source's newest event of the day)"
        )
        return [], []
    if source_newest is None:
        # Nothing at the source for the day: whatever the lake holds, nothing is missing.
        held = f"newest event {lake_newest.isoformat()}" if lake_newest else "no rows"
        fresh = RuleResult(
            "fresh_within_sla",
            rules.WARN,
            True,
            f"the day's newest event in the lake is at most {sla} older than the source's "
            "newest event of the day",
            f"{held}; the source has no event of the day",
        )
        return [], [fresh]
    return [rules.freshness_rule(source_newest, sla)], []


def facts_of(commit: lake.CommittedDay | None) -> dict:
    newest = (commit.details.get("newest_event_at") if commit else None) or None
    return {"newest_event_at": dt.datetime.fromisoformat(newest) if newest else None}


def silver_facts(committed: dict[dt.date, lake.CommittedDay], day: dt.date) -> dict:
    """Silver's newest event for day D: an execution lives in the partition of its first event's
    day, so the source's events of D (an execution that spans midnight) sit in silver's rows of
    up to LOOKBACK_DAYS earlier, and their newest times count for D."""
    first = day - dt.timedelta(days=defaults.LOOKBACK_DAYS)
    found = [facts_of(m)["newest_event_at"] for d, m in committed.items() if first <= d <= day]
    found = [t for t in found if t is not None]
    return {"newest_event_at": max(found) if found else None}


def history_window(day: dt.date) -> list[dt.date]:
    """The day and the HISTORY_DAYS before it: what the volume rule and the page's charts read."""
    return [day - dt.timedelta(days=i) for i in range(defaults.HISTORY_DAYS, -1, -1)]


def window_days(fs: LakeFS, day: dt.date) -> dict[str, dict[dt.date, lake.CommittedDay]]:
    """Each table's committed of the window (`lake` the module here: _validate's `lake` is the
    URI)."""
    return {
        t: lake.committed(fs, t, history_window(day)) for t in (BRONZE_EVENTS, SILVER_EXECUTIONS)
    }


def bronze_plan(day, committed, as_of, volume_k, src, newest, judge_rows: bool) -> Plan:
    """Bronze's rules for `day`; the source is counted only when the rows are judged."""
    earlier = [day - dt.timedelta(days=i) for i in range(1, defaults.HISTORY_DAYS + 1)]
    commit = committed.get(day)
    if commit is None:
        raise LakeStateError(
            f"bronze day {day} is not committed: run `deep-storage bronze --date {day}` first"
        )
    notes: list[str] = []
    table_rules: list[rules.TableRule] = []
    if not commit.sealed:
        notes.append(
            "rows_match_source not checked: the day is not sealed yet "
            f"({commit.details.get('unsealed_reason')})"
        )
    elif src is None:
        notes.append("rows_match_source not checked: no source database configured")
    elif judge_rows:
        table_rules.append(rules.source_count_rule(source_count(src, day)))
    for stuck in commit.details.get("stuck_writers") or []:
        notes.append(f"stuck writer at the source keeps the day unsealed: {stuck}")
    extra = commit.details.get("extra_columns") or []
    history = [committed[d].rows for d in earlier if d in committed]
    table_rules += history_rules(day, history, volume_k, notes, commit.sealed)
    facts = facts_of(commit)
    fact_rules, known = freshness_rules(
        day, as_of, defaults.FRESHNESS_SLA["bronze"], src, newest, facts["newest_event_at"], notes
    )
    # Schema drift at the source: kept in bronze after the contract's columns, warned here.
    drift = RuleResult(
        "source_columns_known",
        rules.WARN,
        not extra,
        "the source has exactly the contract's columns (new ones are kept in bronze, after "
        "them, as text)",
        ", ".join(f"{c['name']} ({c['source_type']})" for c in extra) or None,
    )
    return Plan(BRONZE_TABLE, commit.rows, table_rules, fact_rules, facts, notes, [drift, *known])


def silver_plan(day, committed, as_of, volume_k, src, newest) -> Plan:
    notes: list[str] = []
    earlier = [day - dt.timedelta(days=i) for i in range(1, defaults.HISTORY_DAYS + 1)]
    counts = {d: m.rows for d, m in committed.items()}
    history = [counts[d] for d in earlier if d in counts]
    sealed = bool(committed.get(day) and committed[day].sealed)
    table_rules = history_rules(day, history, volume_k, notes, sealed)
    facts = silver_facts(committed, day)
    fact_rules, known = freshness_rules(
        day, as_of, defaults.FRESHNESS_SLA["silver"], src, newest, facts["newest_event_at"], notes
    )
    return Plan(SILVER_TABLE, counts.get(day, 0), table_rules, fact_rules, facts, notes, known)


def chart_history(committed: dict, day: dt.date) -> dict[str, dict[str, dict]]:
    """Rows per day of both tables and silver's rows per status, over the HISTORY_DAYS up to
    `day`, from the window's committed (already read)."""
    first = day - dt.timedelta(days=defaults.HISTORY_DAYS - 1)
    out: dict[str, dict[str, dict]] = {}
    for name, table in (("bronze", BRONZE_EVENTS), ("silver", SILVER_EXECUTIONS)):
        out[name] = {}
        for d, m in sorted(committed[table].items()):
            if d < first:
                continue
            statuses: dict[str, int] = {}
            for counts in (m.details.get("statuses") or {}).values():
                for status, n in counts.items():
                    statuses[status] = statuses.get(status, 0) + n
            out[name][d.isoformat()] = {"rows": m.rows, "statuses": statuses}
    return out


def plans(day, committed, as_of, volume_k, src, newest, tables, judge_rows: bool) -> list[Plan]:
    """The plan of each table in `tables`, bronze first; bronze's source count only when the
    rows are judged. `newest`: the source's newest event of the day (source_newest)."""
    out = []
    if "bronze" in tables:
        out.append(
            bronze_plan(day, committed[BRONZE_EVENTS], as_of, volume_k, src, newest, judge_rows)
        )
    if "silver" in tables:
        out.append(silver_plan(day, committed[SILVER_EXECUTIONS], as_of, volume_k, src, newest))
    return out
