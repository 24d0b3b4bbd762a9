"""The catalog's servers on loopback, for tests, the demo and benchmarks: a Hive Metastore on a
PostgreSQL database of its own, and a Trino coordinator whose Delta Lake catalog reads through it.

Real servers, from what `make jars` fetched and verified: the metastore runs
spark_image/metastore.sh (the image's own script) on pyspark's Hive 2.3.9 classes and the
manifest's PostgreSQL driver, with the schema scripts unpacked into .cache/hive; Trino is the
trino-server tarball of spark_image/archives.lock, unpacked into .cache/trino, on a Java 22+.
Each is a context manager that stops its server and removes its files on exit. Passwords and keys
reach each server through its environment, never its command line.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from demo.local_services import PostgresServer, SeaweedS3Server, _terminate, free_port

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
METASTORE_SH = REPO / "spark_image" / "metastore.sh"
TRINO_VERSION = "476"
# Trino 476 refuses Java 17 ("Trino requires Java 22+"): a Temurin 25 JDK, where these machines
# carry it, unless TRINO_JAVA_HOME names another.
DEFAULT_TRINO_JAVA_HOME = "/usr/lib/jvm/temurin-25-jdk-amd64"


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _postgres_jar() -> Path:
    jars = sorted((CACHE / "jars").glob("postgresql-*.jar"))
    if not jars:
        raise RuntimeError("the PostgreSQL JDBC driver is not in .cache/jars: run `make jars`")
    return jars[-1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class HiveMetastore:
    """A Thrift Hive Metastore whose schema lives in database `dbname` of `pg`, created by the
    schema tool before the server starts (never by the server)."""

    pg: PostgresServer
    dbname: str = "metastore"
    user: str = "hive_metastore"
    password: str = "metastore-local-pw"
    port: int = field(default_factory=free_port)
    root: Path | None = None
    proc: subprocess.Popen | None = None
    started_in_s: float = 0.0  # schema tool and server, until the port accepts
    schema_s: float = 0.0  # the schema tool alone

    @property
    def uri(self) -> str:
        return f"thrift://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """metastore.sh's environment: the database's keys as the secret gives them."""
        hive_home = CACHE / "hive"
        if not (hive_home / "scripts").is_dir():
            raise RuntimeError(
                "the metastore's schema scripts are not in .cache/hive: run `make jars`"
            )
        return {
            **os.environ,
            "METASTORE_DB_HOST": "127.0.0.1",
            "METASTORE_DB_PORT": str(self.pg.port),
            "METASTORE_DB_NAME": self.dbname,
            "METASTORE_DB_USER": self.user,
            "METASTORE_DB_PASSWORD": self.password,
            "HIVE_HOME": str(hive_home),
            "HIVE_CLASSPATH": f"{_pyspark_jars()}/*:{_postgres_jar()}",
            "HIVE_WAREHOUSE_DIR": f"file://{self.root}/warehouse",
            "HIVE_METASTORE_PORT": str(self.port),
            "TMPDIR": str(self.root),
        }

    def create_database(self) -> None:
        """The metastore's own role and database, apart from the platform's."""
        from psycopg import sql

        with self.pg.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,))
            if exists.fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(self.user), sql.Literal(self.password)
                    )
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.user)
                )
            )

    def init_schema(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(METASTORE_SH), "init-schema"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def start(self, timeout_s: float = 90) -> HiveMetastore:
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-metastore-"))
        (self.root / "warehouse").mkdir()
        self.create_database()
        begun = time.monotonic()
        done = self.init_schema()
        self.schema_s = time.monotonic() - begun
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(
                f"metastore schema init failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        self._log = (self.root / "metastore.log").open("w")
        self.proc = subprocess.Popen(
            ["bash", str(METASTORE_SH), "serve"],
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "metastore.log").read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"the Hive Metastore did not open its port:\n{tail}")
            time.sleep(0.2)
        self.started_in_s = time.monotonic() - begun
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _terminate([self.proc], timeout_s=15)
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> HiveMetastore:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def trino_java_home() -> Path:
    """The Java Trino runs on: TRINO_JAVA_HOME, else the Temurin 25 these machines carry; one
    line naming the fix when it is missing or older than 22."""
    home = Path(os.environ.get("TRINO_JAVA_HOME") or DEFAULT_TRINO_JAVA_HOME)
    java = home / "bin" / "java"
    if not java.exists():
        raise RuntimeError(
            f"no Java at {java}: Trino {TRINO_VERSION} needs Java 22+; set TRINO_JAVA_HOME to a "
            "JDK 22 or newer (these machines carry /usr/lib/jvm/temurin-25-jdk-amd64)"
        )
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    major = int(out.split('"')[1].split(".")[0]) if '"' in out else 0
    if major < 22:
        raise RuntimeError(f"{java} is Java {major}: Trino {TRINO_VERSION} needs 22 or newer")
    return home


def trino_home() -> Path:
    home = CACHE / "trino" / f"trino-server-{TRINO_VERSION}"
    if not (home / "bin" / "launcher").exists():
        raise RuntimeError(f"Trino is not unpacked at {home}: run `make jars`")
    return home


def delta_catalog_properties(metastore_uri: str, s3_endpoint: str, region: str) -> str:
    """A Delta Lake catalog on the metastore and path-style S3; the keys from the environment."""
    return (
        "connector.name=delta_lake\n"
        f"hive.metastore.uri={metastore_uri}\n"
        "fs.native-s3.enabled=true\n"
        f"s3.endpoint={s3_endpoint}\n"
        f"s3.region={region}\n"
        "s3.path-style-access=true\n"
        "s3.aws-access-key=${ENV:AWS_ACCESS_KEY_ID}\n"
        "s3.aws-secret-key=${ENV:AWS_SECRET_ACCESS_KEY}\n"
    )


@dataclass
class TrinoServer:
    """One Trino coordinator that also runs the work, with a catalog `delta` on `metastore` and
    the S3 server `s3`. Ready once /v1/info says it is no longer starting."""

    metastore: HiveMetastore
    s3: SeaweedS3Server
    port: int = field(default_factory=free_port)
    heap: str = "2G"
    root: Path | None = None
    proc: subprocess.Popen | None = None
    started_in_s: float = 0.0

    def _write_etc(self) -> Path:
        etc = self.root / "etc"
        (etc / "catalog").mkdir(parents=True)
        (etc / "node.properties").write_text(
            "node.environment=deep_storage_local\nnode.id=local\n"
            f"node.data-dir={self.root / 'data'}\n"
        )
        (etc / "jvm.config").write_text(
            f"-server\n-Xmx{self.heap}\n-XX:+UseG1GC\n-XX:+ExitOnOutOfMemoryError\n"
            "-Djdk.attach.allowAttachSelf=true\n-Duser.timezone=UTC\n"
        )
        (etc / "config.properties").write_text(
            "coordinator=true\nnode-scheduler.include-coordinator=true\n"
            f"http-server.http.port={self.port}\ndiscovery.uri=http://127.0.0.1:{self.port}\n"
            "query.max-memory=1GB\nquery.max-memory-per-node=1GB\n"
        )
        (etc / "log.properties").write_text("io.trino=WARN\n")
        (etc / "catalog" / "delta.properties").write_text(
            delta_catalog_properties(self.metastore.uri, self.s3.endpoint, self.s3.region)
        )
        return etc

    def start(self, timeout_s: float = 120) -> TrinoServer:
        java_home = trino_java_home()
        home = trino_home()
        self.root = Path(tempfile.mkdtemp(prefix="deep-storage-trino-"))
        etc = self._write_etc()
        env = {
            **os.environ,
            "JAVA_HOME": str(java_home),
            "PATH": f"{java_home / 'bin'}:{os.environ.get('PATH', '')}",
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }
        begun = time.monotonic()
        self._log = (self.root / "trino.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(home / "bin" / "launcher"),
                "run",
                f"--etc-dir={etc}",
                f"--data-dir={self.root / 'data'}",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_ready(timeout_s)
        self.started_in_s = time.monotonic() - begun
        return self

    def _wait_until_ready(self, timeout_s: float) -> None:
        """Until a query runs: /v1/info stops saying "starting" a moment before the coordinator
        has announced itself as a worker, and a query then fails with NO_NODES_AVAILABLE."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/info", timeout=1) as resp:
                    if not json.load(resp).get("starting", True) and self._answers():
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "trino.log").read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"Trino did not start:\n{tail}")
            time.sleep(0.5)

    def _answers(self) -> bool:
        from trino.exceptions import TrinoQueryError

        try:
            cursor = self.connect("default").cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchall() == [[1]]
        except TrinoQueryError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def execute(self, sql: str, schema: str = "deep_storage") -> tuple[list[list], dict]:
        """(rows, the query's stats) of `sql`. A query refused with NO_NODES_AVAILABLE is sent
        again, for up to 60 s: for a while after it answers `SELECT 1`, the coordinator may
        not yet list itself as a node of catalog `delta` (seen in CI: the first scan of a table
        refused, a later one run), which is Trino starting, not an answer."""
        from trino.exceptions import TrinoQueryError

        deadline = time.monotonic() + 60
        while True:
            cursor = self.connect(schema).cursor()
            try:
                cursor.execute(sql)
                return cursor.fetchall(), cursor.stats
            except TrinoQueryError as exc:
                if exc.error_name != "NO_NODES_AVAILABLE" or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def connect(self, schema: str = "deep_storage"):
        """A DB-API connection (PyPI's `trino` client) to catalog `delta`."""
        import trino

        return trino.dbapi.connect(
            host="127.0.0.1", port=self.port, user="deep-storage", catalog="delta", schema=schema
        )

    def stop(self) -> None:
        if self.proc is not None:
            _terminate([self.proc], timeout_s=20)
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> TrinoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    """Start a throwaway PostgreSQL and S3, then the metastore and Trino on them, and print how
    long each took to be ready (docs/catalog.md quotes these figures)."""
    from demo.local_services import PostgresServer, SeaweedS3Server

    with PostgresServer() as pg, SeaweedS3Server() as s3, HiveMetastore(pg) as metastore:
        server_s = metastore.started_in_s - metastore.schema_s
        print(
            f"metastore: schema tool {metastore.schema_s:.1f} s, server to its port "
            f"{server_s:.1f} s, together {metastore.started_in_s:.1f} s"
        )
        again = time.monotonic()
        assert metastore.init_schema().returncode == 0
        print(f"metastore: schema tool again (nothing to do) {time.monotonic() - again:.1f} s")
        with TrinoServer(metastore, s3) as trino:
            print(f"trino {TRINO_VERSION}: to its first query {trino.started_in_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
