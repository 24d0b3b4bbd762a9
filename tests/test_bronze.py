"""Bronze ingest on the real services: window, exactness, sealing, re-runs, kills, bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import signal
import subprocess
import time
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from deep_storage import lake as lakes
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.io import source_copy
from deep_storage.lake import BRONZE_EVENTS, LakeFS
from deep_storage.tables import bronze
from tests.events import event, insert, utc
from tests.lake_fixtures import bronze_rows, delta_rs_keys, leftovers_after_vacuum
from tests.services import APP_PASSWORD, BUCKET, CLI, run_cli

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 1)


def committed_rows(spark, lake: str, day: dt.date) -> list:
    assert committed_day(spark, lake, day) is not None, f"day {day} is not committed"
    return bronze_rows(spark, lake, [day])


def committed_day(spark, lake: str, day: dt.date):
    return lakes.committed_day(LakeFS(lake), BRONZE_EVENTS, day)


def keys(s3, lake: str) -> list[str]:
    prefix = lake.split(f"s3a://{BUCKET}/", 1)[1]
    resp = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


@pytest.mark.parametrize("read_path", ["arrow", "jdbc"])
def test_day_window_is_half_open_utc_whatever_the_time_zones(db, spark, lake, s3, read_path):
    insert(
        db,
        [
            event("2025-05-31 23:59:59.999999", event_id="00000000-0000-0000-0000-000000000001"),
            event("2025-06-01 00:00:00", event_id="00000000-0000-0000-0000-000000000002"),
            event("2025-06-01 23:59:59.999999", event_id="00000000-0000-0000-0000-000000000003"),
            event("2025-06-02 00:00:00", event_id="00000000-0000-0000-0000-000000000004"),
        ],
    )
    assert db.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
    assert os.environ["TZ"] == "America/Sao_Paulo"
    bronze.run(
        DayRange(dt.date(2025, 5, 31), dt.date(2025, 6, 2)), lake, spark=spark, read_path=read_path
    )

    def ids(day):
        return [r.event_id[-1] for r in committed_rows(spark, lake, day)]

    assert ids(dt.date(2025, 5, 31)) == ["1"]
    assert ids(D) == ["2", "3"]
    assert ids(dt.date(2025, 6, 2)) == ["4"]
    rows = committed_rows(spark, lake, D)
    assert rows[1].occurred_at.astimezone(dt.UTC) == utc("2025-06-01 23:59:59.999999")


@pytest.mark.parametrize("read_path", ["arrow", "jdbc"])
def test_values_types_and_parquet_encoding_follow_the_contract(db, spark, lake, s3, read_path):
    payload = '{"pnl": "12.345678901234567890", "fee": "0.00000001", "b": [1, 2.50]}'
    insert(
        db,
        [
            event(
                "2025-06-01 12:00:00.123456",
                event_type="EXECUTED",
                event_id="A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".lower(),
                trigger_price=Decimal("99999999999.99999999"),
                quantity=Decimal("0.00000001"),
                fill_price=Decimal("64001.00000001"),
                slippage_pct=Decimal("123456.7891"),
                exchange_order_id="X-1",
                payload_json=payload,
                event_seq=None,
                retry_count=3,
            )
        ],
    )
    bronze.run(DayRange(D, D), lake, spark=spark, read_path=read_path)
    (row,) = committed_rows(spark, lake, D)
    assert row.trigger_price == Decimal("99999999999.99999999")
    assert row.quantity == Decimal("0.00000001")
    assert row.slippage_pct == Decimal("123456.7891")
    assert row.event_id == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    # The jsonb text exactly as PostgreSQL renders it, never re-serialised.
    assert (
        row.payload_json == db.execute("SELECT payload_json::text FROM stop_events").fetchone()[0]
    )
    assert row.event_seq is None and row.retry_count == 3

    m = committed_day(spark, lake, D)
    key = f"{lake.split(BUCKET + '/', 1)[1]}/bronze/events/{m.files[0]}"
    assert m.files[0].startswith("date=2025-06-01/part-")
    body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    schema = pq.read_schema(io.BytesIO(body))
    assert [f.name for f in schema] == list(bronze.schemas.BRONZE_EVENTS_SCHEMA.fieldNames())
    assert str(schema.field("occurred_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("fill_price").type) == "decimal128(20, 8)"
    assert str(schema.field("slippage_pct").type) == "decimal128(10, 4)"
    assert str(schema.field("retry_count").type) == "int32"


def test_empty_day_gets_a_folder_and_a_zero_row_manifest(db, spark, lake):
    result = bronze.run(DayRange(D, D), lake, spark=spark)
    assert result.days[0].rows == 0
    m = committed_day(spark, lake, D)
    assert (m.rows, m.sealed, m.date) == (0, True, "2025-06-01")
    assert committed_rows(spark, lake, D) == []


@pytest.mark.parametrize("read_path", ["arrow", "jdbc"])
def test_rerunning_a_day_replaces_it_with_the_same_rows(db, spark, lake, s3, read_path):
    insert(db, [event(f"2025-06-01 10:00:{s:02d}") for s in range(30)])
    bronze.run(DayRange(D, D), lake, spark=spark, read_path=read_path)
    first = committed_rows(spark, lake, D)
    bronze.run(DayRange(D, D), lake, spark=spark, read_path=read_path)
    second = committed_rows(spark, lake, D)
    assert len(first) == 30
    assert first == second
    assert committed_day(spark, lake, D).rows == 30
    if read_path == "jdbc":
        success = LakeFS(lake).read_text(f"{lake}/bronze/events/date=2025-06-01/_SUCCESS")
        assert json.loads(success)["committer"] == "directory", "not written by an S3A committer"
    # Any Delta reader sees the day once: the superseded files are out of the snapshot, and
    # vacuum (retention) deletes them once past the window.
    assert delta_rs_keys(lake, BRONZE_EVENTS) == sorted(r.event_id for r in second)
    assert leftovers_after_vacuum(lake, BRONZE_EVENTS) == [], "old files left behind"


def test_a_later_run_re_reads_only_the_slices_that_changed_at_the_source(db, spark, lake):
    """The hourly run at the end of a big day: bronze re-reads the hours that got new rows (a
    writer committing late into an early hour, the newest events) and keeps the other hours'
    files. An event at exactly 05:00:00 belongs to the 05:00 slice, in the count that finds the
    changed slices as in the read of that slice."""
    insert(db, [event(f"2025-06-01 {h:02d}:10:00") for h in (1, 4, 5, 10, 22)])
    bronze.run(DayRange(D, D), lake, spark=spark)
    first = committed_day(spark, lake, D)
    assert first.rows == 5 and len(first.details["slices"]) == 24
    assert first.details["slices"][4][0] == 1 and first.details["slices"][0] == [0, None]

    insert(
        db,
        [
            event("2025-06-01 05:00:00", event_id="00000000-0000-0000-0000-00000000a005"),
            event("2025-06-01 23:59:59.999999", event_id="00000000-0000-0000-0000-00000000a023"),
        ],
    )
    result = bronze.run(DayRange(D, D), lake, spark=spark)
    second = committed_day(spark, lake, D)
    assert (result.days[0].changed, second.rows) == (True, 7)
    # The hours 01, 04, 10 and 22 keep their files; 05 and 23 were read again.
    by_slice = {source_copy.slice_of(f): f for f in second.files}
    before = {source_copy.slice_of(f): f for f in first.files}
    assert sorted(by_slice) == [1, 4, 5, 10, 22, 23]
    assert [s for s in by_slice if by_slice[s] == before.get(s)] == [1, 4, 10, 22]
    assert second.details["slices"][5][0] == 2 and second.details["slices"][23][0] == 1
    # Exactly the source's rows, as any Delta reader sees them, and nothing left behind.
    source = sorted(
        str(r[0])
        for r in db.execute(
            "SELECT event_id FROM stop_events WHERE occurred_at >= %s AND occurred_at < %s",
            (utc("2025-06-01 00:00:00"), utc("2025-06-02 00:00:00")),
        )
    )
    assert sorted(r.event_id for r in committed_rows(spark, lake, D)) == source
    assert delta_rs_keys(lake, BRONZE_EVENTS) == source
    assert leftovers_after_vacuum(lake, BRONZE_EVENTS) == [], "the replaced slices' files stay"

    again = bronze.run(DayRange(D, D), lake, spark=spark)
    assert again.days[0].changed is False and committed_day(spark, lake, D).files == second.files


def test_open_transaction_keeps_the_day_unsealed_until_it_commits(pg, db, spark, lake):
    now = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)
    day = now.date() - dt.timedelta(days=1)
    _, window_end = (
        dt.datetime.combine(day, dt.time(), dt.UTC),
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC),
    )
    insert(db, [event(dt.datetime.combine(day, dt.time(12), dt.UTC))])
    late = event(dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC), event_type="EXECUTED")
    with pg.connect("trading", "django", APP_PASSWORD, autocommit=False) as writer:
        insert(writer, [late])  # holds its write lock, uncommitted
        started = writer.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)
        # The margin makes the writer one that began before the window closed for late commits
        # (as a transaction open at 23:59:59 would), without waiting for a real midnight.
        margin = started - window_end + dt.timedelta(seconds=1)
        while writer.execute("SELECT clock_timestamp()").fetchone()[0] < window_end + margin:
            time.sleep(0.1)
        first = bronze.run(DayRange(day, day), lake, spark=spark, seal_margin=margin)
        assert first.days[0].sealed is False
        assert "write lock" in first.days[0].reason
        assert first.days[0].rows == 1
        writer.commit()
    second = bronze.run(None, lake, spark=spark, seal_margin=margin)
    assert second.days[0].date == day.isoformat(), "the unsealed day is re-ingested first"
    rows = committed_rows(spark, lake, day)
    assert [r.event_id for r in rows].count(late["event_id"]) == 1
    assert len(rows) == 2
    m = committed_day(spark, lake, day)
    assert m.sealed is True and m.rows == 2


def test_a_writer_that_rolls_back_lets_the_day_seal_without_reading_it_again(pg, db, spark, lake):
    """The day was unsealed only by an open writer, which rolled back: nothing changed at the
    source, so the next run seals the day in a commit of its facts alone, with the same files."""
    now = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)
    day = now.date() - dt.timedelta(days=1)
    window_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    insert(db, [event(dt.datetime.combine(day, dt.time(h), dt.UTC)) for h in (3, 12)])
    with pg.connect("trading", "django", APP_PASSWORD, autocommit=False) as writer:
        insert(writer, [event(dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC))])
        started = writer.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC)
        margin = started - window_end + dt.timedelta(seconds=1)
        while writer.execute("SELECT clock_timestamp()").fetchone()[0] < window_end + margin:
            time.sleep(0.1)
        first = bronze.run(DayRange(day, day), lake, spark=spark, seal_margin=margin)
        assert (first.days[0].sealed, first.days[0].rows) == (False, 2)
        before = committed_day(spark, lake, day)
        writer.rollback()
    second = bronze.run(DayRange(day, day), lake, spark=spark, seal_margin=margin)
    after = committed_day(spark, lake, day)
    assert (second.days[0].sealed, after.sealed, after.rows) == (True, True, 2)
    assert after.files == before.files and after.version > before.version
    assert len(committed_rows(spark, lake, day)) == 2
    assert sorted(delta_rs_keys(lake, BRONZE_EVENTS)) == sorted(
        r.event_id for r in committed_rows(spark, lake, day)
    )


def test_without_date_starts_at_the_oldest_source_day_on_an_empty_lake(db, spark, lake):
    today = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC).date()
    oldest = today - dt.timedelta(days=2)
    insert(db, [event(dt.datetime.combine(oldest, dt.time(5), dt.UTC))])
    result = bronze.run(None, lake, spark=spark)
    assert [d.date for d in result.days] == [
        (oldest + dt.timedelta(days=i)).isoformat() for i in range(3)
    ]
    assert result.days[-1].sealed is False  # today can still change
    assert result.days[0].sealed is True


@pytest.mark.slow
def test_run_killed_mid_write_leaves_the_old_day_and_the_next_run_repairs(pg, db, spark, lake, s3):
    n = 300_000
    start = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    # The first hour is busy (one large slice); 10:00 holds one event, in a slice of its own.
    insert(db, [event(start + dt.timedelta(seconds=i * 0.01)) for i in range(n)])
    insert(db, [event(start + dt.timedelta(hours=10))])
    assert run_cli("bronze", "--date", "2025-06-01", "--lake", lake).returncode == 0
    before = committed_day(spark, lake, D)
    # The first hour changed: the run re-reads and rewrites its slice, and keeps 10:00's file.
    insert(db, [event(start + dt.timedelta(minutes=55))])
    client = s3.client()

    proc = subprocess.Popen(
        [CLI, "bronze", "--date", "2025-06-01", "--lake", lake],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Kill while the run uploads the day's new Parquet (a multipart upload is open).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if client.list_multipart_uploads(Bucket=BUCKET).get("Uploads"):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed mid-write"

    # A reader still sees the previous version of the day, whole.
    assert committed_day(spark, lake, D) == before
    assert len(committed_rows(spark, lake, D)) == n + 1
    done = run_cli("bronze", "--date", "2025-06-01", "--lake", lake)
    assert done.returncode == 0, done.stderr
    got = committed_rows(spark, lake, D)
    assert len(got) == n + 2
    assert len({r.event_id for r in got}) == n + 2
    after = committed_day(spark, lake, D)
    assert after.sealed is True
    kept = [f for f in before.files if source_copy.slice_of(f) == 10]
    assert kept and set(kept) <= set(after.files), "the unchanged hour was rewritten"
    assert delta_rs_keys(lake, BRONZE_EVENTS) == sorted(r.event_id for r in got)
    assert leftovers_after_vacuum(lake, BRONZE_EVENTS) == [], "the killed run's files stay"


def test_files_roll_over_and_every_row_read_is_committed(db, spark, lake, monkeypatch):

    monkeypatch.setattr(source_copy, "BATCH_BYTES", 1024)  # batches of a few rows
    monkeypatch.setattr(source_copy, "ROWS_PER_FILE", 10)
    insert(db, [event(f"2025-06-01 {h:02d}:00:00") for h in range(24) for _ in range(3)])
    insert(db, [event(f"2025-06-01 07:30:{s:02d}") for s in range(25)])  # 28 rows in 07:00
    bronze.run(DayRange(D, D), lake, spark=spark)
    m = committed_day(spark, lake, D)
    assert m.rows == 97 and len(committed_rows(spark, lake, D)) == 97
    # Several files in one slice: memory bounded by a file, not a day or an hour.
    assert [source_copy.slice_of(f) for f in m.files].count(7) >= 2, m.files


def test_a_commit_never_records_fewer_rows_than_were_read(db, spark, lake, monkeypatch):
    insert(db, [event(f"2025-06-01 10:00:{s:02d}") for s in range(20)])
    real = LakeFS.describe_files

    def one_row_lost(self, table, files):
        found, schema = real(self, table, files)
        return [dataclasses.replace(found[0], rows=found[0].rows - 1), *found[1:]], schema

    monkeypatch.setattr(LakeFS, "describe_files", one_row_lost)
    with pytest.raises(LakeStateError, match="19 rows landed but 20 were read"):
        bronze.run(DayRange(D, D), lake, spark=spark)
    assert committed_day(spark, lake, D) is None


# --- bad input: one line, non-zero exit, nothing written, no secret --------------------------


def _assert_clean_failure(result, lake, s3, expect: str):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expect in lines[0], lines[0]
    for secret in (APP_PASSWORD, s3.secret_key, "s3cr!t"):
        assert secret not in result.stderr + result.stdout
    if lake.startswith(f"s3a://{BUCKET}/"):
        assert keys(s3, lake) == []


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--date", "2025-02-30"], "is not a calendar date"),
        (["--date", "20250601"], "expected YYYY-MM-DD"),
        (["--date", "2025-06-02", "--until", "2025-06-01"], "before --date"),
    ],
)
def test_bad_dates_are_refused(service_env, lake, s3, args, expect):
    _assert_clean_failure(run_cli("bronze", *args, "--lake", lake), lake, s3, expect)


def test_wrong_password_is_refused_without_echoing_it(service_env, lake, s3):
    result = run_cli(
        "bronze",
        "--date",
        "2025-06-01",
        "--lake",
        lake,
        env={"DJANGO_DB_PASSWORD": "wrong!pa$$word"},
    )
    _assert_clean_failure(result, lake, s3, "login refused")
    assert "wrong!pa$$word" not in result.stderr


def test_unreachable_database_is_named(service_env, lake, s3):
    from demo.local_services import free_port

    result = run_cli(
        "bronze", "--date", "2025-06-01", "--lake", lake, env={"DJANGO_DB_PORT": str(free_port())}
    )
    _assert_clean_failure(result, lake, s3, "cannot reach PostgreSQL")


def test_missing_bucket_is_named(service_env, s3):
    result = run_cli("bronze", "--date", "2025-06-01", "--lake", "s3a://no-such-bucket")
    _assert_clean_failure(
        result, "s3a://no-such-bucket", s3, "bucket 'no-such-bucket' does not exist"
    )


def test_unreachable_object_storage_is_named(service_env, lake, s3):
    from demo.local_services import free_port

    result = run_cli(
        "bronze",
        "--date",
        "2025-06-01",
        "--lake",
        lake,
        env={"AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
    )
    _assert_clean_failure(result, lake, s3, "cannot reach object storage")


def test_wrong_object_storage_key_is_refused(service_env, lake, s3):
    result = run_cli(
        "bronze",
        "--date",
        "2025-06-01",
        "--lake",
        lake,
        env={"AWS_SECRET_ACCESS_KEY": "not-the-key!"},
    )
    _assert_clean_failure(result, lake, s3, "refused access")
