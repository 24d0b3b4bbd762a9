"""The lake's layout and its one commit path: every table is a Delta Lake table.

    {lake}/bronze/events              Delta, partitioned by date
    {lake}/silver/stop_executions     Delta, partitioned by client_id, date
    {lake}/_days                      Delta, one row per committed (table, day): the day's facts

Any Delta reader (delta-rs, delta-spark, DuckDB, polars, Trino) reads the tables with no code of
ours: the transaction log in `_delta_log/` lists exactly the committed files.

The commit path (the only code that adds or removes data files from a table):
1. `Writer.write*` / `Writer.landed`: the step's engine writes new Parquet files under new names
   inside the table folder. No log entry names them yet, so no reader sees them.
2. Their rows are counted from the Parquet footers; a count lower than the rows the step read
   fails the run, and nothing is committed.
3. `Writer.commit`: ONE Delta transaction (delta-rs, a conditional PUT of the next
   `_delta_log/N.json`) removes the files of every replaced partition and adds the new ones, and
   carries the days' facts (rows, sealed, window, newest event, ...) in its commit metadata.
4. The facts are then written to `_days` too. A run killed between 3 and 4 loses nothing: a reader
   replays the facts of data commits newer than `_days` knows from the tables' own history.

Superseded files stay until retention vacuums them (7 days, Delta's default), so a reader in
flight never hits a missing file and last week's versions stay readable (time travel). Only the
holder of the writer lease (writer_lock.py) commits: delta-spark's S3 log store is single-driver,
and the lease is what keeps two runs from interleaving.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from deep_storage.core.config import StoreConfig, lake_bucket, redact
from deep_storage.core.errors import DeepStorageError, LakeStateError, StoreError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from deep_storage.lake.writer_lock import Lease

log = logging.getLogger(__name__)

BRONZE_EVENTS = "bronze/events"
SILVER_EXECUTIONS = "silver/stop_executions"
QUARANTINE = "quarantine"
QUALITY = "_quality"
DAYS = "_days"
_PARALLEL = 16


def day_uri(lake: str, table: str, day: dt.date) -> str:
    return f"{lake}/{table}/date={day.isoformat()}"


def partition_date(relpath: str) -> dt.date | None:
    """The `date=` value of a path relative to a table root (None when it has none)."""
    for part in relpath.split("/"):
        if part.startswith("date="):
            try:
                return dt.date.fromisoformat(part[5:])
            except ValueError:
                return None
    return None


@dataclass
class Manifest:
    """One committed day of one table: its facts (kept in `_days` and in the commit's metadata)
    and, when read back, its files in the table's current snapshot."""

    table: str
    date: str
    rows: int
    sealed: bool
    files: list[str]  # relative to the table root
    partitions: dict[str, int]  # partition folder (relative) -> rows
    run_id: str
    written_at: str
    lease_token: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    version: int = -1  # the table's Delta version whose commit wrote this day

    def facts(self) -> dict[str, Any]:
        """What `_days` and the commit's metadata keep: everything but the file list, which the
        Delta log holds."""
        return {k: v for k, v in asdict(self).items() if k != "files"}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class LakeFS:
    """Metadata operations on the lake (list, read, write, delete small objects), straight on the
    object store with boto3 (path-style, the steps' AWS_* settings) or on the local file system
    for file:// lakes. Parquet itself is read and written by Spark."""

    def __init__(self, lake: str, store: StoreConfig | None = None) -> None:
        self.lake = lake.rstrip("/")
        parts = urlsplit(self.lake)
        self.bucket = lake_bucket(self.lake)
        self._store = store
        self._arrow = None
        if self.bucket is not None:
            from deep_storage.io.object_store import s3_client

            self._store = store or StoreConfig.from_env()
            self._client = s3_client(self._store)
            self._prefix = parts.path.strip("/")
        else:
            self._client = None
            self._root = Path(parts.path)

    @property
    def store(self) -> StoreConfig | None:
        return self._store

    def arrow(self):
        """(a pyarrow FileSystem, the lake's root path in it), for Parquet I/O without Spark:
        pyarrow's own S3 client (path-style, the steps' AWS_* settings) or the local disk."""
        if self._arrow is None:
            from pyarrow import fs as pafs

            if self._client is None:
                self._arrow = (pafs.LocalFileSystem(), str(self._root))
            else:
                from deep_storage.io.object_store import arrow_s3

                root = f"{self.bucket}/{self._prefix}" if self._prefix else self.bucket
                self._arrow = (arrow_s3(self._store), root)
        return self._arrow

    # --- Delta tables ------------------------------------------------------------------------

    def delta_uri(self, table: str) -> str:
        """The table's URI as delta-rs names it (s3:// for an s3a lake, a path on a local disk)."""
        if self._client is None:
            return str(self._root / table)
        prefix = f"{self._prefix}/" if self._prefix else ""
        return f"s3://{self.bucket}/{prefix}{table}"

    def delta_options(self) -> dict[str, str] | None:
        """delta-rs's storage options: path-style, the steps' AWS_* settings. Never
        AWS_S3_ALLOW_UNSAFE_RENAME: delta-rs commits with a conditional PUT, which must stay."""
        if self._client is None:
            return None
        store = self._store
        options = {
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "AWS_REGION": store.region,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        }
        if store.endpoint_url:
            options["AWS_ENDPOINT_URL"] = store.endpoint_url
            if not store.ssl:
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    def delta(
        self,
        table: str,
        version: int | None = None,
        as_of: dt.datetime | None = None,
        *,
        without_files: bool = False,
    ):
        """The table's deltalake.DeltaTable (at `version` or the version current at `as_of`),
        or None when the table has no commit yet. `without_files` loads the log's metadata and
        version only (no file list: cheap after a long history, but it cannot be read)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        uri = self.delta_uri(table)
        try:
            found = DeltaTable(
                uri,
                version=version,
                storage_options=self.delta_options(),
                without_files=without_files,
            )
            if as_of is not None:
                found.load_as_version(as_of)
            return found
        except TableNotFoundError:
            return None
        except Exception as exc:  # delta-rs raises its own errors for the store's failures
            if isinstance(exc, DeepStorageError):
                raise
            raise self._fail(f"open the Delta table {table}", exc) from None

    # --- paths -------------------------------------------------------------------------------

    def _rel(self, uri: str) -> str:
        if not uri.startswith(self.lake):
            raise ValueError(f"{uri} is not in lake {self.lake}")
        return uri[len(self.lake) :].lstrip("/")

    def _key(self, uri: str) -> str:
        rel = self._rel(uri)
        return f"{self._prefix}/{rel}" if self._prefix else rel

    def _fail(self, what: str, exc: Exception) -> StoreError:
        detail = getattr(exc, "response", {}).get("Error", {}).get("Code") or str(exc)
        return StoreError(f"{what} in lake {self.lake} failed: {redact(str(detail))[:300]}")

    def describe_files(self, table: str, files: list[str]):
        """([DataFile] with rows from the Parquet footers, size and time; the files' Arrow
        schema) for `files` (relative to the table root): a ranged read and a HEAD each."""
        import pyarrow as pa

        found = self._footers(table, files, head=True)
        described = [
            DataFile(
                rel,
                meta.num_rows,
                info.size,
                int(info.mtime.timestamp() * 1000) if info.mtime else 0,
            )
            for rel, info, meta in found
        ]
        # The union: days written before and after a schema drift differ in their columns.
        schemas = {str(m.schema): m.schema.to_arrow_schema() for _, _, m in found}
        schema = pa.unify_schemas(list(schemas.values())) if schemas else None
        return described, schema

    def file_schemas(self, table: str, files: list[str]) -> list[tuple[str, Any]]:
        """[(file, its own Arrow schema)] from each file's Parquet footer: a ranged read each."""
        return [(rel, m.schema.to_arrow_schema()) for rel, _, m in self._footers(table, files)]

    def _footers(self, table: str, files: list[str], head: bool = False) -> list[tuple]:
        """[(file, its info when `head`, its Parquet metadata)], read in parallel."""
        import pyarrow.parquet as pq

        afs, root = self.arrow()

        def one(rel: str):
            path = f"{root}/{table}/{rel}"
            try:
                info = afs.get_file_info(path) if head else None
                return rel, info, pq.read_metadata(path, filesystem=afs)
            except OSError as exc:
                raise self._fail(f"read the footer of {table}/{rel}", exc) from None

        if len(files) <= 2:
            return list(map(one, files))
        with ThreadPoolExecutor(_PARALLEL) as pool:
            return list(pool.map(one, files))

    # --- operations --------------------------------------------------------------------------

    def read_text(self, uri: str) -> str | None:
        if self._client is None:
            path = self._root / self._rel(uri)
            return path.read_text("utf-8") if path.is_file() else None
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(uri))["Body"]
            return body.read().decode("utf-8")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"read {uri}", exc) from None
        except BotoCoreError as exc:
            raise self._fail(f"read {uri}", exc) from None

    def write_text(self, uri: str, text: str) -> None:
        """Replace the object at `uri` whole: a reader sees the old text or the new, never a
        part (one PUT on S3; a write to a temporary name and a rename on a local disk)."""
        data = text.encode("utf-8")
        if self._client is None:
            path = self._root / self._rel(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(uri), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"write {uri}", exc) from None

    def list_files(self, uri: str) -> list[str]:
        """Every file under the folder `uri`, recursively, as paths relative to `uri`."""
        base = uri.rstrip("/")
        if self._client is None:
            root = self._root / self._rel(base) if base != self.lake else self._root
            if not root.is_dir():
                return []
            return sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()
            )
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = (
            self._key(base).rstrip("/") + "/"
            if base != self.lake
            else (f"{self._prefix}/" if self._prefix else "")
        )
        found = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"list {uri}", exc) from None
        return sorted(found)

    def delete_files(self, uris: Iterable[str]) -> None:
        uris = list(uris)
        if not uris:
            return
        if self._client is None:
            for uri in uris:
                (self._root / self._rel(uri)).unlink(missing_ok=True)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        keys = [{"Key": self._key(u)} for u in uris]
        try:
            for i in range(0, len(keys), 1000):
                resp = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True}
                )
                if resp.get("Errors"):
                    first = resp["Errors"][0]
                    raise StoreError(
                        f"delete {first.get('Key')} in lake {self.lake} failed: {first.get('Code')}"
                    )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", exc) from None

    def delete_tree(self, uri: str) -> None:
        base = uri.rstrip("/")
        self.delete_files(f"{base}/{rel}" for rel in self.list_files(base))


# --- the days' facts: `_days`, replayed forward from the tables' history ----------------------

# Written into every table the steps create. Checkpoints every 25 commits keep opening a table
# that an hourly schedule commits to 24 times a day fast (benchmarks/open_table.py); the two
# retention durations are Delta's defaults, written out so `DESCRIBE DETAIL` shows them.
TABLE_CONFIG = {
    "delta.checkpointInterval": "25",
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.logRetentionDuration": "interval 30 days",
}
_VACUUM_SAFE_HOURS = 168  # delta.deletedFileRetentionDuration
FACTS_KEY = "deep_storage"  # the commit-metadata key holding a data commit's facts
VERSIONS_KEY = "deep_storage_table_versions"  # in `_days` commits: the data versions it covers
PARTITION_COLUMNS = {BRONZE_EVENTS: ("date",), SILVER_EXECUTIONS: ("client_id", "date")}


def _days_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("table", pa.string()),
            ("date", pa.date32()),
            ("rows", pa.int64()),
            ("sealed", pa.bool_()),
            ("version", pa.int64()),
            ("committed_at", pa.timestamp("us", tz="UTC")),
            ("run_id", pa.string()),
            ("lease_token", pa.int64()),
            ("partitions", pa.string()),  # JSON: partition folder -> rows
            ("details", pa.string()),  # JSON: window, seal check, newest event, statuses, ...
        ]
    )


def _manifest_from_facts(data: dict[str, Any]) -> Manifest:
    return Manifest(
        table=data["table"],
        date=data["date"],
        rows=int(data["rows"]),
        sealed=bool(data["sealed"]),
        files=[],
        partitions=dict(data.get("partitions") or {}),
        run_id=data.get("run_id") or "",
        written_at=data.get("written_at") or "",
        lease_token=int(data.get("lease_token") or 0),
        details=dict(data.get("details") or {}),
        version=int(data.get("version", -1)),
    )


@dataclass
class _Facts:
    days: dict[tuple[str, str], Manifest]  # (table, ISO date) -> facts
    versions: dict[str, int]  # table -> the newest data version the facts cover


def _read_facts(fs: LakeFS) -> _Facts:
    import pyarrow as pa

    table = fs.delta(DAYS)
    if table is None:
        return _Facts({}, {})
    fs._days_table = table  # a writer's next `_days` write starts from this loaded state
    days: dict[tuple[str, str], Manifest] = {}
    for row in pa.table(table.to_pyarrow_table()).to_pylist():
        m = _manifest_from_facts(
            {
                **row,
                "date": row["date"].isoformat(),
                "written_at": row["committed_at"].isoformat() if row["committed_at"] else "",
                "partitions": json.loads(row["partitions"] or "{}"),
                "details": json.loads(row["details"] or "{}"),
            }
        )
        days[(m.table, m.date)] = m
    # The newest `_days` commit that names the data versions it covers (a vacuum of `_days`
    # commits without them).
    versions: dict[str, int] = {}
    newest = table.version()
    for version in range(newest, max(-1, newest - 20), -1):
        info = commit_info(fs, DAYS, version)
        if VERSIONS_KEY in info:
            versions = {k: int(v) for k, v in json.loads(info[VERSIONS_KEY]).items()}
            break
    return _Facts(days, versions)


def commit_info(fs: LakeFS, table: str, version: int) -> dict[str, Any]:
    """The commitInfo of `version`, read from its own log entry (`_delta_log/N.json`): delta-rs's
    `history()` numbers entries from the version it loaded, so a commit that lands meanwhile would
    be misnamed. {} when the entry is gone (past the log's retention)."""
    text = fs.read_text(f"{fs.lake}/{table}/_delta_log/{version:020d}.json")
    for line in (text or "").splitlines():
        if '"commitInfo"' in line and "commitInfo" in (action := json.loads(line)):
            return action["commitInfo"]
    return {}


def _replay(fs: LakeFS, facts: _Facts, table: str) -> None:
    """Bring `facts` up to the table's current version from the commits `_days` does not cover
    yet (a run killed after its data commit, before `_days` was written)."""
    data = fs.delta(table, without_files=True)
    if data is None:
        return
    known = facts.versions.get(table, -1)
    current = data.version()
    if current <= known:
        return
    for version in range(known + 1, current + 1):
        entry = commit_info(fs, table, version)
        if FACTS_KEY not in entry:
            continue
        commit = json.loads(entry[FACTS_KEY])
        for date in commit.get("removed", []):
            facts.days.pop((table, date), None)
        for day in commit.get("days", []):
            m = _manifest_from_facts({**day, "table": table, "version": version})
            facts.days[(table, m.date)] = m
    facts.versions[table] = current


def _facts(fs: LakeFS) -> _Facts:
    """Every table's day facts, current: cached on `fs` (the writer lease keeps anyone else
    from committing while a step runs; `Writer.commit` refreshes it)."""
    cached = getattr(fs, "_facts_cache", None)
    if cached is None:
        cached = _read_facts(fs)
        for table in PARTITION_COLUMNS:
            _replay(fs, cached, table)
        fs._facts_cache = cached
    return cached


def _write_facts(fs: LakeFS, facts: _Facts) -> None:
    """Replace `_days` whole (a few hundred rows, one small file) in one Delta transaction."""
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.transaction import CommitProperties

    rows = []
    for (table, date), m in sorted(facts.days.items()):
        written = dt.datetime.fromisoformat(m.written_at) if m.written_at else None
        rows.append(
            {
                "table": table,
                "date": dt.date.fromisoformat(date),
                "rows": m.rows,
                "sealed": m.sealed,
                "version": m.version,
                "committed_at": written,
                "run_id": m.run_id,
                "lease_token": m.lease_token,
                "partitions": json.dumps(m.partitions, sort_keys=True),
                "details": json.dumps(m.details, sort_keys=True),
            }
        )
    days = getattr(fs, "_days_table", None)
    try:
        write_deltalake(
            days if days is not None else fs.delta_uri(DAYS),
            pa.Table.from_pylist(rows, schema=_days_schema()),
            mode="overwrite",
            configuration=TABLE_CONFIG,
            storage_options=fs.delta_options(),
            commit_properties=CommitProperties(
                custom_metadata={VERSIONS_KEY: json.dumps(facts.versions, sort_keys=True)}
            ),
        )
    except Exception as exc:
        raise fs._fail("write the day facts (_days)", exc) from None
    if days is None:
        fs._days_table = fs.delta(DAYS)
    else:
        days.update_incremental()


# --- reading committed days ------------------------------------------------------------------


def snapshot_files(
    fs: LakeFS,
    table: str,
    version: int | None = None,
    as_of: dt.datetime | None = None,
    *,
    loaded=None,
) -> tuple[int | None, dict[str, list[tuple[str, int]]]]:
    """(the version read, partition folder -> [(file, size)]) of the table's snapshot (of the
    `loaded` DeltaTable when given); file paths are relative to the table root. (None, {})
    before the table's first commit."""
    import pyarrow as pa

    data = loaded if loaded is not None else fs.delta(table, version, as_of)
    if data is None:
        return None, {}
    actions = pa.table(data.get_add_actions(flatten=True)).select(["path", "size_bytes"])
    by_folder: dict[str, list[tuple[str, int]]] = {}
    for path, size in zip(
        actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True
    ):
        rel = unquote(path)
        by_folder.setdefault(rel.rsplit("/", 1)[0], []).append((rel, size))
    return data.version(), by_folder


def committed(
    fs: LakeFS, table: str, days: Iterable[dt.date] | None = None, *, with_files: bool = True
) -> dict[dt.date, Manifest]:
    """The facts of the committed days among `days` (all days when None), each with its files in
    the table's current snapshot (unless `with_files` is False)."""
    facts = _facts(fs)
    wanted = None if days is None else {d.isoformat() for d in days}
    found = {
        dt.date.fromisoformat(date): Manifest(**{**asdict(m), "files": []})
        for (t, date), m in facts.days.items()
        if t == table and (wanted is None or date in wanted)
    }
    if with_files and found:
        _, folders = snapshot_files(fs, table)
        for folder, files in folders.items():
            day = partition_date(folder)
            if day in found:
                found[day].files.extend(rel for rel, _ in files)
        for m in found.values():
            m.files.sort()
    return dict(sorted(found.items()))


def manifest(fs: LakeFS, table: str, day: dt.date) -> Manifest | None:
    return committed(fs, table, [day]).get(day)


def current_version(fs: LakeFS, table: str) -> dict[str, str]:
    """date (ISO) -> the Delta version that committed it, for every committed day: what silver
    records as the bronze inputs it was built from."""
    return {m.date: f"v{m.version}" for m in committed(fs, table, with_files=False).values()}


def newest_event(fs: LakeFS, table: str) -> dt.datetime | None:
    """The newest event time a committed day of `table` records (details.newest_event_at),
    looking from the newest day back."""
    for m in sorted(committed(fs, table, with_files=False).values(), key=lambda m: m.date)[::-1]:
        newest = m.details.get("newest_event_at")
        if newest:
            return dt.datetime.fromisoformat(newest)
    return None


def file_uris(fs: LakeFS, manifests: Iterable[Manifest]) -> list[str]:
    return [f"{fs.lake}/{m.table}/{f}" for m in manifests for f in m.files]


def read_committed(
    spark: SparkSession,
    fs: LakeFS,
    table: str,
    schema: StructType,
    days: Iterable[dt.date] | None,
) -> DataFrame:
    """The committed rows of `days`, with the table's partition columns (typed: client_id
    bigint, date date). Only the files of the table's current snapshot are opened."""
    manifests = committed(fs, table, days).values()
    return read_files(spark, fs, table, schema, file_uris(fs, manifests))


def read_files(
    spark: SparkSession, fs: LakeFS, table: str, schema: StructType, files: list[str]
) -> DataFrame:
    """`files` (URIs of the table's data files) as one DataFrame with the partition columns."""
    from pyspark.sql import functions as F

    partition_columns = list(PARTITION_COLUMNS[table])
    if not files:
        frame = spark.createDataFrame([], schema)
        for c in partition_columns:
            frame = frame.withColumn(c, F.lit(None).cast("bigint" if c == "client_id" else "date"))
        return frame
    frame = spark.read.schema(schema).option("basePath", f"{fs.lake}/{table}").parquet(*files)
    # Partition values come from the folder names; pin their types whatever Spark infers.
    return frame.withColumns(
        {c: F.col(c).cast("bigint" if c == "client_id" else "date") for c in partition_columns}
    )


# --- writing: the commit path ----------------------------------------------------------------


def _failpoint(table: str, point: str) -> None:
    """Kill this process at a named point of the commit path when DEEP_STORAGE_KILL_AT names it
    (`table:point`), so tests can prove a kill at each point loses nothing. Off by default."""
    wanted = os.environ.get("DEEP_STORAGE_KILL_AT")
    if wanted and wanted == f"{table.split('/', 1)[0]}:{point}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the table root
    rows: int
    size: int
    modified_ms: int


@dataclass
class Written:
    """What one write left under the table, not yet committed."""

    table: str
    files: dict[dt.date, list[str]]  # new files per day, relative to the table root
    rows: int  # counted from the new files' footers
    data_files: list[DataFile] = field(default_factory=list)
    schema: Any = None  # the new files' Arrow schema (one of them: they share it)

    def expect(self, rows_read: int) -> None:
        """A commit never records fewer rows than the step read: fail before committing."""
        if self.rows != rows_read:
            days = sorted(self.files)
            raise LakeStateError(
                f"{self.table} {days[0]}..{days[-1]}: {self.rows} rows landed but {rows_read} "
                "were read: nothing was committed; re-run the step"
            )


def _partition_values(table: str, folder: str) -> dict[str, str]:
    values = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    return {c: values[c] for c in PARTITION_COLUMNS[table]}


class Writer:
    """Writes new versions of days of one table. Hold the writer lease around it."""

    def __init__(
        self, fs: LakeFS, table: str, lease: Lease, run_id: str, *, adopts_v02: bool = False
    ) -> None:
        self.fs, self.table, self.lease, self.run_id = fs, table, lease, run_id
        self.root = f"{fs.lake}/{table}"
        # Only `migrate` may start a Delta table over a v0.2 one; every other writer would hide
        # the v0.2 days behind an empty Delta table.
        self.adopts_v02 = adopts_v02
        self._loaded = None  # the table as this writer last saw it (the lease keeps it current)

    def _table(self):
        if self._loaded is None:
            self._loaded = self.fs.delta(self.table)
        else:
            self._loaded.update_incremental()
        return self._loaded

    def _data_files(self, folder: str) -> set[str]:
        """Data files under `folder` (relative to the table root); metadata names skipped."""
        rel = folder[len(self.root) :].strip("/")
        return {
            f"{rel}/{f}" if rel else f
            for f in self.fs.list_files(folder)
            if not any(p.startswith(("_", ".")) for p in f.split("/")) and f.endswith(".parquet")
        }

    def write(
        self,
        frame: DataFrame,
        days: list[dt.date],
        *,
        partition_by: list[str] | None = None,
        folder: str | None = None,
    ) -> Written:
        """Append `frame` under new file names, into `folder` (one day) or partitioned by
        `partition_by` under the table root. Nothing becomes visible to readers here."""
        target = folder or self.root
        before = self._data_files(target)
        writer = frame.write.mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(target)
        new = sorted(self._data_files(target) - before)
        _failpoint(self.table, "written")
        return self._written(days, new)

    def landed_in(self, days: list[dt.date], files: list[str]) -> Written:
        """Files Spark's tasks wrote under new names into partition folders of `days` (silver's
        tasks, with pyarrow: silver_task.py), counted from their footers. Not Spark's own writer:
        behind the S3A committer it cost ~45 ms of object-store round trips per file, and a day
        of silver is ~200 small files; these need no committer, they are invisible until
        `commit` adds them to the Delta log."""
        _failpoint(self.table, "written")
        return self._written(days, files)

    def landed(self, day: dt.date, files: list[str]) -> Written:
        """Files another engine wrote under new names into `day`'s folder (bronze's Arrow
        engine), counted from their footers. Nothing becomes visible to readers here."""
        for rel in files:
            if partition_date(rel) != day:
                raise LakeStateError(f"{self.table}: {rel} is not a file of the day {day}")
        return self.landed_in([day], files)

    def _written(self, days: list[dt.date], files: list[str]) -> Written:
        """New `files` grouped by day (each must belong to one of `days`), their rows counted
        from the Parquet footers, their sizes and times for the Delta log."""
        by_day: dict[dt.date, list[str]] = {d: [] for d in days}
        for rel in files:
            day = partition_date(rel)
            if day not in by_day:
                raise LakeStateError(
                    f"{self.table}: the write produced {rel}, outside the days {days}"
                )
            by_day[day].append(rel)
        data_files, schema = self.fs.describe_files(self.table, files)
        rows = sum(f.rows for f in data_files)
        by_day_sorted = {d: sorted(f) for d, f in by_day.items()}
        return Written(self.table, by_day_sorted, rows, data_files, schema)

    def commit(
        self,
        manifests: list[Manifest],
        written: Written | None = None,
        replace: Iterable[str] = (),
    ) -> int | None:
        """One Delta transaction: remove the current files of every partition folder in
        `replace` (and, when files are `written` to a table partitioned by date alone, of every
        day in `manifests`), add `written`'s files, and record the days' facts. Without `written`
        and `replace` only the facts change. Returns the new table version."""
        import time

        from deltalake import Schema
        from deltalake.transaction import (
            AddAction,
            CommitProperties,
            RemoveAction,
            create_table_with_add_actions,
        )

        if not manifests and not replace:
            return None
        replace = set(replace)
        if written is not None and PARTITION_COLUMNS[self.table] == ("date",):
            replace |= {f"date={m.date}" for m in manifests}
        # The lease is checked right before each log write below (and before a schema change).
        now = dt.datetime.now(dt.UTC)
        for m in manifests:
            m.table, m.run_id = self.table, self.run_id
            m.lease_token = self.lease.holder.token
            m.written_at = now.isoformat()
        facts_json = json.dumps(
            {"days": [m.facts() for m in manifests], "run_id": self.run_id}, sort_keys=True
        )
        adds = [
            AddAction(
                f.path,
                f.size,
                _partition_values(self.table, f.path.rsplit("/", 1)[0]),
                f.modified_ms,
                True,
                json.dumps({"numRecords": f.rows}),
            )
            for f in (written.data_files if written else [])
        ]
        properties = CommitProperties(custom_metadata={FACTS_KEY: facts_json})
        uri, options = self.fs.delta_uri(self.table), self.fs.delta_options()
        table = self._table()
        try:
            if table is None:
                v02 = f"{self.root}/_manifests/_current.json"
                if not self.adopts_v02 and self.fs.read_text(v02) is not None:
                    raise LakeStateError(
                        f"{self.table} in lake {self.fs.lake} was written by v0.2 (it has "
                        "_manifests/_current.json and no Delta log): run `deep-storage migrate "
                        f"--lake {self.fs.lake}` first"
                    )
                _failpoint(self.table, "manifests")
                self.lease.check()
                create_table_with_add_actions(
                    uri,
                    Schema.from_arrow(self._table_schema(written)),
                    adds,
                    mode="error",
                    partition_by=list(PARTITION_COLUMNS[self.table]),
                    configuration=TABLE_CONFIG,
                    storage_options=options,
                    commit_properties=properties,
                )
            else:
                self._evolve(table, written)
                deleted = int(time.time() * 1000)
                _, folders = snapshot_files(self.fs, self.table, loaded=table)
                removes = [
                    RemoveAction(rel, True, deleted, size, _partition_values(self.table, folder))
                    for folder in sorted(replace & set(folders))
                    for rel, size in folders[folder]
                ]
                _failpoint(self.table, "manifests")
                self.lease.check()
                table.create_write_transaction(
                    [*removes, *adds],
                    "append",
                    table.schema(),
                    partition_by=list(PARTITION_COLUMNS[self.table]),
                    commit_properties=properties,
                )
        except DeepStorageError:
            raise
        except Exception as exc:
            raise self.fs._fail(f"commit {self.table}", exc) from None
        table = self._table()
        version = table.version()
        log.info(
            "%s: committed %s as version %d",
            self.table,
            ", ".join(m.date for m in manifests),
            version,
        )
        _failpoint(self.table, "swapped")
        facts = _facts(self.fs)
        for m in manifests:
            m.version = version
            facts.days[(self.table, m.date)] = _manifest_from_facts(m.facts())
        facts.versions[self.table] = version
        _write_facts(self.fs, facts)
        return version

    def remove_days(self, days: list[dt.date]) -> int | None:
        """Retention: one transaction removing every file of `days`, and their facts."""
        import time

        from deltalake.transaction import CommitProperties, RemoveAction

        wanted = {d.isoformat() for d in days}
        table = self._table()
        if table is None or not wanted:
            return None
        self.lease.check()
        _, folders = snapshot_files(self.fs, self.table, loaded=table)
        deleted = int(time.time() * 1000)
        removes = [
            RemoveAction(rel, True, deleted, size, _partition_values(self.table, folder))
            for folder, files in sorted(folders.items())
            if (day := partition_date(folder)) is not None and day.isoformat() in wanted
            for rel, size in files
        ]
        facts_json = json.dumps({"removed": sorted(wanted), "run_id": self.run_id})
        try:
            table.create_write_transaction(
                removes,
                "append",
                table.schema(),
                partition_by=list(PARTITION_COLUMNS[self.table]),
                commit_properties=CommitProperties(custom_metadata={FACTS_KEY: facts_json}),
            )
        except Exception as exc:
            raise self.fs._fail(f"remove days from {self.table}", exc) from None
        version = self._table().version()
        _failpoint(self.table, "removed")
        facts = _facts(self.fs)
        for date in wanted:
            facts.days.pop((self.table, date), None)
        facts.versions[self.table] = version
        _write_facts(self.fs, facts)
        return version

    def _table_schema(self, written: Written | None):
        """A new table's schema: the files' columns, then the partition columns."""
        import pyarrow as pa

        if written is not None and written.schema is not None:
            source = written.schema
        else:  # a first commit without files (an empty day): the contract's columns
            from pyspark.sql.pandas.types import to_arrow_schema  # pure Python: no JVM

            from deep_storage.core import schemas

            source = to_arrow_schema(
                schemas.BRONZE_EVENTS_SCHEMA
                if self.table == BRONZE_EVENTS
                else schemas.SILVER_EXECUTIONS_SCHEMA
            )
        data = [f for f in source if f.name not in PARTITION_COLUMNS[self.table]]
        parts = [
            pa.field(c, pa.int64() if c == "client_id" else pa.date32())
            for c in PARTITION_COLUMNS[self.table]
        ]
        return pa.schema([*data, *parts])

    def _evolve(self, table, written: Written | None) -> None:
        """Schema evolution: columns the new files carry that the table lacks are added to the
        table's schema (Delta's own ALTER TABLE ADD COLUMNS), so older days read them as null."""
        import pyarrow as pa
        from deltalake import Schema

        if written is None or written.schema is None:
            return
        known = {f.name for f in table.schema().fields}
        new = [f for f in written.schema if f.name not in known]
        if new:
            self.lease.check()
            table.alter.add_columns(list(Schema.from_arrow(pa.schema(new)).fields))
            log.info("%s: schema evolved, new columns %s", self.table, [f.name for f in new])


def vacuum(
    fs: LakeFS, table: str, retention_hours: int | None = None, dry_run: bool = False
) -> list[str]:
    """Delete the table's files that no version within the retention window needs: superseded
    files older than it (Delta's own vacuum) and files no commit ever named that are older than
    it (a killed run's leftovers: `full` mode). Returns the files (to be) deleted."""
    data = fs.delta(table)
    if data is None:
        return []
    try:
        return sorted(
            data.vacuum(
                retention_hours=retention_hours,
                dry_run=dry_run,
                # Delta's safety check stays on unless a shorter window is asked for (tests).
                enforce_retention_duration=retention_hours is None
                or retention_hours >= _VACUUM_SAFE_HOURS,
                full=True,
            )
        )
    except Exception as exc:
        raise fs._fail(f"vacuum {table}", exc) from None
