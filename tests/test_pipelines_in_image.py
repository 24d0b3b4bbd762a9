"""The pipelines in their image, as the cluster runs each task (issue 35): kfp.local's
DockerRunner starts KFP's own executor with the component's embedded source in the image CI
built, as the image's user (185:0), with a read-only root (tmpfs on /tmp only), the secrets as
environment variables through the Docker API, and the pipeline root bind-mounted at its own path.
The same pipeline through the SubprocessRunner on this venv writes a second lake prefix from the
same source; both must hold the same rows and reach the same verdicts.

The tasks run on the network of tests/image_fixtures.py's holder container (only PostgreSQL and
S3), or the host's where entering it needs a root this process lacks. The image and the engine:
tests/image_fixtures.py (skips without them, fails in CI).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from deep_storage.lake import LakeFS
from demo import synthetic
from tests.image_fixtures import container_network, image
from tests.lake_fixtures import lake_rows
from tests.services import run_cli

# The fixtures, imported into this module for pytest to find them.
__all__ = ["container_network", "image"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = dt.date(2025, 6, 1)
NEXT = D + dt.timedelta(days=1)
HOURLY_TASKS = ("bronze-ingest", "silver-transform", "quality-gate", "retention", "catalog-tables")
TRAINING_TASKS = ("gold-features", "training-set", "train-baseline", "catalog-tables")
IMAGE_UID = 185


@pytest.fixture()
def new_root():
    """Pipeline roots for a test's runs, removed after it. Not under pytest's tmp_path, whose
    folder is this user's, 0700; the runs' files are the image user's (root may remove them)."""
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="kfp-in-image-")))
        return made[-1]

    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def _rows_of_day(db, day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return db.execute(
        "SELECT count(*) FROM stop_events WHERE occurred_at >= %s AND occurred_at < %s",
        (start, start + dt.timedelta(days=1)),
    ).fetchone()[0]


def _executor_output(root: Path, task: str) -> dict:
    return json.loads((root / task / "executor_output.json").read_text())


def _metrics(root: Path, task: str) -> dict:
    """The task's Metrics artifact's values, as kfp.local left them in executor_output.json,
    without the lags (measured against the clock of each run)."""
    artifacts = _executor_output(root, task)["artifacts"]["metrics"]["artifacts"]
    return {k: v for k, v in artifacts[0]["metadata"].items() if not k.endswith("_lag_seconds")}


def _ran_in_the_image(root: Path, tasks: tuple[str, ...]) -> None:
    """Every task's executor finished and wrote its outputs as the image's user."""
    for task in tasks:
        output = root / task / "executor_output.json"
        assert output.exists(), f"{task} left no executor_output.json in {root}"
        assert output.stat().st_uid == IMAGE_UID, f"{task} did not run as uid {IMAGE_UID}"


def test_the_hourly_pipeline_in_its_image_leaves_the_lake_the_venv_run_leaves(
    image, container_network, service_env, db, spark, lake, new_root
):
    synthetic.seed_days(db, [D], events_per_day=2000, seed=35, clients=8)  # spills past midnight
    planted = _rows_of_day(db, D)
    in_image, on_host = f"{lake}/image", f"{lake}/host"
    roots = {"image": new_root(), "host": new_root()}
    days = ("--date", str(D), "--until", str(NEXT))

    host = run_cli("run-local", *days, "--lake", on_host, "--pipeline-root", str(roots["host"]),
                   timeout=900)  # fmt: skip
    assert host.returncode == 0, host.stderr[-4000:]
    # As a user runs it: the CLI, its --image and --network.
    docker = run_cli(
        "run-local", *days, "--lake", in_image, "--pipeline-root", str(roots["image"]),
        "--image", image, "--network", container_network, timeout=1500,
    )  # fmt: skip
    assert docker.returncode == 0, (docker.stdout + docker.stderr)[-6000:]
    run_root = Path(re.search(r"pipeline run finished: (\S+)", docker.stdout)[1])
    host_root = Path(re.search(r"pipeline run finished: (\S+)", host.stdout)[1])
    _ran_in_the_image(run_root, HOURLY_TASKS)

    for day in (D, NEXT):
        got, want = lake_rows(spark, in_image, day), lake_rows(spark, on_host, day)
        assert got == want, f"{day}: the image's lake differs from the venv's"
    first = lake_rows(spark, in_image, D)
    assert len(first["bronze"]) == planted and first["silver"]
    assert lake_rows(spark, in_image, NEXT)["bronze"], "the spill past midnight is missing"

    for where in (in_image, on_host):
        summary = LakeFS(where).read_text(f"{where}/_quality/summary/date={D}/summary.md")
        assert f"Data quality {D}: passed" in summary, f"{where}: {summary[:500]}"
    # The gate's own artifacts, where the KFP UI would show them.
    page = (run_root / "quality-gate" / "report").read_text()
    markdown = (run_root / "quality-gate" / "summary").read_text()
    assert "<html" in page.lower() and f"Data quality {D}: passed" in markdown
    gate = _metrics(run_root, "quality-gate")
    assert gate["rules_failed"] == 0 and gate["rows_checked"] >= planted
    assert gate == _metrics(host_root, "quality-gate")
    assert _metrics(run_root, "bronze-ingest") == _metrics(host_root, "bronze-ingest")


def test_the_training_pipeline_in_its_image_releases_the_set_the_venv_run_releases(
    image, container_network, service_env, db, spark, lake, new_root
):
    from deep_storage import steps, training_set
    from deep_storage_kfp.pipelines import local

    days = [D + dt.timedelta(days=i) for i in range(3)]
    synthetic.seed_days(db, days, events_per_day=1500, seed=35, clients=8)
    in_image, on_host = f"{lake}/image", f"{lake}/host"
    for where in (in_image, on_host):  # the same silver under both, from the same source
        ingested = steps.bronze(where, run_date=str(days[0]), until_date=str(days[-1]))
        steps.silver(where, ingested.first_day, ingested.last_day)

    window = {"from_day": str(days[0]), "to_day": str(days[-1])}
    host = local.run_training_local("", on_host, new_root(), **window)
    run = local.run_training_local(
        "", in_image, new_root(), **window, image=image, network=container_network
    )
    _ran_in_the_image(run.root, TRAINING_TASKS)

    path = "gold/training_sets/stop_outcome/_versions/1.0.0.json"
    records = [json.loads(LakeFS(w).read_text(f"{w}/{path}")) for w in (in_image, on_host)]
    assert records[0]["rows"] == records[1]["rows"] and records[0]["rows"]["train"] > 0
    assert records[0]["rows"]["test"] > 0
    assert records[0]["rows_sha256"] == records[1]["rows_sha256"]
    got, want = (training_set("stop_outcome", "1.0.0", w) for w in (in_image, on_host))
    for split, ours, theirs in zip(("train", "test"), got, want, strict=True):
        assert ours.equals(theirs), f"the {split} split differs between the image and the venv"
    assert "1.0.0" in run.outputs["report"].read_text()

    baseline = run.metrics["train-baseline"]
    assert 0.0 <= baseline["roc_auc"] <= 1.0
    assert baseline == pytest.approx(host.metrics["train-baseline"])
    assert run.outputs["model"].stat().st_size > 0
    model = _executor_output(run.root, "train-baseline")["artifacts"]["model"]["artifacts"][0]
    assert model["metadata"]["training_set_version"] == "1.0.0", model["metadata"]
    assert model["metadata"]["rows_sha256"] == records[0]["rows_sha256"]


def test_a_task_that_fails_in_the_image_fails_the_run(
    image, container_network, service_env, new_root
):
    # kfp.local can take a failed container for a finished one (kubeflow/pipelines#13332):
    # the run is judged by what each task left (pipelines/local.py, _unfinished).
    done = run_cli(
        "run-local", "--date", str(D), "--lake", "s3a://no-such-bucket/lake",
        "--pipeline-root", str(new_root()), "--image", image,
        "--network", container_network, timeout=600,
    )  # fmt: skip
    assert done.returncode == 7, (done.stdout + done.stderr)[-4000:]
    assert "deep-storage: error: local pipeline run failed: bronze-ingest did not finish" in (
        done.stderr
    )
    assert "no-such-bucket" in done.stdout  # the task's own reason, in its log
