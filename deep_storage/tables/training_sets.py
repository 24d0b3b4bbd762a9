"""Training sets: which executions are a set's rows, how they split, what identifies a version's
rows, and whether a version may be released. Where a training set's rows are decided.

A set is defined by its spec file, `deep_storage/tables/specs/{name}.toml` (features, label,
filters: plain TOML that people read and diff). A version of it holds:
- rows: the gold features' executions dated [D1, D2] whose label was known when the set was
  built (the label is not NULL in the features table's version read), that pass the spec's
  filters; each with `execution_id`, `execution_token`, `date`, `as_of`, the spec's features, its
  label and `split`;
- the split, by time: `train` is date < D3, `test` is date >= D3 (D3 defaults to the first day
  of the range's last fifth: `split_day`). An execution is in one split only;
- its identity, `rows_sha256` (`rows_sha256` below defines it exactly), kept in its record.

A version is immutable: building a released version again changes nothing when its rows are
identical, and is refused when they differ (`release`). The commit itself is the lake's
(lake/releases.py); the rules that judge a candidate are quality's (quality/gold_rules.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deep_storage.core import defaults
from deep_storage.core.errors import InputError, LakeStateError, QualityGateError
from deep_storage.core.version import __version__
from deep_storage.lake import FACTS_KEY, LakeFS, commit_info, releases
from deep_storage.lake.layout import GOLD_FEATURES

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from deep_storage.lake.writer_lock import Lease

SPECS = Path(__file__).parent / "specs"
KEYS = ("execution_id", "execution_token", "date", "as_of")  # every set's first columns
SPLITS = ("train", "test")


class ReleasedVersionError(LakeStateError):
    """A released version was built again with other rows: versions are immutable."""


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    label: str
    features: tuple[str, ...]
    filters: dict[str, tuple[Any, ...]]  # column -> the values a row may hold (TOML's types)
    content: dict[str, Any] = field(repr=False)  # the spec file, parsed: the record keeps it

    @property
    def columns(self) -> list[str]:
        """A version's columns before `split`: the keys, the features, the label."""
        return [*KEYS, *self.features, self.label]


@dataclass(frozen=True)
class Candidate:
    """A version as built, not released: its rows (`spec.columns` + `split`, sorted by
    execution_id then split) and its record without the rules' results."""

    spec: Spec
    version: str
    rows: pa.Table
    record: dict[str, Any]


def known() -> list[str]:
    """The sets the repository defines: one spec file each."""
    return sorted(p.stem for p in SPECS.glob("*.toml"))


def spec(name: str) -> Spec:
    """The set `name`'s spec, read from its file."""
    path = SPECS / f"{name}.toml"
    if name not in known():
        raise InputError(
            f"unknown training set {name!r}: expected one of {', '.join(known())} "
            f"(their specs are in {SPECS})"
        )
    content = tomllib.loads(path.read_text("utf-8"))
    try:
        filters = {str(c): tuple(values) for c, values in content["filters"].items()}
        found = Spec(
            name=content["name"],
            description=content["description"],
            label=content["label"],
            features=tuple(content["features"]),
            filters=filters,
            content=content,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"training set spec {path} is not valid ({exc!r}): it needs name, description, "
            "label, features = [...] and a [filters] table of column = [values]"
        ) from None
    if found.name != name or not found.features or found.label in found.features:
        raise InputError(
            f"training set spec {path}: its name must be {name!r}, it needs at least one "
            "feature, and its label may not be one of its features"
        )
    return found


def check_version(version: str) -> str:
    if releases.semver(version) is None:
        raise InputError(
            f"training set version {version!r} is not X.Y.Z (three whole numbers, no leading "
            "zeros): pass e.g. --version 1.0.0"
        )
    return version


def split_day(d1: dt.date, d2: dt.date, d3: dt.date | None = None) -> dt.date:
    """The test split's first day, D3: train is [d1, D3), test [D3, d2]. By default the first
    day of the range's last fifth (defaults.TEST_FRACTION): D3 = d1 + floor(n * (1 - 0.2))
    days for a range of n days, computed exactly (10 days -> d1 + 8, 90 -> d1 + 72)."""
    if d2 < d1:
        raise InputError(f"training set range {d1}..{d2} ends before it starts: swap them")
    days = (d2 - d1).days + 1
    if days < 2:
        raise InputError(
            f"training set range {d1}..{d2} has 1 day: a train and a test split need at least "
            "2 days; widen --from/--to"
        )
    if d3 is None:
        offset = math.floor(days * (1 - Fraction(str(defaults.TEST_FRACTION))))
        return d1 + dt.timedelta(days=min(max(offset, 1), days - 1))
    if not d1 < d3 <= d2:
        raise InputError(
            f"--test-from {d3} is outside ({d1}, {d2}]: the test split must start after the "
            f"range's first day and no later than its last; pass a day in {d1 + dt.timedelta(1)}"
            f"..{d2}, or leave it out for the default {split_day(d1, d2)}"
        )
    return d3


def build(
    fs: LakeFS,
    spec: Spec,
    d1: dt.date,
    d2: dt.date,
    d3: dt.date | None = None,
    *,
    version: str,
) -> Candidate:
    """Version `version` of the set as the features table's current version makes it."""
    check_version(version)
    d3 = split_day(d1, d2, d3)
    table = fs.delta(GOLD_FEATURES)
    if table is None:
        raise LakeStateError(
            f"lake {fs.lake} has no {GOLD_FEATURES} table: build the gold features for "
            f"{d1}..{d2} first"
        )
    features_version = table.version()
    present = set(table.schema().to_arrow().names)
    missing = [c for c in [*spec.columns, *spec.filters] if c not in present]
    if missing:
        raise LakeStateError(
            f"{GOLD_FEATURES} (version {features_version}) lacks {missing}, which training set "
            f"{spec.name} needs: rebuild the gold features with the current code"
        )
    columns = list(dict.fromkeys([*spec.columns, *spec.filters]))
    features = fs.scan(
        GOLD_FEATURES, table, columns=columns, filters=[("date", ">=", d1), ("date", "<=", d2)]
    )
    lineage = {
        "features_version": features_version,
        "silver_version": _silver_version(fs, features_version),
    }
    return assemble(spec, version, features, d1, d2, d3, lineage)


def _silver_version(fs: LakeFS, features_version: int) -> int | None:
    """The silver version the features' commit was built from: its metadata's FACTS_KEY JSON
    holds each built day's facts, whose details name the silver version read (gold.py). None
    when the commit does not say."""
    found = (commit_info(fs, GOLD_FEATURES, features_version) or {}).get(FACTS_KEY)
    try:
        facts = json.loads(found) if found else {}
        named = [d.get("details", {}).get("silver_version") for d in facts.get("days", [])]
    except (ValueError, AttributeError):
        return None
    named = [v for v in named if v is not None]
    return max(named) if named else None


def assemble(
    spec: Spec,
    version: str,
    features: pa.Table,
    d1: dt.date,
    d2: dt.date,
    d3: dt.date,
    lineage: dict[str, Any],
) -> Candidate:
    """The candidate from rows of the features table (`lineage`: features_version and
    silver_version): its rows and its record, without the rules' results."""
    rows = select(spec, features, d1, d2, d3)
    if rows.num_rows == 0:
        raise LakeStateError(
            f"training set {spec.name} {version}: no execution dated {d1}..{d2} has a known "
            f"{spec.label} in {GOLD_FEATURES} (version {lineage.get('features_version')}): "
            "build the gold features for that range, or pick another"
        )
    record = {
        "name": spec.name,
        "version": version,
        "spec": spec.content,
        "from": d1.isoformat(),
        "to": d2.isoformat(),
        "test_from": d3.isoformat(),
        "rows": {s: _split(rows, s).num_rows for s in SPLITS},
        "positive_share": {
            **{s: positive_share(_split(rows, s), spec.label) for s in SPLITS},
            "overall": positive_share(rows, spec.label),
        },
        "rows_sha256": rows_sha256(rows),
        "code_version": __version__,
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
        "features_table": GOLD_FEATURES,
        "features_version": lineage.get("features_version"),
        "silver_version": lineage.get("silver_version"),
    }
    return Candidate(spec, version, rows, record)


def select(spec: Spec, features: pa.Table, d1: dt.date, d2: dt.date, d3: dt.date) -> pa.Table:
    """The set's rows of `features`: dated [d1, d2], label known, the spec's filters held; with
    `split` (train: date < d3, test: date >= d3); sorted by execution_id, then split."""
    import pyarrow as pa
    import pyarrow.compute as pc

    day = features["date"]
    keep = pc.and_(
        pc.and_(
            pc.greater_equal(day, pa.scalar(d1, day.type)),
            pc.less_equal(day, pa.scalar(d2, day.type)),
        ),
        pc.is_valid(features[spec.label]),
    )
    for column, values in spec.filters.items():
        keep = pc.and_(keep, pc.is_in(features[column], pa.array(values, features[column].type)))
    kept = features.filter(pc.fill_null(keep, False)).select(spec.columns)
    test = pc.greater_equal(kept["date"], pa.scalar(d3, kept["date"].type))
    split = pc.if_else(test, pa.scalar("test"), pa.scalar("train"))
    rows = kept.append_column("split", split)
    return rows.sort_by([("execution_id", "ascending"), ("split", "ascending")])


def _split(rows: pa.Table, split: str) -> pa.Table:
    import pyarrow.compute as pc

    return rows.filter(pc.equal(rows["split"], split))


def positive_share(rows: pa.Table, label: str) -> float | None:
    """The share of rows whose label is true (None for no rows)."""
    import pyarrow.compute as pc

    if rows.num_rows == 0:
        return None
    return pc.sum(pc.cast(rows[label], "int64")).as_py() / rows.num_rows


def rows_sha256(rows: pa.Table) -> str:
    """The identity of a version's rows: SHA-256 over the rows sorted by execution_id, then
    split (by their UTF-8 bytes), column by column in the table's order. Per column, its name
    (UTF-8, then a 0 byte), one byte per row (1 valid, 0 null), then its values with each null
    as zero or "": integers, dates (days) and timestamps (UTC microseconds) as little-endian
    int64, booleans as one byte, floats as their IEEE-754 little-endian bytes (-0.0 as 0.0,
    every NaN as one), decimals as their text with its scale ("1.2300"), and strings, decimals'
    text included, as a little-endian uint32 length and the UTF-8 bytes of each. Exact values,
    no formatting of floats, so it depends neither on the Parquet files nor on a library's
    version; and one pass of array operations (a 90-day set hashes in about a second)."""
    import numpy as np
    import pyarrow as pa

    ordered = rows.sort_by([("execution_id", "ascending"), ("split", "ascending")])
    digest = hashlib.sha256()
    for name, column in zip(ordered.column_names, ordered.columns, strict=True):
        column = column.combine_chunks() if ordered.num_rows else pa.array([], column.type)
        digest.update(name.encode() + b"\0")
        digest.update(np.asarray(column.is_valid(), dtype=np.uint8).tobytes())
        digest.update(_value_bytes(column))
    return digest.hexdigest()


def _value_bytes(column: pa.Array) -> bytes:
    """A column's values as rows_sha256 lays them out (nulls as zero or the empty string)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_decimal(kind):
        column = pc.cast(column, pa.string())
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = column.fill_null("").to_pylist()
        encoded = [t.encode() for t in texts]
        lengths = np.fromiter((len(b) for b in encoded), dtype="<u4", count=len(encoded))
        return lengths.tobytes() + b"".join(encoded)
    if pa.types.is_floating(kind):
        values = column.fill_null(0.0).to_numpy(zero_copy_only=False).astype("<f8") + 0.0
        values[np.isnan(values)] = np.nan
        return values.tobytes()
    if pa.types.is_boolean(kind):
        return column.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()
    if pa.types.is_timestamp(kind):
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))
    if pa.types.is_temporal(kind) or pa.types.is_integer(kind):
        as_int = pc.cast(column.view(_storage(column.type)), pa.int64())
        return as_int.fill_null(0).to_numpy(zero_copy_only=False).astype("<i8").tobytes()
    raise TypeError(f"a training set's column holds {kind}: it has no identity defined")


def _storage(kind: pa.DataType) -> pa.DataType:
    """The integer type a temporal type is stored as (itself for an integer)."""
    import pyarrow as pa

    if pa.types.is_date32(kind):
        return pa.int32()
    if pa.types.is_temporal(kind):
        return pa.int64()
    return kind


def release(
    fs: LakeFS, candidate: Candidate, lease: Lease, run_id: str, results: Sequence[Any]
) -> str:
    """Release the candidate under `lease`: "released", or "unchanged" when the version was
    released with identical rows (nothing changes). Refused (ReleasedVersionError) when it was
    released with other rows, and (QualityGateError, nothing committed) when a fail rule of
    `results` (quality.gold_rules' RuleResults) broke."""
    name, version = candidate.spec.name, candidate.version
    released = releases.versions(fs, name)
    if version in released:
        return _unchanged(fs, candidate, released)
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        broken = ", ".join(f"{r.name} (observed {r.observed})" for r in failed)
        raise QualityGateError(
            f"training set {name} {version} was not released: gold rules failed: {broken}; "
            "fix the gold features or the range, then build it again"
        )
    record = {**candidate.record, "run_id": run_id, "rules": [rule_record(r) for r in results]}
    releases.commit(fs, name, version, candidate.rows, record, lease)
    return "released"


def next_version(fs: LakeFS, candidate: Candidate) -> Candidate:
    """The candidate under the version a run without --version releases: the newest released
    version when its rows are the candidate's (release() then finds it unchanged), else the
    next patch version after it (1.0.0 for a set's first). A weekly schedule so releases a new
    version only when the rows moved, and never rewrites one."""
    import dataclasses

    released = releases.versions(fs, candidate.spec.name)
    if not released:
        chosen = "1.0.0"
    else:
        newest = dataclasses.replace(candidate, version=released[-1])
        if _released_sha256(fs, newest) == candidate.record["rows_sha256"]:
            chosen = released[-1]
        else:
            major, minor, patch = releases.semver(released[-1]) or (1, 0, -1)
            chosen = f"{major}.{minor}.{patch + 1}"
    record = {**candidate.record, "version": chosen}
    return dataclasses.replace(candidate, version=chosen, record=record)


def _unchanged(fs: LakeFS, candidate: Candidate, released: list[str]) -> str:
    """ "unchanged" when the released version's rows hash as the candidate's; else refused."""
    name, version = candidate.spec.name, candidate.version
    stored_sha, new_sha = _released_sha256(fs, candidate), candidate.record["rows_sha256"]
    if stored_sha == new_sha:
        return "unchanged"
    major, minor, patch = releases.semver(version) or (0, 0, 0)
    while f"{major}.{minor}.{patch}" in (*released, version):
        patch += 1
    raise ReleasedVersionError(
        f"training set {name} {version} exists with other rows (sha256 {stored_sha[:12]}.. vs "
        f"{new_sha[:12]}..): release a new version, e.g. --version {major}.{minor}.{patch}"
    )


def _released_sha256(fs: LakeFS, candidate: Candidate) -> str:
    """`rows_sha256` of the released version's committed rows (the rows are the truth, not the
    record), over its own columns: those its record's spec names. Kept on `fs` once computed:
    a released version never changes, and a run without --version asks twice (next_version,
    then release)."""
    known = fs.__dict__.setdefault("_released_sha256", {})
    key = (candidate.spec.name, candidate.version, tuple(candidate.rows.column_names))
    if key not in known:
        known[key] = _committed_sha256(fs, candidate)
    return known[key]


def _committed_sha256(fs: LakeFS, candidate: Candidate) -> str:
    import pyarrow as pa

    name, version = candidate.spec.name, candidate.version
    content = (releases.record(fs, name, version) or {}).get("spec") or {}
    columns = candidate.rows.column_names
    if "label" in content and "features" in content:
        columns = [*KEYS, *content["features"], content["label"], "split"]
    committed = releases.rows(fs, name, version)
    stored = committed.select([c for c in columns if c in committed.column_names])
    if stored.column_names == candidate.rows.column_names:
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            stored = stored.cast(candidate.rows.schema)  # other types: other rows
    return rows_sha256(stored)


def rule_record(result: Any) -> dict[str, Any]:
    """A rule's result as the record keeps it: name, level, outcome, observed (JSON values)."""
    observed = json.loads(json.dumps(result.observed, default=_plain))
    return {
        "name": result.name,
        "level": result.level,
        "outcome": result.outcome,
        "observed": observed,
    }


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy's scalars
    return item() if callable(item) else str(value)
