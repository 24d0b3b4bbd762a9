"""Runs the compiled pipeline on a KFP API server: connect, submit, schedule, backfill.

Everything goes through `kfp.Client` (KFP v2beta1 REST API). Failures become one-line
`PlatformError`s that name the host, what went wrong and the fix; bad arguments become
`InputError`s. The bearer token is never part of a message.

Two kfp.Client habits are contained here: its constructor retries a failing healthz call 5 times,
5 s apart (so `connect` checks the host first, with a short timeout), and `create_experiment` /
`run_pipeline` print links on stdout (sent to stderr here, so `--json` output stays clean).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kfp
import kfp_server_api
import urllib3

from deep_storage.core import defaults
from deep_storage.core.config import register_secret
from deep_storage.core.errors import InputError, PlatformError

T = TypeVar("T")

DEFAULT_EXPERIMENT = "deep-storage"
MAX_BACKFILL_DAYS = defaults.MAX_BACKFILL_DAYS
SPEC_MARK = "deep-storage spec sha256="
PACKAGE_SUFFIXES = (".yaml", ".yml", ".zip", ".tar.gz", ".tgz")
_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 30
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


# --- connecting ---------------------------------------------------------------------------------


def connect(
    host: str,
    token: str | None = None,
    namespace: str = "kubeflow",
    verify_ssl: bool | None = None,
) -> kfp.Client:
    """Returns a `kfp.Client` for `host`, after checking the API answers and accepts the token.

    Args:
        host: The KFP API base URL, e.g. http://localhost:8888 (a port-forward of ml-pipeline).
        token: Bearer token sent as `Authorization: Bearer ...` (kfp's `existing_token`).
        namespace: The user's profile namespace on a multi-user KFP; "kubeflow" means none.
        verify_ssl: Whether to verify the server's TLS certificate (None: kfp's default, yes).
    """
    host = _normalise_host(host)
    register_secret(token)
    _preflight(host, token, verify_ssl)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later versions."
        warnings.simplefilter("ignore", FutureWarning)
        client = _call(
            host,
            "opening a client",
            lambda: kfp.Client(
                host=host, existing_token=token, namespace=namespace, verify_ssl=verify_ssl
            ),
        )
    # healthz may be open to anyone; listing experiments is what the token must be good for.
    _call(host, "listing experiments", lambda: client.list_experiments(page_size=1))
    return client


def _normalise_host(host: str) -> str:
    host = (host or "").strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", host):
        raise InputError(
            f"--host {host!r} is not a URL: expected http://HOST:PORT or https://HOST, "
            "e.g. http://localhost:8888 after `kubectl port-forward svc/ml-pipeline 8888`"
        )
    return host


def _preflight(host: str, token: str | None, verify_ssl: bool | None) -> Any:
    """GET /apis/v2beta1/healthz once, with a short timeout and one retry (kfp.Client: 5x5 s)."""
    config = kfp_server_api.Configuration(host=host)
    config.retries = 1
    if verify_ssl is not None:
        config.verify_ssl = verify_ssl
    if token:
        config.api_key["authorization"] = token
        config.api_key_prefix["authorization"] = "Bearer"
    with kfp_server_api.ApiClient(config) as api:
        healthz = kfp_server_api.HealthzServiceApi(api)
        return _call(
            host,
            "GET /apis/v2beta1/healthz",
            lambda: healthz.healthz_service_get_healthz(
                _request_timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S)
            ),
        )


# --- errors -------------------------------------------------------------------------------------


def _call(host: str, what: str, fn: Callable[[], T]) -> T:
    """Runs one API call; turns the ways it fails into a one-line PlatformError."""
    try:
        return fn()
    except kfp_server_api.ApiException as exc:
        raise _api_error(host, what, exc) from None
    except urllib3.exceptions.HTTPError as exc:
        raise PlatformError(
            f"cannot reach the KFP API at {host}: {_reason(exc)}; check --host / port-forward"
        ) from None
    except TimeoutError as exc:  # kfp.Client's own healthz retries gave up
        raise PlatformError(
            f"cannot reach the KFP API at {host}: {_one_line(str(exc))}; "
            "check --host / port-forward"
        ) from None


def _api_error(host: str, what: str, exc: kfp_server_api.ApiException) -> PlatformError:
    status = exc.status or 0
    if status in (401, 403):
        return PlatformError(
            f"KFP API at {host} refused the request (HTTP {status}): check --token / KFP_TOKEN"
        )
    if status == 0:  # kfp_server_api's wrapper of a TLS failure
        return PlatformError(
            f"cannot reach the KFP API at {host}: {_one_line(str(exc.reason))}; "
            "check the certificate or pass --no-verify-ssl for a self-signed one"
        )
    detail = _server_message(exc)
    hint = {
        404: "check --host points at the KFP API (ml-pipeline, port 8888), not the UI",
        400: "the server rejected the request as invalid",
        409: "it already exists; rerun to pick it up",
    }.get(status, "retry, or check the ml-pipeline server logs")
    return PlatformError(f"KFP API at {host} answered HTTP {status} to {what}: {detail}; {hint}")


def _server_message(exc: kfp_server_api.ApiException) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        payload = json.loads(body or "")
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        text = payload.get("message") or payload.get("error") or ""
    else:
        text = body or ""
    return _one_line(str(text or exc.reason or "no detail"))


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError too
        return _one_line(str(reason).split("Failed to establish a new connection: ")[-1])
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no answer within {_CONNECT_TIMEOUT_S} s"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return f"no response within {_READ_TIMEOUT_S} s"
    return _one_line(str(reason))


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _host(client: kfp.Client) -> str:
    config = getattr(client, "_existing_config", None)  # kfp.Client keeps no public host
    return getattr(config, "host", None) or "the configured host"


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """kfp.Client prints "Experiment details: ..." / "Run details: ..." links: keep stdout clean."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


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


def _package(package_path: str | Path) -> Path:
    path = Path(package_path)
    if not path.name.endswith(PACKAGE_SUFFIXES):
        raise InputError(
            f"pipeline package {str(path)!r} is not a KFP package: expected a file ending in "
            f"{', '.join(PACKAGE_SUFFIXES)}; run `make compile` and pass compiled/<pipeline>.yaml"
        )
    if not path.is_file():
        raise InputError(f"pipeline package {str(path)!r} does not exist: run `make compile` first")
    return path


def _spec_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None}


def _as_day(value: dt.date, what: str) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InputError(f"{what} {value!r} is not a date: expected a datetime.date (a UTC day)")
    return value


# --- experiments and runs -----------------------------------------------------------------------


def ensure_experiment(client: kfp.Client, name: str = DEFAULT_EXPERIMENT) -> str:
    """Returns the id of the experiment called `name`, creating it when there is none.

    Args:
        client: A client from `connect`.
        name: The experiment's display name.
    """
    host = _host(client)

    def get_or_create() -> Any:
        try:
            with _quiet_stdout():
                return client.create_experiment(name=name)  # kfp: get by name, else create
        except ValueError as exc:  # kfp: "Multiple experiments is found with name ..."
            raise PlatformError(
                f"experiment {name!r} on {host} is ambiguous ({_one_line(str(exc))}): "
                "expected one; archive or rename the others"
            ) from None

    return _call(host, f"getting or creating experiment {name!r}", get_or_create).experiment_id


def _create_run(
    client: kfp.Client,
    path: Path,
    params: dict[str, Any],
    experiment_id: str,
    run_name: str,
    service_account: str | None,
) -> dict[str, Any]:
    def create() -> Any:
        with _quiet_stdout():
            return client.run_pipeline(
                experiment_id=experiment_id,
                job_name=run_name,
                pipeline_package_path=str(path),
                params=params,
                enable_caching=False,
                service_account=service_account,
            )

    run = _call(_host(client), f"creating run {run_name!r}", create)
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
    path = _package(package_path)
    values = _params(params)
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
    path = _package(package_path)
    # The whole range in one run, unless the caller caps it (the next runs then continue).
    values = {
        "max_days": days,
        **_params(params),
        "run_date": first.isoformat(),
        "until_date": last.isoformat(),
    }
    experiment_id = ensure_experiment(client, experiment)
    name = f"deep-storage backfill {first.isoformat()}..{last.isoformat()}"
    run = _create_run(client, path, values, experiment_id, name, service_account)
    return [{**run, "run_date": first.isoformat(), "until_date": last.isoformat()}]


# --- recurring runs -----------------------------------------------------------------------------


def _recurring_runs_named(client: kfp.Client, experiment_id: str, name: str) -> list[Any]:
    name_filter = json.dumps(
        {"predicates": [{"operation": _EQUALS, "key": "display_name", "stringValue": name}]}
    )
    found: list[Any] = []
    token = ""
    while True:
        page = _call(
            _host(client),
            f"listing recurring runs named {name!r}",
            lambda token=token: client.list_recurring_runs(
                page_token=token, page_size=100, experiment_id=experiment_id, filter=name_filter
            ),
        )
        found += [r for r in page.recurring_runs or [] if r.display_name == name]
        token = page.next_page_token or ""
        if not token:
            return found


def _same_schedule(
    existing: Any,
    *,
    cron: str,
    max_concurrency: int,
    no_catchup: bool,
    params: dict[str, Any],
    spec_sha: str,
    service_account: str | None,
) -> bool:
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
        and " ".join(existing_cron.split()) == cron
        and existing_max == max_concurrency
        and bool(existing.no_catchup) == no_catchup
        and existing_params == params
        and mark is not None
        and mark.group(1) == spec_sha
        and (existing.service_account or None) == (service_account or None)
    )


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
    cron = validate_cron(cron)
    if not name or not name.strip():
        raise InputError("recurring run name is empty: expected a display name, e.g. deep-storage")
    if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= 10:
        raise InputError(
            f"max_concurrency {max_concurrency!r} is out of range: expected 1..10 (KFP's limit)"
        )
    path = _package(package_path)
    values = _params(params)
    spec_sha = _spec_sha256(path)
    host = _host(client)
    experiment_id = ensure_experiment(client, experiment)
    existing = _recurring_runs_named(client, experiment_id, name)
    if len(existing) > 1:
        ids = ", ".join(r.recurring_run_id for r in existing)
        raise PlatformError(
            f"{len(existing)} recurring runs are named {name!r} in experiment {experiment!r} on "
            f"{host} ({ids}): expected at most one; delete all but one "
            "(`kfp recurring-run delete ID`) and rerun"
        )
    result = {"experiment_id": experiment_id, "name": name, "cron": cron}
    if existing:
        old = existing[0]
        if _same_schedule(
            old,
            cron=cron,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=values,
            spec_sha=spec_sha,
            service_account=service_account,
        ):
            enabled = old.status != "DISABLED" and old.mode != "DISABLE"
            return {
                "action": "unchanged",
                "recurring_run_id": old.recurring_run_id,
                **result,
                "enabled": enabled,
            }
        _call(
            host,
            f"deleting recurring run {old.recurring_run_id} ({name!r})",
            lambda: client.delete_recurring_run(recurring_run_id=old.recurring_run_id),
        )

    def create() -> Any:
        return client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            description=f"{SPEC_MARK}{spec_sha}",
            cron_expression=cron,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            pipeline_package_path=str(path),
            params=values,
            enabled=True,
            enable_caching=False,
            service_account=service_account,
        )

    try:
        created = _call(host, f"creating recurring run {name!r}", create)
    except PlatformError as exc:
        if not existing:
            raise
        raise PlatformError(
            f"{exc} (the old recurring run {existing[0].recurring_run_id} was already deleted: "
            "rerun to create it)"
        ) from None
    if existing:
        return {
            "action": "replaced",
            "recurring_run_id": created.recurring_run_id,
            **result,
            "replaced_recurring_run_id": existing[0].recurring_run_id,
        }
    return {"action": "created", "recurring_run_id": created.recurring_run_id, **result}
