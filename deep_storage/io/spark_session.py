"""The only place a SparkSession is built and every Spark, S3A and JDBC setting lives."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from deep_storage.core.config import SparkSettings, StoreConfig
from deep_storage.core.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_REPO_JARS = Path(__file__).resolve().parents[2] / ".cache" / "jars"
_LOG4J = Path(__file__).resolve().parent / "log4j2.properties"
# The classes the manifest's JARs must provide; the image bakes them into $SPARK_HOME/jars.
_REQUIRED_JARS = (
    "hadoop-aws-",
    "aws-java-sdk-bundle-",
    "spark-hadoop-cloud_",
    "postgresql-",
    "delta-spark_",
    "delta-storage-",
)

# UTC everywhere: the JVM's default zone decides how the PostgreSQL JDBC driver sets the session
# TimeZone and how Spark renders pushed-down timestamp literals, so a pod with TZ=America/Sao_Paulo
# would otherwise read a different window.
_JAVA_OPTS = f"-Duser.timezone=UTC -Dlog4j.configurationFile={_LOG4J}"


def _find_jars(settings: SparkSettings) -> list[str]:
    """The manifest's JARs for spark.jars, or [] when they are baked into $SPARK_HOME/jars."""
    folder = Path(settings.jars_dir) if settings.jars_dir else _REPO_JARS
    found = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    if all(any(Path(j).name.startswith(r) for j in found) for r in _REQUIRED_JARS):
        return found
    spark_home = os.environ.get("SPARK_HOME")
    if spark_home:
        baked = [p.name for p in (Path(spark_home) / "jars").glob("*.jar")]
        if all(any(b.startswith(r) for b in baked) for r in _REQUIRED_JARS):
            return []
    missing = [
        r.rstrip("-_") for r in _REQUIRED_JARS if not any(Path(j).name.startswith(r) for j in found)
    ]
    raise InputError(
        f"JARs {', '.join(missing)} not found in {folder}: run `make jars` "
        "(or set DEEP_STORAGE_JARS_DIR to the folder holding spark_image/jars.lock's JARs)"
    )


def s3a_options(store: StoreConfig, executors_elsewhere: bool = False) -> dict[str, str]:
    """Hadoop settings for the S3A connector, path-style, with short retries so a dead endpoint
    fails in seconds rather than minutes. With executors in other processes (a cluster
    manager), the magic committer: the staging committers keep each task's pending uploads on
    a path the driver must read too, which pods on different nodes do not share."""
    options = {
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": store.access_key,
        "fs.s3a.secret.key": store.secret_key,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.endpoint.region": store.region,
        "fs.s3a.connection.ssl.enabled": str(store.ssl).lower(),
        "fs.s3a.attempts.maximum": "3",
        "fs.s3a.retry.limit": "3",
        "fs.s3a.retry.interval": "250ms",
        "fs.s3a.connection.establish.timeout": "5000",
        "fs.s3a.connection.timeout": "30000",
        # S3A committers, bound through spark-hadoop-cloud (the Hadoop "committers" docs):
        # the directory staging committer uploads task output at job commit, so nothing half-written
        # is ever visible under the destination. "append": every write adds files under new names
        # and the Delta log (lake/writer.py) decides which files a day is made of; nothing is
        # cleared here.
        "mapreduce.outputcommitter.factory.scheme.s3a": (
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory"
        ),
        "fs.s3a.committer.name": "magic" if executors_elsewhere else "directory",
        "fs.s3a.committer.magic.enabled": "true",
        "fs.s3a.committer.staging.conflict-mode": "append",
        "fs.s3a.committer.abort.pending.uploads": "true",
        # Absolute, under the temp dir: its default (tmp/staging under the working directory)
        # is not writable in a pod whose root file system is read-only, where /tmp is an emptyDir.
        "fs.s3a.committer.staging.tmp.path": f"file://{tempfile.gettempdir()}/s3a-staging",
    }
    if store.endpoint_url:
        options["fs.s3a.endpoint"] = store.endpoint_url
    return options


def build(
    app: str, store: StoreConfig | None = None, settings: SparkSettings | None = None
) -> SparkSession:
    """Return the process's SparkSession, built once with every project setting.

    A second call reuses the running session (JVM options are fixed by then) and applies the
    S3A settings of `store` to it.
    """
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings.from_env()
    active = SparkSession.getActiveSession()
    # Where the executors are is the running session's fact once there is one.
    master = active.sparkContext.master if active is not None else settings.master
    elsewhere = not master.startswith("local")
    if active is None:
        active = _start(app, store, settings, elsewhere)
    if store is not None:
        # Through py4j into the driver's Hadoop configuration, which Spark ships to the
        # executors with each file scan: never on a command line.
        conf = active.sparkContext._jsc.hadoopConfiguration()
        for key, value in s3a_options(store, elsewhere).items():
            conf.set(key, value)
    return active


def _start(
    app: str, store: StoreConfig | None, settings: SparkSettings, elsewhere: bool
) -> SparkSession:
    """Start the JVM and the session: the process environment first, then every setting."""
    wait_for_background_imports()
    _prepare_environment(settings)
    jars = _find_jars(settings)
    builder = _builder(app, settings)
    builder = _with_deployment(builder, settings, jars)
    if store is not None:
        for key, value in s3a_options(store, elsewhere).items():
            # PySpark starts the JVM with every builder setting as `--conf k=v` in its
            # argv, where `ps` in the pod shows it: the credentials go in after, in `build`.
            if key not in CREDENTIALS:
                builder = builder.config(f"spark.hadoop.{key}", value)
    active = builder.getOrCreate()
    active.sparkContext.setLogLevel("WARN")
    return active


def _prepare_environment(settings: SparkSettings) -> None:
    if settings.master.startswith("local"):
        # The host name resolves to a non-loopback address on these machines and in pods.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (the Arrow read path) must run this interpreter, with this venv's
    # packages, not whatever `python3` comes first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _builder(app: str, settings: SparkSettings):
    """The session builder with the settings every session takes, wherever it runs."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName(f"deep-storage-{app}")
        .master(settings.master)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.extraJavaOptions", _JAVA_OPTS)
        .config("spark.executor.extraJavaOptions", _JAVA_OPTS)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED")
        .config("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        # Reads name their files (from the Delta log): checking a few hundred in the driver
        # takes ~1 s, a parallel-listing job for them took 2-6 s (a silver day: 200 files).
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1024")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        .config(
            "spark.sql.sources.commitProtocolClass",
            "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
        )
        .config(
            "spark.sql.parquet.output.committer.class",
            "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter",
        )
        # The lake's tables are Delta tables. Without the catalog delta-spark 3 refuses even
        # df.write.format("delta") (DELTA_CONFIGURE_SPARK_SESSION_WITH_EXTENSION_AND_CATALOG);
        # without the extension Delta's SQL (DESCRIBE HISTORY, VACUUM) does not parse and a
        # table created USING DELTA "does not support reads".
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog",
            "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        )
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    )


def _with_deployment(builder, settings: SparkSettings, jars: list[str]):
    """The builder with the settings of where the driver runs: its address, pod, the
    deployment's extra settings, JARs and scratch folder."""
    if settings.master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    elif settings.driver_host:
        # Client mode on a cluster manager: executors in other pods call the driver back.
        builder = builder.config("spark.driver.host", settings.driver_host).config(
            "spark.driver.bindAddress", "0.0.0.0"
        )
    if settings.driver_pod:
        builder = builder.config("spark.kubernetes.driver.pod.name", settings.driver_pod)
    if settings.metastore_uri:
        builder = _with_metastore(builder, settings.metastore_uri)
    for key, value in settings.extra_conf:
        builder = builder.config(key, value)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    if settings.local_dir:
        builder = builder.config("spark.local.dir", settings.local_dir)
    return builder


def _with_metastore(builder, uri: str):
    """Spark's catalog in the Hive Metastore at `uri` (Hive 2.3.9's client, pyspark's own JARs).
    Delta's catalog stays in front of it, so a name registered with USING DELTA reads the table's
    log at its location. A dead metastore fails in seconds: one connection attempt, a short
    socket timeout, rather than Hive's 3 retries of 600 s."""
    return (
        builder.config("spark.sql.catalogImplementation", "hive")
        .config("spark.hadoop.hive.metastore.uris", uri)
        .config("spark.hadoop.hive.metastore.connect.retries", "1")
        .config("spark.hadoop.hive.metastore.client.socket.timeout", "60s")
        # Databases' default folders are the metastore's business (deep_storage.catalog asks it
        # where); this only keeps Spark from making ./spark-warehouse in the working directory.
        .config("spark.sql.warehouse.dir", f"file://{tempfile.gettempdir()}/spark-warehouse")
    )


CREDENTIALS = ("fs.s3a.access.key", "fs.s3a.secret.key")


def wait_for_background_imports() -> None:
    """Wait for background imports (threads named "preload-..."): pyspark launches the JVM
    with a preexec_fn, so its fork takes the interpreter's import and logging locks, and a
    fork while another thread imports deadlocks both (seen: a gate on Spark stuck for good in
    `_fork_exec` while Great Expectations was being imported)."""
    for thread in threading.enumerate():
        if thread.name.startswith("preload-") and thread is not threading.current_thread():
            thread.join()


def for_lake(
    app: str, lake: str, spark: SparkSession | None = None, store_config: StoreConfig | None = None
) -> SparkSession:
    """The session a step uses on `lake` (whose store `object_store.checked` has vetted): the
    process's session built, or the given one configured for that storage."""
    if spark is None:
        return build(app, store_config, SparkSettings.from_env())
    return build(app, store_config) if store_config is not None else spark


def jdbc_options(source) -> dict[str, str]:
    """Options for spark.read.format("jdbc"): explicit driver, credentials as properties."""
    return {
        "url": source.jdbc_url,
        "user": source.user,
        "password": source.password,
        "driver": "org.postgresql.Driver",
        "fetchsize": "20000",
        "connectTimeout": str(source.connect_timeout_s),
        # Read-only, UTC: the window is the same instant whatever the server's TimeZone.
        "sessionInitStatement": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    }
