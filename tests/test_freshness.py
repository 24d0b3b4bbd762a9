"""Fresh within the hour: hourly runs carry exactly the new rows, the lag is measured as users
mean it, and each step's metrics reach a real Prometheus Pushgateway."""

from __future__ import annotations

import datetime as dt
import urllib.request

import pytest

from deep_storage import steps
from deep_storage.core import config
from deep_storage.core.dates import DayRange
from deep_storage.lake import LakeFS
from deep_storage.quality import validate
from deep_storage.tables import bronze, silver
from tests.events import event, insert
from tests.lake_fixtures import bronze_rows
from tests.services import run_cli

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 1)
AS_OF = dt.datetime(2025, 6, 20, tzinfo=dt.UTC)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC)


def test_two_hourly_runs_carry_exactly_the_rows_added_between_them(db, spark, lake):
    today = db.execute("SELECT now()").fetchone()[0].astimezone(dt.UTC).date()
    early = [
        event(at(today, 0, 1), "STOP_TRIGGERED", execution_token="h:1"),
        event(at(today, 0, 2), "STOP_TRIGGERED", execution_token="h:2"),
    ]
    insert(db, early)
    first = steps.bronze(lake, run_date=today.isoformat())
    steps.silver(lake, first.first_day, first.last_day)
    before = {
        r.execution_token: r.status for r in silver.read_committed(spark, lake, [today]).collect()
    }
    assert before == {"h:1": "PENDING", "h:2": "PENDING"}

    later = [
        event(at(today, 0, 3), "EXECUTED", execution_token="h:1"),
        event(at(today, 0, 4), "STOP_TRIGGERED", execution_token="h:3"),
    ]
    insert(db, later)  # written during the next hour
    second = steps.bronze(lake, run_date=today.isoformat())
    assert (second.first_day, second.last_day) == (today.isoformat(), today.isoformat())
    assert second.metrics["rows"] == 4 and second.metrics["unsealed_days"] == 1
    steps.silver(lake, second.first_day, second.last_day)

    ids = sorted(r.event_id for r in bronze_rows(spark, lake, [today]))
    assert ids == sorted(e["event_id"] for e in early + later)
    after = {
        r.execution_token: r.status for r in silver.read_committed(spark, lake, [today]).collect()
    }
    assert after == {"h:1": "EXECUTED", "h:2": "PENDING", "h:3": "PENDING"}

    # A quiet hour: nothing new at the source, so nothing is rewritten or re-projected.
    quiet = steps.bronze(lake, run_date=today.isoformat())
    assert quiet.metrics["days_changed"] == 0 and quiet.metrics["rows"] == 4
    assert steps.silver(lake, quiet.first_day, quiet.last_day).metrics["skipped"] == 1
    assert sorted(r.event_id for r in bronze_rows(spark, lake, [today])) == ids


def test_the_lag_figures_are_the_planted_ones(db, spark, lake):
    insert(db, [event(at(D, 10), "STOP_TRIGGERED", execution_token="l:1")])
    ingested = bronze.run(DayRange(D, D), lake, spark=spark)
    assert ingested.freshness_lag_s == 0.0
    assert ingested.lake_newest_event_at == at(D, 10).isoformat()
    silver.run(DayRange(D, D), lake, spark=spark)

    # The source moves on by 30 minutes; the gate measures the lake against it.
    insert(db, [event(at(D, 10, 30), "STOP_TRIGGERED", execution_token="l:2")])
    report = validate.run(D, lake, spark=spark, as_of=AS_OF, raise_on_failure=False)
    assert report.lag_s == {"bronze": 1800.0, "silver": 1800.0}
    assert report.metrics()["bronze_freshness_lag_seconds"] == 1800.0
    assert (
        "Freshness: bronze 1800 s behind the source (within its SLA of 2:00:00); "
        "silver 1800 s behind the source (within its SLA of 1:00:00)." in report.markdown()
    )

    insert(db, [event(at(D, 12), "STOP_TRIGGERED", execution_token="l:3")])
    report = validate.run(D, lake, spark=spark, as_of=AS_OF, raise_on_failure=False)
    assert report.lag_s == {"bronze": 7200.0, "silver": 7200.0}
    assert "silver 7200 s behind the source (PAST its SLA of 1:00:00)" in report.markdown()
    assert report.warned == []  # a backfill's gate (as_of days later) does not judge the lag

    # The day's own hourly run does: silver is 2 h behind, past its 1 h SLA; bronze is at 2 h.
    hourly = validate.run(D, lake, spark=spark, as_of=at(D, 12, 5), raise_on_failure=False)
    assert "silver_stop_executions.lag_within_sla" in hourly.warned
    assert "bronze_events.lag_within_sla" not in hourly.warned
    assert "| lag_within_sla | warn | **warned** | 7200 s behind |" in hourly.markdown()


def _series(url: str) -> dict[str, float]:
    """Every deep_storage_* sample the Pushgateway serves: 'name{labels}' -> value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("deep_storage_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _value(series: dict[str, float], name: str, **labels: str) -> float | None:
    for key, value in series.items():
        metric, _, rest = key.partition("{")
        if metric == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return value
    return None


def test_each_step_pushes_its_metrics_to_a_real_pushgateway(db, lake, pushgateway):
    insert(db, [event(at(D, 9)), event(at(D, 9, 1)), event(at(D, 9, 2))])
    env = {"PUSHGATEWAY_URL": pushgateway}
    for step in ("bronze", "silver"):
        done = run_cli(step, "--date", str(D), "--lake", lake, env=env)
        assert done.returncode == 0, done.stderr
    series = _series(pushgateway)
    group = {"job": "deep-storage", "step": "bronze"}
    assert _value(series, "deep_storage_bronze_rows", **group) == 3
    assert _value(series, "deep_storage_bronze_days_written", **group) == 1
    assert _value(series, "deep_storage_bronze_days_unsealed", **group) == 0
    assert _value(series, "deep_storage_bronze_freshness_lag_seconds", **group) == 0
    assert _value(series, "deep_storage_bronze_duration_seconds", **group) > 0
    success = _value(series, "deep_storage_bronze_last_success_timestamp_seconds", **group)
    assert success is not None and abs(success - dt.datetime.now(dt.UTC).timestamp()) < 600
    assert _value(series, "deep_storage_silver_rows", job="deep-storage", step="silver") == 1
    assert all("instance=" not in k or 'instance=""' in k for k in series)  # no per-pod labels

    # A gate that fails pushes its rule counts by level and no new success.
    insert(db, [event(at(D, 9, 3))])  # the sealed day no longer matches the source
    failed = run_cli("validate", "--date", str(D), "--lake", lake, env=env)
    assert failed.returncode == 6, failed.stderr
    series = _series(pushgateway)
    gate = {"job": "deep-storage", "step": "validate"}
    assert _value(series, "deep_storage_validate_rules_broken", level="fail", **gate) == 1
    assert _value(series, "deep_storage_validate_last_success_timestamp_seconds", **gate) is None
    assert _value(series, "deep_storage_validate_bronze_freshness_lag_seconds", **gate) == 60


def _delete_group(url: str, **labels: str) -> None:
    path = "/".join(f"{k}/{v}" for k, v in labels.items())
    request = urllib.request.Request(f"{url}/metrics/job/deep-storage/{path}", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()


def test_a_failed_day_stays_visible_when_the_next_day_of_the_same_gate_run_passes(
    db, lake, pushgateway
):
    d1 = D + dt.timedelta(days=1)
    for day in (D, d1):
        _delete_group(pushgateway, step="validate", date=str(day))
    insert(db, [event(at(D, 9)), event(at(d1, 9))])
    env = {"PUSHGATEWAY_URL": pushgateway}
    for step in ("bronze", "silver"):
        done = run_cli(step, "--date", str(D), "--until", str(d1), "--lake", lake, env=env)
        assert done.returncode == 0, done.stderr
    insert(db, [event(at(D, 9, 3))])  # the first day, sealed, no longer matches the source

    gate = run_cli("validate", "--date", str(D), "--until", str(d1), "--lake", lake, env=env)
    assert gate.returncode == 6, gate.stderr
    series = _series(pushgateway)
    first = {"job": "deep-storage", "step": "validate", "date": str(D)}
    second = {**first, "date": str(d1)}
    # The second day's push did not replace the first's: the failure is still there.
    assert _value(series, "deep_storage_validate_rules_broken", level="fail", **first) == 1
    assert _value(series, "deep_storage_validate_rules_broken", level="fail", **second) == 0
    assert _value(series, "deep_storage_validate_last_success_timestamp_seconds", **first) is None
    assert _value(series, "deep_storage_validate_last_success_timestamp_seconds", **second)
    # the first day as committed: 1 bronze event (the later one came after it) + 1 execution
    assert _value(series, "deep_storage_validate_rows", **first) == 2
    # The lags describe the lake, not a day: one series, in the step's own group.
    lags = [k for k in series if k.startswith("deep_storage_validate_bronze_freshness_lag")]
    assert lags and all("date=" not in k for k in lags)


def test_an_unreachable_pushgateway_is_a_warning_not_a_failure(db, lake):
    from demo.local_services import free_port

    insert(db, [event(at(D, 9))])
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli("bronze", "--date", str(D), "--lake", lake, env={"PUSHGATEWAY_URL": url})
    assert done.returncode == 0, done.stderr
    assert "metrics: push to the Pushgateway failed" in done.stderr


# --- the day's freshness is its lag behind the source's newest event of that day -----------


def _fresh(report, table):
    (t,) = [t for t in report.tables if t.table == table]
    return [r for r in t.results if r.name == "fresh_within_sla"], t.notes


def test_a_quiet_source_is_fresh_however_old_its_newest_event(db, spark, lake):
    # The day's last stop triggered at 10:00; the gate runs at 21:00, 11 h later, and the source
    # has nothing newer: the lake holds everything there is.
    insert(db, [event(at(D, 10), "STOP_TRIGGERED", execution_token="q:1")])
    bronze.run(DayRange(D, D), lake, spark=spark)
    silver.run(DayRange(D, D), lake, spark=spark)
    report = validate.run(D, lake, spark=spark, as_of=at(D, 21))
    assert report.warned == [] and report.failed == []
    for table in ("bronze_events", "silver_stop_executions"):
        (fresh,), _ = _fresh(report, table)
        assert fresh.outcome == "passed"
        assert fresh.observed == (
            "newest event 2025-06-01T10:00:00+00:00; "
            "the source's newest of the day 2025-06-01T10:00:00+00:00"
        )


def test_a_source_three_hours_ahead_of_bronze_warns_showing_both_times(db, spark, lake):
    insert(db, [event(at(D, 10), "STOP_TRIGGERED", execution_token="a:1")])
    bronze.run(DayRange(D, D), lake, spark=spark)
    # Written at the source after bronze's run: 13:00 - 10:00 = 3 h, past bronze's 2 h SLA.
    insert(db, [event(at(D, 13), "STOP_TRIGGERED", execution_token="a:2")])
    report = validate.run(
        D, lake, spark=spark, as_of=at(D, 13, 5), tables=("bronze",), raise_on_failure=False
    )
    (fresh,), _ = _fresh(report, "bronze_events")
    assert fresh.outcome == "warned"
    assert fresh.observed == (
        "newest event 2025-06-01T10:00:00+00:00; "
        "the source's newest of the day 2025-06-01T13:00:00+00:00"
    )
    page = LakeFS(lake).read_text(f"{lake}/_quality/summary/date={D}/report.html")
    assert "2025-06-01T10:00:00+00:00" in page and "2025-06-01T13:00:00+00:00" in page
    # The CLI says it as a warning, and a warning alone does not fail the run.
    done = run_cli(
        "validate", "--date", str(D), "--lake", lake, "--table", "bronze",
        "--as-of", "2025-06-01T13:05:00Z",
    )  # fmt: skip
    assert "warning: rule bronze_events.fresh_within_sla broke" in done.stderr


def test_without_a_source_freshness_is_a_note_not_a_warning(db, spark, lake, monkeypatch):
    insert(db, [event(at(D, 10), "STOP_TRIGGERED", execution_token="n:1")])
    bronze.run(DayRange(D, D), lake, spark=spark)
    for key in config.DB_ENV:
        monkeypatch.delenv(key, raising=False)
    report = validate.run(D, lake, spark=spark, as_of=at(D, 23), tables=("bronze",))
    fresh, notes = _fresh(report, "bronze_events")
    assert fresh == [] and report.warned == []
    assert any(n.startswith("fresh_within_sla not checked: no source database") for n in notes)
