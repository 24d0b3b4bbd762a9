"""One-off runs of the compiled pipeline on a KFP API server: submit one run, or backfill a range.

Also what a run and a recurring run (kfp_recurring_runs) both need: the checked package, the
pipeline parameters without the unset ones, and the experiment to run in. Bad arguments become
`InputError`s before anything reaches the server; the calls themselves go through kfp_api.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import kfp

from deep_storage.core import defaults
from deep_storage.core.errors import InputError, PlatformError
from deep_storage_kfp.pipelines.kfp_api import call, host_of, one_line, quiet_stdout

DEFAULT_EXPERIMENT = "deep-storage"
MAX_BACKFILL_DAYS = defaults.MAX_BACKFILL_DAYS
PACKAGE_SUFFIXES = (".yaml", ".yml", ".zip", ".tar.gz", ".tgz")


# --- arguments ----------------------------------------------------------------------------------


def checked_package(package_path: str | Path) -> Path:
    """The compiled pipeline's path, once it is known to name an existing KFP package."""
    path = Path(package_path)
    if not path.name.endswith(PACKAGE_SUFFIXES):
        raise InputError(
            f"pipeline package {str(path)!r} is not a KFP package: expected a file ending in "
            f"{', '.join(PACKAGE_SUFFIXES)}; run `make compile` and pass compiled/<pipeline>.yaml"
        )
    if not path.is_file():
        raise InputError(f"pipeline package {str(path)!r} does not exist: run `make compile` first")
    return path


def pipeline_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters that are set: a None one is left out, so the pipeline's default applies."""
    return {k: v for k, v in (params or {}).items() if v is not None}


def _as_day(value: dt.date, what: str) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InputError(f"{what} {value!r} is not a date: expected a datetime.date (a UTC day)")
    return value


def _days_in(first: dt.date, last: dt.date) -> int:
    """How many days `first`..`last` holds, once the range is known to be one backfill's."""
    if last < first:
        raise InputError(
            f"backfill {first}..{last} ends before it starts: expected first <= last; swap them"
        )
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise InputError(
            f"backfill {first}..{last} spans {days} days: expected at most {MAX_BACKFILL_DAYS}; "
            "split it into several backfills, run one after the other"
        )
    return days


# --- experiments and runs -----------------------------------------------------------------------


def ensure_experiment(client: kfp.Client, name: str = DEFAULT_EXPERIMENT) -> str:
    """Returns the id of the experiment called `name`, creating it when there is none.

    Args:
        client: A client from `connect`.
        name: The experiment's display name.
    """
    host = host_of(client)

    def get_or_create() -> Any:
        try:
            with quiet_stdout():
                return client.create_experiment(name=name)  # kfp: get by name, else create
        except ValueError as exc:  # kfp: "Multiple experiments is found with name ..."
            raise PlatformError(
                f"experiment {name!r} on {host} is ambiguous ({one_line(str(exc))}): "
                "expected one; archive or rename the others"
            ) from None

    return call(host, f"getting or creating experiment {name!r}", get_or_create).experiment_id


def _create_run(
    client: kfp.Client,
    path: Path,
    params: dict[str, Any],
    experiment_id: str,
    run_name: str,
    service_account: str | None,
) -> dict[str, Any]:
    def create() -> Any:
        with quiet_stdout():
            return client.run_pipeline(
                experiment_id=experiment_id,
                job_name=run_name,
                pipeline_package_path=str(path),
                params=params,
                enable_caching=False,
                service_account=service_account,
            )

    run = call(host_of(client), f"creating run {run_name!r}", create)
    return {
        "run_id": run.run_id,
        "run_name": run.display_name or run_name,
        "experiment_id": run.experiment_id or experiment_id,
    }


def submit(
    client: kfp.Client,
    package_path: str | Path,
    params: dict[str, Any],
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """Starts one run of the compiled pipeline, with caching disabled.

    Args:
        client: A client from `connect`.
        package_path: The compiled pipeline (YAML, or a .zip/.tar.gz holding one).
        params: The pipeline's parameters; None values are dropped (the pipeline default applies).
        experiment: Experiment to run in; created when missing.
        run_name: The run's display name (default "deep-storage <run_date or UTC now>").
        service_account: Kubernetes service account of the run's pods (default: the server's).

    Returns:
        {"run_id", "run_name", "experiment_id"}.
    """
    path = checked_package(package_path)
    values = pipeline_params(params)
    if run_name is None:
        when = values.get("run_date") or f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
        run_name = f"deep-storage {when}"
    experiment_id = ensure_experiment(client, experiment)
    return _create_run(client, path, values, experiment_id, run_name, service_account)


def backfill(
    client: kfp.Client,
    package_path: str | Path,
    first: dt.date,
    last: dt.date,
    params: dict[str, Any],
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    service_account: str | None = None,
) -> list[dict[str, Any]]:
    """Starts ONE run that ingests, projects and checks every UTC day from `first` to `last`.

    One run, not one per day: runs that write the same lake queue on its writer lease, so runs
    started side by side would only wait for each other (and time out); one run does the days in
    order and re-projects silver once.

    Args:
        client: A client from `connect`.
        package_path: The compiled pipeline.
        first: First UTC day.
        last: Last UTC day, inclusive; at most 366 days after `first`.
        params: The other parameters; None values are dropped.
        experiment: Experiment to run in; created when missing.
        service_account: Kubernetes service account of the run's pods (default: the server's).

    Returns:
        [{"run_id", "run_name", "experiment_id", "run_date", "until_date"}].
    """
    first, last = _as_day(first, "first day"), _as_day(last, "last day")
    days = _days_in(first, last)
    path = checked_package(package_path)
    # The whole range in one run, unless the caller caps it (the next runs then continue).
    values = {
        "max_days": days,
        **pipeline_params(params),
        "run_date": first.isoformat(),
        "until_date": last.isoformat(),
    }
    experiment_id = ensure_experiment(client, experiment)
    name = f"deep-storage backfill {first.isoformat()}..{last.isoformat()}"
    run = _create_run(client, path, values, experiment_id, name, service_account)
    return [{**run, "run_date": first.isoformat(), "until_date": last.isoformat()}]
