"""Run a whole pipeline on this machine through kfp.local: the hourly one (`run`, `deep-storage
run-local`) or the training one (`run_training_local`).

By default each task runs in a subprocess of this venv (SubprocessRunner). With `image`, each
task runs as the cluster runs it (DockerRunner): KFP's own executor with the component's
embedded source, in that image, as the image's user, with a read-only root and only WRITABLE
writable, the secrets passed as environment variables through the Docker API.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deep_storage.core import defaults
from deep_storage.core.config import DB_ENV, STORE_ENV
from deep_storage.core.errors import DeepStorageError, InputError


class LocalRunError(DeepStorageError):
    exit_code = 7


# The image's user (spark_image/Dockerfile): uid 185, group 0, as the cluster's pods run it.
IMAGE_USER = "185:0"
# What a step writes outside the lake and KFP's output paths, so what a read-only root needs
# writable (an emptyDir volume on a cluster): only /tmp. Spark's scratch, Hadoop's S3A buffers,
# the S3A staging committer's folder (io/spark_session.py), KFP's copy of the component's source
# (`mktemp -d`) and snappy's native library (loaded from there: not noexec).
WRITABLE = {
    "/tmp": "rw,exec,nosuid,size=2g,mode=1777",
}
# What a task in the image takes from this process's environment, when set: the two secrets'
# keys and the settings ConfigMap's keys, which the cluster maps in by the same names, and the
# zone. Every DEEP_STORAGE_* setting goes too, except the host's paths (the image has its own)
# and what a task sets itself (see image_environment).
IMAGE_ENV = (*DB_ENV, "DJANGO_DB_PORT", *STORE_ENV, "PUSHGATEWAY_URL", "HIVE_METASTORE_URI", "TZ")
HOST_PATHS = ("DEEP_STORAGE_JARS_DIR", "DEEP_STORAGE_SPARK_LOCAL_DIR")


@dataclass
class LocalRun:
    root: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


def run(
    first: dt.date,
    last: dt.date | None,
    lake: str,
    pipeline_root: Path,
    lookback_days: int = defaults.LOOKBACK_DAYS,
    image: str = "",
    network: str = "host",
) -> LocalRun:
    """The hourly pipeline (bronze -> silver -> gate -> retention) for first..last; with
    `image`, each task in that image on Docker network `network` (see docker_runner)."""
    from deep_storage_kfp.pipelines.deep_storage_pipeline import build

    return _run_pipeline(
        build(local=True, image=image),
        {
            "run_date": first.isoformat(),
            "until_date": last.isoformat() if last else "",
            "lake_uri": lake,
            "lookback_days": lookback_days,
        },
        pipeline_root,
        outputs=("report", "summary"),
        image=image,
        network=network,
    )


def run_training_local(
    version: str,
    lake: str,
    pipeline_root: Path,
    name: str = "",
    from_day: str = "",
    to_day: str = "",
    test_from: str = "",
    image: str = "",
    network: str = "host",
) -> LocalRun:
    """The training pipeline (gold features -> training set -> baseline) for one version of a
    training set; an empty name means the pipeline's default set, empty days its default window.
    The outputs are the training set's Markdown `report` and the baseline's `model`. With
    `image`, each task in that image on Docker network `network` (see docker_runner)."""
    from deep_storage_kfp.pipelines.training_pipeline import build

    arguments = {
        "version": version,
        "lake_uri": lake,
        "from_day": from_day,
        "to_day": to_day,
        "test_from": test_from,
    }
    if name:
        arguments["name"] = name
    return _run_pipeline(
        build(local=True, image=image),
        arguments,
        pipeline_root,
        outputs=("report", "model"),
        image=image,
        network=network,
    )


def docker_runner(image: str, network: str = "host", environment: Mapping[str, str] = ()):
    """kfp.local's DockerRunner for `image`, checked first: each task as the image's user, with a
    read-only root and WRITABLE as tmpfs, on Docker network `network` ("host", "none",
    "container:NAME"), with `environment` (see image_environment)."""
    _check_engine(image)
    from kfp import local

    return local.DockerRunner(
        user=IMAGE_USER,
        read_only=True,
        tmpfs=dict(WRITABLE),
        network_mode=network,
        environment=dict(environment),
    )


def image_environment(
    task_env: set[str] = frozenset(), env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables a task in the image gets, from `env` (default this process's): IMAGE_ENV and
    the DEEP_STORAGE_* settings that are set, without HOST_PATHS and without `task_env`, the
    variables the pipeline sets on its tasks (the platform profile's driver memory and Spark
    master): kfp.local lays a runner's environment over the task's own, so they would replace
    the step's sizing, which the cluster and the SubprocessRunner keep. The values reach the
    engine through its API, never a command line."""
    env = os.environ if env is None else env
    names = [*IMAGE_ENV, *sorted(k for k in env if k.startswith("DEEP_STORAGE_"))]
    skipped = {*HOST_PATHS, *task_env}
    return {k: env[k] for k in names if k in env and k not in skipped}


def _task_env(pipeline) -> set[str]:
    """The names of the variables any task of `pipeline` sets itself (its compiled spec's)."""
    from google.protobuf import json_format

    executors = json_format.MessageToDict(pipeline.pipeline_spec.deployment_spec)["executors"]
    return {
        var["name"]
        for executor in executors.values()
        for var in executor.get("container", {}).get("env", [])
    }


def _check_engine(image: str) -> None:
    """The Python client, an engine that answers and `image` in it by name, each as one error
    that says how to get it (kfp.local would pull a missing image from its registry)."""
    try:
        import docker
    except ImportError:
        raise InputError(
            f"--image {image}: running tasks in an image needs the Python package docker: "
            "pip install 'docker>=7.1,<8' (or the project's dev extra)"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
        raise LocalRunError(
            f"--image {image}: no Docker engine answers ({reason}): start the engine "
            "(dockerd) or point DOCKER_HOST at one"
        ) from None
    try:
        tagged = image if ":" in image.rpartition("/")[2] else f"{image}:latest"
        known = {t for i in client.images.list() for t in i.tags + i.attrs.get("RepoDigests", [])}
    finally:
        client.close()
    if tagged not in known:
        raise InputError(
            f"--image {image}: no image of that name in the local engine: build it "
            "(make spark-image-build) or pull it, then name it by tag"
        )


def _run_pipeline(
    pipeline,
    arguments: dict,
    pipeline_root: Path,
    outputs: tuple,
    image: str = "",
    network: str = "host",
) -> LocalRun:
    """Run `pipeline` through kfp.local, in this venv or with `image` in Docker; the run's
    folder, the `outputs` artifacts found in its tasks' folders, and each task's Metrics."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    if image:
        runner = docker_runner(image, network, image_environment(_task_env(pipeline)))
        # Each task's container mounts the root at the same path and its executor writes the
        # task's outputs there as the image's user (uid 185), not as this one: open to any
        # user, sticky like /tmp so that no one removes another's runs.
        pipeline_root.chmod(0o1777)
    else:
        runner = local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)
    before = set(pipeline_root.iterdir())
    error = ""
    try:
        pipeline(**arguments)
    except (RuntimeError, ValueError) as exc:
        # RuntimeError: a task failed. ValueError: a task found no output of an upstream task
        # that kfp.local took for finished (see _unfinished).
        error = str(exc).splitlines()[0]
    runs = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    root = runs[-1] if runs else pipeline_root
    unfinished = _unfinished(pipeline, root if runs else None)
    if error or unfinished:
        raise LocalRunError(
            f"local pipeline run failed: {', '.join(unfinished) or 'a task'} did not finish"
            f"{': ' + error if error else ''} (the task's log is above)"
        )
    return _collected(root, outputs)


def _unfinished(pipeline, run_root: Path | None) -> list[str]:
    """The tasks whose upstream tasks all finished but which left no executor_output.json (the
    executor writes it last): failed, or never started after a failure. kfp.local 2.17's
    DockerRunner can report a failed task as succeeded and go on (kubeflow/pipelines#13332: the
    container is auto-removed before its exit code is read), so a run is judged by its files."""
    from google.protobuf import json_format

    tasks = json_format.MessageToDict(pipeline.pipeline_spec.root)["dag"]["tasks"]
    done = {
        name
        for name in tasks
        if run_root is not None and (run_root / name / "executor_output.json").exists()
    }
    return sorted(
        name
        for name, task in tasks.items()
        if name not in done and set(task.get("dependentTasks", [])) <= done
    )


def _collected(root: Path, outputs: tuple) -> LocalRun:
    result = LocalRun(root)
    for task_dir in sorted(p for p in result.root.iterdir() if p.is_dir()):
        for name in outputs:
            if (task_dir / name).exists():
                result.outputs[name] = task_dir / name
        executor_output = task_dir / "executor_output.json"
        if executor_output.exists():
            data = json.loads(executor_output.read_text())
            for artifact in data.get("artifacts", {}).get("metrics", {}).get("artifacts", []):
                result.metrics[task_dir.name] = artifact.get("metadata", {})
    return result
