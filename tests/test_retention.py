"""Retention on the real services: the days past each table's window leave the lake (the floor
day stays), a dry run changes nothing, time travel reads a removed day until vacuum's window
passes, and bronze's catch-up never ingests a removed day again."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from deep_storage import lake as lakes
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import InputError, LakeBusyError
from deep_storage.lake import BRONZE_EVENTS, DAYS, SILVER_EXECUTIONS, LakeFS, retention, writer_lock
from deep_storage.tables import bronze
from tests.events import event, insert
from tests.lake_fixtures import silver_row, write_bronze_day, write_silver_day
from tests.services import BUCKET, run_cli
from tests.test_freshness import _series, _value

pytestmark = pytest.mark.integration

AS_OF = dt.datetime(2025, 6, 20, 10, tzinfo=dt.UTC)
# As of 2025-06-20: bronze keeps days from 2025-03-22 (90 days), silver from 2024-06-20 (365).
BRONZE_DAYS = [
    dt.date(2025, 3, 20),
    dt.date(2025, 3, 21),
    dt.date(2025, 3, 22),
    dt.date(2025, 6, 19),
]
SILVER_DAYS = [dt.date(2024, 6, 19), dt.date(2024, 6, 20), dt.date(2025, 6, 19)]
REMOVED = {BRONZE_EVENTS: ["2025-03-20", "2025-03-21"], SILVER_EXECUTIONS: ["2024-06-19"]}
KEPT = {
    BRONZE_EVENTS: [dt.date(2025, 3, 22), dt.date(2025, 6, 19)],
    SILVER_EXECUTIONS: [dt.date(2024, 6, 20), dt.date(2025, 6, 19)],
}


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


def build(spark, lake: str) -> None:
    """Two bronze days past the window, the floor day and a recent one; silver likewise."""
    for day in BRONZE_DAYS:
        write_bronze_day(spark, lake, day, [event(at(day)), event(at(day, 11))], sealed=True)
    for i, day in enumerate(SILVER_DAYS):
        write_silver_day(
            spark, lake, day, [silver_row(execution_id=f"e-{i}", triggered_at=at(day))]
        )


def delta_days(lake: str, table: str, version: int | None = None) -> list[dt.date]:
    """The days a Delta reader that is not ours (delta-rs) sees in `table` (at `version`)."""
    fs = LakeFS(lake)
    dates = fs.scan(table, fs.delta(table, version=version), columns=["date"])
    dates = dates.column("date").to_pylist()
    return sorted(set(dates))


def versions(lake: str) -> dict[str, int]:
    fs = LakeFS(lake)
    return {t: fs.delta(t).version() for t in (BRONZE_EVENTS, SILVER_EXECUTIONS, DAYS)}


def all_keys(s3, lake: str) -> list[str]:
    prefix = lake.split(f"s3a://{BUCKET}/", 1)[1] + "/"
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


@pytest.mark.unit
def test_the_floor_is_the_oldest_day_kept():
    as_of = dt.date(2025, 6, 20)
    assert retention.floor(BRONZE_EVENTS, as_of) == dt.date(2025, 3, 22)
    assert retention.floor(SILVER_EXECUTIONS, as_of) == dt.date(2024, 6, 20)


@pytest.mark.unit
def test_a_run_as_of_the_future_is_refused_before_anything_is_read(tmp_path):
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(InputError, match="is in the future"):
        retention.run(f"file://{tmp_path}/no-lake", as_of=future)


def test_the_days_past_each_window_go_and_the_floor_day_stays(spark, lake):
    build(spark, lake)
    result = retention.run(lake, as_of=AS_OF)
    assert result.days_removed == REMOVED
    assert result.floors == {BRONZE_EVENTS: "2025-03-22", SILVER_EXECUTIONS: "2024-06-20"}
    assert result.files_vacuumed == {BRONZE_EVENTS: 0, SILVER_EXECUTIONS: 0, DAYS: 0}  # all new
    fs = LakeFS(lake)
    for table, kept in KEPT.items():
        assert list(lakes.committed(fs, table)) == kept
        assert delta_days(lake, table) == kept
    # Nothing is left past the windows: the next run removes nothing and commits nothing.
    before = versions(lake)
    again = retention.run(lake, as_of=AS_OF)
    assert again.days_removed == {BRONZE_EVENTS: [], SILVER_EXECUTIONS: []}
    assert versions(lake) == before


def test_a_run_killed_after_its_removal_commit_loses_nothing_and_the_next_completes(spark, lake):
    """SIGKILL right after bronze's removal commit, before `_days` is written: every reader
    already sees the days gone (the facts replay from the log), and the next run finishes."""
    import signal

    build(spark, lake)
    killed = run_cli(
        "retention",
        "--lake",
        lake,
        "--as-of",
        "2025-06-20T10:00:00Z",
        env={"DEEP_STORAGE_KILL_AT": "bronze:removed"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    fs = LakeFS(lake)
    assert list(lakes.committed(fs, BRONZE_EVENTS)) == KEPT[BRONZE_EVENTS]
    assert delta_days(lake, BRONZE_EVENTS) == KEPT[BRONZE_EVENTS]
    assert list(lakes.committed(fs, SILVER_EXECUTIONS)) == SILVER_DAYS  # not reached yet
    done = run_cli("retention", "--lake", lake, "--as-of", "2025-06-20T10:00:00Z")
    assert done.returncode == 0, done.stderr
    fs = LakeFS(lake)
    for table, kept in KEPT.items():
        assert list(lakes.committed(fs, table)) == kept
        assert delta_days(lake, table) == kept


def test_a_dry_run_names_the_same_days_and_changes_nothing(spark, lake, s3):
    build(spark, lake)
    before_versions, before_keys = versions(lake), all_keys(s3, lake)
    done = run_cli("retention", "--lake", lake, "--as-of", "2025-06-20T10:00:00Z", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "bronze/events: keeps days from 2025-03-22; would remove 2 days (2025-03-20..2025-03-21)",
        "silver/stop_executions: keeps days from 2024-06-20; would remove 1 day (2024-06-19)",
        "vacuum (would delete files): bronze/events 0, silver/stop_executions 0, _days 0",
    ]
    assert "dry run: nothing was changed" in done.stderr
    as_json = run_cli("retention", "--lake", lake, "--as-of", "2025-06-20", "--dry-run", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["dry_run"] is True and report["days_removed"] == REMOVED
    assert report["versions"] == {}
    assert versions(lake) == before_versions
    assert all_keys(s3, lake) == before_keys
    assert list(lakes.committed(LakeFS(lake), BRONZE_EVENTS)) == BRONZE_DAYS
    assert list(lakes.committed(LakeFS(lake), SILVER_EXECUTIONS)) == SILVER_DAYS
    garbage = run_cli("retention", "--lake", lake, "--as-of", "soon", "--dry-run")
    assert garbage.returncode == 2
    assert garbage.stderr.strip() == (
        "deep-storage: error: --as-of 'soon' is not a time: expected ISO-8601, "
        "e.g. 2025-06-02T01:00:00Z"
    )


def test_time_travel_reads_a_removed_day_until_vacuum_deletes_its_files(spark, lake):
    build(spark, lake)
    result = retention.run(lake, as_of=AS_OF)
    fs = LakeFS(lake)
    for table, kept in KEPT.items():
        removed = [dt.date.fromisoformat(d) for d in REMOVED[table]]
        previous = result.versions[table] - 1
        assert delta_days(lake, table) == kept
        assert delta_days(lake, table, previous) == sorted(removed + kept)
        # Inside the 7 days, retention's own vacuum keeps the removed days' files.
        assert retention.run(lake, as_of=AS_OF).files_vacuumed[table] == 0
        assert delta_days(lake, table, previous) == sorted(removed + kept)
        gone = lakes.vacuum(fs, table, retention_hours=0)
        assert {lakes.partition_date(f) for f in gone} >= set(removed)
        left = [f for f in fs.list_files(f"{lake}/{table}") if lakes.partition_date(f) in removed]
        assert left == []
        assert delta_days(lake, table) == kept


def test_vacuum_past_the_window_deletes_only_what_is_there_and_keeps_days_readable(
    spark, lake, monkeypatch
):
    """With a zero window every superseded file goes, `_days`' own too (and `_days` is written
    again, so its newest commit still says which table versions its facts cover). delta-rs
    then lists the deleted files' tombstones again: retention counts none of them and commits
    no vacuum for them."""
    build(spark, lake)
    monkeypatch.setattr(retention.defaults, "VACUUM_RETENTION_HOURS", 0)
    first = retention.run(lake, as_of=AS_OF)
    assert first.files_vacuumed[DAYS] > 0 and first.files_vacuumed[BRONZE_EVENTS] >= 2
    fs = LakeFS(lake)
    newest = fs.delta(DAYS).history(1)[0]
    covered = json.loads(newest[lakes.VERSIONS_KEY])
    assert covered == {t: fs.delta(t).version() for t in (BRONZE_EVENTS, SILVER_EXECUTIONS)}
    for table, kept in KEPT.items():
        assert list(lakes.committed(fs, table)) == kept
    before = versions(lake)
    second = retention.run(lake, as_of=AS_OF)
    # Only the `_days` file that first run's rewrite superseded (a zero window frees it at once).
    assert second.files_vacuumed == {BRONZE_EVENTS: 0, SILVER_EXECUTIONS: 0, DAYS: 1}
    after = versions(lake)
    assert (after[BRONZE_EVENTS], after[SILVER_EXECUTIONS]) == (
        before[BRONZE_EVENTS],
        before[SILVER_EXECUTIONS],
    )
    for table, kept in KEPT.items():
        assert list(lakes.committed(LakeFS(lake), table)) == kept


def test_removing_days_waits_for_the_writer_lease_and_a_dry_run_does_not(spark, lake, monkeypatch):
    write_bronze_day(spark, lake, BRONZE_DAYS[0], [event(at(BRONZE_DAYS[0]))])
    monkeypatch.setenv("DEEP_STORAGE_LOCK_WAIT", "0")
    with writer_lock.hold(lake, "bronze", "2025-06-19", "someone-else"):
        preview = retention.run(lake, as_of=AS_OF, dry_run=True)
        assert preview.days_removed[BRONZE_EVENTS] == ["2025-03-20"]
        with pytest.raises(LakeBusyError, match="bronze 2025-06-19"):
            retention.run(lake, as_of=AS_OF)
    assert list(lakes.committed(LakeFS(lake), BRONZE_EVENTS)) == [BRONZE_DAYS[0]]


def test_a_run_pushes_what_it_removed_and_a_dry_run_pushes_nothing(spark, lake, pushgateway):
    write_bronze_day(spark, lake, BRONZE_DAYS[0], [event(at(BRONZE_DAYS[0]))])
    env = {"PUSHGATEWAY_URL": pushgateway}
    group = {"job": "deep-storage", "step": "retention"}
    preview = run_cli("retention", "--lake", lake, "--as-of", "2025-06-20", "--dry-run", env=env)
    assert preview.returncode == 0, preview.stderr
    assert _value(_series(pushgateway), "deep_storage_retention_days_removed", **group) is None
    done = run_cli("retention", "--lake", lake, "--as-of", "2025-06-20", env=env)
    assert done.returncode == 0, done.stderr
    series = _series(pushgateway)
    assert _value(series, "deep_storage_retention_days_removed", **group) == 1
    assert _value(series, "deep_storage_retention_files_vacuumed", **group) == 0
    assert _value(series, "deep_storage_retention_last_success_timestamp_seconds", **group) > 0


def test_catch_up_never_ingests_again_a_day_retention_removed(db, spark, lake):
    t = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC).date()

    def ago(n: int) -> dt.date:
        return t - dt.timedelta(days=n)

    insert(db, [event(at(ago(n))) for n in (95, 94, 93, 92, 90, 89)])  # ago(91): no event
    bronze.run(DayRange(ago(92), ago(89)), lake, spark=spark)
    result = retention.run(lake, as_of=dt.datetime.combine(t, dt.time(), dt.UTC))
    assert result.days_removed[BRONZE_EVENTS] == [ago(92).isoformat(), ago(91).isoformat()]

    caught = bronze.run(None, lake, spark=spark, max_days=2)
    assert [d.date for d in caught.days] == [ago(88).isoformat(), ago(87).isoformat()]
    # An operator's explicit day past the window is ingested (and the next retention removes
    # it), but the catch-up after it still starts at the floor, not at that day.
    bronze.run(DayRange(ago(95), ago(95)), lake, spark=spark)
    caught = bronze.run(None, lake, spark=spark, max_days=2)
    assert [d.date for d in caught.days] == [ago(86).isoformat(), ago(85).isoformat()]
    committed = lakes.committed(LakeFS(lake), BRONZE_EVENTS)
    assert sorted(committed) == [ago(n) for n in (95, 90, 89, 88, 87, 86, 85)]
