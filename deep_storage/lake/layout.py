"""Where everything sits in the lake: the tables' folders, their partition columns, the Delta
settings every table is created with, and the commit-metadata keys the steps write."""

from __future__ import annotations

import datetime as dt

BRONZE_EVENTS = "bronze/events"
SILVER_EXECUTIONS = "silver/stop_executions"
GOLD_FEATURES = "gold/stop_execution_features"
TRAINING_SETS = "gold/training_sets"  # one Delta table per set: {TRAINING_SETS}/{name}
QUARANTINE = "quarantine"
QUALITY = "_quality"
DAYS = "_days"


# Written into every table the steps create. Checkpoints every 25 commits keep opening a table
# that an hourly schedule commits to 24 times a day fast (benchmarks/open_table.py); the two
# retention durations are Delta's defaults, written out so `DESCRIBE DETAIL` shows them.
TABLE_CONFIG = {
    "delta.checkpointInterval": "25",
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.logRetentionDuration": "interval 30 days",
}
FACTS_KEY = "deep_storage"  # the commit-metadata key holding a data commit's facts
VERSIONS_KEY = "deep_storage_table_versions"  # in `_days` commits: the data versions it covers
PARTITION_COLUMNS = {
    BRONZE_EVENTS: ("date",),
    SILVER_EXECUTIONS: ("client_id", "date"),
    GOLD_FEATURES: ("date",),
}
TRAINING_SET_PARTITIONS = ("version", "split")


def day_uri(lake: str, table: str, day: dt.date) -> str:
    return f"{lake}/{table}/date={day.isoformat()}"


def partition_date(relpath: str) -> dt.date | None:
    """The `date=` value of a path relative to a table root (None when it has none)."""
    for part in relpath.split("/"):
        if part.startswith("date="):
            try:
                return dt.date.fromisoformat(part[5:])
            except ValueError:
                return None
    return None
