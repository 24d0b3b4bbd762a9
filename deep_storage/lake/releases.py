"""Training sets' releases: the commit path of `{lake}/gold/training_sets/{name}`, and the reads
of what was released.

    {lake}/gold/training_sets/{name}/                       Delta, partitioned by version, split
        version=1.0.0/split=train/part-train-....parquet     the rows (no partition columns)
        version=1.0.0/split=test/part-test-....parquet
        _versions/1.0.0.json                                 the version's record

A release (`commit`), under the caller's writer lease:
1. the version's record is written to `_versions/{version}.json` (a record whose version has no
   committed rows means "not released": the rows are the truth);
2. each split's rows are written with pyarrow under new names into their partition folder, and
   counted from the Parquet footers (no reader sees them yet);
3. ONE Delta transaction adds both splits' files, with the record in the commit's metadata
   (RELEASE_KEY). A run killed before it leaves files no log entry names: invisible, and
   vacuum's full mode deletes them once they are older than its window.

A version is immutable: nothing here removes a file of a table, and retention never touches gold
(retention.TABLES is bronze and silver). The log of a training set is kept ~100 years
(`delta.logRetentionDuration`), and the record file outlives even that.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from deep_storage.core.errors import DeepStorageError, LakeStateError
from deep_storage.lake.layout import TABLE_CONFIG, TRAINING_SET_PARTITIONS, TRAINING_SETS
from deep_storage.lake.storage import DataFile, LakeFS
from deep_storage.lake.writer import _failpoint, add_actions, add_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from deep_storage.lake.writer_lock import Lease

RELEASE_KEY = "deep_storage_training_set"  # the commit-metadata key holding a version's record
RECORDS = "_versions"  # the records' folder inside the table (Delta readers skip "_" folders)
# Released sets are kept for good: the log entries naming their files must outlive Delta's
# 30-day default, or a reader that lost the record would lose the commit's copy of it too.
TRAINING_SET_CONFIG = {**TABLE_CONFIG, "delta.logRetentionDuration": "interval 36500 days"}
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


def table_of(name: str) -> str:
    """The training set's table, relative to the lake root."""
    return f"{TRAINING_SETS}/{name}"


def record_uri(fs: LakeFS, name: str, version: str) -> str:
    return f"{fs.lake}/{table_of(name)}/{RECORDS}/{version}.json"


def semver(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of an X.Y.Z version (digits, no leading zeros), else None."""
    found = _SEMVER.fullmatch(version)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def versions(fs: LakeFS, name: str) -> list[str]:
    """The set's released versions (those with committed rows), oldest first."""
    table = fs.delta(table_of(name))
    if table is None:
        return []
    found = {p["version"] for p in table.partitions()}
    return sorted(found, key=lambda v: semver(v) or (-1, -1, -1))


def record(fs: LakeFS, name: str, version: str) -> dict[str, Any] | None:
    """The version's record: its `_versions/` file, else the copy in its release commit's
    metadata (None when neither is there)."""
    text = fs.read_text(record_uri(fs, name, version))
    if text is not None:
        return json.loads(text)
    table = fs.delta(table_of(name))
    for commit in table.history() if table is not None else []:
        if RELEASE_KEY in commit:
            found = json.loads(commit[RELEASE_KEY])
            if found.get("version") == version:
                return found
    return None


def rows(
    fs: LakeFS, name: str, version: str, split: str | None = None, columns: list[str] | None = None
) -> pa.Table:
    """The committed rows of `version` (one `split`, or both), as delta-rs reads them: the
    partition filters prune every other version's and split's files."""
    table = fs.delta(table_of(name))
    if table is None:
        raise LakeStateError(f"lake {fs.lake} has no training set {name}")
    filters = [("version", "=", version)] + ([("split", "=", split)] if split else [])
    return fs.scan(table_of(name), table, columns=columns, filters=filters)


def commit(
    fs: LakeFS, name: str, version: str, data: pa.Table, record: dict[str, Any], lease: Lease
) -> int:
    """Release `version`: write its record, land `data`'s rows (a `split` column says which
    partition each goes to) and add them in one Delta transaction. Returns the table version.
    The caller holds the writer lease and has checked the version is not released yet."""
    from deltalake.transaction import CommitProperties

    table_name = table_of(name)
    fs.write_text(record_uri(fs, name, version), json.dumps(record, indent=1, sort_keys=True))
    files, schema = _land(fs, table_name, version, data)
    _failpoint(table_name, "written")
    properties = CommitProperties(custom_metadata={RELEASE_KEY: json.dumps(record, sort_keys=True)})
    adds = add_actions(files, lambda folder: dict(p.split("=", 1) for p in folder.split("/")))
    table = fs.delta(table_name)
    try:
        if table is None:
            _create(fs, table_name, schema, adds, properties, lease)
        else:
            _append(table, schema, adds, properties, lease)
    except DeepStorageError:
        raise
    except Exception as exc:
        raise fs._fail(f"commit {table_name} {version}", exc) from None
    _failpoint(table_name, "swapped")
    return fs.delta(table_name, without_files=True).version()


def _land(fs: LakeFS, table: str, version: str, data: pa.Table) -> tuple[list[DataFile], Any]:
    """Each split's rows in one new file under `version=V/split=S/`, counted from the footers;
    returns the files and the table's schema (the files' columns, then the partitions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from deep_storage.io.parquet_files import new_name, write_file

    afs, root = fs.arrow()
    target = data.drop_columns(["split"]).schema
    tag = uuid.uuid4().hex[:12]
    written = []
    for split in sorted(set(data.column("split").to_pylist())):
        relpath = f"version={version}/split={split}/{new_name(split, 0, tag)}"
        write_file(
            afs, f"{root}/{table}", relpath, data.filter(pc.equal(data["split"], split)), target
        )
        written.append(relpath)
    files, _ = fs.describe_files(table, written)
    if sum(f.rows for f in files) != data.num_rows:
        raise LakeStateError(
            f"{table} {version}: {sum(f.rows for f in files)} rows landed but {data.num_rows} "
            "were built: nothing was committed; build the version again"
        )
    parts = [pa.field(c, pa.string()) for c in TRAINING_SET_PARTITIONS]
    return files, pa.schema([*target, *parts])


def _create(fs: LakeFS, table: str, schema, adds: list, properties, lease: Lease) -> None:
    """The set's first release creates its table."""
    from deltalake import Schema
    from deltalake.transaction import create_table_with_add_actions

    lease.check()
    create_table_with_add_actions(
        fs.delta_uri(table),
        Schema.from_arrow(schema),
        adds,
        mode="error",
        partition_by=list(TRAINING_SET_PARTITIONS),
        configuration=TRAINING_SET_CONFIG,
        storage_options=fs.delta_options(),
        commit_properties=properties,
    )


def _append(table, schema, adds: list, properties, lease: Lease) -> None:
    """A later release adds its files; columns it brings that the table lacks (a feature the
    spec gained) are added to the table's schema first, so older versions read them as null."""
    add_columns(table, schema, lease)
    lease.check()
    table.create_write_transaction(
        adds,
        "append",
        table.schema(),
        partition_by=list(TRAINING_SET_PARTITIONS),
        commit_properties=properties,
    )
