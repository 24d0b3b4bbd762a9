"""The lake's layout and its one commit protocol, for every table.

A table (bronze/events, silver/stop_executions) is a folder of Parquet files under Hive-style
partition folders, plus `_manifests/`:

    {table}/_manifests/_current.json            the table's version: date -> that day's manifest
    {table}/_manifests/date=D/m-<id>.json       one day's manifest: its files, rows, sealed, ...

The commit protocol (the only code that writes manifests or deletes data files):
1. `Writer.write`: Spark appends new files under new names (the write job's unique names); the
   current version still lists only the old files, so readers see the old day, complete.
2. The files that landed are listed and their rows counted from the Parquet footers; a count
   lower than the rows the step read fails the run, and nothing is committed.
3. `Writer.commit`: each day's manifest is written under a new name, then `_current.json` is
   replaced in one PUT to point at them: every day of the commit switches at the same instant.
4. Files and manifests no longer listed (superseded, or left by a killed run) are deleted.

A run killed at any moment leaves the previous version intact; whatever it wrote is unlisted and
the next run that writes those days deletes it. Only the holder of the writer lease
(writer_lock.py) writes, so read-modify-write of `_current.json` is safe.
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
from urllib.parse import urlsplit

from deep_storage.config import StoreConfig, lake_bucket, redact
from deep_storage.errors import LakeStateError, StoreError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from deep_storage.writer_lock import Lease

log = logging.getLogger(__name__)

BRONZE_EVENTS = "bronze/events"
SILVER_EXECUTIONS = "silver/stop_executions"
QUARANTINE = "quarantine"
QUALITY = "_quality"
MANIFESTS = "_manifests"
CURRENT = "_current.json"
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
    """One committed day of one table."""

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
            from deep_storage.object_store import s3_client

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
                from deep_storage.object_store import arrow_s3

                root = f"{self.bucket}/{self._prefix}" if self._prefix else self.bucket
                self._arrow = (arrow_s3(self._store), root)
        return self._arrow

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

    def parquet_rows(self, uris: list[str]) -> int:
        """Rows in the Parquet files `uris`, from their footers (a ranged read each)."""
        import pyarrow.parquet as pq

        afs, root = self.arrow()

        def rows(uri: str) -> int:
            try:
                return pq.read_metadata(f"{root}/{self._rel(uri)}", filesystem=afs).num_rows
            except OSError as exc:
                raise self._fail(f"read the footer of {uri}", exc) from None

        if len(uris) <= 2:
            return sum(map(rows, uris))
        with ThreadPoolExecutor(_PARALLEL) as pool:
            return sum(pool.map(rows, uris))

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


# --- reading committed versions --------------------------------------------------------------


def _current_uri(lake: str, table: str) -> str:
    return f"{lake}/{table}/{MANIFESTS}/{CURRENT}"


def current_version(fs: LakeFS, table: str) -> dict[str, str]:
    """date (ISO) -> manifest path relative to the table root, for every committed day."""
    text = fs.read_text(_current_uri(fs.lake, table))
    if text is None:
        return {}
    try:
        return dict(json.loads(text)["dates"])
    except (ValueError, KeyError, TypeError):
        raise LakeStateError(
            f"{_current_uri(fs.lake, table)} is not a version file: restore it from the "
            "object store's versioning, or rebuild the table"
        ) from None


def committed(
    fs: LakeFS, table: str, days: Iterable[dt.date] | None = None
) -> dict[dt.date, Manifest]:
    """The manifests of the committed days among `days` (all days when None)."""
    version = current_version(fs, table)
    wanted = (
        sorted(version)
        if days is None
        else [d.isoformat() for d in days if d.isoformat() in version]
    )

    def load(date: str) -> tuple[dt.date, Manifest]:
        uri = f"{fs.lake}/{table}/{version[date]}"
        text = fs.read_text(uri)
        if text is None:
            raise LakeStateError(f"{table} day {date}: its manifest {uri} is missing")
        return dt.date.fromisoformat(date), Manifest.from_json(text)

    if len(wanted) <= 2:
        return dict(map(load, wanted))
    with ThreadPoolExecutor(_PARALLEL) as pool:
        return dict(pool.map(load, wanted))


def manifest(fs: LakeFS, table: str, day: dt.date) -> Manifest | None:
    return committed(fs, table, [day]).get(day)


def newest_event(fs: LakeFS, table: str) -> dt.datetime | None:
    """The newest event time a committed day of `table` records (its manifest's
    details.newest_event_at), looking from the newest day back."""
    for date in sorted(current_version(fs, table), reverse=True):
        m = committed(fs, table, [dt.date.fromisoformat(date)]).get(dt.date.fromisoformat(date))
        newest = m.details.get("newest_event_at") if m else None
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
    bigint, date date). Only files a committed manifest lists are opened."""
    manifests = committed(fs, table, days).values()
    return read_files(spark, fs, table, schema, file_uris(fs, manifests))


def read_files(
    spark: SparkSession, fs: LakeFS, table: str, schema: StructType, files: list[str]
) -> DataFrame:
    """`files` (URIs of the table's data files) as one DataFrame with the partition columns."""
    from pyspark.sql import functions as F

    partition_columns = ["client_id", "date"] if table == SILVER_EXECUTIONS else ["date"]
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


# --- writing: the commit protocol ------------------------------------------------------------


def _failpoint(table: str, point: str) -> None:
    """Kill this process at a named point of the protocol when DEEP_STORAGE_KILL_AT names it
    (`table:point`), so tests can prove a kill at each point loses nothing. Off by default."""
    wanted = os.environ.get("DEEP_STORAGE_KILL_AT")
    if wanted and wanted == f"{table.split('/', 1)[0]}:{point}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Written:
    """What one write left under the table, not yet committed."""

    table: str
    files: dict[dt.date, list[str]]  # new files per day, relative to the table root
    rows: int  # counted from the new files' footers

    def expect(self, rows_read: int) -> None:
        """A commit never records fewer rows than the step read: fail before committing."""
        if self.rows != rows_read:
            days = sorted(self.files)
            raise LakeStateError(
                f"{self.table} {days[0]}..{days[-1]}: {self.rows} rows landed but {rows_read} "
                "were read: nothing was committed; re-run the step"
            )


class Writer:
    """Writes new versions of days of one table. Hold the writer lease around it."""

    def __init__(self, fs: LakeFS, table: str, lease: Lease, run_id: str) -> None:
        self.fs, self.table, self.lease, self.run_id = fs, table, lease, run_id
        self.root = f"{fs.lake}/{table}"
        self._listed: set[str] | None = None  # data files the last write saw, table-relative

    def _data_files(self, folder: str) -> set[str]:
        """Data files under `folder` (relative to the table root); metadata names skipped."""
        rel = folder[len(self.root) :].strip("/")
        return {
            f"{rel}/{f}" if rel else f
            for f in self.fs.list_files(folder)
            if not any(p.startswith(("_", ".")) for p in f.split("/"))
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
        after = self._data_files(target)
        new = sorted(after - before)
        # Under the lease nothing else writes data files: `clean` reuses this listing.
        self._listed = after
        _failpoint(self.table, "written")
        return self._written(days, new)

    def write_partitioned(
        self,
        frame: DataFrame,
        days: list[dt.date],
        *,
        partition_by: tuple[str, str],
        sort_by: list[str],
    ) -> Written:
        """Write `frame` as one new Parquet file per (partition_by) value, from inside the Spark
        tasks with pyarrow (arrow_write.py), under new names. Nothing becomes visible here.

        Not Spark's own writer: behind the S3A committer it cost ~45 ms of object-store round
        trips per file, and a day of silver is ~200 small files. The files need no committer:
        they are invisible until `commit` lists them in a manifest."""
        from deep_storage import arrow_write

        landed = arrow_write.write_partitions(
            frame, self.fs, self.table, partition_by, sort_by, self.fs.store
        )
        self._listed = self._data_files(self.root)
        _failpoint(self.table, "written")
        return self._written(days, landed)

    def _written(self, days: list[dt.date], files: list[str]) -> Written:
        """New `files` grouped by day (each must belong to one of `days`), their rows counted
        from the Parquet footers."""
        by_day: dict[dt.date, list[str]] = {d: [] for d in days}
        for rel in files:
            day = partition_date(rel)
            if day not in by_day:
                raise LakeStateError(
                    f"{self.table}: the write produced {rel}, outside the days {days}"
                )
            by_day[day].append(rel)
        rows = self.fs.parquet_rows([f"{self.root}/{f}" for f in files])
        return Written(self.table, {d: sorted(f) for d, f in by_day.items()}, rows)

    def landed(self, day: dt.date, files: list[str]) -> Written:
        """Files another engine wrote under new names into `day`'s folder (bronze's Arrow
        engine), counted from their footers. Nothing becomes visible to readers here."""
        for rel in files:
            if partition_date(rel) != day:
                raise LakeStateError(f"{self.table}: {rel} is not a file of the day {day}")
        self._listed = self._data_files(day_uri(self.fs.lake, self.table, day))
        _failpoint(self.table, "written")
        return self._written([day], files)

    def commit(self, manifests: list[Manifest]) -> None:
        """Make `manifests` the current version of their days, in one swap, then delete what no
        version lists any more in those days (superseded files, a killed run's leftovers)."""
        if not manifests:
            return
        self.lease.check()
        version = current_version(self.fs, self.table)
        for m in manifests:
            m.table, m.run_id = self.table, self.run_id
            m.lease_token = self.lease.holder.token
            m.written_at = dt.datetime.now(dt.UTC).isoformat()
            rel = f"{MANIFESTS}/date={m.date}/m-{uuid.uuid4().hex[:16]}.json"
            self.fs.write_text(f"{self.root}/{rel}", m.to_json())
            version[m.date] = rel
        _failpoint(self.table, "manifests")
        self.lease.check()
        self.fs.write_text(
            _current_uri(self.fs.lake, self.table),
            json.dumps(
                {
                    "dates": dict(sorted(version.items())),
                    "run_id": self.run_id,
                    "updated_at": dt.datetime.now(dt.UTC).isoformat(),
                },
                indent=1,
            )
            + "\n",
        )
        log.info("%s: committed %s", self.table, ", ".join(m.date for m in manifests))
        _failpoint(self.table, "swapped")
        self.clean([dt.date.fromisoformat(m.date) for m in manifests])
        self._listed = None  # it covered only this write's target

    def clean(self, days: list[dt.date]) -> None:
        """Delete files of `days` that the current version does not list."""
        version = current_version(self.fs, self.table)
        wanted = {d.isoformat() for d in days}
        keep = {f for m in committed(self.fs, self.table, days).values() for f in m.files}
        keep |= set(version.values())
        data = self._listed if self._listed is not None else self._data_files(self.root)
        manifests = {f"{MANIFESTS}/{f}" for f in self.fs.list_files(f"{self.root}/{MANIFESTS}")}
        stale = [
            rel
            for rel in sorted(data | manifests)
            if rel not in keep
            and (day := partition_date(rel)) is not None
            and day.isoformat() in wanted
        ]
        self.fs.delete_files(f"{self.root}/{rel}" for rel in stale)
        if stale:
            log.info("%s: deleted %d superseded or orphaned files", self.table, len(stale))
