"""Training sets, the notebook's and the steps' face: read a released version as pandas frames
(`training_set`), or build, judge and release one (`release_training_set`, what
`deep-storage training-set` runs).

    train, test = deep_storage.training_set("stop_outcome", "1.0.0")
    train.attrs["record"]["rows_sha256"]    # the version's record: spec, range, lineage, rules

What a set's rows are is decided in tables/training_sets.py, its rules in quality/gold_rules.py,
its commit in lake/releases.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deep_storage.core import config
from deep_storage.core.config import StoreConfig, resolve_lake
from deep_storage.core.errors import LakeStateError
from deep_storage.lake import LakeFS, releases, writer_lock
from deep_storage.lake.layout import TRAINING_SET_PARTITIONS
from deep_storage.tables import training_sets

if TYPE_CHECKING:
    import pandas as pd

    from deep_storage.quality.verdict import RuleResult


def training_set(
    name: str, version: str, lake: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the rows of the set's released `version`, each sorted by (date,
    execution_id), without the version and split columns. Each frame's `.attrs` holds the
    version's record (`attrs["record"]`), `attrs["name"]` and `attrs["version"]`.

    Args:
        name: the set, e.g. "stop_outcome" (tables/specs/{name}.toml).
        version: a released version, X.Y.Z.
        lake: s3a://BUCKET[/prefix] or file:///abs/path; default DEEP_STORAGE_LAKE, else
            s3a://$S3_BUCKET (the store's settings come from the AWS_* variables).
    """
    fs = LakeFS(resolve_lake(lake))
    released = releases.versions(fs, name)
    if version not in released:
        known = ", ".join(released) or "none"
        raise LakeStateError(
            f"training set {name} has no released version {version} in lake {fs.lake} "
            f"(released: {known}): pass one of those, or build it with `deep-storage "
            f"training-set --name {name} --version {version} --from D1 --to D2`"
        )
    record = releases.record(fs, name, version) or {}
    content = record.get("spec") or {}
    columns = None
    if "label" in content and "features" in content:
        columns = [*training_sets.KEYS, *content["features"], content["label"]]
    return tuple(  # type: ignore[return-value]
        _frame(fs, name, version, split, columns, record) for split in training_sets.SPLITS
    )


def _frame(fs: LakeFS, name: str, version: str, split: str, columns, record: dict):
    rows = releases.rows(fs, name, version, split, columns)
    rows = rows.drop_columns([c for c in TRAINING_SET_PARTITIONS if c in rows.column_names])
    frame = rows.sort_by([("date", "ascending"), ("execution_id", "ascending")]).to_pandas()
    frame.attrs.update({"record": record, "name": name, "version": version})
    return frame


@dataclass
class TrainingSetRelease:
    """What `release_training_set` did: "released" or "unchanged", the version's record (the
    stored one), the gold rules' results and their Markdown table."""

    outcome: str
    record: dict[str, Any]
    results: list[RuleResult] = field(default_factory=list)
    markdown: str = ""


def default_window(fs: LakeFS) -> tuple[dt.date, dt.date]:
    """(first, last) of a release without --from/--to: TRAINING_WINDOW_DAYS days ending the day
    before the newest day the gold features hold."""
    from deep_storage.core import defaults
    from deep_storage.lake import GOLD_FEATURES, committed

    days = committed(fs, GOLD_FEATURES, with_files=False)
    if not days:
        raise LakeStateError(
            f"lake {fs.lake} has no gold features: run `deep-storage gold` first, or pass "
            "--from and --to"
        )
    last = max(days) - dt.timedelta(days=1)
    return last - dt.timedelta(days=defaults.TRAINING_WINDOW_DAYS - 1), last


def release_training_set(
    name: str,
    version: str,
    first: dt.date | None,
    last: dt.date | None,
    test_from: dt.date | None = None,
    *,
    lake: str | None = None,
    store: StoreConfig | None = None,
    run_id: str | None = None,
) -> TrainingSetRelease:
    """Build version `version` of the set `name` from the gold features dated [first, last]
    (test split from `test_from`, default training_sets.split_day), judge it by the gold rules
    and release it under the lake's writer lease. Raises QualityGateError when a fail rule
    broke, ReleasedVersionError when the version was released with other rows.

    Args:
        name: the set, e.g. "stop_outcome".
        version: the new version, X.Y.Z; empty: the newest released one when the rows are
            the same, else the next patch version (training_sets.next_version).
        first: the range's first day (None, with `last`: default_window).
        last: the range's last day (inclusive).
        test_from: the test split's first day, in (first, last].
        lake: the lake (resolved like every step's).
        store: the object store's settings (default: from the environment).
        run_id: the run's id (default DEEP_STORAGE_RUN_ID, else a fresh one).
    """
    from deep_storage.io import object_store
    from deep_storage.quality import gold_rules

    spec = training_sets.spec(name)
    auto = not version.strip()
    if not auto:
        training_sets.check_version(version)
    uri, run_id = resolve_lake(lake), config.run_id(run_id)
    store = object_store.checked(uri, store)
    fs = LakeFS(uri, store)
    if first is None or last is None:
        first, last = default_window(fs)
    test_from = training_sets.split_day(first, last, test_from)
    days = f"{first}..{last}"
    # Built and judged from one version of the features (a snapshot: no lease needed to read);
    # only the check that the version is new and the commit need the lease.
    candidate = training_sets.build(fs, spec, first, last, test_from, version=version or "1.0.0")
    results = gold_rules.judge(candidate)
    with writer_lock.hold(uri, "training-set", days, run_id, store) as lease:
        if auto:  # under the lease: the newest released version cannot move meanwhile
            candidate = training_sets.next_version(fs, candidate)
        outcome = training_sets.release(fs, candidate, lease, run_id, results)
    record = releases.record(fs, name, candidate.version) or candidate.record
    return TrainingSetRelease(outcome, record, results, gold_rules.markdown(candidate, results))
