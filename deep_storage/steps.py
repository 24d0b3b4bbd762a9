"""The one way in: the `deep-storage` CLI and the KFP components both call these functions.

Inputs are plain strings and numbers as either caller has them (empty means "not given"; a
value is named in an error as the caller named it, through `names`); outputs are the library's
result plus the metrics a component logs. Every rule about turning inputs into library calls
(which days, catch-up, the time of a run) lives here and nowhere else; whether the gate
fails is quality/verdict.py's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deep_storage.core import defaults
from deep_storage.core.config import resolve_lake
from deep_storage.core.dates import DayRange, parse_day, parse_instant
from deep_storage.core.errors import InputError, LakeStateError
from deep_storage.quality.verdict import GateResult

# How each caller names the inputs, for its errors: the component's parameters by default.
PARAMETERS = {
    "run_date": "run_date",
    "until_date": "until_date",
    "first_day": "first_day",
    "last_day": "last_day",
    "as_of": "as_of",
    "from_day": "from_day",
    "to_day": "to_day",
    "test_from": "test_from",
}


def resolve_run_date(
    run_date: str = "",
    scheduled_time: str = "",
    create_time: str = "",
    names: Mapping[str, str] = PARAMETERS,
) -> dt.date | None:
    """An explicit run_date wins; else the UTC date of the run's scheduled time (recurring
    runs); else of its creation time; else None (today, catching up)."""
    if run_date.strip():
        return parse_day(run_date.strip(), name=names["run_date"])
    for value, name in ((scheduled_time, "scheduled_time"), (create_time, "create_time")):
        instant = parse_instant(value, name)
        if instant is not None:
            return instant.date()
    return None


@dataclass
class StepResult:
    first_day: str
    last_day: str
    metrics: dict[str, float] = field(default_factory=dict)
    result: Any = None  # the library's own result (printed by the CLI)


def bronze(
    lake_uri: str = "",
    run_date: str = "",
    until_date: str = "",
    scheduled_time: str = "",
    create_time: str = "",
    seal_margin_s: int = defaults.SEAL_MARGIN_S,
    max_days: int = defaults.MAX_DAYS,
    read_partitions: int = defaults.READ_PARTITIONS,
    read_path: str = "",
    catch_up: bool = True,
    names: Mapping[str, str] = PARAMETERS,
) -> StepResult:
    """Ingest run_date..until_date (no run date: today). With catch_up, also every missing or
    unsealed day since the oldest ingested one (on an empty lake: since the source's oldest
    event within retention), oldest first, at most max_days. Returns the span silver must
    rebuild."""
    from deep_storage.tables import bronze as step

    first = resolve_run_date(run_date, scheduled_time, create_time, names)
    if until_date.strip() and first is None:
        raise InputError(f"{names['until_date']} needs {names['run_date']}")
    days = None
    if first is not None:
        days = DayRange.parse(
            first.isoformat(), until_date.strip(), (names["run_date"], names["until_date"])
        )
    result = step.run(
        days,
        resolve_lake(lake_uri or None),
        seal_margin=dt.timedelta(seconds=seal_margin_s),
        read_partitions=read_partitions,
        read_path=read_path or None,
        catch_up=catch_up,
        max_days=max_days,
    )
    if not result.days and days is not None:
        raise LakeStateError(f"bronze ingested no day for {days}")
    return StepResult(
        first_day=result.days[0].date if result.days else "",
        last_day=result.days[-1].date if result.days else "",
        metrics={
            "days": len(result.days),
            "days_changed": sum(d.changed for d in result.days),
            "rows": result.rows,
            "unsealed_days": len(result.unsealed),
            "days_left": len(result.left),
            "stuck_writers": len({w for d in result.days for w in d.stuck_writers}),
        },
        result=result,
    )


def _range(first_day: str, last_day: str, names: Mapping[str, str]) -> DayRange:
    return DayRange.parse(first_day, last_day or None, (names["first_day"], names["last_day"]))


def silver(
    lake_uri: str,
    first_day: str,
    last_day: str = "",
    lookback_days: int = defaults.LOOKBACK_DAYS,
    names: Mapping[str, str] = PARAMETERS,
) -> StepResult:
    """Rebuild silver for the executions of first_day..last_day."""
    from deep_storage.tables import silver as step

    days = _range(first_day, last_day, names)
    result = step.run(days, resolve_lake(lake_uri or None), lookback_days=lookback_days)
    metrics = {
        "executions": result.executions,
        "partitions_written": result.partitions_written,
        "dates_committed": len(result.dates_committed),
        "skipped": int(result.skipped),
    }
    metrics.update({f"status_{k.lower()}": v for k, v in result.by_status.items()})
    return StepResult(days.first.isoformat(), days.last.isoformat(), metrics, result)


def gold(
    lake_uri: str = "",
    first_day: str = "",
    last_day: str = "",
    names: Mapping[str, str] = PARAMETERS,
) -> StepResult:
    """Build the gold features of first_day..last_day; without first_day, of every day whose
    silver inputs (its day and the 7 before) changed since gold built it."""
    from deep_storage.tables import gold as step

    if last_day.strip() and not first_day.strip():
        raise InputError(f"{names['last_day']} needs {names['first_day']}")
    days = _range(first_day, last_day, names) if first_day.strip() else None
    result = step.run(days, resolve_lake(lake_uri or None))
    built = result.dates_committed
    metrics = {"rows": result.rows, "days_written": len(built), "skipped": int(result.skipped)}
    return StepResult(built[0] if built else "", built[-1] if built else "", metrics, result)


@dataclass
class TrainingSetResult:
    outcome: str  # "released", or "unchanged": the version exists with the same rows
    record: dict
    markdown: str  # the version's record and its gold rules, for the component's report
    metrics: dict[str, float] = field(default_factory=dict)


def training_set(
    lake_uri: str,
    name: str = defaults.TRAINING_SET_NAME,
    version: str = "",
    from_day: str = "",
    to_day: str = "",
    test_from: str = "",
    names: Mapping[str, str] = PARAMETERS,
) -> TrainingSetResult:
    """Release `version` of the training set `name` (empty: the next patch version, or the newest
    when its rows are the same) from the gold features dated from_day..to_day (both empty: the
    TRAINING_WINDOW_DAYS before gold's newest day); the test split from test_from (empty: the
    range's last fifth)."""
    from deep_storage.training import release_training_set

    if bool(from_day.strip()) != bool(to_day.strip()):
        raise InputError(f"give both {names['from_day']} and {names['to_day']}, or neither")
    first = parse_day(from_day.strip(), name=names["from_day"]) if from_day.strip() else None
    last = parse_day(to_day.strip(), name=names["to_day"]) if to_day.strip() else None
    split = parse_day(test_from.strip(), name=names["test_from"]) if test_from.strip() else None
    done = release_training_set(
        name, version, first, last, split, lake=resolve_lake(lake_uri or None)
    )
    record = done.record
    metrics: dict[str, float] = {
        "released": int(done.outcome == "released"),
        **{f"rows_{k}": v for k, v in (record.get("rows") or {}).items()},
        **{f"positive_share_{k}": v for k, v in (record.get("positive_share") or {}).items()},
        "rules_warned": sum(r.outcome == "warned" for r in done.results),
    }
    return TrainingSetResult(done.outcome, record, done.markdown, metrics)


def baseline(lake_uri: str, name: str, version: str):
    """Fit the baseline model on a released training set version (deep_storage.baseline)."""
    from deep_storage import baseline as model

    return model.train(name, version, lake_uri or None)


class QualityResult(GateResult):
    """The gate over the run's days (quality.verdict decides it), and the page people read."""

    @property
    def html(self) -> str:
        from deep_storage.quality import report_page

        return report_page.render(self.reports)


def quality(
    lake_uri: str,
    first_day: str,
    last_day: str = "",
    as_of: str = "",
    volume_k: float = defaults.VOLUME_K,
    tables: tuple[str, ...] = ("bronze", "silver"),
    names: Mapping[str, str] = PARAMETERS,
    full: bool = False,
) -> QualityResult:
    """Validate every day of the range; every report is written before the verdict. An
    unchanged day is re-judged on the time rules alone unless `full`."""
    from deep_storage.quality import validate

    lake = resolve_lake(lake_uri or None)
    when = parse_instant(as_of, names["as_of"])
    reports = [
        validate.run(
            day,
            lake,
            as_of=when,
            volume_k=volume_k,
            tables=tables,
            raise_on_failure=False,
            full=full,
        )
        for day in _range(first_day, last_day, names).days()
    ]
    return QualityResult(reports, lake)


def retention(
    lake_uri: str = "",
    as_of: str = "",
    dry_run: bool = False,
    names: Mapping[str, str] = PARAMETERS,
) -> StepResult:
    """Remove the days past each table's window as of `as_of` (a time or a day; empty: now),
    then vacuum; with dry_run, report what would go and change nothing."""
    from deep_storage.lake import retention as step

    when = parse_instant(as_of, names["as_of"])
    result = step.run(resolve_lake(lake_uri or None), as_of=when, dry_run=dry_run)
    metrics: dict[str, float] = {"dry_run": int(dry_run)}
    for table, days in result.days_removed.items():
        metrics[f"{_short(table)}_days_removed"] = len(days)
    for table, files in result.files_vacuumed.items():
        metrics[f"{_short(table)}_files_vacuumed"] = files
    return StepResult("", "", metrics, result)


def catalog(lake_uri: str = "", metastore: str = "", database: str = "") -> StepResult:
    """Register the lake's tables in the metastore (`metastore`, else HIVE_METASTORE_URI);
    without one, skip: the result says why."""
    from deep_storage import catalog as step

    result = step.register(
        lake_uri or None, metastore or None, database or defaults.CATALOG_DATABASE
    )
    metrics: dict[str, float] = {
        "skipped": int(bool(result.skipped)),
        "tables": len(result.tables),
        "registered": sum(t.outcome == "registered" for t in result.tables),
    }
    return StepResult("", "", metrics, result)


def _short(table: str) -> str:
    """bronze/events -> bronze, silver/stop_executions -> silver, _days -> days."""
    return table.split("/", 1)[0].lstrip("_")
