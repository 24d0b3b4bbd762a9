"""`deep_storage.status` and `deep-storage status`: what the lake holds, day by day, and what the
gate said of each day: from the days' commit facts and the gate's verdict files alone (no data
file is opened)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from deep_storage import lake as lakes
from deep_storage.core.config import StoreConfig, resolve_lake

TABLES = {"bronze": lakes.BRONZE_EVENTS, "silver": lakes.SILVER_EXECUTIONS}


@dataclass(frozen=True)
class DayStatus:
    table: str
    date: str
    rows: int
    sealed: bool
    committed_at: str
    run_id: str
    gate: str | None  # passed, warned, failed, or None when the gate never ran on the day
    report: str | None  # the gate's report page for the table and day

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def status(
    lake: str | None = None,
    *,
    days: int | None = 14,
    store: StoreConfig | None = None,
) -> list[DayStatus]:
    """Per table and committed day (the newest `days` of each; all with None): rows, sealed or
    not, committed when and by which run, and the gate's verdict with its report."""
    uri = resolve_lake(lake)
    fs = lakes.LakeFS(uri, store)
    out = []
    for name, path in TABLES.items():
        facts = lakes.committed(fs, path, with_files=False)
        dates = sorted(facts)
        shown = dates if days is None else dates[-days:]
        gate_table = {"bronze": "bronze_events", "silver": "silver_stop_executions"}[name]
        for day in shown:
            m = facts[day]
            verdict_text = fs.read_text(
                f"{uri}/{lakes.QUALITY}/summary/date={day.isoformat()}/verdict.json"
            )
            verdict = json.loads(verdict_text) if verdict_text else {}
            gate = verdict.get("tables", {}).get(gate_table)
            out.append(
                DayStatus(
                    name,
                    day.isoformat(),
                    m.rows,
                    m.sealed,
                    m.written_at,
                    m.run_id,
                    gate,
                    f"{uri}/{lakes.QUALITY}/summary/date={day.isoformat()}/report.html"
                    if gate
                    else None,
                )
            )
    return out
