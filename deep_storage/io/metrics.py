"""Each step's metrics, pushed to a Prometheus Pushgateway when PUSHGATEWAY_URL is set.

Batch jobs the way Prometheus recommends them: one group per job and step (no pod or run
labels, so a series does not multiply with every run), base units in the names, and
`..._last_success_timestamp_seconds` set only when the step succeeded, so "no success in 2 h"
is `time() - deep_storage_silver_last_success_timestamp_seconds > 7200`. A push is `pushadd`:
a failed run replaces its duration but leaves the last success where it was. A push that fails
is a warning; it never fails the step.

A step that judges one day at a time (the gate) pushes each day's verdict to a group of its own,
`{job, step, date}`, so a run over two days whose first fails and second passes leaves both
verdicts in place: a later day's push can never overwrite a failed day. What describes the lake
rather than a day (the freshness lags) goes to the step's own group, `{job, step}`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

JOB = "deep-storage"
_HELP = {
    "duration_seconds": "Wall time of the step's last run.",
    "rows": "Rows the step's last run wrote (bronze events, silver executions, rows checked).",
    "days_written": "Days the step's last run committed.",
    "days_unsealed": "Days still unsealed after the step's last run.",
    "days_left": "Days due but over the per-run cap after the step's last run.",
    "freshness_lag_seconds": "Source's newest event minus the lake's newest committed event.",
    "commit_latency_seconds": "Commit time minus the newest committed event's occurred_at.",
    "rules_broken": "Quality rules broken in the gate's last run, by level.",
    "days_removed": "Days retention's last run removed, all tables together.",
    "files_vacuumed": "Files retention's last run vacuumed, all tables together.",
    "last_success_timestamp_seconds": "When the step last succeeded (Unix time).",
    "last_run_timestamp_seconds": "When the step last ran, successful or not (Unix time).",
}


@dataclass
class StepMetrics:
    """What a step reports; filled in while it runs."""

    step: str
    day: str | None = None  # ISO date: the day's values go to the {job, step, date} group
    values: dict[str, float] = field(default_factory=dict)
    by_level: dict[str, float] = field(default_factory=dict)  # rules_broken{level=...}
    succeeded: bool = True  # a step that returns but failed (a gate with a broken rule) says so
    lake_values: dict[str, float] = field(default_factory=dict)  # always the {job, step} group

    def set(self, name: str, value: float | None) -> None:
        if value is not None:
            self.values[name] = float(value)

    def set_lake(self, name: str, value: float | None) -> None:
        """A value about the lake now, not about `day` (a lag): the step's own group."""
        if value is not None:
            self.lake_values[name] = float(value)


def push(metrics: StepMetrics, success: bool, url: str | None = None) -> bool:
    """Push to PUSHGATEWAY_URL (or `url`); False, with a warning, when it cannot."""
    url = url or os.environ.get("PUSHGATEWAY_URL")
    if not url:
        return False
    now = time.time()
    values = {**metrics.values, "last_run_timestamp_seconds": now}
    if success:
        values["last_success_timestamp_seconds"] = now
    group = {"step": metrics.step}
    pushes = []
    if metrics.day is None:
        pushes.append((group, {**values, **metrics.lake_values}, metrics.by_level))
    else:
        pushes.append(({**group, "date": metrics.day}, values, metrics.by_level))
        if metrics.lake_values:
            pushes.append((group, metrics.lake_values, {}))
    try:
        for grouping_key, group_values, by_level in pushes:
            _push_group(url, metrics.step, grouping_key, group_values, by_level)
    except Exception as exc:  # a monitoring outage must not fail the lake
        log.warning("metrics: push to the Pushgateway failed (%s); the step goes on", exc)
        return False
    return True


def _push_group(
    url: str, step: str, grouping_key: dict[str, str], values: dict[str, float], by_level
) -> None:
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    registry = CollectorRegistry()
    prefix = f"deep_storage_{step}"
    for name, value in values.items():
        Gauge(f"{prefix}_{name}", _HELP.get(name, name), registry=registry).set(value)
    if by_level:
        gauge = Gauge(f"{prefix}_rules_broken", _HELP["rules_broken"], ["level"], registry=registry)
        for level, value in by_level.items():
            gauge.labels(level=level).set(value)
    pushadd_to_gateway(url, job=JOB, grouping_key=grouping_key, registry=registry, timeout=5)


@contextlib.contextmanager
def step(name: str, day: str | None = None) -> Iterator[StepMetrics]:
    """Time the block and push its metrics at the end, whether it succeeded or failed; with
    `day`, to that day's group."""
    metrics = StepMetrics(name, day)
    started = time.monotonic()
    ok = False
    try:
        yield metrics
        ok = True
    finally:
        metrics.set("duration_seconds", time.monotonic() - started)
        push(metrics, ok and metrics.succeeded)


class Phases(dict):
    """Wall seconds per phase of one step's run (read, transform, write, commit...), in the
    order they ran; `with phases("write"): ...` adds to a phase. In each step's result, for the
    benchmarks' per-phase breakdown and for anyone reading a slow run's log."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self._step = step

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - started
            self[name] = round(self.get(name, 0.0) + spent, 3)
            log.info("%s: %s took %.1f s", self._step, name, spent)
