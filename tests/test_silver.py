"""Silver on the real services: midnight-spanning executions, tenants apart, idempotent re-runs;
each on both engines (DuckDB in the step's process, Spark), and both engines leave the same lake."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from deep_storage import lake as lakes
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.lake import SILVER_EXECUTIONS, LakeFS
from deep_storage.tables import bronze, silver
from tests.events import event, insert, utc
from tests.lake_fixtures import silver_snapshot
from tests.services import BUCKET, run_cli

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 1)
D1 = dt.date(2025, 6, 2)


@pytest.fixture(params=["duckdb", "spark"])
def engine(request, monkeypatch):
    """The same crafted events through either engine: the same rows, the same partitions."""
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", request.param)
    return request.param


def ingest(spark, lake, first, last=None):
    bronze.run(DayRange(first, last or first), lake, spark=spark)


def silver_rows(spark, lake, dates):
    return {r.execution_token: r for r in silver.read_committed(spark, lake, dates).collect()}


def snapshot(spark, lake):
    return silver_snapshot(spark, lake)


def test_execution_across_midnight_is_one_row_in_its_first_day(db, spark, lake, engine):
    token = "101:64000.12345678:1748822399500"
    insert(
        db,
        [
            event("2025-06-01 23:59:59.5", "STOP_TRIGGERED", execution_token=token),
            event("2025-06-01 23:59:59.7", "EXECUTION_SUBMITTED", execution_token=token),
            event(
                "2025-06-02 00:00:00.5",
                "EXECUTED",
                execution_token=token,
                exchange_order_id="EX-9",
                fill_price=Decimal("63990.50000000"),
            ),
        ],
    )
    ingest(spark, lake, D)
    silver.run(DayRange(D, D), lake, spark=spark)
    (row,) = silver_rows(spark, lake, [D, D1]).values()
    assert (row.status, row.date) == ("SUBMITTED", D)
    assert row.executed_at is None

    ingest(spark, lake, D1)
    silver.run(DayRange(D1, D1), lake, spark=spark)
    rows = silver_rows(spark, lake, [D, D1])
    assert list(rows) == [token]
    row = rows[token]
    assert (row.status, row.date, row.exchange_order_id) == ("EXECUTED", D, "EX-9")
    assert row.triggered_at.astimezone(dt.UTC) == utc("2025-06-01 23:59:59.5")
    assert row.executed_at.astimezone(dt.UTC) == utc("2025-06-02 00:00:00.5")
    assert [k for k in snapshot(spark, lake) if k.endswith("date=2025-06-02")] == []

    before = snapshot(spark, lake)
    silver.run(DayRange(D, D), lake, spark=spark)  # re-running the older day rolls nothing back
    assert snapshot(spark, lake) == before


def test_a_late_execution_starting_on_an_older_committed_day_keeps_that_days_rows(
    db, spark, lake, engine
):
    """A writer commits late: after silver built day D, an execution of the same client that
    starts at the end of D and ends on D+1 lands in bronze D. The run for D+1 puts its row in
    D's partition next to the rows already there, it does not replace them."""
    early, late = "7:100.00000000:1748772000000", "7:101.00000000:1748822399000"
    insert(
        db,
        [
            event("2025-06-01 10:00:00", "STOP_TRIGGERED", client_id=7, execution_token=early),
            event("2025-06-01 10:00:01", "FAILED", client_id=7, execution_token=early),
        ],
    )
    ingest(spark, lake, D, D1)
    silver.run(DayRange(D, D), lake, spark=spark)
    assert list(silver_rows(spark, lake, [D, D1])) == [early]

    insert(
        db,
        [
            event("2025-06-01 23:59:59", "STOP_TRIGGERED", client_id=7, execution_token=late),
            event("2025-06-02 00:00:01", "EXECUTED", client_id=7, execution_token=late),
        ],
    )
    ingest(spark, lake, D, D1)
    silver.run(DayRange(D1, D1), lake, spark=spark)
    rows = silver_rows(spark, lake, [D, D1])
    assert sorted(rows) == sorted([early, late])
    assert (rows[early].date, rows[early].status) == (D, "FAILED")
    assert (rows[late].date, rows[late].status) == (D, "EXECUTED")


def test_two_clients_reusing_operation_ids_stay_apart(db, spark, lake, engine):
    insert(
        db,
        [
            event(
                "2025-06-01 10:00:00",
                "STOP_TRIGGERED",
                client_id=1,
                operation_id=5,
                execution_token="5:100:1",
            ),
            event(
                "2025-06-01 10:00:01",
                "EXECUTED",
                client_id=1,
                operation_id=5,
                execution_token="5:100:1",
            ),
            event(
                "2025-06-01 11:00:00",
                "STOP_TRIGGERED",
                client_id=2,
                operation_id=5,
                execution_token="5:100:2",
            ),
            event(
                "2025-06-01 12:00:00", "FAILED", client_id=1, operation_id=6, execution_token=None
            ),
            event(
                "2025-06-01 12:00:00",
                "STOP_TRIGGERED",
                client_id=2,
                operation_id=6,
                execution_token=None,
            ),
        ],
    )
    ingest(spark, lake, D)
    silver.run(DayRange(D, D), lake, spark=spark)
    rows = sorted(
        (r.client_id, r.operation_id, r.status)
        for r in silver.read_committed(spark, lake, [D]).collect()
    )
    assert rows == [(1, 5, "EXECUTED"), (1, 6, "FAILED"), (2, 5, "PENDING"), (2, 6, "PENDING")]
    assert set(snapshot(spark, lake)) == {
        "client_id=1/date=2025-06-01",
        "client_id=2/date=2025-06-01",
    }


def test_rerun_changes_nothing_and_untouched_partitions_keep_their_files(
    db, spark, lake, s3, engine
):
    insert(
        db,
        [
            event("2025-05-31 09:00:00", "STOP_TRIGGERED", client_id=9, execution_token="9:1:1"),
            event("2025-05-31 09:00:01", "EXECUTED", client_id=9, execution_token="9:1:1"),
            *[
                event(
                    f"2025-06-01 0{h}:00:00",
                    "STOP_TRIGGERED",
                    client_id=c,
                    execution_token=f"{c}:{h}:1",
                )
                for c in (1, 2, 3)
                for h in range(5)
            ],
        ],
    )
    ingest(spark, lake, dt.date(2025, 5, 31), D)
    silver.run(DayRange(dt.date(2025, 5, 31), D), lake, spark=spark)
    prefix = lake.split(f"s3a://{BUCKET}/", 1)[1] + f"/{SILVER_EXECUTIONS}/client_id=9/"
    listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    untouched = sorted((o["Key"], o["ETag"], o["LastModified"]) for o in listing)
    before = snapshot(spark, lake)
    assert len(before) == 4

    silver.run(DayRange(D, D), lake, spark=spark)
    assert snapshot(spark, lake) == before
    # Files were written straight under their final names (no rename-based committer's
    # _temporary copy on S3), and every data file left is one a manifest lists.
    table = lake.split(f"s3a://{BUCKET}/", 1)[1] + f"/{SILVER_EXECUTIONS}/"
    keys = [o["Key"][len(table) :] for o in s3.client().list_objects_v2(
        Bucket=BUCKET, Prefix=table)["Contents"]]  # fmt: skip
    assert not [k for k in keys if "_temporary" in k]
    listed = {f for m in lakes.committed(LakeFS(lake), SILVER_EXECUTIONS).values() for f in m.files}
    assert {k for k in keys if k.endswith(".parquet")} == listed
    listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert sorted((o["Key"], o["ETag"], o["LastModified"]) for o in listing) == untouched


def test_missing_bronze_days_are_named_with_the_fix(db, spark, lake):
    insert(db, [event("2025-06-01 10:00:00")])
    with pytest.raises(
        LakeStateError,
        match=r"bronze day 2025-06-01 is not committed: "
        r"run `deep-storage bronze --date 2025-06-01`",
    ):
        silver.run(DayRange(D, D), lake, spark=spark)

    ingest(spark, lake, dt.date(2025, 5, 30), D)
    result = silver.run(DayRange(D, D), lake, spark=spark)
    assert "2025-05-25" in result.missing_lookback_days
    assert "2025-05-30" not in result.missing_lookback_days
    assert result.executions == 1


def test_cli_names_unsealed_days_and_missing_lookback(db, spark, lake):
    today = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC).date()
    insert(db, [event(dt.datetime.combine(today, dt.time(0, 0, 1), dt.UTC))])
    ingest(spark, lake, today)
    done = run_cli("silver", "--date", today.isoformat(), "--lake", lake)
    assert done.returncode == 0, done.stderr
    assert "1 executions (PENDING 1)" in done.stdout
    assert f"unsealed bronze days (silver will change when they do): {today}" in done.stderr
    assert "look-back bronze days never ingested" in done.stderr


def test_both_engines_leave_the_same_silver_from_a_realistic_log(db, spark, lake, monkeypatch):
    """Three days of 25 clients whose services stamp their own clocks, executions spilling past
    midnight, then a late writer's events for the first day: DuckDB in this process (in many
    small buckets, so many tasks) and Spark leave the same partitions with the same rows."""
    from demo import synthetic

    days = [D + dt.timedelta(days=i) for i in range(3)]
    synthetic.seed_days(db, days, events_per_day=1500, seed=35, clients=25)
    monkeypatch.setattr(silver, "BUCKET_ROWS", 700)  # ~7 tasks for 4,500 events
    lakes_by_engine = {"duckdb": f"{lake}/duckdb", "spark": f"{lake}/spark"}
    for engine, at in lakes_by_engine.items():
        ingest(spark, at, days[0], days[-1] + dt.timedelta(days=1))
        done = silver.run(DayRange(days[0], days[-1]), at, spark=spark, engine=engine)
        assert done.engine == engine
    # Every execution of the log is one row: (client, token) or, without a token, (client, op).
    (expected,) = db.execute(
        "SELECT count(DISTINCT (client_id, coalesce(execution_token, 'op:' || operation_id)))"
        " FROM stop_events"
    ).fetchone()
    first = {e: silver_snapshot(spark, at) for e, at in lakes_by_engine.items()}
    assert sum(len(rows) for rows in first["duckdb"].values()) == expected
    assert first["duckdb"] == first["spark"]

    # A late writer: an execution that started at the end of the first day lands after it.
    part = next(k for k in first["duckdb"] if k.endswith("/date=2025-06-01"))
    client = int(part.split("/")[0].removeprefix("client_id="))
    token = "9901:100.00000000:1748822399000"
    insert(
        db,
        [
            event("2025-06-01 23:59:58", "STOP_TRIGGERED", client_id=client, execution_token=token),
            event("2025-06-02 00:00:03", "EXECUTED", client_id=client, execution_token=token),
        ],
    )
    for engine, at in lakes_by_engine.items():
        ingest(spark, at, D, D1)
        silver.run(DayRange(D1, D1), at, spark=spark, engine=engine)
    again = {e: silver_snapshot(spark, at) for e, at in lakes_by_engine.items()}
    assert again["duckdb"] == again["spark"]
    assert sum(map(len, again["duckdb"].values())) == expected + 1
    # The late execution joined its client's partition of the first day, next to its rows.
    assert len(again["duckdb"][part]) == len(first["duckdb"][part]) + 1
