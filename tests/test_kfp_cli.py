"""`deep-storage submit / schedule / backfill` end to end against the FAKE KFP API server
(tests/fake_kfp.py): the real CLI in a subprocess, the real compiled package, a fake server."""

from __future__ import annotations

import json

import pytest

from tests.fake_kfp import FakeKfpServer
from tests.fixtures import run_cli

pytestmark = pytest.mark.unit

TOKEN = "tok-en!secret"


def cli(server, *args):
    return run_cli(*args, "--host", server.url, "--json", env={"KFP_TOKEN": TOKEN}, timeout=120)


def test_schedule_is_idempotent_by_name_and_sends_the_pipeline_parameters():
    with FakeKfpServer(token=TOKEN) as server:
        first = cli(server, "schedule", "--lake", "s3a://rbs", "--cron", "0 15 1 * * *")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["action"] == "created"
        again = cli(server, "schedule", "--lake", "s3a://rbs", "--cron", "0 15 1 * * *")
        assert json.loads(again.stdout)["action"] == "unchanged"
        moved = cli(server, "schedule", "--lake", "s3a://rbs", "--cron", "0 30 2 * * *")
        assert json.loads(moved.stdout)["action"] == "replaced"
        (current,) = server.recurring_runs.values()
        assert current["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
        assert int(current["max_concurrency"]) == 1 and current["no_catchup"] is True
        params = current["runtime_config"]["parameters"]
        assert params["lake_uri"] == "s3a://rbs"
        assert params["db_secret"] == "django-db-credentials"
        assert TOKEN not in first.stderr + first.stdout + moved.stderr


def test_the_default_schedule_is_hourly_with_one_run_at_a_time():
    with FakeKfpServer(token=TOKEN) as server:
        done = cli(server, "schedule", "--lake", "s3a://rbs")
        assert done.returncode == 0, done.stderr
        (current,) = server.recurring_runs.values()
        assert current["display_name"] == "deep-storage-hourly"
        assert current["trigger"]["cron_schedule"]["cron"] == "0 5 * * * *"
        assert int(current["max_concurrency"]) == 1 and current["no_catchup"] is True


def test_submit_and_backfill_create_runs_with_their_dates():
    with FakeKfpServer(token=TOKEN) as server:
        one = cli(server, "submit", "--date", "2025-06-01")
        assert one.returncode == 0, one.stderr
        days = cli(server, "backfill", "--from", "2025-06-01", "--to", "2025-06-03")
        assert days.returncode == 0, days.stderr
        ranges = sorted(
            (p["run_date"], p.get("until_date", ""))
            for p in (r["runtime_config"]["parameters"] for r in server.runs.values())
        )
        # One run for the whole backfill: runs side by side would only queue on the lake's lease.
        assert ranges == [("2025-06-01", ""), ("2025-06-01", "2025-06-03")]


def test_a_five_field_cron_is_refused_with_the_fix():
    with FakeKfpServer(token=TOKEN) as server:
        bad = cli(server, "schedule", "--cron", "15 1 * * *")
        assert bad.returncode != 0
        assert "'0 15 1 * * *'" in bad.stderr
        assert server.recurring_runs == {}


def test_submit_schedule_and_backfill_send_max_days_and_leave_it_to_the_pipeline_otherwise():
    with FakeKfpServer(token=TOKEN) as server:
        for args in (
            ("submit", "--date", "2025-06-01", "--max-days", "3"),
            ("backfill", "--from", "2025-06-01", "--to", "2025-06-30", "--max-days", "10"),
            ("schedule", "--max-days", "2"),
        ):
            done = cli(server, *args)
            assert done.returncode == 0, done.stderr
        runs = sorted(
            (p["run_date"], p["max_days"])
            for p in (r["runtime_config"]["parameters"] for r in server.runs.values())
        )
        assert runs == [("2025-06-01", 3), ("2025-06-01", 10)]  # submit's, backfill's cap
        (hourly,) = server.recurring_runs.values()
        assert hourly["runtime_config"]["parameters"]["max_days"] == 2
        plain = cli(server, "submit", "--date", "2025-06-02")
        run = server.runs[json.loads(plain.stdout)["run_id"]]
        assert "max_days" not in run["runtime_config"]["parameters"]  # the pipeline's 14
        bad = cli(server, "submit", "--max-days", "0")
        assert bad.returncode != 0 and "--max-days" in bad.stderr


def test_a_backfill_with_executors_runs_as_the_backfill_account_and_refuses_the_pipelines():
    with FakeKfpServer(token=TOKEN) as server:
        refused = cli(
            server,
            *("backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--executors", "2"),
            *("--service-account", "deep-storage-pipeline"),
        )
        assert refused.returncode == 2
        assert "cannot create the executor pods" in refused.stderr
        assert "expected deep-storage-backfill" in refused.stderr
        assert server.runs == {}
        done = cli(
            server, "backfill", "--from", "2025-06-01", "--to", "2025-06-02", "--executors", "2"
        )
        assert done.returncode == 0, done.stderr
        (run,) = server.runs.values()
        assert run["service_account"] == "deep-storage-backfill"


def test_the_training_pipeline_is_scheduled_weekly_beside_the_hourly_one():
    with FakeKfpServer(token=TOKEN) as server:
        hourly = cli(server, "schedule", "--lake", "s3a://rbs")
        assert hourly.returncode == 0, hourly.stderr
        weekly = cli(server, "schedule", "--pipeline", "training", "--lake", "s3a://rbs")
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
        again = cli(server, "schedule", "--pipeline", "training", "--lake", "s3a://rbs")
        assert json.loads(again.stdout)["action"] == "unchanged"
        window = cli(
            server, "schedule", "--pipeline", "training", "--set-version", "1.1.0",
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


def test_options_of_the_other_pipeline_are_refused_before_anything_is_scheduled():
    with FakeKfpServer(token=TOKEN) as server:
        lake_only = cli(server, "schedule", "--pipeline", "training", "--set-version", "1.0.0",
                        "--max-days", "3", "--lookback-days", "2")  # fmt: skip
        assert lake_only.returncode == 2
        assert "--lookback-days, --max-days: not a parameter of the training" in lake_only.stderr
        training_only = cli(server, "schedule", "--set-version", "1.0.0")
        assert training_only.returncode == 2
        assert "--set-version: options of the training pipeline" in training_only.stderr
        bad_day = cli(server, "schedule", "--pipeline", "training", "--set-version", "1.0.0",
                      "--from-day", "2026-02-30")  # fmt: skip
        assert bad_day.returncode == 2
        assert "--from-day '2026-02-30' is not a calendar date" in bad_day.stderr
        assert server.recurring_runs == {} and server.requests == []
