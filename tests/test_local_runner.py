"""`deep-storage run-local --image` without an engine: what reaches a task in the image, how a
run whose task failed silently is still judged failed, and the errors for what is missing.
tests/test_pipelines_in_image.py runs both pipelines in the image for real."""

from __future__ import annotations

import pytest

from deep_storage_kfp.pipelines import local
from deep_storage_kfp.pipelines.deep_storage_pipeline import build
from tests.services import run_cli

pytestmark = pytest.mark.unit


def test_a_task_in_the_image_gets_the_secrets_and_settings_but_not_the_hosts_paths_or_sizing():
    env = {
        "DJANGO_DB_HOST": "db.internal",
        "DJANGO_DB_PORT": "6432",
        "DJANGO_DB_PASSWORD": "pw!",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "S3_BUCKET": "lake",
        "PUSHGATEWAY_URL": "http://pushgateway:9091",
        "TZ": "America/Sao_Paulo",
        "DEEP_STORAGE_LOCK_WAIT": "30",
        "DEEP_STORAGE_DRIVER_MEMORY": "1g",  # the task's own: the step's size
        "DEEP_STORAGE_SPARK_MASTER": "local[1]",  # the task's own
        "DEEP_STORAGE_JARS_DIR": "/home/me/jars",  # a path of this machine
        "HOME": "/home/me",
        "PATH": "/usr/bin",
    }
    task_env = local._task_env(build(local=True))
    assert local.image_environment(task_env, env) == {
        "DJANGO_DB_HOST": "db.internal",
        "DJANGO_DB_PORT": "6432",
        "DJANGO_DB_PASSWORD": "pw!",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "S3_BUCKET": "lake",
        "PUSHGATEWAY_URL": "http://pushgateway:9091",
        "TZ": "America/Sao_Paulo",
        "DEEP_STORAGE_LOCK_WAIT": "30",
    }


def test_every_task_runs_in_the_image_given():
    from google.protobuf import json_format

    spec = json_format.MessageToDict(build(local=True, image="rbs-spark:dev").pipeline_spec)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"rbs-spark:dev"}


def test_a_task_that_left_no_executor_output_fails_the_run(tmp_path):
    pipeline = build(local=True)
    run = tmp_path / "deep-storage-run"
    for task in ("bronze-ingest", "silver-transform"):
        (run / task).mkdir(parents=True)
    (run / "bronze-ingest" / "executor_output.json").write_text("{}")
    # silver's executor died before writing its output; the gate never started.
    assert local._unfinished(pipeline, run) == ["silver-transform"]
    assert local._unfinished(pipeline, None) == ["bronze-ingest"]
    for task in ("silver-transform", "quality-gate", "retention", "catalog-tables"):
        (run / task).mkdir(exist_ok=True)
        (run / task / "executor_output.json").write_text("{}")
    assert local._unfinished(pipeline, run) == []


def test_run_local_in_an_image_says_what_is_missing(tmp_path):
    args = ("run-local", "--date", "2025-06-01", "--lake", f"file://{tmp_path}/lake")
    no_engine = run_cli(*args, "--image", "rbs-spark:dev", env={"DOCKER_HOST": "unix:///nowhere"})
    assert no_engine.returncode == 7
    assert no_engine.stderr.startswith(
        "deep-storage: error: --image rbs-spark:dev: no Docker engine answers"
    )
    assert no_engine.stderr.count("\n") == 1
    network_alone = run_cli(*args, "--network", "none")
    assert network_alone.returncode == 2
    assert "--network none: only for tasks in an image: add --image IMAGE" in network_alone.stderr
