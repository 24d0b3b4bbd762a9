"""Recurring runs of the compiled pipeline on a KFP API server: `schedule`, idempotent by name.

A recurring run is found by its display name in the experiment, compared with what is asked
(cron, concurrency, catch-up, parameters, service account, and the package's sha256 kept in its
description), and left alone, or deleted and created again: KFP has no update call. Also
`validate_cron`, for KFP's 6-field cron. The calls go through kfp_api.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kfp

from deep_storage.core.errors import InputError, PlatformError
from deep_storage_kfp.pipelines.kfp_api import call, host_of
from deep_storage_kfp.pipelines.kfp_runs import (
    DEFAULT_EXPERIMENT,
    checked_package,
    ensure_experiment,
    pipeline_params,
)

SPEC_MARK = "deep-storage spec sha256="
_CRON_DESCRIPTORS = {
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
_EQUALS = 1  # kfp.client's _FILTER_OPERATIONS["EQUALS"]


@dataclass(frozen=True)
class _Wanted:
    """The settings asked for: what an existing recurring run must match, or is created with."""

    cron: str
    max_concurrency: int
    no_catchup: bool
    params: dict[str, Any]
    spec_sha: str
    service_account: str | None


# --- arguments ----------------------------------------------------------------------------------


def validate_cron(expr: str) -> str:
    """Returns the cron expression, whitespace-normalised, if KFP's scheduler can take it.

    KFP recurring runs use 6 fields, seconds first (`sec min hour day-of-month month day-of-week`),
    or a descriptor such as @daily or @every 1h.

    Args:
        expr: The cron expression, e.g. "0 0 2 * * *" for 02:00 every day.
    """
    text = " ".join((expr or "").split())
    if text in _CRON_DESCRIPTORS or re.fullmatch(r"@every (\d+(\.\d+)?(ns|us|ms|s|m|h))+", text):
        return text
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        raise InputError(
            f"cron {expr!r} has 5 fields: KFP recurring runs take 6, seconds first; "
            f"use {'0 ' + text!r}"
        )
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        raise InputError(
            f"cron {expr!r} is not a KFP cron: expected 6 fields "
            "(sec min hour day-of-month month day-of-week), e.g. '0 0 2 * * *' for 02:00 daily"
        )
    return text


def _checked_cron(name: str, cron: str, max_concurrency: int) -> str:
    """The validated cron, once the name and the concurrency are known to be usable too."""
    cron = validate_cron(cron)
    if not name or not name.strip():
        raise InputError("recurring run name is empty: expected a display name, e.g. deep-storage")
    if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= 10:
        raise InputError(
            f"max_concurrency {max_concurrency!r} is out of range: expected 1..10 (KFP's limit)"
        )
    return cron


def _spec_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the recurring run on the server ------------------------------------------------------------


def _recurring_runs_named(client: kfp.Client, experiment_id: str, name: str) -> list[Any]:
    name_filter = json.dumps(
        {"predicates": [{"operation": _EQUALS, "key": "display_name", "stringValue": name}]}
    )
    found: list[Any] = []
    token = ""
    while True:
        page = call(
            host_of(client),
            f"listing recurring runs named {name!r}",
            lambda token=token: client.list_recurring_runs(
                page_token=token, page_size=100, experiment_id=experiment_id, filter=name_filter
            ),
        )
        found += [r for r in page.recurring_runs or [] if r.display_name == name]
        token = page.next_page_token or ""
        if not token:
            return found


def _the_one_named(client: kfp.Client, experiment_id: str, experiment: str, name: str) -> Any:
    """The recurring run called `name`, or None; two or more are refused, none is picked."""
    existing = _recurring_runs_named(client, experiment_id, name)
    if len(existing) > 1:
        ids = ", ".join(r.recurring_run_id for r in existing)
        raise PlatformError(
            f"{len(existing)} recurring runs are named {name!r} in experiment {experiment!r} on "
            f"{host_of(client)} ({ids}): expected at most one; delete all but one "
            "(`kfp recurring-run delete ID`) and rerun"
        )
    return existing[0] if existing else None


def _same_schedule(existing: Any, wanted: _Wanted) -> bool:
    trigger = existing.trigger
    existing_cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    runtime = existing.runtime_config
    existing_params = (runtime.parameters if runtime else None) or {}
    mark = re.search(r"sha256=([0-9a-f]{64})", existing.description or "")
    try:
        existing_max = int(existing.max_concurrency or 0)  # int64: a string in the JSON
    except ValueError:
        existing_max = -1
    return (
        existing_cron is not None
        and " ".join(existing_cron.split()) == wanted.cron
        and existing_max == wanted.max_concurrency
        and bool(existing.no_catchup) == wanted.no_catchup
        and existing_params == wanted.params
        and mark is not None
        and mark.group(1) == wanted.spec_sha
        and (existing.service_account or None) == (wanted.service_account or None)
    )


def _delete(client: kfp.Client, old: Any, name: str) -> None:
    call(
        host_of(client),
        f"deleting recurring run {old.recurring_run_id} ({name!r})",
        lambda: client.delete_recurring_run(recurring_run_id=old.recurring_run_id),
    )


def _create(
    client: kfp.Client, path: Path, experiment_id: str, name: str, wanted: _Wanted, replaced: Any
) -> str:
    """Creates the recurring run and returns its id; a failure says when `replaced` is gone."""

    def create() -> Any:
        return client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            description=f"{SPEC_MARK}{wanted.spec_sha}",
            cron_expression=wanted.cron,
            max_concurrency=wanted.max_concurrency,
            no_catchup=wanted.no_catchup,
            pipeline_package_path=str(path),
            params=wanted.params,
            enabled=True,
            enable_caching=False,
            service_account=wanted.service_account,
        )

    try:
        return call(host_of(client), f"creating recurring run {name!r}", create).recurring_run_id
    except PlatformError as exc:
        if replaced is None:
            raise
        raise PlatformError(
            f"{exc} (the old recurring run {replaced.recurring_run_id} was already deleted: "
            "rerun to create it)"
        ) from None


def _outcome(
    action: str, recurring_run_id: str, result: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    # The keys in this order: `--json` prints them as they come.
    return {"action": action, "recurring_run_id": recurring_run_id, **result, **extra}


# --- scheduling ---------------------------------------------------------------------------------


def schedule(
    client: kfp.Client,
    package_path: str | Path,
    *,
    name: str,
    cron: str,
    params: dict[str, Any],
    experiment: str = DEFAULT_EXPERIMENT,
    max_concurrency: int = 1,
    catchup: bool = False,
    service_account: str | None = None,
) -> dict[str, Any]:
    """Creates the recurring run `name`, or replaces it when its settings changed (idempotent).

    The package's sha256 goes into the description ("deep-storage spec sha256=<hex>"), so a
    recompiled pipeline counts as a change. A recurring run is never edited in place: KFP has no
    update call, so a changed one is deleted and created again.

    Args:
        client: A client from `connect`.
        package_path: The compiled pipeline.
        name: The recurring run's display name, unique within the experiment.
        cron: 6-field cron, seconds first (e.g. "0 0 2 * * *"); see `validate_cron`.
        params: The pipeline's parameters; None values are dropped.
        experiment: Experiment to schedule in; created when missing.
        max_concurrency: How many of its runs may be active at once.
        catchup: Whether the scheduler starts the runs it missed (e.g. while paused).
        service_account: Kubernetes service account of the runs' pods (default: the server's).

    Returns:
        {"action": "created" | "unchanged" | "replaced", "recurring_run_id", "experiment_id",
        "name", "cron"}, plus "replaced_recurring_run_id" when replaced and "enabled" when
        unchanged (an operator may have paused it).
    """
    cron = _checked_cron(name, cron, max_concurrency)
    path = checked_package(package_path)
    values, spec_sha = pipeline_params(params), _spec_sha256(path)
    wanted = _Wanted(cron, max_concurrency, not catchup, values, spec_sha, service_account)
    experiment_id = ensure_experiment(client, experiment)
    old = _the_one_named(client, experiment_id, experiment, name)
    result = {"experiment_id": experiment_id, "name": name, "cron": cron}
    if old is not None and _same_schedule(old, wanted):
        enabled = old.status != "DISABLED" and old.mode != "DISABLE"
        return _outcome("unchanged", old.recurring_run_id, result, enabled=enabled)
    if old is not None:
        _delete(client, old, name)
    new_id = _create(client, path, experiment_id, name, wanted, replaced=old)
    if old is None:
        return _outcome("created", new_id, result)
    return _outcome("replaced", new_id, result, replaced_recurring_run_id=old.recurring_run_id)
