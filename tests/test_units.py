"""Fast tests of the pure pieces: dates, settings, the seal decision. No services."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from deep_storage.core.config import SourceConfig, StoreConfig, redact, resolve_lake
from deep_storage.core.dates import DayRange, parse_day, window
from deep_storage.core.errors import InputError
from deep_storage.io.source_db import Writer, decide_seal

pytestmark = pytest.mark.unit

UTC = dt.UTC
D = dt.date(2025, 6, 1)
END = dt.datetime(2025, 6, 2, tzinfo=UTC)
MARGIN = dt.timedelta(minutes=5)


@pytest.mark.parametrize("text", ["2025-02-29", "2025-13-01", "20250601", "2025-6-1", "", "x"])
def test_bad_dates_name_the_value_and_the_format(text):
    with pytest.raises(InputError, match="expected YYYY-MM-DD"):
        parse_day(text)


def test_window_is_half_open_midnight_to_midnight_utc():
    assert window(D) == (dt.datetime(2025, 6, 1, tzinfo=UTC), END)


def test_range_is_inclusive_and_refuses_reversed_bounds():
    assert [str(d) for d in DayRange.parse("2025-06-30", "2025-07-01").days()] == [
        "2025-06-30",
        "2025-07-01",
    ]
    with pytest.raises(InputError, match="--until 2025-06-01 is before --date 2025-06-02"):
        DayRange.parse("2025-06-02", "2025-06-01", names=("--date", "--until"))
    with pytest.raises(InputError, match="last_day 2025-06-01 is before first_day"):
        DayRange.parse("2025-06-02", "2025-06-01", names=("first_day", "last_day"))


def test_lake_uri_defaults_to_the_bucket_and_rejects_relative_paths():
    assert resolve_lake(None, {"S3_BUCKET": "rbs"}) == "s3a://rbs"
    assert resolve_lake("s3://rbs/lake/", {}) == "s3a://rbs/lake"
    assert resolve_lake("file:///tmp/lake", {}) == "file:///tmp/lake"
    with pytest.raises(InputError, match="no lake given"):
        resolve_lake(None, {})
    with pytest.raises(InputError, match="unsupported scheme"):
        resolve_lake("gs://x", {})


def test_endpoint_bare_host_means_https_and_url_keeps_its_scheme():
    bare = StoreConfig("a", "secret-1", endpoint="eu2.contabostorage.com")
    assert (bare.endpoint_url, bare.ssl) == ("https://eu2.contabostorage.com", True)
    local = StoreConfig("a", "secret-1", endpoint="http://127.0.0.1:8333")
    assert (local.endpoint_url, local.ssl) == ("http://127.0.0.1:8333", False)


def test_settings_come_from_the_secret_keys_and_secrets_are_redacted():
    env = {
        "DJANGO_DB_HOST": "db",
        "DJANGO_DB_NAME": "robson",
        "DJANGO_DB_USER": "app",
        "DJANGO_DB_PASSWORD": "pa!ss$word",
    }
    cfg = SourceConfig.from_env(env)
    assert (cfg.port, cfg.jdbc_url) == (5432, "jdbc:postgresql://db:5432/robson")
    assert "pa!ss$word" not in repr(cfg) and "pa!ss$word" not in cfg.jdbc_url
    assert redact("login pa!ss$word failed") == "login *** failed"
    with pytest.raises(InputError, match="DJANGO_DB_PASSWORD is not set"):
        SourceConfig.from_env({k: v for k, v in env.items() if k != "DJANGO_DB_PASSWORD"})
    with pytest.raises(InputError, match="not a TCP port"):
        SourceConfig.from_env({**env, "DJANGO_DB_PORT": "54x"})


def test_a_day_cannot_seal_before_its_window_closed_plus_the_margin():
    sealed, reason = decide_seal(D, END + MARGIN - dt.timedelta(microseconds=1), [], MARGIN)
    assert not sealed and "closes for late commits" in reason
    assert decide_seal(D, END + MARGIN, [], MARGIN) == (True, None)


def test_a_writer_that_began_before_the_horizon_keeps_the_day_open():
    old = Writer(pid=42, xact_start=END - dt.timedelta(seconds=1), prepared=False)
    sealed, reason = decide_seal(D, END + dt.timedelta(hours=1), [old], MARGIN)
    assert not sealed and "pid 42" in reason


def test_a_writer_that_began_after_the_horizon_cannot_write_into_the_day():
    young = Writer(pid=43, xact_start=END + MARGIN + dt.timedelta(seconds=1), prepared=False)
    assert decide_seal(D, END + dt.timedelta(hours=1), [young], MARGIN) == (True, None)


@pytest.mark.parametrize(
    "writer",
    [Writer(None, None, prepared=True), Writer(pid=44, xact_start=None, prepared=False)],
    ids=["prepared", "start-not-visible"],
)
def test_writers_we_cannot_date_keep_every_day_open(writer):
    sealed, _ = decide_seal(D, END + dt.timedelta(days=30), [writer], MARGIN)
    assert not sealed


def test_run_id_and_read_path_come_from_one_place():
    from deep_storage.core import config

    assert config.run_id("given", {"DEEP_STORAGE_RUN_ID": "env"}) == "given"
    assert config.run_id(None, {"DEEP_STORAGE_RUN_ID": "env"}) == "env"
    assert config.run_id(None, {}) != config.run_id(None, {})
    assert config.read_path(None, {}) == "arrow"
    assert config.read_path(None, {"DEEP_STORAGE_READ_PATH": "jdbc"}) == "jdbc"


def test_the_end_of_day_benchmark_writes_its_hour_in_the_last_hour_a_few_late():
    from benchmarks.run import last_hour
    from demo import synthetic

    day = dt.date(2025, 6, 2)
    rows = list(last_hour(synthetic.generate(day, 1000, seed=4, clients=5, spill_minutes=0), day))
    at = synthetic.COLUMNS.index("occurred_at")
    hour = dt.datetime(2025, 6, 2, 23, tzinfo=dt.UTC)
    late = [r[at] for r in rows if r[at] < hour]
    assert len(rows) == 1000 and len(late) == 5  # every 200th row
    assert all(hour - dt.timedelta(hours=1) <= t < hour for t in late)
    assert all(hour <= r[at] < hour + dt.timedelta(hours=1) for r in rows if r[at] >= hour)


def test_benchmark_table_marks_each_target_met_or_missed_and_flags_memory_over_limit():
    from benchmarks import report

    run = {
        "events": 5_000_000,
        "seed": 2,
        "clients": 500,
        "machine": "vm",
        "reference_copy": {"seconds": 10.0},
        "reference_duckdb_silver": {"seconds": 10.0},
        "bronze": {"seconds": 19.0, "peak_rss_mib": 500, "phases": {"read and write": 18.0}},
        "silver": {"seconds": 30.0, "peak_rss_mib": 9000},
        "validate": {"seconds": 10.0, "peak_rss_mib": 100},
        "ratios": {
            "bronze_throughput_vs_copy": 0.526,
            "silver_vs_duckdb": 3.0,
            "validate_vs_bronze_plus_silver": 0.204,
        },
    }
    (row,) = report.scaling([run]).splitlines()[2:]
    assert "| 5,000,000 | 2 | 500 |" in row
    assert "0.53 (met)" in row and "3.00x (missed)" in row and "0.20 (met)" in row
    assert "500 / 9000 (over) / 100" in row
    assert "read and write 18.0" in report.phases(run)


@pytest.mark.parametrize(
    "column, udt, precision, scale, fits",
    [
        ("event_id", "uuid", None, None, True),
        ("event_id", "text", None, None, True),
        ("retry_count", "int4", None, None, True),
        ("retry_count", "int8", None, None, False),  # may overflow the contract's int
        ("client_id", "int4", None, None, True),  # widening into bigint is safe
        ("fill_price", "numeric", 20, 8, True),
        ("fill_price", "numeric", 18, 6, True),
        ("fill_price", "numeric", 30, 10, False),
        ("fill_price", "numeric", 21, 9, False),
        ("fill_price", "numeric", None, None, False),  # unconstrained numeric may not fit
        ("occurred_at", "timestamp", None, None, False),  # no time zone: ambiguous instants
        ("symbol", "text", None, None, True),
        ("payload_json", "jsonb", None, None, True),
    ],
)
def test_a_source_column_fits_the_contract_only_when_every_value_does(
    column, udt, precision, scale, fits
):
    from deep_storage.core import schemas
    from deep_storage.io.source_db import SourceColumn, _fits

    contract = schemas.BRONZE_EVENTS_SCHEMA[column]
    assert _fits(SourceColumn(column, udt, udt, precision, scale), contract)[0] is fits


def test_extra_source_columns_follow_the_contract_as_quoted_text():
    from deep_storage.io import source_copy

    start, end = window(D)
    sql = source_copy.query("stop_events", start, end, ("venue", 'odd"name'))
    assert sql.index("retry_count") < sql.index('"venue"::text AS "venue"')
    assert '"odd""name"::text' in sql
    schema = source_copy.arrow_schema(("venue",))
    assert schema.names[-1] == "venue" and str(schema.field("venue").type) == "string"


def test_the_gate_engine_is_chosen_by_the_days_rows_unless_set(monkeypatch):
    from deep_storage.core import defaults
    from deep_storage.quality.validate import engine_for

    monkeypatch.delenv("DEEP_STORAGE_GATE_ENGINE", raising=False)
    assert engine_for(0) == engine_for(defaults.GATE_DUCKDB_MAX_ROWS) == "duckdb"
    assert engine_for(defaults.GATE_DUCKDB_MAX_ROWS + 1) == "spark"
    monkeypatch.setenv("DEEP_STORAGE_GATE_ENGINE", "Spark")
    assert engine_for(10) == "spark"
    monkeypatch.setenv("DEEP_STORAGE_GATE_ENGINE", "pandas")
    with pytest.raises(InputError, match="DEEP_STORAGE_GATE_ENGINE 'pandas' is unknown"):
        engine_for(10)


def test_silver_runs_in_process_up_to_its_threshold_on_a_local_master_else_on_spark(monkeypatch):
    from deep_storage.core import defaults
    from deep_storage.tables.silver import _threads, engine_for

    monkeypatch.delenv("DEEP_STORAGE_SILVER_ENGINE", raising=False)
    most = defaults.SILVER_DUCKDB_MAX_ROWS
    assert engine_for(0, master="local[2]") == engine_for(most, master="local[2]") == "duckdb"
    assert engine_for(most + 1, master="local[2]") == "spark"
    # Executors (a backfill's --executors, a standalone cluster): what exceeds one pod.
    assert engine_for(10, master="k8s://https://kubernetes.default.svc") == "spark"
    assert engine_for(10, master="spark://127.0.0.1:7077") == "spark"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "Spark")
    assert engine_for(10, master="local[2]") == "spark"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "duckdb")
    assert engine_for(most + 1, master="k8s://x") == "duckdb"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "polars")
    with pytest.raises(InputError, match="DEEP_STORAGE_SILVER_ENGINE 'polars' is unknown"):
        engine_for(10, master="local[2]")
    assert (_threads("local[3]"), _threads("local")) == (3, 1)
    assert 1 <= _threads("local[*]") <= len(os.sched_getaffinity(0))


def test_spark_waits_for_a_background_import_before_it_forks_its_jvm():
    """A fork while another thread imports deadlocks (pyspark's JVM launch has a preexec_fn):
    the session factory waits for every "preload-" thread before it launches the JVM."""
    import threading
    import time

    from deep_storage.io import spark_session

    done = threading.Event()

    def slow_import():
        time.sleep(0.5)
        done.set()

    threading.Thread(target=slow_import, name="preload-test", daemon=True).start()
    spark_session.wait_for_background_imports()
    assert done.is_set()
