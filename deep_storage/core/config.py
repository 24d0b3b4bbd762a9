"""Settings, read from the environment in one place.

The variable names are the keys of the cluster's existing secrets (docs/source.md):
DJANGO_DB_* for the source, AWS_* and S3_BUCKET for object storage. An explicit argument beats
the environment, which beats the default. Secrets are `repr=False` and registered for `redact`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from deep_storage.core import defaults
from deep_storage.core.errors import InputError

_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every known secret value in `text` with ***."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# The keys of the cluster's two secrets, as the steps read them from the environment (the
# platform profile maps each key to the variable of the same name).
DB_ENV = ("DJANGO_DB_HOST", "DJANGO_DB_NAME", "DJANGO_DB_USER", "DJANGO_DB_PASSWORD")
STORE_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT",
    "AWS_REGION",
    "S3_BUCKET",
)


def _env(env: Mapping[str, str], key: str, default: str | None = None) -> str | None:
    value = env.get(key)
    return value if value not in (None, "") else default


def _require(env: Mapping[str, str], key: str, what: str) -> str:
    value = _env(env, key)
    if value is None:
        raise InputError(f"{key} is not set: expected {what} (from the secret's key {key})")
    return value


@dataclass(frozen=True)
class SourceConfig:
    """Where stop_events lives."""

    host: str
    dbname: str
    user: str
    password: str = field(repr=False)
    port: int = 5432
    table: str = "stop_events"
    connect_timeout_s: int = 10

    def __post_init__(self) -> None:
        register_secret(self.password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SourceConfig:
        env = os.environ if env is None else env
        port_text = _env(env, "DJANGO_DB_PORT", "5432")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise InputError(
                f"DJANGO_DB_PORT {port_text!r} is not a TCP port: expected 1-65535"
            ) from None
        return cls(
            host=_require(env, "DJANGO_DB_HOST", "the PostgreSQL host"),
            dbname=_require(env, "DJANGO_DB_NAME", "the database name"),
            user=_require(env, "DJANGO_DB_USER", "the database user"),
            password=_require(env, "DJANGO_DB_PASSWORD", "the database password"),
            port=port,
            table=_env(env, "DEEP_STORAGE_SOURCE_TABLE", "stop_events"),
        )

    @property
    def jdbc_url(self) -> str:
        # Credentials travel as JDBC properties, never in the URL: a password with : / @ !
        # stays whole.
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"

    @property
    def where(self) -> str:
        return f"PostgreSQL {self.host}:{self.port}/{self.dbname} as {self.user}"


@dataclass(frozen=True)
class StoreConfig:
    """S3-compatible object storage, path-style, as the user's provider serves it."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    endpoint: str | None = None
    region: str = "us-east-1"
    bucket: str | None = None

    def __post_init__(self) -> None:
        register_secret(self.secret_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreConfig:
        env = os.environ if env is None else env
        return cls(
            access_key=_require(env, "AWS_ACCESS_KEY_ID", "the object storage access key"),
            secret_key=_require(env, "AWS_SECRET_ACCESS_KEY", "the object storage secret key"),
            endpoint=_env(env, "AWS_ENDPOINT"),
            region=_env(env, "AWS_REGION", "us-east-1"),
            bucket=_env(env, "S3_BUCKET"),
        )

    @property
    def endpoint_url(self) -> str | None:
        """A bare host means https (the provider); a URL keeps its scheme (http turns TLS off)."""
        if not self.endpoint:
            return None
        if "://" in self.endpoint:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InputError(
                    f"AWS_ENDPOINT {self.endpoint!r} is not an endpoint: expected a host "
                    "(eu2.contabostorage.com) or an http(s) URL (http://127.0.0.1:8333)"
                )
            return f"{parts.scheme}://{parts.netloc}"
        return f"https://{self.endpoint.strip('/')}"

    @property
    def ssl(self) -> bool:
        url = self.endpoint_url
        return url is None or url.startswith("https://")


def run_id(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The id stamped on commit facts and quarantine rows: explicit, else DEEP_STORAGE_RUN_ID, else
    a fresh one."""
    env = os.environ if env is None else env
    return explicit or _env(env, "DEEP_STORAGE_RUN_ID") or uuid.uuid4().hex


def read_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Bronze's engine: explicit, else DEEP_STORAGE_READ_PATH, else arrow (binary COPY to
    Parquet without Spark, measured faster here: benchmarks/); jdbc is Spark's."""
    env = os.environ if env is None else env
    return explicit or _env(env, "DEEP_STORAGE_READ_PATH", "arrow")


ENGINES = ("auto", "duckdb", "spark")
GATE_ENGINES = ENGINES  # the gate's choices (DEEP_STORAGE_GATE_ENGINE)


def gate_engine(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """What judges the gate's rows: explicit, else DEEP_STORAGE_GATE_ENGINE, else auto (DuckDB
    for a day of up to GATE_DUCKDB_MAX_ROWS rows, Spark above)."""
    return _engine("DEEP_STORAGE_GATE_ENGINE", defaults.GATE_ENGINE, explicit, env)


def silver_engine(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """What projects silver: explicit, else DEEP_STORAGE_SILVER_ENGINE, else auto (DuckDB in the
    step's process for up to SILVER_DUCKDB_MAX_ROWS bronze rows read on a local master, Spark
    above that or on a cluster's master)."""
    return _engine("DEEP_STORAGE_SILVER_ENGINE", defaults.SILVER_ENGINE, explicit, env)


def _engine(name: str, default: str, explicit: str | None, env: Mapping[str, str] | None) -> str:
    env = os.environ if env is None else env
    engine = (explicit or _env(env, name, default)).lower()
    if engine not in ENGINES:
        raise InputError(f"{name} {engine!r} is unknown: expected one of {', '.join(ENGINES)}")
    return engine


def resolve_lake(lake: str | None, env: Mapping[str, str] | None = None) -> str:
    """--lake beats DEEP_STORAGE_LAKE beats s3a://$S3_BUCKET; returned without a trailing /."""
    env = os.environ if env is None else env
    uri = lake or _env(env, "DEEP_STORAGE_LAKE")
    if not uri:
        bucket = _env(env, "S3_BUCKET")
        if not bucket:
            raise InputError(
                "no lake given: pass --lake s3a://BUCKET[/prefix] or file:///abs/path, "
                "or set S3_BUCKET"
            )
        uri = f"s3a://{bucket}"
    uri = uri.rstrip("/")
    parts = urlsplit(uri)
    if parts.scheme in ("s3", "s3a"):
        if not parts.netloc:
            raise InputError(f"lake {uri!r} names no bucket: expected s3a://BUCKET[/prefix]")
        return "s3a://" + parts.netloc + parts.path
    if parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise InputError(f"lake {uri!r} is not absolute: expected file:///abs/path")
        return "file://" + parts.path
    raise InputError(
        f"lake {uri!r} has an unsupported scheme: expected s3a://BUCKET[/prefix] or file:///abs/path"
    )


def metastore_uri(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The Hive Metastore the lake's tables are named in: explicit, else HIVE_METASTORE_URI, else
    None (no catalog). Checked to be thrift://HOST:PORT."""
    env = os.environ if env is None else env
    uri = (explicit or _env(env, "HIVE_METASTORE_URI") or "").strip()
    if not uri:
        return None
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (
        parts.scheme != "thrift"
        or not parts.hostname
        or port is None
        or parts.path not in ("", "/")
    ):
        raise InputError(
            f"metastore {uri!r} is not a Thrift URI: expected thrift://HOST:PORT "
            "(e.g. thrift://deep-storage-metastore:9083)"
        )
    return f"thrift://{parts.hostname}:{port}"


def lake_bucket(lake: str) -> str | None:
    parts = urlsplit(lake)
    return parts.netloc if parts.scheme == "s3a" else None


def _conf_value(value) -> str:
    """A Spark setting from JSON: true/false as Spark spells them, never Python's True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise InputError("DEEP_STORAGE_SPARK_CONF has a null value: give every setting a value")
    return str(value)


@dataclass(frozen=True)
class SparkSettings:
    """How the one SparkSession is sized. The platform profile sets these from the pod's limits."""

    master: str = "local[*]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8
    jars_dir: str | None = None
    local_dir: str | None = None
    # Settings for a cluster manager (the platform profile's spark_k8s_conf, as JSON in
    # DEEP_STORAGE_SPARK_CONF), applied after the project's own; and the address executors
    # reach the driver at (the pod's IP, DEEP_STORAGE_DRIVER_HOST).
    extra_conf: tuple[tuple[str, str], ...] = ()
    driver_host: str | None = None
    driver_pod: str | None = None  # on Kubernetes: the task pod, owner of the executor pods
    # The Hive Metastore (HIVE_METASTORE_URI): with one, the session's catalog is Hive's there,
    # so SQL names the lake's tables (deep_storage.silver_stop_executions).
    metastore_uri: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SparkSettings:
        env = os.environ if env is None else env
        partitions_text = _env(env, "DEEP_STORAGE_SHUFFLE_PARTITIONS", "8")
        try:
            partitions = int(partitions_text)
        except ValueError:
            raise InputError(
                f"DEEP_STORAGE_SHUFFLE_PARTITIONS {partitions_text!r} is not a whole number"
            ) from None
        conf_text = _env(env, "DEEP_STORAGE_SPARK_CONF", "{}")
        try:
            extra = json.loads(conf_text)
            if not isinstance(extra, dict):
                raise ValueError
        except ValueError:
            raise InputError(
                "DEEP_STORAGE_SPARK_CONF is not a JSON object of Spark settings: expected "
                '{"spark.executor.instances": "4", ...}'
            ) from None
        return cls(
            extra_conf=tuple(sorted((str(k), _conf_value(v)) for k, v in extra.items())),
            driver_host=_env(env, "DEEP_STORAGE_DRIVER_HOST"),
            driver_pod=_env(env, "DEEP_STORAGE_DRIVER_POD"),
            metastore_uri=metastore_uri(env=env),
            master=_env(env, "DEEP_STORAGE_SPARK_MASTER", "local[*]"),
            driver_memory=_env(env, "DEEP_STORAGE_DRIVER_MEMORY", "2g"),
            shuffle_partitions=partitions,
            jars_dir=_env(env, "DEEP_STORAGE_JARS_DIR"),
            local_dir=_env(env, "DEEP_STORAGE_SPARK_LOCAL_DIR"),
        )
