"""The one-call reader (deep_storage.read) and status, on a real lake in SeaweedFS: one version of
a Delta table, pruned, typed, labelled with its version, and any kept version on request."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

import deep_storage
from deep_storage import lake as lakes
from deep_storage import reader
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import InputError
from deep_storage.lake import delta_log
from deep_storage.quality import validate
from deep_storage.tables import bronze, silver
from demo import synthetic
from tests.events import event
from tests.lake_fixtures import recommit, silver_row, write_bronze_day, write_silver_day
from tests.services import run_cli

pytestmark = pytest.mark.integration

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


@pytest.fixture()
def built(db, spark, lake):
    """Two days of bronze and silver from generated events (executions across midnight)."""
    for day, seed in ((D1, 3), (D2, 4)):
        synthetic.copy_into(db, synthetic.generate(day, 600, seed=seed, clients=6))
    bronze.run(DayRange(D1, D2), lake, spark=spark)
    silver.run(DayRange(D1, D2), lake, spark=spark)
    return lake


def _ids(rows) -> list[str]:
    return sorted(rows)


def test_every_engine_returns_the_same_committed_rows_with_typed_partitions(spark, built):
    fs = lakes.LakeFS(built)
    committed = sum(m.rows for m in lakes.committed(fs, lakes.SILVER_EXECUTIONS).values())
    frame = deep_storage.read("silver", "2025-06-01", "2025-06-02", lake=built)
    assert len(frame) == committed
    assert str(frame["client_id"].dtype) == "int64"
    assert str(frame["fill_price"].dtype) == "decimal128(20, 8)[pyarrow]"  # exact, not float
    assert {str(d) for d in frame["date"].unique()} <= {"2025-06-01", "2025-06-02"}
    table = deep_storage.read("silver", D1, D2, lake=built, engine="arrow")
    assert table.schema.field("date").type == pa.date32()
    assert table.schema.field("client_id").type == pa.int64()
    relation = deep_storage.read("silver", D1, D2, lake=built, engine="duckdb")
    sdf = deep_storage.read("silver", D1, D2, lake=built, engine="spark", spark=spark)
    expected = _ids(frame["execution_id"])
    assert _ids(table.column("execution_id").to_pylist()) == expected
    assert _ids(r[0] for r in relation.project("execution_id").fetchall()) == expected
    assert _ids(r.execution_id for r in sdf.select("execution_id").collect()) == expected
    assert len(expected) == len(set(expected)), "an execution was read twice"


def test_columns_where_and_clients_narrow_the_read(built):
    frame = deep_storage.read(
        "silver",
        D1,
        D2,
        lake=built,
        columns=["execution_id", "status", "client_id"],
        where="status = 'EXECUTED'",
        clients=[1001, 1002],
    )
    assert list(frame.columns) == ["execution_id", "status", "client_id"]
    assert set(frame["status"]) == {"EXECUTED"}
    assert set(frame["client_id"]) <= {1001, 1002} and len(frame) > 0


def test_never_returns_rows_of_an_interrupted_write(db, spark, built):
    before = sorted(deep_storage.read("bronze", D2, lake=built)["event_id"])
    synthetic.copy_into(db, synthetic.generate(D2, 50, seed=99, clients=6, spill_minutes=0))
    killed = run_cli(
        "bronze", "--date", "2025-06-02", "--lake", built,
        env={"DEEP_STORAGE_KILL_AT": "bronze:written"},
    )  # fmt: skip
    assert killed.returncode != 0
    fs = lakes.LakeFS(built)
    listed = set(lakes.committed_day(fs, lakes.BRONZE_EVENTS, D2).files)  # the current snapshot's
    on_disk = {
        f"date=2025-06-02/{f}"
        for f in fs.list_files(f"{built}/bronze/events/date=2025-06-02")
        if f.endswith(".parquet")
    }
    assert on_disk - listed, "the killed run left no files: the test proves nothing"
    assert sorted(deep_storage.read("bronze", D2, lake=built)["event_id"]) == before


class _Counting(pafs.FileSystemHandler):
    """A pyarrow filesystem that records every file opened for reading."""

    def __init__(self, inner: pafs.FileSystem) -> None:
        self.inner, self.opened = inner, []

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def get_type_name(self):
        return "counting"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def open_input_file(self, path):
        self.opened.append(path)
        return self.inner.open_input_file(path)

    def open_input_stream(self, path):
        self.opened.append(path)
        return self.inner.open_input_stream(path)

    def create_dir(self, *a):
        raise NotImplementedError

    delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = create_dir
    move = copy_file = open_output_stream = open_append_stream = create_dir


def test_days_and_clients_are_pruned_before_any_file_is_opened(built, monkeypatch):
    real = lakes.LakeFS.arrow
    handlers = []  # one per call: the day facts are read through the lake's file system too

    def counting(self):
        inner, root = real(self)
        handlers.append(_Counting(inner))
        return pafs.PyFileSystem(handlers[-1]), root

    monkeypatch.setattr(lakes.LakeFS, "arrow", counting)
    frame = deep_storage.read("silver", D2, lake=built, clients=[1003])
    assert set(frame["client_id"]) == {1003}
    m = lakes.committed_day(lakes.LakeFS(built), lakes.SILVER_EXECUTIONS, D2)
    wanted = {f for f in m.files if f.startswith("client_id=1003/")}
    table = "/silver/stop_executions/"
    opened = {p.split(table, 1)[1] for h in handlers for p in h.opened if table in p}
    assert opened == wanted, f"opened {sorted(opened - wanted)} beyond the selection"


def test_unsealed_days_are_marked(db, spark, lake):
    synthetic.copy_into(db, synthetic.generate(D1, 100, seed=5, clients=3, spill_minutes=0))
    # With a margin reaching past now, the day cannot seal: its rows may still change.
    bronze.run(DayRange(D1, D1), lake, spark=spark, seal_margin=dt.timedelta(days=36500))
    frame = deep_storage.read("bronze", D1, lake=lake)
    assert not frame["_sealed"].any()
    assert frame.attrs["unsealed_days"] == ["2025-06-01"]


def test_bad_arguments_name_the_value_and_the_choices(built):
    with pytest.raises(InputError, match="table 'gold' is unknown: expected one of bronze, silver"):
        deep_storage.read("gold", D1, lake=built)
    with pytest.raises(InputError, match="engine 'excel' is unknown"):
        deep_storage.read("silver", D1, lake=built, engine="excel")
    with pytest.raises(InputError, match="expected YYYY-MM-DD"):
        deep_storage.read("silver", "June 1st", lake=built)


def test_status_shows_rows_seal_commit_and_the_gates_verdict(spark, built):
    validate.run(D2, built, spark=spark, raise_on_failure=False)
    rows = {(s.table, s.date): s for s in deep_storage.status(built)}
    fs = lakes.LakeFS(built)
    b2 = rows[("bronze", "2025-06-02")]
    assert b2.rows == lakes.committed_day(fs, lakes.BRONZE_EVENTS, D2).rows
    assert b2.sealed is True and b2.committed_at
    assert b2.gate in ("passed", "warned")
    assert b2.report.endswith("/_quality/summary/date=2025-06-02/report.html")
    assert rows[("silver", "2025-06-01")].gate is None  # the gate never ran on that day
    out = run_cli("status", "--lake", built)
    assert out.returncode == 0, out.stderr
    assert "bronze" in out.stdout and "2025-06-02" in out.stdout and b2.gate in out.stdout


def test_a_pinned_version_reads_its_rows_after_a_newer_commit(spark, lake):
    write_silver_day(spark, lake, D1, [silver_row(execution_id="a", client_id=1)])
    first = deep_storage.read("silver", D1, D2, lake=lake)
    pinned = first.attrs["delta_version"]
    assert pinned == lakes.LakeFS(lake).delta(lakes.SILVER_EXECUTIONS).version()
    # as_of resolves on the log files' times, which this store keeps in whole seconds: the next
    # commit lands in a later second, as commits an hour apart do.
    committed = delta_log.commit_time(lakes.LakeFS(lake), lakes.SILVER_EXECUTIONS, pinned)
    while dt.datetime.now(dt.UTC) < committed + dt.timedelta(seconds=1):
        time.sleep(0.05)
    write_silver_day(
        spark,
        lake,
        D1,
        [silver_row(execution_id="b", client_id=1), silver_row(execution_id="c", client_id=2)],
    )
    now = deep_storage.read("silver", D1, D2, lake=lake)
    assert now.attrs["delta_version"] == pinned + 1
    assert sorted(now["execution_id"]) == ["b", "c"]
    for engine in ("pandas", "arrow", "duckdb"):
        got = deep_storage.read("silver", D1, D2, lake=lake, version=pinned, engine=engine)
        ids = {
            "pandas": lambda f: list(f["execution_id"]),
            "arrow": lambda t: t.column("execution_id").to_pylist(),
            "duckdb": lambda r: [row[0] for row in r.project("execution_id").fetchall()],
        }[engine](got)
        assert ids == ["a"], engine
    table = deep_storage.read("silver", D1, lake=lake, version=pinned, engine="arrow")
    assert table.schema.metadata[b"delta_version"] == str(pinned).encode()
    assert table.schema.field("client_id").type == pa.int64()
    # as_of: the version current at a time between the two commits.
    fs = lakes.LakeFS(lake)
    between = delta_log.commit_time(fs, lakes.SILVER_EXECUTIONS, pinned + 1) - dt.timedelta(
        microseconds=1
    )
    then = deep_storage.read("silver", D1, lake=lake, as_of=between.isoformat())
    assert then.attrs["delta_version"] == pinned and list(then["execution_id"]) == ["a"]


def test_both_spark_paths_read_the_pinned_version_alike(spark, lake):
    write_silver_day(
        spark,
        lake,
        D1,
        [silver_row(execution_id="a", client_id=1), silver_row(execution_id="b", client_id=2)],
    )
    pinned = lakes.LakeFS(lake).delta(lakes.SILVER_EXECUTIONS).version()
    write_silver_day(spark, lake, D1, [silver_row(execution_id="c", client_id=1)])
    assert reader.has_delta(spark), "spark_session.build configures delta-spark's extension"
    sel, fs = reader.select("silver", D1, version=pinned, clients=[1, 2], lake=lake)
    through_delta = reader._spark(sel, fs, None, None, spark, delta=True)
    by_name = reader._spark(sel, fs, None, None, spark, delta=False)
    assert through_delta.columns == by_name.columns == reader._columns(sel)
    types = [(f.name, f.dataType) for f in by_name.schema]
    assert [(f.name, f.dataType) for f in through_delta.schema] == types
    assert sorted(through_delta.collect()) == sorted(by_name.collect())
    assert sorted(r.execution_id for r in through_delta.collect()) == ["a", "b"]
    one = deep_storage.read(
        "silver", D1, lake=lake, version=pinned, clients=[2], engine="spark", spark=spark
    )
    assert [(r.execution_id, r.client_id, r.date, r._sealed) for r in one.collect()] == [
        ("b", 2, D1, True)
    ]


def test_sealed_is_what_the_pinned_version_said(spark, lake):
    write_bronze_day(spark, lake, D1, [event("2025-06-01 10:00:00")], sealed=False)
    unsealed = lakes.LakeFS(lake).delta(lakes.BRONZE_EVENTS).version()
    recommit(lake, lakes.BRONZE_EVENTS, D1, sealed=True)
    now = deep_storage.read("bronze", D1, D2, lake=lake)
    assert now["_sealed"].all() and now.attrs["unsealed_days"] == []
    assert now.attrs["missing_days"] == ["2025-06-02"]
    then = deep_storage.read("bronze", D1, D2, lake=lake, version=unsealed)
    assert not then["_sealed"].any() and then.attrs["unsealed_days"] == ["2025-06-01"]
    assert then.attrs["missing_days"] == ["2025-06-02"]


def test_time_travel_arguments_name_the_value_and_the_fix(spark, lake):
    with pytest.raises(InputError, match="has no commit yet, so no version to read"):
        deep_storage.read("bronze", D1, lake=lake, version=0)
    assert deep_storage.read("bronze", D1, lake=lake).attrs["delta_version"] is None
    write_bronze_day(spark, lake, D1, [event("2025-06-01 10:00:00")], sealed=True)
    with pytest.raises(InputError, match="version 0 and as_of '2025-06-01' were both given"):
        deep_storage.read("bronze", D1, lake=lake, version=0, as_of="2025-06-01")
    with pytest.raises(InputError, match=r"version -1 is not a table version: expected .* >= 0"):
        deep_storage.read("bronze", D1, lake=lake, version=-1)
    with pytest.raises(
        InputError, match=r"version 7 of bronze/events does not exist yet: .*0\.\.0"
    ):
        deep_storage.read("bronze", D1, lake=lake, version=7)
    with pytest.raises(InputError, match="as_of 'last week' is not a time: expected ISO-8601"):
        deep_storage.read("bronze", D1, lake=lake, as_of="last week")
    with pytest.raises(
        InputError, match=r"as_of '2020-01-01T00:00:00Z' is before bronze/events's first commit"
    ):
        deep_storage.read("bronze", D1, lake=lake, as_of="2020-01-01T00:00:00Z")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert deep_storage.read("bronze", D1, lake=lake, as_of=future).attrs["delta_version"] == 0
