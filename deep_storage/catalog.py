"""The lake's tables by name: each Delta table of a lake registered in a Hive Metastore, as an
external table at its location, so Spark SQL and Trino name it
(`deep_storage.silver_stop_executions`) instead of a path. What `deep-storage catalog` and the
pipelines' last step run.

A table's name is its folder with `/` as `_`:

    bronze/events                     deep_storage.bronze_events
    silver/stop_executions            deep_storage.silver_stop_executions
    gold/stop_execution_features      deep_storage.gold_stop_execution_features
    gold/training_sets/{name}         deep_storage.gold_training_sets_{name}

Registering is Spark's `CREATE TABLE ... USING DELTA LOCATION`, through the one session factory:
the metastore then holds the name, the location and `provider=delta`, and nothing of the schema or
the versions. A reader resolves a name to the table's Delta log at its location, so a name always
means the table's latest version (or the one `VERSION AS OF` asks for), and a new commit needs no
new registration. Registering again changes nothing; a name taken by a table at another location
is refused and nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from deep_storage.core import config, defaults
from deep_storage.core.config import SparkSettings, StoreConfig, resolve_lake
from deep_storage.core.errors import CatalogConflictError, InputError, MetastoreError
from deep_storage.lake import LakeFS, releases
from deep_storage.lake.layout import BRONZE_EVENTS, GOLD_FEATURES, SILVER_EXECUTIONS
from deep_storage.tables import training_sets

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Registration:
    name: str  # database.table
    location: str
    outcome: str  # "registered" (new), or "present" (already there, same location)


@dataclass
class CatalogResult:
    metastore: str | None
    database: str
    tables: list[Registration] = field(default_factory=list)
    skipped: str = ""  # why nothing was registered (no metastore configured)

    def to_dict(self) -> dict:
        return asdict(self)


def table_name(table: str) -> str:
    """The catalog's name of the lake table at folder `table`."""
    return table.replace("/", "_")


def lake_tables(fs: LakeFS) -> list[str]:
    """The folders of the lake's tables that have at least one commit, in the lake's order."""
    candidates = [BRONZE_EVENTS, SILVER_EXECUTIONS, GOLD_FEATURES]
    candidates += [releases.table_of(name) for name in training_sets.known()]
    return [t for t in candidates if fs.delta(t, without_files=True) is not None]


def check_database(database: str) -> str:
    if not _NAME.fullmatch(database):
        raise InputError(
            f"database {database!r} is not a catalog name: expected lower-case letters, digits "
            "and _ (e.g. deep_storage)"
        )
    return database


def probe(uri: str, timeout_s: float = 5.0) -> None:
    """Raise MetastoreError unless the metastore's port accepts a connection: before Spark
    starts, so a dead metastore is one line in seconds, not a JVM's retries."""
    parts = urlsplit(uri)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise MetastoreError(
        f"metastore {uri} is unreachable ({reason}): start it (deploy/metastore.yaml) or fix "
        "HIVE_METASTORE_URI / --metastore; the lake is untouched"
    )


def register(
    lake: str | None = None,
    metastore: str | None = None,
    database: str = defaults.CATALOG_DATABASE,
    store: StoreConfig | None = None,
    spark=None,
) -> CatalogResult:
    """Register every table of `lake` in `database` of the metastore (`metastore`, else
    HIVE_METASTORE_URI); without one, skip and say so. Idempotent."""
    uri = config.metastore_uri(metastore)
    database = check_database(database)
    if uri is None:
        return CatalogResult(None, database, skipped="no metastore: HIVE_METASTORE_URI is not set")
    lake_uri = resolve_lake(lake)
    probe(uri)
    from deep_storage.io import object_store

    store = object_store.checked(lake_uri, store)
    tables = lake_tables(LakeFS(lake_uri, store))
    spark = spark or _session(uri, store)
    try:
        return _register(spark, uri, database, lake_uri, tables)
    except Exception as exc:
        _raise_unreachable(exc, uri)
        raise


def _session(uri: str, store: StoreConfig | None):
    from deep_storage.io import spark_session

    spark = spark_session.build(
        "catalog", store, dataclasses.replace(SparkSettings.from_env(), metastore_uri=uri)
    )
    # A process's session is built once: one started earlier without the metastore would
    # register into a catalog that ends with the process.
    if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
        raise MetastoreError(
            "this process's Spark session was started without a metastore: run the catalog in a "
            "fresh process (deep-storage catalog), or set HIVE_METASTORE_URI before Spark starts"
        )
    return spark


def _register(spark, uri: str, database: str, lake_uri: str, tables: list[str]) -> CatalogResult:
    """Check every name first, then create the missing ones: a conflict changes nothing."""
    _ensure_database(spark, database)
    wanted = {f"{database}.{table_name(t)}": f"{lake_uri}/{t}" for t in tables}
    present = {name: _location(spark, name) for name in wanted}
    conflicts = [
        f"{name} is registered at {present[name]}, not at {location}"
        for name, location in wanted.items()
        if present[name] is not None and _same(present[name]) != _same(location)
    ]
    if conflicts:
        raise CatalogConflictError(
            "; ".join(conflicts) + ": nothing was changed; drop the old name (DROP TABLE, which "
            "leaves an external table's files alone) or register into another --database"
        )
    result = CatalogResult(uri, database)
    for name, location in wanted.items():
        if present[name] is None:
            spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{location}'")
            log.info("registered %s at %s", name, location)
        outcome = "present" if present[name] is not None else "registered"
        result.tables.append(Registration(name, location, outcome))
    return result


def _ensure_database(spark, database: str) -> None:
    """The database, created once with its folder beside the metastore's default database (its
    own disk): the lake's tables are external, so no table data ever lands there, and the
    metastore needs no object-store credentials."""
    if spark.catalog.databaseExists(database):
        return
    home = spark.catalog.getDatabase("default").locationUri.rstrip("/")
    spark.sql(
        f"CREATE DATABASE IF NOT EXISTS {database} COMMENT 'The deep-storage lake: external "
        f"Delta tables' LOCATION '{home}/{database}.db'"
    )


def _location(spark, name: str) -> str | None:
    """Where the metastore says `name` is, None when there is no such table. Read from the
    catalog's own record (SHOW TABLE EXTENDED), not from the Delta log it points at, which may
    be gone."""
    database, table = name.split(".")
    rows = spark.sql(f"SHOW TABLE EXTENDED IN {database} LIKE '{table}'").collect()
    for row in rows:
        for line in row["information"].splitlines():
            if line.startswith("Location: "):
                return line.removeprefix("Location: ").strip()
    return None


def _same(location: str) -> str:
    """A location as compared: s3:// and s3a:// name the same bucket, file:///p and file:/p
    (Hadoop's spelling, which the metastore keeps) the same folder; no trailing /."""
    return re.sub(r"^file:/+", "file:/", re.sub(r"^s3a?://", "s3://", location.rstrip("/")))


def _raise_unreachable(exc: Exception, uri: str) -> None:
    """A metastore that went away after the probe surfaces inside Spark as a Hive client error:
    turn it into the same one line."""
    text = str(exc)
    if "Could not connect to meta store" in text or "Unable to instantiate" in text:
        raise MetastoreError(
            f"metastore {uri} did not answer: start it or fix HIVE_METASTORE_URI; the lake is "
            "untouched"
        ) from None
