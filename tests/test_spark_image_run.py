"""The built image, run for real (issue 14): one day through bronze, silver and validate inside
the container, against the test PostgreSQL and S3, must leave the lake the host's CLI leaves;
and the image's size and start-to-first-log time stay within their budgets.

The container runs as the image's user (185:0), with a read-only root file system (writable:
tmpfs on /tmp only, see pipelines/local.py's WRITABLE) and no network but the two services:
every command joins the network namespace of a holder container started with `--network none`,
into which the services' loopback ports are relayed (tests/image_fixtures.py). Entering that
namespace needs root; elsewhere the test falls back to `--network host`. Secrets reach `docker
run` as `--env NAME` (value from this process's environment), never on its command line.

The image and the engine: tests/image_fixtures.py (skips without them, fails in CI).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from deep_storage_kfp.pipelines.local import IMAGE_USER, WRITABLE
from demo import synthetic
from demo.catalog_services import HiveMetastore
from demo.local_services import free_port
from tests.catalog_lake import registered
from tests.events import event, insert
from tests.image_fixtures import DOCKER, VERSION, container_network, docker_cli, image
from tests.lake_fixtures import lake_rows, write_bronze_day
from tests.services import run_cli

# The fixtures, imported into this module for pytest to find them.
__all__ = ["container_network", "image"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = dt.date(2025, 6, 1)
STEPS = [
    ("bronze", "--date", D.isoformat()),
    ("silver", "--date", D.isoformat()),
    ("validate", "--date", D.isoformat(), "--as-of", "2025-06-02T00:30:00Z"),
]
_GATE_SUMMARY = re.compile(r"^\d+ rows checked; .*$", re.M)

# Budgets, from the figures measured on this 2-core machine with the Debian-built base (quoted in
# spark_image/README.md): the size with 15 % headroom; the times with room for a busy CI machine.
# Raise one only with the reason in the commit.
# measured 2.00 GB (1,997,345,152 bytes) once scikit-learn joined the image for the training
# pipeline's baseline (sklearn 51 MB, joblib 3 MB in site-packages); 1.72 GB before the lock grew
SIZE_BUDGET_BYTES = 2_300_000_000
VERSION_FIRST_LOG_BUDGET_S = 2.0  # `docker run ... deep-storage --version`: measured 0.35-0.41 s
BRONZE_FIRST_LOG_BUDGET_S = 20.0  # `docker run ... deep-storage bronze`: measured 5.2-8.2 s


# --- running a command in the image ----------------------------------------------------------


@dataclass
class Run:
    returncode: int
    output: str  # stdout and stderr, interleaved
    first_log_s: float  # from `docker run` to the container's first line of output


def run_in_image(image: str, network: str, *args: str, env_names=(), timeout=600) -> Run:
    """`docker run` as the cluster would: the image's non-root user, a read-only root file
    system with WRITABLE as tmpfs, the given network, the named environment variables passed by
    name (values from this process's environment)."""
    name = f"deep-storage-test-{uuid.uuid4().hex[:12]}"
    cmd = [DOCKER, "run", "--rm", "--name", name, "--network", network, "--user", IMAGE_USER]
    cmd += ["--read-only", *(f"--tmpfs={path}:{opts}" for path, opts in WRITABLE.items())]
    cmd += [f"--env={env}" for env in env_names]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, image, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # A hung container is removed (killing the client would leave it running).
    watchdog = threading.Timer(timeout, docker_cli, ("rm", "--force", name), {"check": False})
    watchdog.start()
    try:
        first = proc.stdout.readline()
        first_log_s = time.monotonic() - started
        rest = proc.stdout.read()
        proc.wait()
    finally:
        watchdog.cancel()
    return Run(proc.returncode, first + rest, first_log_s)


def _plant_day(db) -> int:
    """A small realistic day (lifecycles of 8 clients, some spilling past midnight) plus the
    edge instants of the day's window; returns the rows inside the day."""
    synthetic.seed_days(db, [D], events_per_day=2000, seed=14, clients=8)
    insert(
        db,
        [
            event("2025-06-01 00:00:00", operation_id=901, execution_token="901:1:1"),
            event(
                "2025-06-01 23:59:59.999999",
                event_type="EXECUTED",
                operation_id=902,
                execution_token="902:1:1",
            ),
            # The day before: not in D.
            event("2025-05-31 23:59:59.999999", operation_id=903, execution_token="903:1:1"),
        ],
    )
    start = dt.datetime.combine(D, dt.time(), dt.UTC)
    return db.execute(
        "SELECT count(*) FROM stop_events WHERE occurred_at >= %s AND occurred_at < %s",
        (start, start + dt.timedelta(days=1)),
    ).fetchone()[0]


# --- the tests -------------------------------------------------------------------------------


def test_image_size_within_budget(image):
    size = int(docker_cli("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size <= SIZE_BUDGET_BYTES, (
        f"{image} is {size / 1e9:.2f} GB, over its budget of {SIZE_BUDGET_BYTES / 1e9:.2f} GB: "
        "find what grew (docker history) or raise the budget in this file with a reason"
    )


def test_start_to_first_log_within_budget(image):
    run = run_in_image(image, "none", "deep-storage", "--version")
    assert run.returncode == 0, run.output
    assert run.output.strip() == f"deep-storage, version {VERSION}"
    assert run.first_log_s <= VERSION_FIRST_LOG_BUDGET_S, (
        f"`deep-storage --version` printed its first line {run.first_log_s:.1f} s after "
        f"`docker run`, over the budget of {VERSION_FIRST_LOG_BUDGET_S} s"
    )


def test_a_day_in_the_image_leaves_the_lake_the_host_leaves(
    image, container_network, service_env, db, spark, lake
):
    rows = _plant_day(db)
    in_image, on_host = f"{lake}/image", f"{lake}/host"
    names = [*sorted(service_env), "TZ"]  # TZ: the fixtures' hostile zone, inside too

    def image_steps() -> list[Run]:
        return [
            run_in_image(image, container_network, "deep-storage", *step, "--lake", in_image,
                         env_names=names)
            for step in STEPS
        ]  # fmt: skip

    def host_steps() -> list[Run]:
        done = []
        for step in STEPS:
            proc = run_cli(*step, "--lake", on_host)
            done.append(Run(proc.returncode, proc.stdout + proc.stderr, 0.0))
        return done

    # Two lakes of the same source: the image's and the host's chains run side by side.
    with ThreadPoolExecutor(2) as pool:
        image_future = pool.submit(image_steps)
        host_runs = host_steps()
        image_runs = image_future.result()

    for where, runs in (("in the image", image_runs), ("on the host", host_runs)):
        for step, run in zip(STEPS, runs, strict=True):
            assert run.returncode == 0, f"{where}, {' '.join(step)}:\n{run.output[-4000:]}"
    assert f"bronze {D}: {rows} rows, sealed" in image_runs[0].output
    assert image_runs[0].first_log_s <= BRONZE_FIRST_LOG_BUDGET_S, (
        f"bronze's first log line came {image_runs[0].first_log_s:.1f} s after `docker run`, "
        f"over the budget of {BRONZE_FIRST_LOG_BUDGET_S} s"
    )
    # The gate's verdict: rows checked, rules passed/failed/warned, rows quarantined.
    verdicts = [_GATE_SUMMARY.findall(r.output) for r in (image_runs[-1], host_runs[-1])]
    assert verdicts[0] and verdicts[0] == verdicts[1]

    got, want = lake_rows(spark, in_image, D), lake_rows(spark, on_host, D)
    assert len(got["bronze"]) == rows and got["silver"]
    assert got == want


def test_the_image_serves_the_metastore_that_its_catalog_step_names_the_lake_in(
    image, container_network, service_env, pg, spark, lake, monkeypatch
):
    """deploy/metastore.yaml's two commands (the schema Job's and the server's) and the
    pipeline's catalog step, each in the image as the cluster runs them."""
    store = HiveMetastore(pg, dbname="image_metastore", user="image_hms", password="image-pw!$")
    store.create_database()
    port = free_port()
    settings = {
        "METASTORE_DB_HOST": "127.0.0.1",
        "METASTORE_DB_PORT": str(pg.port),
        "METASTORE_DB_NAME": store.dbname,
        "METASTORE_DB_USER": store.user,
        "METASTORE_DB_PASSWORD": store.password,
        "HIVE_METASTORE_PORT": str(port),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    schema = run_in_image(
        image, container_network, "bash", "/opt/deep-storage/metastore.sh", "init-schema",
        env_names=sorted(settings),
    )  # fmt: skip
    assert schema.returncode == 0, schema.output[-4000:]
    assert "metastore schema created at 2.3.0" in schema.output
    server = docker_cli(
        "run", "--detach", "--rm", "--network", container_network, "--user", "185:0",
        "--read-only", "--tmpfs=/tmp:rw,exec,nosuid,size=512m,mode=1777",
        *(f"--env={k}" for k in sorted(settings)),
        image, "bash", "/opt/deep-storage/metastore.sh", "serve",
    ).stdout.strip()  # fmt: skip
    try:
        _wait_for_port(server, port)
        write_bronze_day(spark, lake, D, [event("2025-06-01 10:00:00")], sealed=True)
        named = run_in_image(
            image, container_network, "deep-storage", "catalog", "--lake", lake,
            "--metastore", f"thrift://127.0.0.1:{port}", env_names=sorted(service_env),
        )  # fmt: skip
        assert named.returncode == 0, named.output[-4000:]
        assert f"deep_storage.bronze_events: registered at {lake}/bronze/events" in named.output
        assert registered(store, "deep_storage") == {"bronze_events": f"{lake}/bronze/events"}
        assert store.password not in named.output + schema.output
    finally:
        docker_cli("rm", "--force", server, check=False)


def _wait_for_port(container: str, port: int, timeout_s: float = 90) -> None:
    """Until the metastore in `container` accepts a connection on `port` (bash's /dev/tcp)."""
    deadline = time.monotonic() + timeout_s
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
    while docker_cli("exec", container, "bash", "-c", probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            logs = docker_cli("logs", container, check=False)
            raise AssertionError(f"the metastore did not open {port}:\n{logs.stderr[-3000:]}")
        time.sleep(1)
