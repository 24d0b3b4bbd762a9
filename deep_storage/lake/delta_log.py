"""The one reader of the Delta log by version: a commit's own entry (`_delta_log/N.json`), its
commitInfo, the day facts our commits carry in it, and when it was committed.

delta-rs's `DeltaTable.history()` is enough to list a table's recent commits (lake/releases.py
uses it). It is not enough to name one version's commit: it numbers the entries from the version
it loaded, so a commit that lands meanwhile would be misnamed; and it does not say when a
version became readable the way Delta's time travel counts it (the entry file's time)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from deep_storage.lake.layout import FACTS_KEY
from deep_storage.lake.storage import LakeFS


def entry_path(table: str, version: int) -> str:
    """A version's log entry, relative to the lake."""
    return f"{table}/_delta_log/{version:020d}.json"


def commit_info(fs: LakeFS, table: str, version: int) -> dict[str, Any] | None:
    """The commitInfo of `version`; {} when its entry has none, None when the entry is gone
    (before the oldest log kept)."""
    text = fs.read_text(f"{fs.lake}/{entry_path(table, version)}")
    if text is None:
        return None
    for line in text.splitlines():
        if '"commitInfo"' in line and "commitInfo" in (action := json.loads(line)):
            return action["commitInfo"]
    return {}


def commit_facts(fs: LakeFS, table: str, version: int) -> dict[str, Any] | None:
    """The day facts a commit of ours carried ({"days": [...], "removed": [...], "run_id"}), or
    None for a commit without them (another writer's, a vacuum) or an entry that is gone."""
    info = commit_info(fs, table, version)
    return json.loads(info[FACTS_KEY]) if info and FACTS_KEY in info else None


def facts_back(fs: LakeFS, table: str, version: int) -> Iterator[tuple[int, dict | None]]:
    """(version, its commit_facts) from `version` back to the oldest entry kept."""
    for at in range(version, -1, -1):
        info = commit_info(fs, table, at)
        if info is None:
            return
        yield at, json.loads(info[FACTS_KEY]) if FACTS_KEY in info else None


def commit_time(fs: LakeFS, table: str, version: int) -> dt.datetime | None:
    """When `version` was committed, as Delta's time travel counts it: its entry file's time
    (UTC). None when the entry is gone."""
    from pyarrow import fs as pafs

    afs, root = fs.arrow()
    info = afs.get_file_info(f"{root}/{entry_path(table, version)}")
    if info.type == pafs.FileType.NotFound or info.mtime is None:
        return None
    mtime = info.mtime
    return mtime if mtime.tzinfo else mtime.replace(tzinfo=dt.UTC)
