"""A FAKE of the Kubeflow Pipelines v2beta1 REST API, for client-side tests. NOT a KFP server.

It runs nothing: no pipeline is compiled, scheduled or executed, and no Kubernetes is involved.
It only keeps experiments, runs and recurring runs in memory and answers with the JSON shapes
`kfp.Client` 2.17 (through kfp_server_api) sends and parses, so the code that talks to KFP can be
tested without a cluster. Every request is recorded in `server.requests`.

Shapes copied from kfp_server_api 2.17 (models' attribute_map) and the backend's protojson output:
snake_case fields, except the list of recurring runs, which is `recurringRuns`; int64 fields
(`max_concurrency`) come back as strings; false and empty fields are left out; list filters are
a JSON `Filter` (`predicates` of `operation` / `key` / `stringValue`).

Paths served (all under /apis/v2beta1): GET healthz; POST/GET experiments, GET experiments/{id};
POST/GET runs, GET runs/{id}; POST/GET recurringruns, GET/DELETE recurringruns/{id}. Anything
else is a 404, so a client calling an unexpected endpoint fails loudly.

    with FakeKfpServer(token="t0k") as kfp_api:
        client = pipelines.client.connect(kfp_api.url, token="t0k")
        ...
        assert kfp_api.calls("POST", "/apis/v2beta1/runs")

The server only serves inside the `with` block (a ThreadingHTTPServer on 127.0.0.1, free port).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"

# google.rpc codes the backend puts next to the HTTP status
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}
# kfp.client sends the enum's number; protojson also accepts its name
_OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 9: "IS_SUBSTRING"}


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    message: str
    times: int
    skip: int


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FakeKfpServer:
    """In-memory fake of the KFP v2beta1 API. Use as a context manager; `url` is its base URL.

    Args:
        token: When set, every request must carry `Authorization: Bearer <token>`, else HTTP 401
            (like a KFP behind an authenticating proxy, healthz included).
        multi_user: What healthz reports as `multi_user`.
    """

    token: str | None = None
    multi_user: bool = False
    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ---

    def __enter__(self) -> FakeKfpServer:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "use FakeKfpServer as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- test helpers ---

    def calls(self, method: str, path: str) -> list[Request]:
        """The recorded requests with this method and exactly this path (no query string)."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def fail(
        self,
        method: str,
        path: str,
        status: int = 500,
        message: str = "injected failure",
        times: int = 1,
        skip: int = 0,
    ) -> None:
        """Lets `skip` requests to `method path` through, then answers `times` with `status`."""
        self._failures.append(_Failure(method, path, status, message, times, skip))

    # --- request handling (called from the handler's thread) ---

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(Request(method, path, query, headers, body))
            try:
                self._check_auth(headers)
                self._injected_failure(method, path)
                return 200, self._route(method, path, query, body)
            except ApiError as exc:
                code = _RPC_CODES.get(exc.status, 2)
                return exc.status, {"error": exc.message, "code": code, "message": exc.message}

    def _check_auth(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        sent = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if sent != f"Bearer {self.token}":
            # never echo what was sent
            raise ApiError(401, "Unauthenticated: missing or invalid bearer token")

    def _injected_failure(self, method: str, path: str) -> None:
        for failure in self._failures:
            if failure.method == method and failure.path == path and failure.times > 0:
                if failure.skip > 0:
                    failure.skip -= 1
                    continue
                failure.times -= 1
                raise ApiError(failure.status, failure.message)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        if not path.startswith(API + "/"):
            raise ApiError(404, f"Not Found: {path}")
        parts = path[len(API) + 1 :].split("/")
        resource, ident = parts[0], (parts[1] if len(parts) == 2 else None)
        if len(parts) > 2:
            raise ApiError(404, f"Not Found: {path}")
        if resource == "healthz" and ident is None and method == "GET":
            return {"multi_user": True} if self.multi_user else {"pipeline_store": "database"}
        tables = {
            "experiments": (self.experiments, "experiments", self._new_experiment),
            "runs": (self.runs, "runs", self._new_run),
            "recurringruns": (self.recurring_runs, "recurringRuns", self._new_recurring_run),
        }
        if resource not in tables:
            raise ApiError(404, f"Not Found: {path}")
        table, list_key, create = tables[resource]
        if ident is None and method == "POST":
            return create(body or {})
        if ident is None and method == "GET":
            return self._list(table, list_key, query)
        if ident is not None and ":" not in ident and method in ("GET", "DELETE"):
            if ident not in table:
                raise ApiError(404, f"{resource[:-1]} {ident} not found")
            if method == "DELETE":
                del table[ident]
                return {}
            return table[ident]
        raise ApiError(404, f"Not Found: {method} {path}")

    # --- resources ---

    def _new_experiment(self, body: dict) -> dict:
        name = body.get("display_name")
        if not name:
            raise ApiError(400, "Invalid input error: experiment display_name is empty")
        namespace = body.get("namespace") or ""
        for other in self.experiments.values():
            if other["display_name"] == name and other.get("namespace", "") == namespace:
                raise ApiError(409, f"Already exist error: experiment {name!r} already exists")
        experiment = _compact(
            {
                "experiment_id": str(uuid.uuid4()),
                "display_name": name,
                "description": body.get("description"),
                "namespace": namespace,
                "created_at": _now(),
                "storage_state": "AVAILABLE",
            }
        )
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _check_experiment(self, body: dict) -> str:
        experiment_id = body.get("experiment_id")
        if not experiment_id or experiment_id not in self.experiments:
            raise ApiError(404, f"experiment {experiment_id!r} not found")
        if not body.get("display_name"):
            raise ApiError(400, "Invalid input error: display_name is empty")
        if not body.get("pipeline_spec") and not body.get("pipeline_version_reference"):
            raise ApiError(400, "Invalid input error: neither pipeline_spec nor version given")
        return experiment_id

    def _new_run(self, body: dict) -> dict:
        self._check_experiment(body)
        run = _compact(
            {
                **body,
                "run_id": str(uuid.uuid4()),
                "created_at": _now(),
                "state": "PENDING",
                "storage_state": "AVAILABLE",
            }
        )
        self.runs[run["run_id"]] = run
        return run

    def _new_recurring_run(self, body: dict) -> dict:
        self._check_experiment(body)
        trigger = body.get("trigger") or {}
        cron = (trigger.get("cron_schedule") or {}).get("cron")
        if cron is None and not trigger.get("periodic_schedule"):
            raise ApiError(400, "Invalid input error: a trigger (cron or periodic) is required")
        if cron is not None and not cron.startswith("@") and len(cron.split()) != 6:
            # the backend's scheduler parses cron with seconds first
            raise ApiError(400, f"Invalid input error: cron {cron!r} needs 6 fields")
        max_concurrency = int(body.get("max_concurrency") or 1)
        if not 1 <= max_concurrency <= 10:
            raise ApiError(400, "Invalid input error: max_concurrency must be in [1, 10]")
        enabled = body.get("mode", "ENABLE") == "ENABLE"
        recurring_run = _compact(
            {
                **body,
                "recurring_run_id": str(uuid.uuid4()),
                "max_concurrency": str(max_concurrency),  # int64 -> JSON string
                "no_catchup": bool(body.get("no_catchup")),
                "mode": "ENABLE" if enabled else "DISABLE",
                "status": "ENABLED" if enabled else "DISABLED",
                "created_at": _now(),
                "updated_at": _now(),
            }
        )
        self.recurring_runs[recurring_run["recurring_run_id"]] = recurring_run
        return recurring_run

    def _list(self, table: dict[str, dict], list_key: str, query: dict[str, str]) -> dict:
        items = list(table.values())
        if query.get("experiment_id"):
            items = [i for i in items if i.get("experiment_id") == query["experiment_id"]]
        if query.get("filter"):
            items = [i for i in items if _matches(i, _parse_filter(query["filter"]))]
        size = int(query.get("page_size") or 20)
        start = int(query.get("page_token") or 0)
        page = items[start : start + size]
        answer: dict[str, Any] = {"total_size": len(items)}
        if page:
            answer[list_key] = page
        if start + size < len(items):
            answer["next_page_token"] = str(start + size)
        return answer


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeKfpServer

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, payload = self.server_fake.handle(
            self.command, url.path, query, dict(self.headers.items()), body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(obj: dict) -> dict:
    """protojson leaves out unset, false and empty fields."""
    return {k: v for k, v in obj.items() if v not in (None, False, "", [], {})}


def _parse_filter(text: str) -> list[tuple[str, str, Any]]:
    try:
        predicates = json.loads(text).get("predicates") or []
    except (ValueError, AttributeError):
        raise ApiError(400, f"Invalid input error: filter {text!r} is not a JSON Filter") from None
    parsed = []
    for p in predicates:
        operation = p.get("operation")
        operation = _OPERATIONS.get(operation, operation)
        if operation not in _OPERATIONS.values():
            raise ApiError(400, f"fake KFP does not implement filter operation {operation!r}")
        value = next(
            (
                p[k]
                for k in (
                    "stringValue",
                    "string_value",
                    "intValue",
                    "int_value",
                    "longValue",
                    "long_value",
                )
                if k in p
            ),
            None,
        )
        parsed.append((operation, p.get("key"), value))
    return parsed


def _matches(item: dict, predicates: list[tuple[str, str, Any]]) -> bool:
    for operation, key, value in predicates:
        actual = item.get(key)
        if operation == "EQUALS" and str(actual) != str(value):
            return False
        if operation == "NOT_EQUALS" and str(actual) == str(value):
            return False
        if operation == "IS_SUBSTRING" and str(value) not in str(actual or ""):
            return False
    return True
