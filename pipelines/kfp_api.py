"""The transport to a KFP API server: connecting, and every call's failure as one line.

`connect` checks the host and the token before handing out a `kfp.Client`; `call` runs one API
call and turns the ways it fails (HTTP status, refused token, TLS, unreachable host, timeouts)
into a one-line `PlatformError` that names the host, what went wrong and the fix. The bearer
token is never part of a message. The run and recurring-run operations (kfp_runs,
kfp_recurring_runs) go through `call`.

Two kfp.Client habits are contained here: its constructor retries a failing healthz call 5 times,
5 s apart (so `connect` checks the host first, with a short timeout), and `create_experiment` /
`run_pipeline` print links on stdout (`quiet_stdout` sends them to stderr, so `--json` output
stays clean).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import kfp
import kfp_server_api
import urllib3

from deep_storage.core.config import register_secret
from deep_storage.core.errors import InputError, PlatformError

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30


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
        client = call(
            host,
            "opening a client",
            lambda: kfp.Client(
                host=host, existing_token=token, namespace=namespace, verify_ssl=verify_ssl
            ),
        )
    # healthz may be open to anyone; listing experiments is what the token must be good for.
    call(host, "listing experiments", lambda: client.list_experiments(page_size=1))
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
        return call(
            host,
            "GET /apis/v2beta1/healthz",
            lambda: healthz.healthz_service_get_healthz(
                _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
            ),
        )


def host_of(client: kfp.Client) -> str:
    """The host `client` talks to, for messages."""
    config = getattr(client, "_existing_config", None)  # kfp.Client keeps no public host
    return getattr(config, "host", None) or "the configured host"


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """kfp.Client prints "Experiment details: ..." / "Run details: ..." links: keep stdout clean."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# --- errors -------------------------------------------------------------------------------------


def call(host: str, what: str, fn: Callable[[], T]) -> T:
    """Runs one API call; turns the ways it fails into a one-line PlatformError.

    Args:
        host: The KFP API base URL, for the message.
        what: What the call does, e.g. "creating run 'x'", for the message.
        fn: The call.
    """
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
            f"cannot reach the KFP API at {host}: {one_line(str(exc))}; check --host / port-forward"
        ) from None


def _api_error(host: str, what: str, exc: kfp_server_api.ApiException) -> PlatformError:
    status = exc.status or 0
    if status in (401, 403):
        return PlatformError(
            f"KFP API at {host} refused the request (HTTP {status}): check --token / KFP_TOKEN"
        )
    if status == 0:  # kfp_server_api's wrapper of a TLS failure
        return PlatformError(
            f"cannot reach the KFP API at {host}: {one_line(str(exc.reason))}; "
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
    return one_line(str(text or exc.reason or "no detail"))


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError too
        return one_line(str(reason).split("Failed to establish a new connection: ")[-1])
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S} s"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return f"no response within {READ_TIMEOUT_S} s"
    return one_line(str(reason))


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters, for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
