"""pipelines.client against the in-process FAKE of the KFP API (tests/fake_kfp.py).

A tiny real pipeline is compiled with the kfp SDK, so kfp.Client builds its requests from a
real package; what the fake receives is what a KFP server would. No cluster, no other service.
No `from __future__ import annotations` here: the kfp SDK reads the component's annotations as
objects, and strings ("str") make it fail ("Artifacts must have both a schema_title...").
"""

import datetime as dt
import hashlib
import socket
from pathlib import Path

import pytest
from kfp import compiler, dsl

from deep_storage.core.errors import InputError, PlatformError
from deep_storage_kfp.pipelines import client as kfp_client
from tests.fake_kfp import API, FakeKfpServer

pytestmark = pytest.mark.unit

TOKEN = "tok-3x4mpl3-s3cr3t"
EXPERIMENTS = f"{API}/experiments"
RUNS = f"{API}/runs"
RECURRING = f"{API}/recurringruns"
PARAMS = {"lake_uri": "s3a://lake/prefix", "lookback_days": 3}


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def echo(run_date: str, lake_uri: str, lookback_days: int) -> str:
    """Returns its inputs, joined."""
    return f"{run_date} {lake_uri} {lookback_days}"


@dsl.pipeline(name="tiny-deep-storage")
def tiny(run_date: str = "", lake_uri: str = "", lookback_days: int = 7):
    echo(run_date=run_date, lake_uri=lake_uri, lookback_days=lookback_days)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "tiny.yaml"
    compiler.Compiler().compile(pipeline_func=tiny, package_path=str(path))
    assert "enableCache: true" in path.read_text()  # so "caching disabled" below means something
    return path


@pytest.fixture
def api():
    with FakeKfpServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def client(api):
    return kfp_client.connect(api.url, token=TOKEN)


def _header(request, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


def _tasks(body: dict) -> dict:
    spec = body["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)  # {"pipeline_spec", "platform_spec"} with k8s settings
    return spec["root"]["dag"]["tasks"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_submit_sends_parameters_and_token_without_caching_and_creates_the_experiment_once(
    api, client, package, capsys
):
    first = kfp_client.submit(
        client, package, {**PARAMS, "run_date": "2025-06-01", "s3_secret": None}
    )
    second = kfp_client.submit(client, package, {**PARAMS, "run_date": "2025-06-02"})

    assert len(api.calls("POST", EXPERIMENTS)) == 1
    (experiment,) = api.experiments.values()
    assert experiment["display_name"] == "deep-storage"
    posts = api.calls("POST", RUNS)
    assert [p.json["runtime_config"]["parameters"] for p in posts] == [
        {"lake_uri": "s3a://lake/prefix", "lookback_days": 3, "run_date": "2025-06-01"},
        {"lake_uri": "s3a://lake/prefix", "lookback_days": 3, "run_date": "2025-06-02"},
    ]
    assert [p.json["display_name"] for p in posts] == [
        "deep-storage 2025-06-01",
        "deep-storage 2025-06-02",
    ]
    for post in posts:
        assert post.json["experiment_id"] == experiment["experiment_id"]
        tasks = _tasks(post.json)
        assert tasks
        assert not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
    assert first == {
        "run_id": next(iter(api.runs)),
        "run_name": "deep-storage 2025-06-01",
        "experiment_id": experiment["experiment_id"],
    }
    assert second["run_id"] != first["run_id"]
    assert {_header(r, "Authorization") for r in api.requests} == {f"Bearer {TOKEN}"}
    assert capsys.readouterr().out == ""  # kfp.Client's printed links went to stderr


def test_submit_takes_run_name_and_service_account(api, client, package):
    kfp_client.submit(
        client, package, PARAMS, experiment="ops", run_name="manual", service_account="pipeline-sa"
    )
    (post,) = api.calls("POST", RUNS)
    assert (post.json["display_name"], post.json["service_account"]) == ("manual", "pipeline-sa")
    assert [e["display_name"] for e in api.experiments.values()] == ["ops"]


def test_schedule_is_idempotent_by_name_and_replaces_on_change(api, client, package):
    args = dict(name="deep-storage daily", cron="0 0 2 * * *", params=PARAMS)

    created = kfp_client.schedule(client, package, **args)
    assert created["action"] == "created"
    (post,) = api.calls("POST", RECURRING)
    body = post.json
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["runtime_config"]["parameters"] == PARAMS
    sha = hashlib.sha256(package.read_bytes()).hexdigest()
    assert body["description"] == f"deep-storage spec sha256={sha}"
    assert not any(t.get("cachingOptions", {}).get("enableCache") for t in _tasks(body).values())
    listed = api.calls("GET", RECURRING)
    assert '"display_name"' in listed[-1].query["filter"]
    assert listed[-1].query["experiment_id"] == body["experiment_id"]

    again = kfp_client.schedule(client, package, **args)
    assert again["action"] == "unchanged"
    assert again["recurring_run_id"] == created["recurring_run_id"]
    assert again["enabled"] is True
    assert len(api.calls("POST", RECURRING)) == 1
    assert not [r for r in api.requests if r.method == "DELETE"]

    moved = kfp_client.schedule(client, package, **{**args, "cron": "0 30 3 * * *"})
    assert moved["action"] == "replaced"
    assert moved["replaced_recurring_run_id"] == created["recurring_run_id"]
    assert [r.path for r in api.requests if r.method == "DELETE"] == [
        f"{RECURRING}/{created['recurring_run_id']}"
    ]
    assert list(api.recurring_runs) == [moved["recurring_run_id"]]
    assert api.calls("POST", RECURRING)[-1].json["trigger"]["cron_schedule"]["cron"] == (
        "0 30 3 * * *"
    )


def test_schedule_replaces_when_the_package_or_the_parameters_change(
    api, client, package, tmp_path
):
    args = dict(name="nightly", cron="0 0 2 * * *", params=PARAMS)
    recompiled = tmp_path / "tiny.yaml"
    recompiled.write_text(package.read_text() + "# recompiled\n")

    assert kfp_client.schedule(client, package, **args)["action"] == "created"
    assert kfp_client.schedule(client, recompiled, **args)["action"] == "replaced"
    assert kfp_client.schedule(client, recompiled, **args)["action"] == "unchanged"
    changed = {**args, "params": {**PARAMS, "lookback_days": 5}}
    assert kfp_client.schedule(client, recompiled, **changed)["action"] == "replaced"
    catchup = {**changed, "catchup": True}
    assert kfp_client.schedule(client, recompiled, **catchup)["action"] == "replaced"
    assert api.calls("POST", RECURRING)[-1].json.get("no_catchup", False) is False
    assert len(api.recurring_runs) == 1


def test_schedule_refuses_two_recurring_runs_with_the_same_name(api, client, package):
    first = kfp_client.schedule(client, package, name="dup", cron="0 0 2 * * *", params=PARAMS)
    copy = {**api.recurring_runs[first["recurring_run_id"]], "recurring_run_id": "copy-2"}
    api.recurring_runs["copy-2"] = copy

    with pytest.raises(PlatformError, match="2 recurring runs are named 'dup'") as err:
        kfp_client.schedule(client, package, name="dup", cron="0 0 2 * * *", params=PARAMS)
    assert first["recurring_run_id"] in str(err.value) and "copy-2" in str(err.value)


def test_a_5_field_cron_is_refused_with_the_6_field_form(api, client, package):
    with pytest.raises(InputError, match=r"has 5 fields.*use '0 0 2 \* \* \*'"):
        kfp_client.validate_cron("0 2 * * *")
    before = len(api.requests)
    with pytest.raises(InputError, match="seconds first"):
        kfp_client.schedule(client, package, name="n", cron="0 2 * * *", params=PARAMS)
    assert len(api.requests) == before  # refused before any call


@pytest.mark.parametrize("expr", ["0 0 2 * * * 2025", "", "0 0 2 * * $", "every day"])
def test_other_malformed_crons_are_refused(expr):
    with pytest.raises(InputError, match="expected 6 fields"):
        kfp_client.validate_cron(expr)


@pytest.mark.parametrize("expr", ["0 0 2 * * *", " 0  0 2 * * 1-5 ", "@daily", "@every 1h30m"])
def test_valid_crons_come_back_normalised(expr):
    assert kfp_client.validate_cron(expr) == " ".join(expr.split())


def test_backfill_starts_one_run_for_the_whole_range(api, client, package):
    runs = kfp_client.backfill(
        client, package, dt.date(2025, 6, 30), dt.date(2025, 7, 2), {**PARAMS, "until_date": None}
    )

    assert [(r["run_date"], r["until_date"]) for r in runs] == [("2025-06-30", "2025-07-02")]
    (post,) = api.calls("POST", RUNS)
    assert post.json["display_name"] == "deep-storage backfill 2025-06-30..2025-07-02"
    assert post.json["runtime_config"]["parameters"] == {
        **PARAMS,
        "run_date": "2025-06-30",
        "until_date": "2025-07-02",
        "max_days": 3,
    }
    assert len(api.calls("POST", EXPERIMENTS)) == 1
    assert [r["run_id"] for r in runs] == list(api.runs)


def test_backfill_refuses_reversed_and_too_long_ranges(api, client, package):
    before = len(api.requests)
    with pytest.raises(InputError, match="ends before it starts"):
        kfp_client.backfill(client, package, dt.date(2025, 6, 2), dt.date(2025, 6, 1), PARAMS)
    with pytest.raises(InputError, match="spans 367 days: expected at most 366"):
        kfp_client.backfill(client, package, dt.date(2024, 1, 1), dt.date(2025, 1, 1), PARAMS)
    assert len(api.requests) == before


def test_a_missing_package_is_an_input_error(client, tmp_path):
    with pytest.raises(InputError, match="does not exist: run `make compile`"):
        kfp_client.submit(client, tmp_path / "nope.yaml", PARAMS)
    with pytest.raises(InputError, match="is not a KFP package"):
        kfp_client.submit(client, tmp_path / "nope.json", PARAMS)


def test_an_unreachable_host_is_a_one_line_platform_error_without_the_token():
    host = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(PlatformError) as err:
        kfp_client.connect(host, token=TOKEN)
    message = str(err.value)
    assert message.startswith(f"cannot reach the KFP API at {host}: ")
    assert message.endswith("check --host / port-forward")
    assert "Connection refused" in message
    assert TOKEN not in message and "\n" not in message
    assert err.value.exit_code == 7


@pytest.mark.parametrize("sent", ["wrong-token-value", None])
def test_a_refused_token_names_http_401_without_the_token(api, sent):
    with pytest.raises(PlatformError) as err:
        kfp_client.connect(api.url, token=sent)
    message = str(err.value)
    assert message == (
        f"KFP API at {api.url} refused the request (HTTP 401): check --token / KFP_TOKEN"
    )
    assert TOKEN not in message and "wrong-token-value" not in message
    assert len(api.requests) == 1  # the preflight; kfp.Client's 5 x 5 s healthz retries avoided


def test_a_host_without_a_scheme_is_an_input_error():
    with pytest.raises(InputError, match="expected http://HOST:PORT"):
        kfp_client.connect("localhost:8888")
