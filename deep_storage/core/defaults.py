"""Every default a user can override and every SLA the gate holds the lake to, in one place: the
CLI's options, the steps' adapter, the library and the KFP components' signatures. KFP needs
literal defaults in a component's signature; tests/test_defaults.py checks that every literal
there matches this module."""

import datetime as dt
from decimal import Decimal

LOOKBACK_DAYS = 7  # how many days before the run's first an execution may have started
SEAL_MARGIN_S = 300  # clock-skew margin before a day can seal, seconds
VOLUME_K = 3.0  # warn when a day's rows fall outside mean ± k·stdev of the previous days
MAX_DAYS = 14  # at most this many days per bronze run (catch-up); the next run continues
MAX_BACKFILL_DAYS = 366  # at most this many days in one backfill run (and in --max-days)
READ_PARTITIONS = 2  # parallel range reads per bronze day
# A bronze day is read and kept in this many equal slices of its window (hours): a later run
# re-reads only the slices whose count or newest event changed at the source, so the hourly
# run at the end of a 5M-event day re-reads its last hour, not the whole day.
BRONZE_SLICES = 24
HISTORY_DAYS = 14  # the days the gate compares a day against, and charts
GATE_ENGINE = "auto"  # what judges the gate's rows: duckdb, spark, or auto (by the day's rows)
# auto: DuckDB in the gate's process up to this many rows a day. The day is held in memory as
# Arrow: 4.4 GiB peak at 5M events (benchmarks/README.md), within the gate pod's 8 GiB limit.
GATE_DUCKDB_MAX_ROWS = 6_000_000
SILVER_ENGINE = "auto"  # what projects silver: duckdb, spark, or auto (by the bronze rows read)
# auto: DuckDB in silver's process up to this many bronze rows read (the run's days and their
# look-back), on a local master; Spark above that, or with executors (a cluster's master). The
# events are held in memory as Arrow: 5.9 GiB peak at 10M (benchmarks/README.md), within the
# silver pod's 8 GiB limit.
SILVER_DUCKDB_MAX_ROWS = 10_000_000
# The gate's SLAs (docs/source.md). The lake's lag behind the source's newest event: bronze within
# 2 h, an event in silver within 1 h of being written (warn-level lag_within_sla).
LAG_SLA = {"bronze": dt.timedelta(hours=2), "silver": dt.timedelta(hours=1)}
# A day's newest event in the lake against the source's newest of that day, judged on the day's
# own runs only (warn-level fresh_within_sla): silver is rebuilt at least daily.
FRESHNESS_SLA = {"bronze": dt.timedelta(hours=2), "silver": dt.timedelta(hours=24)}
# The writer lease (lake/writer_lock.py): how long a step waits for it before it gives up, and
# how long a holder that stopped renewing keeps it (DEEP_STORAGE_LOCK_WAIT, _LOCK_TTL, seconds).
LOCK_WAIT_S = 600.0
LOCK_TTL_S = 120.0
# A source transaction open longer than this keeps its day unsealed and is named in the day's
# facts and the gate's report as a stuck writer.
STUCK_WRITER_AFTER = dt.timedelta(hours=1)
# How far ahead of this machine's clock retention's as_of may be (a scheduler's clock, a rounded
# time); further ahead is refused, since it would remove days too early.
AS_OF_AHEAD = dt.timedelta(minutes=10)
BRONZE_RETENTION_DAYS = 90  # a bronze day D is removed once D < as_of's date - this many days
SILVER_RETENTION_DAYS = 365  # the same for silver
VACUUM_RETENTION_HOURS = 168  # superseded files stay readable (time travel) so long: 7 days

# Gold. `slippage_breach` is slippage_pct above this. The log does not carry the platform's own
# per-client slippage limit, so this is the project's choice: a quarter of a percent, which splits
# the synthetic day's EXECUTED executions about in half (49.8% above it, slippage 0-0.5%), so both
# classes are represented. Changing it rebuilds every gold day on the next `deep-storage gold`
# (each day's facts record the threshold it was built with).
SLIPPAGE_BREACH_PCT = Decimal("0.25")
GOLD_LOOKBACK_DAYS = 7  # the features' longest look-back: building day D reads silver from D - 7
TEST_FRACTION = 0.2  # a training set's test split starts at the first day of its range's last fifth
LABEL_SHARE_RANGE = (0.1, 0.9)  # a training set's label positive share outside this warns
OUTLIER_SIGMAS = 3.0  # a feature's rows beyond mean ± this many stdev are counted (warn)
TRAINING_SET_NAME = "stop_outcome"  # the training pipeline's default set
# A run without --from/--to takes this many days, ending the day before gold's newest (which is
# usually today, still filling): a weekly run on Monday trains on the four weeks to Sunday.
TRAINING_WINDOW_DAYS = 28
# The metastore database the lake's tables are registered in (deep-storage catalog --database).
CATALOG_DATABASE = "deep_storage"
