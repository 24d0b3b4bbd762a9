"""Every default a user can override, in one place: the CLI's options, the steps' adapter, the
library and the KFP components' signatures. KFP needs literal defaults in a component's
signature; tests/test_defaults.py checks that every literal there matches this module."""

LOOKBACK_DAYS = 7  # how many days before the run's first an execution may have started
SEAL_MARGIN_S = 300  # clock-skew margin before a day can seal, seconds
VOLUME_K = 3.0  # warn when a day's rows fall outside mean ± k·stdev of the previous days
MAX_DAYS = 14  # at most this many days per bronze run (catch-up); the next run continues
MAX_BACKFILL_DAYS = 366  # at most this many days in one backfill run (and in --max-days)
READ_PARTITIONS = 2  # parallel range reads (and files) per bronze day
HISTORY_DAYS = 14  # the days the gate compares a day against, and charts
GATE_ENGINE = "auto"  # what judges the gate's rows: duckdb, spark, or auto (by the day's rows)
# auto: DuckDB in the gate's process up to this many rows a day. The day is held in memory as
# Arrow: 4.4 GiB peak at 5M events (README, Benchmarks), within the gate pod's 8 GiB limit.
GATE_DUCKDB_MAX_ROWS = 6_000_000
BRONZE_RETENTION_DAYS = 90  # a bronze day D is removed once D < as_of's date - this many days
SILVER_RETENTION_DAYS = 365  # the same for silver
VACUUM_RETENTION_HOURS = 168  # superseded files stay readable (time travel) so long: 7 days
