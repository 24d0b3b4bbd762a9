"""The lake's format: every table is a Delta Lake table, and this package is its one commit path.

    {lake}/bronze/events              Delta, partitioned by date
    {lake}/silver/stop_executions     Delta, partitioned by client_id, date
    {lake}/gold/stop_execution_features   Delta, partitioned by date
    {lake}/gold/training_sets/{name}      Delta, partitioned by version, split (lake/releases.py)
    {lake}/_days                      Delta, one row per committed (table, day): the day's facts

Any Delta reader (delta-rs, delta-spark, DuckDB, polars, Trino) reads the tables with no code of
ours: the transaction log in `_delta_log/` lists exactly the committed files.

The commit path (the only code that adds or removes data files from a table):
1. `Writer.write*` / `Writer.landed`: the step's engine writes new Parquet files under new names
   inside the table folder. No log entry names them yet, so no reader sees them.
2. Their rows are counted from the Parquet footers; a count different from the rows the step read
   fails the run, and nothing is committed.
3. `Writer.commit`: ONE Delta transaction (delta-rs, a conditional PUT of the next
   `_delta_log/N.json`) removes the files of every replaced partition and adds the new ones, and
   carries the days' facts (rows, sealed, window, newest event, ...) in its commit metadata.
4. The facts are then written to `_days` too. A run killed between 3 and 4 loses nothing: a reader
   replays the facts of data commits newer than `_days` knows from the tables' own history.

Superseded files stay until retention vacuums them (7 days, Delta's default), so a reader in
flight never hits a missing file and last week's versions stay readable (time travel). Only the
holder of the writer lease (writer_lock.py) commits: delta-spark's S3 log store is single-driver,
and the lease is what keeps two runs from interleaving.

The modules, each one concern (a lower one never imports a higher one):
    layout       the tables' folders, partition columns, Delta settings, commit-metadata keys
    storage      LakeFS: the lake's one I/O interface (object store or local files, Delta tables)
    delta_log    a version's log entry: its commitInfo, the day facts it carried, its time
    days         the committed days' facts (`_days`, replayed from the tables' history), reads
    writer       Writer: land, count, commit; vacuum
    writer_lock  the writer lease
    retention    days past their window leave the lake; vacuum
    migrate      a v0.2 lake becomes Delta tables, once

This face re-exports what the steps use (`from deep_storage import lake; lake.Writer(...)`);
delta_log, writer_lock, retention and migrate are imported as modules.
"""

from deep_storage.lake.days import (
    CommittedDay,
    committed,
    committed_day,
    file_uris,
    newest_event,
    read_committed,
    read_files,
    snapshot_files,
)
from deep_storage.lake.delta_log import commit_info
from deep_storage.lake.layout import (
    BRONZE_EVENTS,
    DAYS,
    FACTS_KEY,
    GOLD_FEATURES,
    PARTITION_COLUMNS,
    QUALITY,
    QUARANTINE,
    SILVER_EXECUTIONS,
    TABLE_CONFIG,
    TRAINING_SET_PARTITIONS,
    TRAINING_SETS,
    VERSIONS_KEY,
    day_uri,
    partition_date,
)
from deep_storage.lake.storage import DataFile, LakeFS
from deep_storage.lake.writer import Writer, Written, vacuum

__all__ = [
    "BRONZE_EVENTS",
    "DAYS",
    "FACTS_KEY",
    "GOLD_FEATURES",
    "PARTITION_COLUMNS",
    "QUALITY",
    "QUARANTINE",
    "SILVER_EXECUTIONS",
    "TABLE_CONFIG",
    "TRAINING_SETS",
    "TRAINING_SET_PARTITIONS",
    "VERSIONS_KEY",
    "CommittedDay",
    "DataFile",
    "LakeFS",
    "Writer",
    "Written",
    "commit_info",
    "committed",
    "committed_day",
    "day_uri",
    "file_uris",
    "newest_event",
    "partition_date",
    "read_committed",
    "read_files",
    "snapshot_files",
    "vacuum",
]
