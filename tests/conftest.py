"""The fixtures of tests/ and the rule of `-m unit`.

Service fixtures: a real PostgreSQL, a real S3 server (SeaweedFS), one SparkSession, and on
request a Hive Metastore, Trino and a Prometheus Pushgateway. The whole run happens in hostile
time zones on purpose: the test process (and every JVM and CLI it starts) in America/Sao_Paulo,
the PostgreSQL server in Asia/Tokyo. The lake must not notice.

The rule: a test marked `unit` needs no JVM and no service (`make test-unit` answers in seconds).
It fails when it asks for a service fixture, directly or through another fixture, or when a
process or a SparkContext started during it is still running after it (`UnitRule`).
"""

from __future__ import annotations

import os
import time

os.environ["TZ"] = "America/Sao_Paulo"
time.tzset()

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from deep_storage.core import schemas  # noqa: E402
from deep_storage.core.config import SourceConfig, StoreConfig  # noqa: E402
from demo.local_services import PostgresServer, SeaweedS3Server  # noqa: E402
from tests.services import APP_DB, APP_PASSWORD, APP_USER, BUCKET  # noqa: E402


@pytest.fixture(scope="session")
def pg():
    with PostgresServer(timezone="Asia/Tokyo") as server:
        server.create_app_database(APP_DB, APP_USER, APP_PASSWORD)
        with server.connect(APP_DB, APP_USER, APP_PASSWORD) as conn:
            conn.execute(schemas.SOURCE_DDL)
        yield server


@pytest.fixture(scope="session")
def s3():
    with SeaweedS3Server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="session")
def service_env(pg, s3):
    """The secrets' keys, as the pods get them; set for this process and its subprocesses."""
    env = {
        "DJANGO_DB_HOST": "127.0.0.1",
        "DJANGO_DB_PORT": str(pg.port),
        "DJANGO_DB_NAME": APP_DB,
        "DJANGO_DB_USER": APP_USER,
        "DJANGO_DB_PASSWORD": APP_PASSWORD,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_ENDPOINT": s3.endpoint,
        "AWS_REGION": s3.region,
        "S3_BUCKET": BUCKET,
        "DEEP_STORAGE_DRIVER_MEMORY": "1g",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def source_config(service_env) -> SourceConfig:
    return SourceConfig.from_env()


@pytest.fixture(scope="session")
def store_config(service_env) -> StoreConfig:
    return StoreConfig.from_env()


@pytest.fixture(scope="session")
def spark(store_config):
    from deep_storage.io import spark_session

    spark = spark_session.build("tests", store_config)
    yield spark
    spark.stop()


@pytest.fixture(scope="session")
def metastore(pg):
    """A real Hive Metastore (Thrift) on its own database of the test PostgreSQL, its schema
    made by the schema tool (demo/catalog_services.py)."""
    from demo.catalog_services import HiveMetastore

    with HiveMetastore(pg) as server:
        yield server


@pytest.fixture(scope="session")
def trino(metastore, s3):
    """A real Trino 476 coordinator (Java 25) with a catalog `delta` on the metastore and S3."""
    from demo.catalog_services import TrinoServer

    with TrinoServer(metastore, s3) as server:
        yield server


PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"  # Debian's package of the real Pushgateway


@pytest.fixture(scope="session")
def pushgateway():
    """A real Prometheus Pushgateway on a loopback port; yields its URL."""
    import urllib.request

    from demo.local_services import free_port

    if not Path(PUSHGATEWAY).exists():
        pytest.fail(f"{PUSHGATEWAY} is missing: apt-get install prometheus-pushgateway")
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="deep-storage-pushgateway-"))
    proc = subprocess.Popen(
        [
            PUSHGATEWAY,
            f"--web.listen-address=127.0.0.1:{port}",
            # Debian's build keeps its series in /var/lib by default: a fresh file, so a test
            # never reads what an earlier run pushed.
            f"--persistence.file={state / 'metrics.db'}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the Pushgateway did not become ready")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture()
def db(pg):
    """A connection as the app's user, on an empty stop_events table."""
    with pg.connect(APP_DB, APP_USER, APP_PASSWORD) as conn:
        conn.execute("TRUNCATE stop_events")
        yield conn


@pytest.fixture()
def lake(service_env) -> str:
    """A fresh lake prefix in the test bucket."""
    return f"s3a://{BUCKET}/t-{uuid.uuid4().hex[:12]}"


# --- the rule of `-m unit` ----------------------------------------------------------------------

# The fixtures above that start a service or need one (a JVM is a service here).
SERVICE_FIXTURES = frozenset(
    {
        "pg",
        "s3",
        "service_env",
        "source_config",
        "store_config",
        "spark",
        "metastore",
        "trino",
        "pushgateway",
        "db",
        "lake",
    }
)
_BEFORE = pytest.StashKey[tuple]()


def services_used(item: pytest.Item) -> list[str]:
    """The service fixtures of this file that `item` asks for, directly or through other
    fixtures. A test module's own fixture of the same name (a file:// `lake`) is not one."""
    info = getattr(item, "_fixtureinfo", None)  # pytest has no public view of the definitions
    if info is None:
        return []
    used = []
    for name in item.fixturenames:
        defs = info.name2fixturedefs.get(name)
        if name in SERVICE_FIXTURES and defs and defs[-1].func.__module__ == __name__:
            used.append(name)
    return sorted(used)


def running_children() -> dict[int, str]:
    """This process's child processes that still run (Linux /proc): pid -> command name."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:  # reaped meanwhile
                continue
            name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
            if state != "Z":
                found[int(pid)] = name
    return found


def active_spark_context():
    """The running SparkContext, if pyspark is loaded (importing it starts no JVM) and one runs."""
    context = sys.modules.get("pyspark.context")
    return getattr(getattr(context, "SparkContext", None), "_active_spark_context", None)


class UnitRule:
    """Holds every test marked `unit` to the rule in this file's docstring. A plugin rather than
    hooks of this file, which pytest calls for tests under tests/ only: components/*/tests/ are
    held to it too."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.get_closest_marker("unit") is None:
            return
        used = services_used(item)
        if used:
            pytest.fail(
                f"{item.nodeid} is marked unit but uses the service fixture(s) "
                f"{', '.join(used)}: mark it integration, or give it a fake",
                pytrace=False,
            )
        item.stash[_BEFORE] = (set(running_children()), active_spark_context())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem):
        result = yield
        if _BEFORE not in item.stash:
            return result
        pids, context = item.stash[_BEFORE]
        running = running_children().items()
        left = [f"{name} (pid {pid})" for pid, name in running if pid not in pids]
        if active_spark_context() not in (None, context):
            left.append("a SparkContext")
        if left:
            pytest.fail(
                f"{item.nodeid} is marked unit but left {', '.join(left)} running: "
                "a unit test starts no JVM and no service (mark it integration)",
                pytrace=False,
            )
        return result


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("deep-storage-unit-rule"):
        config.pluginmanager.register(UnitRule(), "deep-storage-unit-rule")
