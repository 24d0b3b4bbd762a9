"""The lake's guarantees on the real services: silver holds every execution, every write is an
atomic and exclusive commit, no day is missed, an execution lives in one partition, and a stuck
writer at the source is named."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from decimal import Decimal

import pytest

from deep_storage import lake as lakes
from deep_storage import steps
from deep_storage.core import defaults
from deep_storage.core.dates import DayRange
from deep_storage.lake import BRONZE_EVENTS, SILVER_EXECUTIONS, LakeFS
from deep_storage.quality import validate
from deep_storage.tables import bronze, silver
from tests.events import event, insert, utc
from tests.lake_fixtures import (
    bronze_rows,
    delta_rs_keys,
    leftovers_after_vacuum,
    silver_snapshot,
)
from tests.services import APP_DB, APP_PASSWORD, APP_USER, BUCKET, CLI, run_cli

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 1)
D1 = dt.date(2025, 6, 2)
AS_OF = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)


def today(db) -> dt.date:
    return db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC).date()


def at(day: dt.date, hour: int = 10, second: float = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC) + dt.timedelta(seconds=second)


def lifecycle(token: str, start: dt.datetime, client: int = 7, op: int = 101, **kw) -> list[dict]:
    """TRIGGERED, SUBMITTED, EXECUTED one second apart."""
    common = {"execution_token": token, "client_id": client, "operation_id": op, **kw}
    return [
        event(start, "STOP_TRIGGERED", **common),
        event(start + dt.timedelta(seconds=1), "EXECUTION_SUBMITTED", **common),
        event(start + dt.timedelta(seconds=2), "EXECUTED", **common),
    ]


def s3_keys(s3, lake: str, under: str) -> list[str]:
    prefix = f"{lake.split(f's3a://{BUCKET}/', 1)[1]}/{under}/"
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for p in pages for o in p.get("Contents", []))


# --- 1. silver holds every execution ---------------------------------------------------------


def test_an_out_of_order_lifecycle_is_in_silver_with_its_status_and_times(db, spark, lake):
    token = "101:64000.1:1748772000000"
    # The exchange adapter's clock runs 2 s behind the submitter's: EXECUTED is stamped before
    # EXECUTION_SUBMITTED, though it happened after.
    insert(
        db,
        [
            event("2025-06-01 10:00:00", "STOP_TRIGGERED", execution_token=token),
            event("2025-06-01 10:00:03", "EXECUTION_SUBMITTED", execution_token=token),
            event(
                "2025-06-01 10:00:01",
                "EXECUTED",
                execution_token=token,
                exchange_order_id="EX-1",
                fill_price=Decimal("63990.00000000"),
            ),
            *lifecycle("101:1:2", at(D, 11)),
        ],
    )
    bronze.run(DayRange(D, D), lake, spark=spark)
    result = silver.run(DayRange(D, D), lake, spark=spark)
    assert result.executions == 2
    rows = {r.execution_token: r for r in silver.read_committed(spark, lake, [D]).collect()}
    row = rows[token]
    assert (row.status, row.exchange_order_id, row.fill_price) == (
        "EXECUTED",
        "EX-1",
        Decimal("63990.00000000"),
    )
    assert row.triggered_at.astimezone(dt.UTC) == utc("2025-06-01 10:00:00")
    assert row.submitted_at.astimezone(dt.UTC) == utc("2025-06-01 10:00:03")
    assert row.executed_at.astimezone(dt.UTC) == utc("2025-06-01 10:00:01")

    report = validate.run(D, lake, spark=spark, as_of=AS_OF, raise_on_failure=False)
    assert report.failed == []
    assert report.warned == ["silver_stop_executions.timestamps_ordered"]
    (silver_report,) = [t for t in report.tables if t.table == "silver_stop_executions"]
    (ordered,) = [r for r in silver_report.results if r.name == "timestamps_ordered"]
    assert ordered.observed == 1  # one execution out of causal order, counted in the report


# --- 2. a killed silver run ------------------------------------------------------------------


def _two_versions(db, spark, lakes_: list[str]) -> None:
    """Version 1 of bronze and silver D..D1 in each lake, then the source grows (a late writer
    on D1, an execution across midnight completed) and bronze takes version 2."""
    insert(
        db,
        [
            *[e for c in (1, 2, 3) for e in lifecycle(f"{c}:a", at(D, 9, c), client=c, op=c)],
            event(at(D, 23, 3599), "STOP_TRIGGERED", execution_token="9:m", client_id=9),
            *lifecycle("4:b", at(D1, 8), client=4, op=4),
        ],
    )
    for lake in lakes_:
        bronze.run(DayRange(D, D1), lake, spark=spark)
        silver.run(DayRange(D, D1), lake, spark=spark)
    insert(
        db,
        [
            event(at(D1, 0, 1), "EXECUTED", execution_token="9:m", client_id=9),
            *lifecycle("5:c", at(D1, 9), client=5, op=5),
            event(at(D1, 10), "FAILED", execution_token="1:a", client_id=1, operation_id=1),
        ],
    )
    for lake in lakes_:
        bronze.run(DayRange(D, D1), lake, spark=spark)


@pytest.mark.slow
def test_silver_killed_at_any_point_leaves_a_whole_version_and_the_rerun_completes_it(
    db, spark, s3, service_env
):
    points = ["lease", "silver:written", "silver:commit", "silver:swapped"]
    reference, *killed = [f"s3a://{BUCKET}/kill-{i}-{time.time_ns()}" for i in range(5)]
    _two_versions(db, spark, [reference, *killed])
    before = silver_snapshot(spark, killed[0])
    silver.run(DayRange(D, D1), reference, spark=spark)
    expected = silver_snapshot(spark, reference)
    assert expected != before
    assert sum(len(v) for v in expected.values()) == 6  # every execution, once

    for lake, point in zip(killed, points, strict=True):
        assert silver_snapshot(spark, lake) == before
        cmd = [CLI, "silver", "--date", str(D), "--until", str(D1), "--lake", lake]
        env = {**os.environ, "DEEP_STORAGE_KILL_AT": point}
        if point == "lease":
            # Killed while it projects: on Spark, whose start outlasts the wait below (these
            # six executions take 0.3 s in the step's own process); the failpoints run there.
            env["DEEP_STORAGE_SILVER_ENGINE"] = "spark"
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if point == "lease":  # killed while it projects, before it has written anything
            deadline = time.monotonic() + 120
            while not s3_keys(s3, lake, "_locks") and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, err[-2000:]

        # Between the kill and the re-run a manifest reader sees one whole version.
        seen = silver_snapshot(spark, lake)
        assert seen == (expected if point == "silver:swapped" else before), point

        result = silver.run(DayRange(D1, D1), lake, spark=spark)  # e.g. the next scheduled run
        assert result.resumed == f"{D}..{D1}", point
        assert silver_snapshot(spark, lake) == expected, point
        ids = sorted(row[0] for rows in expected.values() for row in rows)
        assert delta_rs_keys(lake, SILVER_EXECUTIONS) == ids, point
        assert leftovers_after_vacuum(lake, SILVER_EXECUTIONS) == [], point


# --- 3. one writer at a time -----------------------------------------------------------------


@pytest.mark.slow
def _pause_while_one_holds_the_lease(s3, lake, procs) -> None:
    """SIGSTOP `procs` at a moment the lease is held, retrying when it was released between the
    look and the stop. The lease is its own object: the conditional-write probe each run makes
    first lives under _locks/ too, and is no lease."""

    def held() -> bool:
        return "writer.json" in s3_keys(s3, lake, "_locks")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if held():
            for proc in procs:
                proc.send_signal(signal.SIGSTOP)
            if held():
                return
            for proc in procs:
                proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no run took the lease within 120 s")


def test_two_bronze_and_two_silver_runs_at_once_write_each_row_exactly_once(db, spark, lake, s3):
    events = [
        e
        for day in (D, D1)
        for c in range(1, 6)
        for e in lifecycle(f"{c}:{day}", at(day, 10, c), client=c, op=c)
    ]
    insert(db, events)
    for step in ("bronze", "silver"):
        args = [step, "--date", str(D), "--until", str(D1), "--lake", lake]
        first = subprocess.Popen([CLI, *args], stderr=subprocess.PIPE, text=True)
        second = subprocess.Popen([CLI, *args], stderr=subprocess.PIPE, text=True)
        # A third that will not wait names the run that holds the lake. Both runs are paused
        # while it asks, so a holder that finishes fast (an unchanged day) cannot release first;
        # the pause is far shorter than the lease's ttl.
        _pause_while_one_holds_the_lease(s3, lake, (first, second))
        try:
            busy = run_cli(*args, env={"DEEP_STORAGE_LOCK_WAIT": "0"})
        finally:
            for proc in (first, second):
                proc.send_signal(signal.SIGCONT)
        assert busy.returncode == 8, busy.stderr
        (line,) = [x for x in busy.stderr.splitlines() if x.startswith("deep-storage: error")]
        assert f"the lake is being written by {step} {D}..{D1} (run " in line
        assert "since 20" in line and "DEEP_STORAGE_LOCK_WAIT" in line
        for proc in (first, second):
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]

    got = bronze_rows(spark, lake, [D, D1])
    assert sorted(r.event_id for r in got) == sorted(e["event_id"] for e in events)
    executions = silver.read_committed(spark, lake, [D, D1]).collect()
    assert sorted(r.execution_token for r in executions) == sorted(
        {e["execution_token"] for e in events}
    )
    assert delta_rs_keys(lake, BRONZE_EVENTS) == sorted(e["event_id"] for e in events)
    assert delta_rs_keys(lake, SILVER_EXECUTIONS) == sorted(r.execution_id for r in executions)
    assert s3_keys(s3, lake, "_locks") == [], "the lease is released"


# --- 4. no day is missed ---------------------------------------------------------------------


def test_a_missing_day_between_ingested_days_is_found_and_the_cap_says_what_is_left(
    db, spark, lake
):
    t = today(db)
    days = [t - dt.timedelta(days=i) for i in (4, 3, 2, 1, 0)]
    insert(db, [event(at(day, 1)) for day in days])
    bronze.run(DayRange(days[0], days[0]), lake, spark=spark)
    bronze.run(DayRange(days[2], days[2]), lake, spark=spark)

    capped = run_cli("bronze", "--lake", lake, "--max-days", "2")
    assert capped.returncode == 0, capped.stderr
    assert f"bronze {days[1]}: 1 rows, sealed" in capped.stdout
    assert f"bronze {days[3]}: 1 rows, sealed" in capped.stdout
    assert f"note: 1 more days are due ({t}..{t}); run again to continue" in capped.stderr

    rest = bronze.run(None, lake, spark=spark)
    assert [d.date for d in rest.days] == [t.isoformat()]
    committed = lakes.committed(LakeFS(lake), BRONZE_EVENTS)
    assert sorted(committed) == days
    assert [len(bronze_rows(spark, lake, [d])) for d in days] == [1] * 5


def test_an_empty_lakes_first_pipeline_run_starts_at_the_oldest_event_within_retention(
    db, spark, lake
):
    t = today(db)
    insert(
        db,
        [
            event(at(t - dt.timedelta(days=120))),  # past bronze retention: not ingested
            event(at(t - dt.timedelta(days=10))),
            event(at(t - dt.timedelta(days=1))),
        ],
    )
    out = steps.bronze(lake, run_date=t.isoformat())
    assert (out.first_day, out.last_day) == (str(t - dt.timedelta(days=10)), str(t))
    assert out.metrics["days"] == 11 and out.metrics["rows"] == 2
    assert out.metrics["days_left"] == 0


# --- 5. an execution lives in exactly one partition ------------------------------------------


def test_a_backfilled_earlier_day_moves_the_execution_and_leaves_no_copy(db, spark, lake, s3):
    insert(
        db,
        [
            event("2025-06-01 23:59:58", "STOP_TRIGGERED", execution_token="m:1"),
            event("2025-06-02 00:00:01", "EXECUTION_SUBMITTED", execution_token="m:1"),
            event("2025-06-02 00:00:02", "EXECUTED", execution_token="m:1"),
            event("2025-06-02 09:00:00", "STOP_TRIGGERED", execution_token="n:1"),
        ],
    )
    bronze.run(DayRange(D1, D1), lake, spark=spark)
    silver.run(DayRange(D1, D1), lake, spark=spark)
    first = {
        r.execution_token: r.date for r in silver.read_committed(spark, lake, [D, D1]).collect()
    }
    assert first == {"m:1": D1, "n:1": D1}  # all silver knew: it started on D1

    bronze.run(DayRange(D, D), lake, spark=spark)  # the backfill of the earlier day
    silver.run(DayRange(D, D), lake, spark=spark)
    rows = silver.read_committed(spark, lake, [D, D1]).collect()
    assert sorted((r.execution_token, r.date, r.status) for r in rows) == [
        ("m:1", D, "EXECUTED"),
        ("n:1", D1, "PENDING"),
    ]
    assert delta_rs_keys(lake, SILVER_EXECUTIONS) == sorted(r.execution_id for r in rows)


# --- 6. a stuck writer is visible ------------------------------------------------------------


def test_a_prepared_transaction_left_open_is_named_with_its_age(pg, db, spark, lake, monkeypatch):
    day = today(db) - dt.timedelta(days=2)
    insert(db, [event(at(day, 5))])
    gid = "deep-storage-test-orphan"
    with pg.connect(APP_DB, APP_USER, APP_PASSWORD) as writer:
        writer.execute("BEGIN")
        insert(writer, [event(at(day, 6))])
        writer.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        monkeypatch.setattr(
            defaults, "STUCK_WRITER_AFTER", dt.timedelta(0)
        )  # an hour is too long here
        result = bronze.run(DayRange(day, day), lake, spark=spark)
        (got,) = result.days
        assert got.sealed is False and got.rows == 1
        assert f"prepared transaction '{gid}' prepared at" in got.reason
        (stuck,) = got.stuck_writers
        assert stuck.startswith(f"prepared transaction '{gid}' prepared at ") and "0h00m" in stuck
        report = validate.run(
            day, lake, spark=spark, tables=("bronze",), raise_on_failure=False, as_of=AS_OF
        )
        assert any(gid in n and "stuck writer" in n for n in report.tables[0].notes)
        assert gid in report.markdown()
    finally:
        db.execute(f"ROLLBACK PREPARED '{gid}'")
    sealed = bronze.run(DayRange(day, day), lake, spark=spark)
    assert sealed.days[0].sealed is True and sealed.days[0].stuck_writers == []
