"""The lake's layout, day manifests and the commit protocol (lake-contract.md).

A day folder is committed when its `_MANIFEST.json` exists. Writers remove the manifest before
touching the day's files and write it last; readers take only days with a manifest and only the
files that manifest lists, so an interrupted write is never read as half a day.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from deep_storage.errors import StoreError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MANIFEST = "_MANIFEST.json"
BRONZE_EVENTS = "bronze/events"
SILVER_EXECUTIONS = "silver/stop_executions"
QUARANTINE = "quarantine"
QUALITY = "_quality"


def day_uri(lake: str, table: str, day: dt.date) -> str:
    return f"{lake}/{table}/date={day.isoformat()}"


@dataclass
class Manifest:
    """The commit marker of one day of one table."""

    date: str
    rows: int
    sealed: bool
    files: list[str]
    run_id: str
    written_at: str
    table: str = BRONZE_EVENTS
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class LakeFS:
    """File operations on the lake through Hadoop's FileSystem API, so s3a:// and file:// lakes
    go through the same code and the same S3A settings as Spark's own reads and writes."""

    def __init__(self, spark: SparkSession, lake: str) -> None:
        self.spark = spark
        self.lake = lake
        jvm = spark.sparkContext._jvm
        self._Path = jvm.org.apache.hadoop.fs.Path
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._call("open the lake", lambda: self._Path(lake).getFileSystem(conf))

    def _call(self, what: str, fn):
        from py4j.protocol import Py4JJavaError

        try:
            return fn()
        except Py4JJavaError as exc:
            java = exc.java_exception
            message = str(java.getMessage() or java.getClass().getName()).splitlines()[0]
            raise StoreError(f"{what} in lake {self.lake} failed: {message[:300]}") from None

    def exists(self, uri: str) -> bool:
        return bool(self._call(f"check {uri}", lambda: self._fs.exists(self._Path(uri))))

    def delete(self, uri: str, recursive: bool = False) -> None:
        self._call(f"delete {uri}", lambda: self._fs.delete(self._Path(uri), recursive))

    def read_text(self, uri: str) -> str | None:
        def read():
            path = self._Path(uri)
            if not self._fs.exists(path):
                return None
            stream = self._fs.open(path)
            try:
                jvm = self.spark.sparkContext._jvm
                data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
            finally:
                stream.close()
            return bytes(data).decode("utf-8")

        return self._call(f"read {uri}", read)

    def write_text(self, uri: str, text: str) -> None:
        def write():
            stream = self._fs.create(self._Path(uri), True)
            try:
                stream.write(bytearray(text.encode("utf-8")))
            finally:
                stream.close()

        self._call(f"write {uri}", write)

    def list_names(self, uri: str) -> list[str]:
        """Names of the entries directly under `uri` ([] if it does not exist)."""

        def listing():
            path = self._Path(uri)
            if not self._fs.exists(path):
                return []
            return sorted(str(s.getPath().getName()) for s in self._fs.listStatus(path))

        return self._call(f"list {uri}", listing)

    def glob(self, pattern: str) -> list[str]:
        """Full URIs matching a Hadoop glob (`*`, `{a,b}`), sorted; [] when nothing matches."""

        def globbing():
            found = self._fs.globStatus(self._Path(pattern))
            return sorted(str(s.getPath().toString()) for s in (found or []))

        return self._call(f"list {pattern}", globbing)

    # --- days and manifests -------------------------------------------------------------

    def manifest(self, table: str, day: dt.date) -> Manifest | None:
        """The day's manifest, or None when the day is absent or not committed."""
        text = self.read_text(f"{day_uri(self.lake, table, day)}/{MANIFEST}")
        if text is None:
            return None
        try:
            return Manifest.from_json(text)
        except (ValueError, TypeError, KeyError):
            return None  # a torn manifest is no commit: the day gets re-written

    def day_folders(self, table: str) -> list[dt.date]:
        days = []
        for name in self.list_names(f"{self.lake}/{table}"):
            if name.startswith("date="):
                try:
                    days.append(dt.date.fromisoformat(name[5:]))
                except ValueError:
                    continue
        return sorted(days)

    def begin_day(self, table: str, day: dt.date) -> str:
        """Un-commit a day before its files change. Returns the day's folder."""
        folder = day_uri(self.lake, table, day)
        self.delete(f"{folder}/{MANIFEST}")
        return folder

    def data_files(self, folder: str) -> list[str]:
        return [n for n in self.list_names(folder) if not n.startswith(("_", "."))]

    def commit_day(self, manifest: Manifest) -> None:
        folder = day_uri(self.lake, manifest.table, dt.date.fromisoformat(manifest.date))
        self.write_text(f"{folder}/{MANIFEST}", manifest.to_json())

    def committed_files(self, table: str, day: dt.date) -> tuple[Manifest, list[str]] | None:
        m = self.manifest(table, day)
        if m is None:
            return None
        folder = day_uri(self.lake, table, day)
        return m, [f"{folder}/{name}" for name in m.files]
