"""What each pipeline step does, as the KFP components call it: plain Python in, plain Python
out (dates as ISO strings, metrics as dicts), so a component body is one call and its outputs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from deep_storage.config import resolve_lake
from deep_storage.dates import DayRange, parse_day
from deep_storage.errors import InputError, LakeStateError, QualityGateError


def _instant(value: str) -> dt.datetime | None:
    """An RFC 3339 time from KFP, or None when empty or an unresolved placeholder."""
    value = (value or "").strip()
    if not value or "{{" in value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def resolve_run_date(
    run_date: str = "", scheduled_time: str = "", create_time: str = ""
) -> dt.date:
    """An explicit run_date wins; else the UTC date of the run's scheduled time (recurring
    runs); else of its creation time (a one-off run has no schedule time)."""
    if run_date.strip():
        return parse_day(run_date.strip(), name="run_date")
    for instant in (_instant(scheduled_time), _instant(create_time)):
        if instant is not None:
            return instant.date()
    raise InputError(
        "run_date is empty and the run has no schedule or creation time: pass run_date=YYYY-MM-DD"
    )


@dataclass
class StepResult:
    first_day: str
    last_day: str
    metrics: dict[str, float] = field(default_factory=dict)


def bronze(
    lake_uri: str = "",
    run_date: str = "",
    until_date: str = "",
    scheduled_time: str = "",
    create_time: str = "",
    seal_margin_s: int = 300,
    max_days: int = 14,
) -> StepResult:
    """Ingest run_date..until_date and every missing or unsealed day since the oldest ingested
    one (on an empty lake: since the source's oldest event within retention), oldest first, at
    most max_days. Returns the span silver must rebuild."""
    from deep_storage import bronze as step

    first = resolve_run_date(run_date, scheduled_time, create_time)
    last = parse_day(until_date, name="until_date") if until_date.strip() else first
    result = step.run(
        DayRange(first, last),
        resolve_lake(lake_uri or None),
        seal_margin=dt.timedelta(seconds=seal_margin_s),
        catch_up=True,
        max_days=max_days,
    )
    if not result.days:
        raise LakeStateError(f"bronze ingested no day for {DayRange(first, last)}")
    return StepResult(
        first_day=result.days[0].date,
        last_day=result.days[-1].date,
        metrics={
            "days": len(result.days),
            "days_changed": sum(d.changed for d in result.days),
            "rows": result.rows,
            "unsealed_days": len(result.unsealed),
            "days_left": len(result.left),
            "stuck_writers": len({w for d in result.days for w in d.stuck_writers}),
        },
    )


def silver(lake_uri: str, first_day: str, last_day: str, lookback_days: int = 7) -> StepResult:
    from deep_storage import silver as step

    days = DayRange.parse(first_day, last_day)
    result = step.run(days, resolve_lake(lake_uri or None), lookback_days=lookback_days)
    metrics = {
        "executions": result.executions,
        "partitions_written": result.partitions_written,
        "dates_committed": len(result.dates_committed),
        "skipped": int(result.skipped),
    }
    metrics.update({f"status_{k.lower()}": v for k, v in result.by_status.items()})
    return StepResult(first_day, last_day, metrics)


@dataclass
class QualityResult:
    markdown: str
    html: str
    metrics: dict[str, float]
    failed: list[str]
    warned: list[str]

    def raise_if_failed(self) -> None:
        if self.failed:
            raise QualityGateError("quality gate failed: " + ", ".join(self.failed))


def quality(
    lake_uri: str, first_day: str, last_day: str, as_of: str = "", volume_k: float = 3.0
) -> QualityResult:
    """Validate every day of the range; every report is written before the verdict."""
    from deep_storage.quality import report_page, validate

    lake = resolve_lake(lake_uri or None)
    reports = [
        validate.run(day, lake, as_of=_instant(as_of), volume_k=volume_k, raise_on_failure=False)
        for day in DayRange.parse(first_day, last_day).days()
    ]
    metrics: dict[str, float] = {}
    for r in reports:
        for k, v in r.metrics().items():
            # Counts add up over the days; a lag is the lake's, measured once per day: the last.
            metrics[k] = v if k.endswith("_lag_seconds") else metrics.get(k, 0) + v
    return QualityResult(
        markdown="\n".join(r.markdown() for r in reports),
        html=report_page.render(reports),
        metrics=metrics,
        failed=[f"{r.date}:{f}" for r in reports for f in r.failed],
        warned=[f"{r.date}:{w}" for r in reports for w in r.warned],
    )
