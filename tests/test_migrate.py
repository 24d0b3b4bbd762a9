"""`deep-storage migrate` on the real services: a lake written by v0.2 (Parquet in Hive folders,
JSON manifests, `_current.json`) built here by hand becomes Delta tables that read exactly what
its manifests listed, with the days' facts; running it again changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from deep_storage import lake as lakes
from deep_storage.core import schemas
from deep_storage.core.dates import DayRange
from deep_storage.core.errors import LakeStateError
from deep_storage.io.source_copy import arrow_schema
from deep_storage.lake import BRONZE_EVENTS, DAYS, SILVER_EXECUTIONS, LakeFS, migrate
from deep_storage.tables import silver
from tests.events import event
from tests.lake_fixtures import delta_rs_keys, silver_row, write_bronze_day
from tests.services import run_cli

pytestmark = pytest.mark.integration

D1, D2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)
SILVER_FILE_SCHEMA = pa.schema(
    [f for f in to_arrow_schema(schemas.SILVER_EXECUTIONS_SCHEMA) if f.name != "client_id"]
)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


class V02Lake:
    """Writes a table the way v0.2 left it: Parquet files under Hive folders (the partition
    columns only in the folder names), a manifest per committed day, `_current.json`."""

    def __init__(self, lake: str) -> None:
        self.fs = LakeFS(lake)
        self.current: dict[str, dict[str, str]] = {BRONZE_EVENTS: {}, SILVER_EXECUTIONS: {}}

    def parquet(self, table: str, folder: str, rows: list[dict], schema: pa.Schema) -> str:
        afs, root = self.fs.arrow()
        rel = f"{folder}/part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        pq.write_table(
            pa.Table.from_pylist(rows, schema=schema), f"{root}/{table}/{rel}", filesystem=afs
        )
        return rel

    def bronze_file(self, day: dt.date, rows: list[dict]) -> str:
        return self.parquet(BRONZE_EVENTS, f"date={day}", rows, arrow_schema())

    def silver_file(self, client: int, day: dt.date, rows: list[dict]) -> str:
        data = [{k: v for k, v in r.items() if k != "client_id"} for r in rows]
        return self.parquet(
            SILVER_EXECUTIONS, f"client_id={client}/date={day}", data, SILVER_FILE_SCHEMA
        )

    def manifest(self, table: str, day: dt.date, files: list[str], partitions: dict[str, int],
                 details: dict, *, current: bool = True) -> str:  # fmt: skip
        rel = f"_manifests/date={day}/m-{uuid.uuid4().hex[:16]}.json"
        body = {
            "table": table,
            "date": day.isoformat(),
            "rows": sum(partitions.values()),
            "sealed": True,
            "files": files,
            "partitions": partitions,
            "run_id": "v02-run",
            "written_at": "2025-06-03T01:15:00+00:00",
            "lease_token": 41,
            "details": details,
        }
        self.fs.write_text(f"{self.fs.lake}/{table}/{rel}", json.dumps(body, indent=1) + "\n")
        if current:
            self.current[table][day.isoformat()] = rel
        return rel

    def commit(self) -> None:
        for table, dates in self.current.items():
            if not dates:
                continue  # v0.2 wrote no version file for a table it never committed to
            body = {"dates": dates, "run_id": "v02-run", "updated_at": "2025-06-03T01:15:01+00:00"}
            self.fs.write_text(f"{self.fs.lake}/{table}/_manifests/_current.json", json.dumps(body))


def v02_lake(lake: str) -> dict:
    """Two bronze days and two silver days, plus what a killed v0.2 run left in each table: a
    file and a manifest listing it that `_current.json` never pointed at."""
    v = V02Lake(lake)
    d1 = [event(at(D1, 8), execution_token="t-1"), event(at(D1, 9), execution_token="t-2")]
    d2 = [event(at(D2, 8), execution_token="t-3")]
    b1, b2 = v.bronze_file(D1, d1), v.bronze_file(D2, d2)
    details = {"window": [at(D1, 0).isoformat(), at(D2, 0).isoformat()], "newest_event_at": None}
    v.manifest(BRONZE_EVENTS, D1, [b1], {f"date={D1}": 2}, {**details, "snapshot_xmin": 7})
    v.manifest(BRONZE_EVENTS, D2, [b2], {f"date={D2}": 1}, {})
    left = v.bronze_file(D1, [event(at(D1, 10))])
    v.manifest(BRONZE_EVENTS, D1, [b1, left], {f"date={D1}": 3}, {}, current=False)

    s1 = [silver_row(execution_id="s-1", client_id=1, execution_token="old-1")]
    s2 = [
        silver_row(execution_id="s-2", client_id=7, execution_token="old-2"),
        silver_row(execution_id="s-3", client_id=7, execution_token="old-3"),
    ]
    s3 = [
        silver_row(execution_id="s-4", client_id=1, execution_token="old-4", triggered_at=at(D2, 8))
    ]
    f1, f2 = v.silver_file(1, D1, s1), v.silver_file(7, D1, s2)
    f3 = v.silver_file(1, D2, s3)
    partitions = {f"client_id=1/date={D1}": 1, f"client_id=7/date={D1}": 2}
    v.manifest(SILVER_EXECUTIONS, D1, [f1, f2], partitions, {"bronze_inputs": {"2025-06-01": "x"}})
    v.manifest(SILVER_EXECUTIONS, D2, [f3], {f"client_id=1/date={D2}": 1}, {})
    stray = v.silver_file(3, D1, [silver_row(execution_id="s-left", client_id=3)])
    v.commit()
    return {
        "bronze_ids": sorted(r["event_id"] for r in d1 + d2),
        "bronze_files": {D1: [b1], D2: [b2]},
        "leftovers": {BRONZE_EVENTS: left, SILVER_EXECUTIONS: stray},
    }


def versions(lake: str) -> dict[str, int]:
    fs = LakeFS(lake)
    return {t: fs.delta(t).version() for t in (BRONZE_EVENTS, SILVER_EXECUTIONS, DAYS)}


def test_a_v02_lake_becomes_delta_tables_holding_exactly_its_manifests_rows(lake):
    built = v02_lake(lake)
    result = migrate.run(lake)
    assert [(t.table, t.outcome, t.days, t.files, t.rows) for t in result.tables] == [
        (BRONZE_EVENTS, "migrated", 2, 2, 3),
        (SILVER_EXECUTIONS, "migrated", 2, 3, 4),
    ]
    assert result.manifests_kept == [
        f"{lake}/{BRONZE_EVENTS}/_manifests/",
        f"{lake}/{SILVER_EXECUTIONS}/_manifests/",
    ]
    # What another Delta reader sees: the listed rows, never the killed run's leftovers.
    assert delta_rs_keys(lake, BRONZE_EVENTS) == built["bronze_ids"]
    assert delta_rs_keys(lake, SILVER_EXECUTIONS) == ["s-1", "s-2", "s-3", "s-4"]
    fs = LakeFS(lake)
    rows = fs.scan(
        SILVER_EXECUTIONS,
        fs.delta(SILVER_EXECUTIONS),
        columns=["execution_id", "client_id", "date"],
    )
    assert sorted(tuple(r.values()) for r in pa.table(rows).to_pylist()) == [
        ("s-1", 1, D1),
        ("s-2", 7, D1),
        ("s-3", 7, D1),
        ("s-4", 1, D2),
    ]
    # The days' facts, as every step reads them.
    fs = LakeFS(lake)
    bronze = lakes.committed(fs, BRONZE_EVENTS)
    assert {d: (m.rows, m.sealed, m.files) for d, m in bronze.items()} == {
        D1: (2, True, built["bronze_files"][D1]),
        D2: (1, True, built["bronze_files"][D2]),
    }
    assert bronze[D1].details["snapshot_xmin"] == 7
    assert bronze[D1].details["window"] == [at(D1, 0).isoformat(), at(D2, 0).isoformat()]
    origin = bronze[D1].details["migrated_from"]
    assert (origin["format"], origin["run_id"], origin["lease_token"]) == ("v0.2", "v02-run", 41)
    assert origin["manifest"].startswith(f"_manifests/date={D1}/m-")
    assert bronze[D1].run_id == result.run_id and bronze[D1].version == 0
    silver_days = lakes.committed(fs, SILVER_EXECUTIONS)
    assert {d: (m.rows, m.partitions) for d, m in silver_days.items()} == {
        D1: (3, {f"client_id=1/date={D1}": 1, f"client_id=7/date={D1}": 2}),
        D2: (1, {f"client_id=1/date={D2}": 1}),
    }
    assert silver_days[D1].details["bronze_inputs"] == {"2025-06-01": "x"}

    # Vacuum deletes the leftovers once past its window, never an adopted file nor _manifests/.
    for table in (BRONZE_EVENTS, SILVER_EXECUTIONS):
        gone = lakes.vacuum(fs, table, retention_hours=0)
        assert gone == [built["leftovers"][table]]
        names = fs.list_files(f"{lake}/{table}")
        assert "_manifests/_current.json" in names
    assert delta_rs_keys(lake, BRONZE_EVENTS) == built["bronze_ids"]
    assert delta_rs_keys(lake, SILVER_EXECUTIONS) == ["s-1", "s-2", "s-3", "s-4"]


def test_migrating_again_changes_nothing(lake):
    v02_lake(lake)
    migrate.run(lake)
    before = versions(lake)
    done = run_cli("migrate", "--lake", lake)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{BRONZE_EVENTS}: already Delta (version {before[BRONZE_EVENTS]}); skipped",
        f"{SILVER_EXECUTIONS}: already Delta (version {before[SILVER_EXECUTIONS]}); skipped",
    ]
    assert f"note: {lake}/{BRONZE_EVENTS}/_manifests/ (v0.2's manifests) is left in place" in (
        done.stderr
    )
    as_json = run_cli("migrate", "--lake", lake, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [t["outcome"] for t in json.loads(as_json.stdout)["tables"]] == ["already Delta"] * 2
    assert versions(lake) == before


def test_a_lake_without_v02_manifests_has_nothing_to_migrate(lake):
    result = migrate.run(lake)
    assert [(t.outcome, t.version) for t in result.tables] == [("no v0.2 manifests", None)] * 2
    assert result.manifests_kept == []
    assert LakeFS(lake).delta(BRONZE_EVENTS) is None


@pytest.mark.parametrize("broken", ["rows", "partition", "missing file"])
def test_a_manifest_its_files_do_not_match_stops_the_migration_with_nothing_committed(lake, broken):
    v = V02Lake(lake)
    rows = [event(at(D1, 8)), event(at(D1, 9))]
    listed = v.bronze_file(D1, rows)
    partitions = {f"date={D1}": 2}
    if broken == "rows":
        partitions = {f"date={D1}": 3}
    elif broken == "partition":
        partitions = {f"date={D1}": 1, f"date={D2}": 1}  # right total, wrong split
    files = [listed, f"date={D1}/part-gone.parquet"] if broken == "missing file" else [listed]
    v.manifest(BRONZE_EVENTS, D1, files, partitions, {})
    v.commit()
    expected = {
        "rows": f"bronze/events day {D1}: its files hold 2 rows, its v0.2 manifest says 3",
        "partition": f"partition date={D1} holds 2 rows, its v0.2 manifest says 1",
        "missing file": f"lists date={D1}/part-gone.parquet, which is not in the lake",
    }[broken]
    with pytest.raises(LakeStateError, match=expected) as failed:
        migrate.run(lake)
    assert "nothing was migrated" in str(failed.value)
    assert f"`deep-storage bronze --date {D1}`" in str(failed.value)
    fs = LakeFS(lake)
    assert fs.delta(BRONZE_EVENTS) is None and fs.delta(DAYS) is None


def test_a_broken_silver_day_leaves_bronze_unmigrated_too(lake):
    v = V02Lake(lake)
    v.manifest(BRONZE_EVENTS, D1, [v.bronze_file(D1, [event(at(D1, 8))])], {f"date={D1}": 1}, {})
    listed = v.silver_file(1, D1, [silver_row(execution_id="s-1", client_id=1)])
    v.manifest(SILVER_EXECUTIONS, D1, [listed], {f"client_id=1/date={D1}": 2}, {})
    v.commit()
    with pytest.raises(LakeStateError, match=f"silver/stop_executions day {D1}: its files hold 1"):
        migrate.run(lake)
    fs = LakeFS(lake)
    assert fs.delta(BRONZE_EVENTS) is None and fs.delta(DAYS) is None


def test_a_step_of_this_version_refuses_an_unmigrated_v02_table(spark, lake):
    """A step that started an empty Delta table over v0.2 days would hide them: it stops,
    naming `migrate`, and leaves no Delta log behind; migrate then adopts the v0.2 day."""
    today = dt.datetime.now(dt.UTC).date()
    old, new = today - dt.timedelta(days=3), today - dt.timedelta(days=1)
    v = V02Lake(lake)
    v.manifest(
        BRONZE_EVENTS, old, [v.bronze_file(old, [event(at(old, 8))])], {f"date={old}": 1}, {}
    )
    v.commit()
    with pytest.raises(LakeStateError, match=r"written by v0\.2 .* run `deep-storage migrate"):
        write_bronze_day(spark, lake, new, [event(at(new, 8))])
    assert LakeFS(lake).delta(BRONZE_EVENTS) is None
    done = run_cli("migrate", "--lake", lake)
    assert done.returncode == 0, done.stderr
    assert sorted(lakes.committed(LakeFS(lake), BRONZE_EVENTS)) == [old]


def test_the_steps_carry_on_on_a_migrated_lake(spark, lake):
    """Silver rebuilds a migrated day from the adopted bronze files and replaces the adopted
    silver partitions of that day in one commit."""
    v02_lake(lake)
    migrate.run(lake)
    silver.run(DayRange(D1, D1), lake, spark=spark, lookback_days=1)
    fs = LakeFS(lake)
    rows = fs.scan(
        SILVER_EXECUTIONS,
        fs.delta(SILVER_EXECUTIONS),
        columns=["execution_token", "date", "status"],
    )
    assert sorted(tuple(r.values()) for r in pa.table(rows).to_pylist()) == [
        ("old-4", D2, "PENDING"),  # the day silver did not run keeps its adopted row
        ("t-1", D1, "PENDING"),
        ("t-2", D1, "PENDING"),
    ]
