"""Training sets on a file:// lake in a tmp folder: a hand-made gold features table (written with
delta-rs) -> build -> judge -> release -> read back. Releases across processes (killed, or two
at once): test_training_sets_across_processes.py.

Every expected value is worked out by hand in the test. The features table, 2025-06-01..06-10
(10 days, so the test split starts 06-09 by default):

    id   date   status    execution_success  slippage_breach
    e01  06-01  EXECUTED  true               false
    e02  06-02  FAILED    false              false  (made up: a FAILED row with a breach value,
                                                     so slippage_prediction's filter shows)
    e03  06-03  PENDING   NULL               NULL   (open: its label is unknown)
    e11  06-04  EXECUTED  true               NULL   (no fill price: no slippage)
    e04  06-05  EXECUTED  true               true
    e05  06-08  BLOCKED   false              NULL
    e06  06-09  EXECUTED  true               false
    e07  06-10  EXECUTED  true               true
    e08  06-10  FAILED    false              NULL
    e09  06-11  EXECUTED  true               false  (after the range)
    e10  05-31  EXECUTED  true               false  (before the range)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import CommitProperties

import deep_storage
from deep_storage.core.errors import InputError, LakeStateError, QualityGateError
from deep_storage.lake import LakeFS, releases, writer_lock
from deep_storage.lake.layout import GOLD_FEATURES
from deep_storage.quality import gold_rules
from deep_storage.tables import gold_features, training_sets
from deep_storage.tables.training_sets import ReleasedVersionError
from deep_storage.training import release_training_set, training_set

pytestmark = pytest.mark.unit

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 10)
TS = pa.timestamp("us", tz="UTC")
FEATURES = [
    "stop_distance_pct",
    "notional",
    "hour_of_day",
    "day_of_week",
    "client_executions_7d",
    "client_success_rate_7d",
    "symbol_triggers_15m",
    "symbol_price_range_pct_15m",
]
SCHEMA = gold_features.arrow_schema()  # the features table the sets are built from


def day(d: int, month: int = 6) -> dt.date:
    return dt.date(2025, month, d)


def row(execution_id: str, on: dt.date, status: str, success, breach, **kw) -> dict:
    """One features row of client 1 on BTCUSDC, as_of 12:00 UTC of its day."""
    as_of = dt.datetime.combine(on, dt.time(12), dt.UTC)
    known = success is not None
    return {
        "execution_id": execution_id,
        "execution_token": f"tok-{execution_id}",
        "client_id": 1,
        "symbol": "BTCUSDC",
        "side": "SELL",
        "source": "api",
        "date": on,
        "as_of": as_of,
        "stop_distance_pct": 1.5,
        "notional": 100.0,
        "hour_of_day": 12,
        "day_of_week": on.isoweekday(),
        "client_executions_7d": 0,
        "client_success_rate_7d": None,
        "symbol_triggers_15m": 0,
        "symbol_price_range_pct_15m": 0.0,
        "status": status,
        "execution_success": success,
        "slippage_pct": None,
        "slippage_breach": breach,
        "execution_time_sec": 2.0 if known else None,
        "label_known_at": as_of + dt.timedelta(seconds=2) if known else None,
        **kw,
    }


ROWS = [
    row("e01", day(1), "EXECUTED", True, False),
    row("e02", day(2), "FAILED", False, False),
    row("e03", day(3), "PENDING", None, None),
    row("e11", day(4), "EXECUTED", True, None),
    row("e04", day(5), "EXECUTED", True, True),
    row("e05", day(8), "BLOCKED", False, None),
    row("e06", day(9), "EXECUTED", True, False),
    row("e07", day(10), "EXECUTED", True, True),
    row("e08", day(10), "FAILED", False, None),
    row("e09", day(11), "EXECUTED", True, False),
    row("e10", day(31, 5), "EXECUTED", True, False),
]


def features_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_features(lake: str, rows: list[dict], *, silver_version=None, mode="error") -> None:
    metadata = {}
    if silver_version is not None:
        # As gold.py commits it: each built day's facts name the silver version it read.
        day = {"date": "2025-06-02", "details": {"silver_version": silver_version}}
        metadata["deep_storage"] = json.dumps({"days": [day], "run_id": "r"})
    write_deltalake(
        LakeFS(lake).delta_uri(GOLD_FEATURES),
        features_table(rows),
        partition_by=["date"],
        mode=mode,
        commit_properties=CommitProperties(custom_metadata=metadata),
    )


@pytest.fixture
def lake(tmp_path) -> str:
    uri = f"file://{tmp_path}/lake"
    write_features(uri, ROWS, silver_version=7)
    return uri


def ids(table: pa.Table, split: str) -> list[str]:
    return table.filter(pc.equal(table["split"], split))["execution_id"].to_pylist()


def release(lake: str, candidate, results=()) -> str:
    with writer_lock.hold(lake, "training-set", "test", "run-1") as lease:
        return training_sets.release(LakeFS(lake), candidate, lease, "run-1", list(results))


# --- specs, versions and the split day ------------------------------------------------------


def test_the_two_specs_are_read_from_their_files():
    outcome = training_sets.spec("stop_outcome")
    slippage = training_sets.spec("slippage_prediction")
    assert training_sets.known() == ["slippage_prediction", "stop_outcome"]
    assert (outcome.label, outcome.features, outcome.filters) == (
        "execution_success",
        tuple(FEATURES),
        {},
    )
    assert (slippage.label, slippage.features) == ("slippage_breach", tuple(FEATURES))
    assert slippage.filters == {"status": ("EXECUTED",)}
    assert slippage.content["filters"] == {"status": ["EXECUTED"]}


def test_an_unknown_set_is_refused_naming_the_known_ones():
    with pytest.raises(InputError, match="expected one of slippage_prediction, stop_outcome"):
        training_sets.spec("churn")


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", "1.0.x", ""])
def test_a_version_that_is_not_x_y_z_is_refused(version):
    with pytest.raises(InputError, match=r"is not X\.Y\.Z"):
        training_sets.check_version(version)


def test_the_default_split_day_starts_the_last_fifth():
    # 10 days: floor(10 * 0.8) = 8 -> 06-01 + 8 = 06-09; 90 days: floor(72.0) = 72.
    assert training_sets.split_day(D1, D2) == day(9)
    assert training_sets.split_day(D1, D1 + dt.timedelta(days=89)) == D1 + dt.timedelta(days=72)
    # 2 days: floor(1.6) = 1 -> the second day; 5 days: floor(4.0) = 4 -> the last day.
    assert training_sets.split_day(D1, day(2)) == day(2)
    assert training_sets.split_day(D1, day(5)) == day(5)
    # 7 days: floor(5.6) = 5 -> 06-06.
    assert training_sets.split_day(D1, day(7)) == day(6)


def test_an_explicit_split_day_must_be_inside_the_range():
    assert training_sets.split_day(D1, D2, day(2)) == day(2)
    assert training_sets.split_day(D1, D2, D2) == D2
    for outside in (D1, day(11), day(31, 5)):
        with pytest.raises(InputError, match=r"outside \(2025-06-01, 2025-06-10\]"):
            training_sets.split_day(D1, D2, outside)


def test_a_range_of_one_day_or_backwards_is_refused():
    with pytest.raises(InputError, match="at least 2 days"):
        training_sets.split_day(D1, D1)
    with pytest.raises(InputError, match="ends before it starts"):
        training_sets.split_day(D2, D1)


# --- the rows -------------------------------------------------------------------------------


def test_rows_are_the_known_labels_in_the_range_split_by_date(lake):
    spec = training_sets.spec("stop_outcome")
    candidate = training_sets.build(LakeFS(lake), spec, D1, D2, version="1.0.0")
    rows = candidate.rows
    assert rows.column_names == ["execution_id", "execution_token", "date", "as_of",
                                 *FEATURES, "execution_success", "split"]  # fmt: skip
    # e03 (open), e09 and e10 (outside the range) are left out; train is before 06-09.
    assert ids(rows, "train") == ["e01", "e02", "e04", "e05", "e11"]
    assert ids(rows, "test") == ["e06", "e07", "e08"]
    assert not set(ids(rows, "train")) & set(ids(rows, "test"))
    assert rows["execution_token"].to_pylist()[0] == "tok-e01"


def test_slippage_prediction_keeps_executed_rows_only(lake):
    spec = training_sets.spec("slippage_prediction")
    rows = training_sets.build(LakeFS(lake), spec, D1, D2, version="1.0.0").rows
    # e02 is FAILED (left out by the filter though its breach is known), e11's breach is NULL.
    assert ids(rows, "train") == ["e01", "e04"]
    assert ids(rows, "test") == ["e06", "e07"]
    assert rows["slippage_breach"].to_pylist() == [False, True, False, True]


def test_an_explicit_test_day_moves_the_split(lake):
    spec = training_sets.spec("stop_outcome")
    rows = training_sets.build(LakeFS(lake), spec, D1, D2, day(5), version="1.0.0").rows
    assert ids(rows, "train") == ["e01", "e02", "e11"]
    assert ids(rows, "test") == ["e04", "e05", "e06", "e07", "e08"]


def test_the_record_holds_counts_shares_and_lineage(lake):
    candidate = training_sets.build(
        LakeFS(lake), training_sets.spec("stop_outcome"), D1, D2, version="1.0.0"
    )
    record = candidate.record
    assert set(record) == {
        "name", "version", "spec", "from", "to", "test_from", "rows", "positive_share",
        "rows_sha256", "code_version", "built_at", "features_table", "features_version",
        "silver_version",
    }  # fmt: skip
    assert (record["name"], record["version"]) == ("stop_outcome", "1.0.0")
    assert (record["from"], record["to"], record["test_from"]) == (
        "2025-06-01",
        "2025-06-10",
        "2025-06-09",
    )
    assert record["rows"] == {"train": 5, "test": 3}
    # train: e01 T, e02 F, e11 T, e04 T, e05 F -> 3/5; test: e06 T, e07 T, e08 F -> 2/3;
    # overall 5/8.
    assert record["positive_share"] == {"train": 0.6, "test": 2 / 3, "overall": 0.625}
    assert record["features_version"] == 0 and record["silver_version"] == 7
    assert record["spec"]["label"] == "execution_success"
    assert record["code_version"] == deep_storage.__version__
    assert dt.datetime.fromisoformat(record["built_at"]).tzinfo is not None
    assert len(record["rows_sha256"]) == 64


def test_silver_version_is_none_when_the_features_commit_does_not_say(tmp_path):
    uri = f"file://{tmp_path}/lake"
    write_features(uri, ROWS)
    write_features(uri, [row("e12", day(6), "FAILED", False, None)], mode="append")
    candidate = training_sets.build(
        LakeFS(uri), training_sets.spec("stop_outcome"), D1, D2, version="1.0.0"
    )
    assert candidate.record["features_version"] == 1
    assert candidate.record["silver_version"] is None


def test_a_range_with_no_known_label_is_refused(lake):
    spec = training_sets.spec("stop_outcome")
    with pytest.raises(LakeStateError, match=r"no execution dated 2025-06-06\.\.2025-06-07"):
        training_sets.build(LakeFS(lake), spec, day(6), day(7), version="1.0.0")


def test_a_lake_without_features_is_refused(tmp_path):
    with pytest.raises(LakeStateError, match="has no gold/stop_execution_features table"):
        training_sets.build(
            LakeFS(f"file://{tmp_path}"),
            training_sets.spec("stop_outcome"),
            D1,
            D2,
            version="1.0.0",
        )


def test_the_hash_depends_on_the_rows_not_their_order():
    import hashlib
    import struct

    table = pa.table(
        {
            "execution_id": ["b", "a"],
            "date": pa.array([day(2), day(1)], pa.date32()),
            "x": [1.5, None],
            "p": pa.array([Decimal("0.0070"), None], pa.decimal128(10, 4)),
            "split": ["test", "train"],
        }
    )
    # The bytes hashed, by the definition in training_sets.rows_sha256 (rows sorted by id, so
    # "a" first): name, a 0 byte, validity per row, then the values, nulls as zero or "".
    days = (dt.date(2025, 6, 1) - dt.date(1970, 1, 1)).days  # 20240
    laid = b"".join(
        [
            b"execution_id\0", b"\1\1", struct.pack("<II", 1, 1), b"a", b"b",
            b"date\0", b"\1\1", struct.pack("<qq", days, days + 1),
            b"x\0", b"\0\1", struct.pack("<dd", 0.0, 1.5),
            b"p\0", b"\0\1", struct.pack("<II", 0, 6), b"0.0070",
            b"split\0", b"\1\1", struct.pack("<II", 5, 4), b"train", b"test",
        ]
    )  # fmt: skip
    assert training_sets.rows_sha256(table) == hashlib.sha256(laid).hexdigest()
    assert training_sets.rows_sha256(table.take([1, 0])) == training_sets.rows_sha256(table)
    # One value changed, by its last bit: another identity.
    nudged = table.set_column(2, "x", pa.array([1.5000000000000002, None]))
    assert training_sets.rows_sha256(nudged) != training_sets.rows_sha256(table)


# --- the gold rules -------------------------------------------------------------------------


def judged(rows: list[dict], d3: dt.date = dt.date(2025, 6, 9)):
    spec = training_sets.spec("stop_outcome")
    lineage = {"features_version": 0, "silver_version": None}
    candidate = training_sets.assemble(spec, "1.0.0", features_table(rows), D1, D2, d3, lineage)
    results = gold_rules.judge(candidate)
    return candidate, {r.name: r for r in results}


def test_a_balanced_set_passes_every_rule(lake):
    candidate = training_sets.build(
        LakeFS(lake), training_sets.spec("stop_outcome"), D1, D2, version="1.0.0"
    )
    results = {r.name: r for r in gold_rules.judge(candidate)}
    assert set(results) == {
        "label_share_within_range", "splits_disjoint", "test_after_train",
        *(f"outliers_{f}" for f in FEATURES),
    }  # fmt: skip
    assert {r.outcome for r in results.values()} == {"passed"}
    assert results["label_share_within_range"].observed == 0.625
    assert results["outliers_notional"].observed == 0


def test_a_label_share_out_of_range_and_an_outlier_warn():
    # 12 executions, all EXECUTED: share 12/12 = 1.0 > 0.9. notional: eleven 100.0 and one
    # 10100.0. With the sample stdev, the odd one of n values sits (n - 1) / sqrt(n) stdevs
    # from the mean: 11 / sqrt(12) = 3.18 >= 3, one outlier; the 100.0s sit 1/sqrt(12) = 0.29
    # away. hour_of_day: eleven 12 and one 13 -> the same 3.18: one outlier too.
    rows = [row(f"x{i:02d}", day(1 + i % 10), "EXECUTED", True, False) for i in range(12)]
    rows[5]["notional"] = 10100.0
    rows[7]["hour_of_day"] = 13
    candidate, results = judged(rows)
    share = results["label_share_within_range"]
    assert (share.level, share.outcome, share.observed) == ("warn", "warned", 1.0)
    assert (results["outliers_notional"].outcome, results["outliers_notional"].observed) == (
        "warned",
        1,
    )
    assert results["outliers_hour_of_day"].observed == 1
    assert results["outliers_stop_distance_pct"].outcome == "passed"  # all 1.5: no spread
    table = gold_rules.markdown(candidate, list(results.values()))
    assert "| outliers_notional | warn | **warned** | 1 |" in table
    # Days 06-01..06-10, then 06-01 and 06-02 again: only x08 (06-09) and x09 (06-10) are test.
    # 11 rules (the share, 8 features' outliers, 2 fail rules), 3 of them warned.
    assert "12 rows (train 10, test 2); rules: 8 passed, 0 failed, 3 warned." in table


def test_ten_values_cannot_hold_a_three_sigma_outlier():
    # The odd one of 10 sits 9 / sqrt(10) = 2.85 sample stdevs away: no outlier.
    rows = [row(f"x{i:02d}", day(1 + i), "EXECUTED", i % 2 == 0, False) for i in range(10)]
    rows[5]["notional"] = 10100.0
    _, results = judged(rows)
    assert results["outliers_notional"].observed == 0
    assert results["label_share_within_range"].observed == 0.5


def test_an_execution_in_both_splits_refuses_the_release(tmp_path):
    # e01 is in the features twice, on 06-02 (train) and 06-09 (test).
    rows = [
        row("e01", day(2), "EXECUTED", True, False),
        row("e02", day(3), "FAILED", False, None),
        row("e01", day(9), "FAILED", False, None),
    ]
    candidate, results = judged(rows)
    disjoint = results["splits_disjoint"]
    assert (disjoint.level, disjoint.outcome, disjoint.observed) == ("fail", "failed", 2)
    uri = f"file://{tmp_path}/lake"
    with pytest.raises(QualityGateError, match=r"gold rules failed: splits_disjoint \(observed 2"):
        release(uri, candidate, results.values())
    assert releases.versions(LakeFS(uri), "stop_outcome") == []
    assert LakeFS(uri).read_text(releases.record_uri(LakeFS(uri), "stop_outcome", "1.0.0")) is None


def test_a_test_row_before_a_train_row_fails():
    # A candidate made by hand: e01 (06-01) and e04 (06-05) marked test, e06 (06-09) train.
    # The test rows dated on or before the last train day (06-09): both.
    candidate, _ = judged(
        [
            row("e01", day(1), "EXECUTED", True, False),
            row("e04", day(5), "FAILED", False, None),
            row("e06", day(9), "EXECUTED", True, False),
        ]
    )
    split = pa.array(["test", "test", "train"])
    rows = candidate.rows.set_column(candidate.rows.schema.get_field_index("split"), "split", split)
    forged = dataclasses.replace(candidate, rows=rows)
    results = {r.name: r for r in gold_rules.judge(forged)}
    order = results["test_after_train"]
    assert (order.level, order.outcome, order.observed) == ("fail", "failed", 2)
    assert results["splits_disjoint"].outcome == "passed"


# --- release and read -----------------------------------------------------------------------


def test_release_then_read_back_train_and_test(lake):
    done = release_training_set("stop_outcome", "1.0.0", D1, D2, lake=lake, run_id="run-1")
    assert done.outcome == "released"
    train, test = deep_storage.training_set("stop_outcome", "1.0.0", lake=lake)
    assert list(train["execution_id"]) == ["e01", "e02", "e11", "e04", "e05"]  # by date
    assert list(test["execution_id"]) == ["e06", "e07", "e08"]
    assert list(train.columns) == ["execution_id", "execution_token", "date", "as_of",
                                   *FEATURES, "execution_success"]  # fmt: skip
    assert list(train["execution_success"]) == [True, False, True, True, False]
    assert list(train["date"]) == [day(1), day(2), day(4), day(5), day(8)]
    record = train.attrs["record"]
    assert (train.attrs["name"], train.attrs["version"]) == ("stop_outcome", "1.0.0")
    assert test.attrs["record"] == record == done.record
    assert record["rows"] == {"train": 5, "test": 3} and record["run_id"] == "run-1"
    rules = {r["name"]: r for r in record["rules"]}
    assert rules["splits_disjoint"] == {
        "name": "splits_disjoint",
        "level": "fail",
        "outcome": "passed",
        "observed": 0,
    }
    assert rules["label_share_within_range"]["observed"] == 0.625
    fs = LakeFS(lake)
    stored = json.loads(fs.read_text(releases.record_uri(fs, "stop_outcome", "1.0.0")))
    assert stored == record
    assert "| label_share_within_range | warn | **passed** | 0.625 |" in done.markdown


def test_delta_rs_reads_the_released_rows(lake):
    fs = LakeFS(lake)
    spec = training_sets.spec("stop_outcome")
    candidate = training_sets.build(fs, spec, D1, D2, version="1.0.0")
    assert release(lake, candidate) == "released"
    table = DeltaTable(fs.delta_uri("gold/training_sets/stop_outcome"))
    assert table.metadata().partition_columns == ["version", "split"]
    assert table.metadata().configuration["delta.logRetentionDuration"] == "interval 36500 days"
    read = fs.scan("gold/training_sets/stop_outcome", table)
    assert set(read["version"].to_pylist()) == {"1.0.0"}
    read = read.select(candidate.rows.column_names).cast(candidate.rows.schema)
    assert read.sort_by([("execution_id", "ascending")]).equals(candidate.rows)
    history = table.history(1)[0]
    committed = json.loads(history[releases.RELEASE_KEY])
    assert committed["rows_sha256"] == candidate.record["rows_sha256"]


def test_the_same_version_again_is_unchanged_and_other_rows_are_refused(lake):
    fs = LakeFS(lake)
    table = "gold/training_sets/stop_outcome"
    spec = training_sets.spec("stop_outcome")
    first = training_sets.build(fs, spec, D1, D2, version="1.0.0")
    assert release(lake, first) == "released"
    version = fs.delta(table).version()
    record = fs.read_text(releases.record_uri(fs, "stop_outcome", "1.0.0"))
    again = training_sets.build(fs, spec, D1, D2, version="1.0.0")
    assert release(lake, again) == "unchanged"
    assert fs.delta(table).version() == version
    assert fs.read_text(releases.record_uri(fs, "stop_outcome", "1.0.0")) == record
    # One more execution with a known outcome lands in the features: other rows.
    write_features(lake, [row("e12", day(6), "FAILED", False, None)], mode="append")
    changed = training_sets.build(fs, spec, D1, D2, version="1.0.0")
    old, new = first.record["rows_sha256"], changed.record["rows_sha256"]
    with pytest.raises(ReleasedVersionError) as refused:
        release(lake, changed)
    assert str(refused.value) == (
        f"training set stop_outcome 1.0.0 exists with other rows (sha256 {old[:12]}.. vs "
        f"{new[:12]}..): release a new version, e.g. --version 1.0.1"
    )
    assert isinstance(refused.value, LakeStateError)
    assert fs.delta(table).version() == version
    # The new version is released beside it; 1.0.0 still reads its own rows.
    assert release(lake, dataclasses.replace(changed, version="1.0.1")) == "released"
    assert releases.versions(fs, "stop_outcome") == ["1.0.0", "1.0.1"]
    old_train, _ = training_set("stop_outcome", "1.0.0", lake=lake)
    new_train, _ = training_set("stop_outcome", "1.0.1", lake=lake)
    assert "e12" not in set(old_train["execution_id"]) and "e12" in set(new_train["execution_id"])


def test_the_next_version_suggested_skips_released_ones(lake):
    fs = LakeFS(lake)
    spec = training_sets.spec("stop_outcome")
    for version in ("1.0.0", "1.0.1"):
        release(lake, training_sets.build(fs, spec, D1, D2, version=version))
    changed = training_sets.build(fs, spec, D1, D2, day(5), version="1.0.0")
    with pytest.raises(ReleasedVersionError, match=r"e\.g\. --version 1\.0\.2$"):
        release(lake, changed)


def test_a_version_not_released_is_refused_naming_the_released_ones(lake):
    with pytest.raises(LakeStateError, match=r"has no released version 1\.0\.0.*released: none"):
        training_set("stop_outcome", "1.0.0", lake=lake)
    release(lake, training_sets.build(LakeFS(lake), training_sets.spec("stop_outcome"), D1, D2,
                                      version="1.0.0"))  # fmt: skip
    with pytest.raises(LakeStateError, match=r"no released version 2\.0\.0 .*released: 1\.0\.0\)"):
        training_set("stop_outcome", "2.0.0", lake=lake)


def test_the_record_is_read_from_the_commit_when_its_file_is_gone(lake):
    fs = LakeFS(lake)
    candidate = training_sets.build(fs, training_sets.spec("stop_outcome"), D1, D2, version="1.0.0")
    release(lake, candidate, ())
    Path(releases.record_uri(fs, "stop_outcome", "1.0.0").removeprefix("file://")).unlink()
    train, _ = training_set("stop_outcome", "1.0.0", lake=lake)
    assert train.attrs["record"]["rows_sha256"] == candidate.record["rows_sha256"]


# --- the command --------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> SimpleNamespace:
    """`deep-storage ARGS` in this process, through the CLI's main (its exit codes and one-line
    errors); as a subprocess of the real entry point: test_training_sets_across_processes.py."""
    from deep_storage.cli import main

    capsys.readouterr()  # what came before
    code = main(list(args))
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_the_command_releases_then_refuses_in_one_line_each(lake, capsys):
    # No --version: the set's first release is 1.0.0; the same rows again change nothing.
    args = ["training-set", "--from", str(D1), "--to", str(D2), "--lake", lake]
    first = run_cli(capsys, *args, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["outcome"] == "released"
    again = run_cli(capsys, *args, "--json")
    assert (json.loads(again.stdout)["outcome"], json.loads(again.stdout)["version"]) == (
        "unchanged", "1.0.0"
    )  # fmt: skip

    def error(done) -> str:
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("deep-storage: error")]
        return line

    bad_name = run_cli(capsys, "training-set", "--name", "churn", *args[1:])
    assert bad_name.returncode == 2
    assert "churn" in error(bad_name) and "stop_outcome" in error(bad_name)
    bad_version = run_cli(capsys, *args, "--version", "1.0")
    assert bad_version.returncode == 2 and "1.0" in error(bad_version)
    one_side = run_cli(capsys, "training-set", "--from", str(D1), "--lake", lake)
    assert one_side.returncode == 2 and "--from and --to" in error(one_side)
    # Other rows under a released version: refused, naming the fix; nothing changes.
    other = run_cli(capsys, *args, "--version", "1.0.0", "--test-from", str(day(5)))
    assert other.returncode == 5
    assert "release a new version, e.g. --version 1.0.1" in error(other)
