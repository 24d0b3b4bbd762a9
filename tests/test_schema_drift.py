"""Schema drift at the source, on the real database with ALTER TABLE: a new nullable column
flows into bronze after the contract's columns (added to the Delta table's schema, recorded in
the day's facts, warned by the gate, null in older days for every Delta reader); a missing or
retyped contract column stops bronze, naming it, with nothing written. Silver keeps its contract
columns."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow.parquet as pq
import pytest

import deep_storage
from deep_storage import lake as lakes
from deep_storage.core import schemas
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import SourceError
from deep_storage.quality import validate
from deep_storage.tables import bronze, silver
from tests.events import event, insert

pytestmark = pytest.mark.integration

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
TABLE = "stop_events_drift"


@pytest.fixture()
def src(db, source_config):
    """A copy of stop_events (same columns, types and indexes) that a test may ALTER."""
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(f"CREATE TABLE {TABLE} (LIKE stop_events INCLUDING ALL)")
    yield dataclasses.replace(source_config, table=TABLE)
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")


@pytest.mark.parametrize("read_path", ["arrow", "jdbc"])
def test_a_new_nullable_column_flows_into_bronze_and_the_gate_warns(
    db, spark, lake, src, read_path
):
    insert(db, [event("2025-06-01 10:00:00"), event("2025-06-01 11:00:00")], TABLE)
    bronze.run(DayRange(D1, D1), lake, src=src, spark=spark, read_path=read_path)
    db.execute(f"ALTER TABLE {TABLE} ADD COLUMN venue varchar(20)")
    insert(
        db,
        [event("2025-06-02 10:00:00", venue="BINANCE"), event("2025-06-02 11:00:00", venue=None)],
        TABLE,
    )
    bronze.run(DayRange(D2, D2), lake, src=src, spark=spark, read_path=read_path)

    fs = lakes.LakeFS(lake)
    m1, m2 = (lakes.committed_day(fs, lakes.BRONZE_EVENTS, d) for d in (D1, D2))
    assert m1.details.get("extra_columns", []) == []
    assert m2.details["extra_columns"] == [{"name": "venue", "source_type": "character varying"}]
    afs, root = fs.arrow()
    names = pq.read_schema(f"{root}/bronze/events/{m2.files[0]}", filesystem=afs).names
    assert names == [*schemas.BRONZE_EVENTS_SCHEMA.fieldNames(), "venue"], (
        "appended after the contract"
    )

    # Delta's schema evolution: the table's schema records the column, and a Delta reader that
    # is not ours reads the older day as null.
    table = fs.delta(lakes.BRONZE_EVENTS)
    assert [f.name for f in table.schema().fields][-2:] == ["date", "venue"], "added at the end"

    seen = fs.scan(lakes.BRONZE_EVENTS, table, columns=["occurred_at", "venue"]).sort_by(
        "occurred_at"
    )
    assert seen.column("venue").to_pylist() == [None, None, "BINANCE", None]

    frame = deep_storage.read("bronze", D1, D2, lake=lake).sort_values("occurred_at")
    venues = [v if isinstance(v, str) else None for v in frame["venue"]]
    assert venues == [None, None, "BINANCE", None]  # unioned by name across days

    report = validate.run(D2, lake, spark=spark, src=src, tables=("bronze",))
    assert "bronze_events.source_columns_known" in report.warned
    assert report.failed == []

    silver.run(DayRange(D2, D2), lake, spark=spark)
    executions = deep_storage.read("silver", D2, lake=lake)
    assert "venue" not in executions.columns
    assert set(schemas.SILVER_EXECUTIONS_SCHEMA.fieldNames()) <= set(executions.columns)


@pytest.mark.parametrize(
    "alter, column, expect",
    [
        (f"ALTER TABLE {TABLE} DROP COLUMN side", "side", "lacks columns side"),
        (
            f"ALTER TABLE {TABLE} ALTER COLUMN retry_count TYPE bigint",
            "retry_count",
            "retry_count is bigint",
        ),
        (
            f"ALTER TABLE {TABLE} ALTER COLUMN fill_price TYPE numeric(30,10)",
            "fill_price",
            r"fill_price is numeric\(30,10\)",
        ),
    ],
)
def test_a_missing_or_retyped_contract_column_stops_bronze_naming_it(
    db, lake, src, alter, column, expect
):
    insert(db, [event("2025-06-01 10:00:00")], TABLE)
    db.execute(alter)
    with pytest.raises(SourceError, match=expect) as failure:
        bronze.run(DayRange(D1, D1), lake, src=src)
    message = str(failure.value)
    assert "\n" not in message and column in message
    fs = lakes.LakeFS(lake)
    assert lakes.committed(fs, lakes.BRONZE_EVENTS) == {}
    assert [f for f in fs.list_files(lake) if f.endswith(".parquet")] == []
