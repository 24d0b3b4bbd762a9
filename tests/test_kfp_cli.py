"""`deep-storage kfp submit / schedule / backfill` end to end against the FAKE KFP API server
(tests/fake_kfp.py): the real CLI entry point, the real compiled packages, a fake server.

The commands run in this process through `main`, as the `deep-storage` script calls it (kfp is
imported once, not once per command); one test runs the installed script in a subprocess."""

from __future__ import annotations

import ast
import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from deep_storage_kfp.pipelines import cli as kfp_cli
from deep_storage_kfp.pipelines.cli import main
from tests.fake_kfp import FakeKfpServer
from tests.services import run_cli

pytestmark = pytest.mark.unit

TOKEN = "tok-en!secret"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str  # stderr and the log records


@pytest.fixture
def server():
    with FakeKfpServer(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def shell(capsys, caplog, monkeypatch):
    """`deep-storage ARGS` in this process, with KFP_TOKEN set and KFP_HOST not."""
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    monkeypatch.delenv("KFP_HOST", raising=False)
    caplog.set_level(logging.INFO)  # what the CLI logs

    def run(*args: str) -> Result:
        caplog.clear()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err + caplog.text)

    return run


@pytest.fixture
def cli(server, shell):
    """`deep-storage kfp --host <the fake> --json ARGS`."""
    return lambda *args: shell("kfp", "--host", server.url, "--json", *args)


def test_schedule_is_idempotent_by_name_and_sends_the_pipeline_parameters(server, cli):
    first = cli("schedule", "--lake", "s3a://rbs", "--cron", "0 15 1 * * *")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["action"] == "created"
    again = cli("schedule", "--lake", "s3a://rbs", "--cron", "0 15 1 * * *")
    assert json.loads(again.stdout)["action"] == "unchanged"
    moved = cli("schedule", "--lake", "s3a://rbs", "--cron", "0 30 2 * * *")
    assert json.loads(moved.stdout)["action"] == "replaced"
    (current,) = server.recurring_runs.values()
    assert current["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
    assert int(current["max_concurrency"]) == 1 and current["no_catchup"] is True
    params = current["runtime_config"]["parameters"]
    assert params["lake_uri"] == "s3a://rbs"
    assert params["db_secret"] == "django-db-credentials"
    assert TOKEN not in first.stderr + first.stdout + moved.stderr


def test_the_default_schedule_is_hourly_with_one_run_at_a_time(server, cli):
    done = cli("schedule", "--lake", "s3a://rbs")
    assert done.returncode == 0, done.stderr
    (current,) = server.recurring_runs.values()
    assert current["display_name"] == "deep-storage-hourly"
    assert current["trigger"]["cron_schedule"]["cron"] == "0 5 * * * *"
    assert int(current["max_concurrency"]) == 1 and current["no_catchup"] is True
    assert current["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "deep-storage"


def test_submit_and_backfill_create_runs_with_their_dates(server, cli):
    one = cli("submit", "--date", "2025-06-01")
    assert one.returncode == 0, one.stderr
    days = cli("backfill", "--from", "2025-06-01", "--to", "2025-06-03")
    assert days.returncode == 0, days.stderr
    ranges = sorted(
        (p["run_date"], p.get("until_date", ""))
        for p in (r["runtime_config"]["parameters"] for r in server.runs.values())
    )
    # One run for the whole backfill: runs side by side would only queue on the lake's lease.
    assert ranges == [("2025-06-01", ""), ("2025-06-01", "2025-06-03")]


def test_a_five_field_cron_is_refused_with_the_fix(server, cli):
    bad = cli("schedule", "--cron", "15 1 * * *")
    assert bad.returncode != 0
    assert "'0 15 1 * * *'" in bad.stderr
    assert server.recurring_runs == {}


def test_submit_schedule_and_backfill_send_max_days_and_leave_it_to_the_pipeline_otherwise(
    server, cli
):
    for args in (
        ("submit", "--date", "2025-06-01", "--max-days", "3"),
        ("backfill", "--from", "2025-06-01", "--to", "2025-06-30", "--max-days", "10"),
        ("schedule", "--max-days", "2"),
    ):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
    runs = sorted(
        (p["run_date"], p["max_days"])
        for p in (r["runtime_config"]["parameters"] for r in server.runs.values())
    )
    assert runs == [("2025-06-01", 3), ("2025-06-01", 10)]  # submit's, backfill's cap
    (hourly,) = server.recurring_runs.values()
    assert hourly["runtime_config"]["parameters"]["max_days"] == 2
    plain = cli("submit", "--date", "2025-06-02")
    run = server.runs[json.loads(plain.stdout)["run_id"]]
    assert "max_days" not in run["runtime_config"]["parameters"]  # the pipeline's 14
    bad = cli("submit", "--max-days", "0")
    assert bad.returncode != 0 and "--max-days" in bad.stderr


def test_a_backfill_with_executors_runs_as_the_backfill_account_and_refuses_the_pipelines(
    server, cli
):
    refused = cli(
        *("backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--executors", "2"),
        *("--service-account", "deep-storage-pipeline"),
    )
    assert refused.returncode == 2
    assert "cannot create the executor pods" in refused.stderr
    assert "expected deep-storage-backfill" in refused.stderr
    assert server.runs == {}
    done = cli("backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--executors", "2")
    assert done.returncode == 0, done.stderr
    (run,) = server.runs.values()
    assert run["service_account"] == "deep-storage-backfill"


def test_the_training_pipeline_is_scheduled_weekly_beside_the_hourly_one(server, cli):
    hourly = cli("schedule", "--lake", "s3a://rbs")
    assert hourly.returncode == 0, hourly.stderr
    weekly = cli("schedule", "--pipeline", "training", "--lake", "s3a://rbs")
    assert weekly.returncode == 0, weekly.stderr
    assert json.loads(weekly.stdout)["action"] == "created"
    runs = {r["display_name"]: r for r in server.recurring_runs.values()}
    assert set(runs) == {"deep-storage-hourly", "deep-storage-training-weekly"}
    training = runs["deep-storage-training-weekly"]
    assert training["trigger"]["cron_schedule"]["cron"] == "0 0 6 * * 1"  # Mondays 06:00 UTC
    assert int(training["max_concurrency"]) == 1 and training["no_catchup"] is True
    assert (
        training["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"]
        == "deep-storage-training"
    )
    # Only the training pipeline's parameters; unset ones are left to its defaults (no
    # version: each weekly run releases the next one when the rows moved).
    assert training["runtime_config"]["parameters"] == {
        "lake_uri": "s3a://rbs",
        "s3_secret": "contabo-s3-credentials",
    }
    again = cli("schedule", "--pipeline", "training", "--lake", "s3a://rbs")
    assert json.loads(again.stdout)["action"] == "unchanged"
    window = cli(
        "schedule", "--pipeline", "training", "--set-version", "1.1.0",
        "--training-set", "stop_outcome", "--from-day", "2026-01-01", "--to-day",
        "2026-01-28", "--test-from", "2026-01-22", "--cron", "0 30 7 * * 1",
    )  # fmt: skip
    assert json.loads(window.stdout)["action"] == "replaced", window.stderr
    runs = {r["display_name"]: r for r in server.recurring_runs.values()}
    assert runs["deep-storage-training-weekly"]["runtime_config"]["parameters"] == {
        "lake_uri": "",
        "s3_secret": "contabo-s3-credentials",
        "name": "stop_outcome",
        "version": "1.1.0",
        "from_day": "2026-01-01",
        "to_day": "2026-01-28",
        "test_from": "2026-01-22",
    }
    assert len(runs) == 2


def test_options_of_the_other_pipeline_are_refused_before_anything_is_scheduled(server, cli):
    lake_only = cli("schedule", "--pipeline", "training", "--set-version", "1.0.0",
                    "--max-days", "3", "--lookback-days", "2")  # fmt: skip
    assert lake_only.returncode == 2
    assert "--lookback-days, --max-days: not a parameter of the training" in lake_only.stderr
    training_only = cli("schedule", "--set-version", "1.0.0")
    assert training_only.returncode == 2
    assert "--set-version: options of the training pipeline" in training_only.stderr
    bad_day = cli("schedule", "--pipeline", "training", "--set-version", "1.0.0",
                  "--from-day", "2026-02-30")  # fmt: skip
    assert bad_day.returncode == 2
    assert "--from-day '2026-02-30' is not a calendar date" in bad_day.stderr
    assert server.recurring_runs == {} and server.requests == []


# --- the kfp group: the connection once -----------------------------------------------------------


def test_the_connection_is_given_once_on_the_group_and_reaches_every_command(
    server, shell, monkeypatch
):
    monkeypatch.delenv("KFP_TOKEN")
    group = ("kfp", "--host", server.url, "--token", TOKEN, "--namespace", "analytics-jobs",
             "--experiment", "nightly", "--json")  # fmt: skip
    for args in (
        ("submit", "--date", "2025-06-01"),
        ("schedule", "--lake", "s3a://rbs"),
        ("backfill", "--from", "2025-06-01", "--to", "2025-06-02"),
    ):
        done = shell(*group, *args)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)  # --json, given on the group
        assert TOKEN not in done.stdout + done.stderr
    # Every request carried the group's token, and every run went to the group's experiment.
    sent = {r.path for r in server.requests}
    assert {"/apis/v2beta1/runs", "/apis/v2beta1/recurringruns"} <= sent
    auth = {{k.lower(): v for k, v in r.headers.items()}["authorization"] for r in server.requests}
    assert auth == {f"Bearer {TOKEN}"}
    (experiment,) = server.experiments.values()
    assert experiment["display_name"] == "nightly"
    assert experiment["namespace"] == "analytics-jobs"
    made = [*server.runs.values(), *server.recurring_runs.values()]
    assert len(made) == 3 and {r["experiment_id"] for r in made} == {experiment["experiment_id"]}


def test_a_refused_token_is_one_line_that_never_shows_it(shell):
    with FakeKfpServer(token="another") as server:
        refused = shell("kfp", "--host", server.url, "--token", TOKEN, "submit")
    assert refused.returncode == 7
    assert "refused the request (HTTP 401): check --token / KFP_TOKEN" in refused.stderr
    assert TOKEN not in refused.stdout + refused.stderr


def test_a_command_without_a_host_names_the_option_and_the_variable(shell):
    missing = shell("kfp", "schedule", "--lake", "s3a://rbs")
    assert missing.returncode == 2
    assert missing.stderr.startswith("deep-storage: error: --host is not set:")
    assert "--host URL" in missing.stderr and "KFP_HOST" in missing.stderr


def test_a_connection_option_after_the_command_is_pointed_before_it(server, shell):
    late = shell("kfp", "schedule", "--host", server.url, "--lake", "s3a://rbs")
    assert late.returncode == 2
    assert late.stderr == (
        "deep-storage: error: --host is an option of `deep-storage kfp`, not of schedule: give "
        "it before the command: deep-storage kfp --host ... schedule ...\n"
    )
    assert server.requests == []


def test_the_help_needs_no_host(monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    group = run_cli("kfp", "--help", timeout=60)
    assert group.returncode == 0, group.stderr
    assert all(word in group.stdout for word in ("--host", "--token", "submit", "backfill"))
    command = run_cli("kfp", "schedule", "--help", timeout=60)
    assert command.returncode == 0, command.stderr
    assert "--pipeline [lake|training]" in command.stdout and "--host" not in command.stdout


def test_the_installed_script_talks_to_the_server_with_the_token_from_the_environment(server):
    done = run_cli(
        *("kfp", "--host", server.url, "--json", "submit", "--date", "2025-06-01"),
        env={"KFP_TOKEN": TOKEN},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_id"] in server.runs
    assert TOKEN not in done.stdout + done.stderr


def test_the_old_spelling_still_works_hidden_and_names_the_new_one(server, shell):
    old = shell("schedule", "--host", server.url, "--json", "--lake", "s3a://rbs")
    assert old.returncode == 0, old.stderr
    assert json.loads(old.stdout)["action"] == "created"
    assert "`deep-storage schedule` is now `deep-storage kfp [--host URL ...] schedule`" in (
        old.stderr
    )
    (current,) = server.recurring_runs.values()
    assert current["runtime_config"]["parameters"]["lake_uri"] == "s3a://rbs"
    listed = shell("--help").stdout
    assert "  kfp " in listed and "  schedule " not in listed and "  submit " not in listed


def test_no_kfp_command_takes_more_than_eight_parameters():
    for command in kfp_cli.kfp_group.commands.values():
        taken = inspect.signature(command.callback).parameters  # the function under the wrappers
        assert len(taken) <= 8, (command.name, list(taken))


def test_the_default_packages_are_the_files_compile_writes():
    tree = ast.parse((REPO / "pipelines" / "compile.py").read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
    }
    files = {file for file, _, _ in kfp_cli.SCHEDULES.values()}
    assert files == {constants["PIPELINE_FILE"], constants["TRAINING_FILE"]}
    assert kfp_cli.COMPILED == REPO / "compiled"
    assert all((kfp_cli.COMPILED / file).is_file() for file in files)
