"""What one task of a silver run does for the clients whose events hash to it (an execution never
spans clients, so every execution is whole in one task). A task is a Spark task in its Python
worker, or, on silver's in-process engine, one bucket of clients on a thread of the step's own
process (silver.project_in_process):

  project  projection.project_arrow over the task's events (DuckDB, one thread per task);
  keep     the executions overlapping the run's days: the ones re-projected;
  merge    for each committed partition of another day that may hold a re-projected execution's
           previous row, or receives a new row: its rows without the re-projected executions;
  write    one Parquet file per (client_id, date) under a new name (parquet_files.py);
  report   one row per file: its partition, rows, statuses and newest event time; and one row
           without a file for each partition of another day that ends up empty.

Which committed partitions of other days are merged: an execution's previous row lives in the
partition of its first event's date as seen then. Bronze keeps every event it committed, so that
date lies between the execution's first and last event dates now. Only those (client_id, date)
pairs are opened, not every committed partition of the read window.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from deep_storage.core.config import StoreConfig

PARTITION_COLUMNS = ("client_id", "date")
WRITERS = 8  # files a task writes at once
NEWEST_COLUMNS = ("triggered_at", "submitted_at", "executed_at", "failed_at", "blocked_at")


@dataclass(frozen=True)
class TaskPlan:
    """Everything a task needs, shipped with its closure (plain data: no session, no client)."""

    lake: str
    store: StoreConfig | None
    table: str
    tag: str  # the run's part of every new file name
    start: dt.datetime  # the run's days, [start, end): executions overlapping them are re-projected
    end: dt.datetime
    other_days: frozenset[dt.date]  # committed days of the read window outside the run's days
    committed: dict[tuple[int, dt.date], list[str]]  # other days' partitions -> files (relative)


def run(
    batches: Iterator[pa.RecordBatch],
    plan: TaskPlan,
    schema: pa.Schema,
    columns: list[str],
    task: str | None = None,
    store: tuple | None = None,
):
    """The task: `batches` of bronze events (`schema`) in, `report_schema()` batches out.
    `task` names the task in its files' names: the running Spark task's when None. `store`:
    (a pyarrow file system, the lake's root in it), made from the plan when None."""
    import pyarrow as pa

    from deep_storage.tables import projection

    events = pa.Table.from_batches(list(batches), schema=schema)
    if events.num_rows == 0:
        return
    from deep_storage.lake import LakeFS

    projected = _overlapping(projection.project_arrow(events), plan)
    candidates = _candidates(projected, plan)
    afs, root = store or LakeFS(plan.lake, plan.store).arrow()
    rows, emptied = _merged(projected.select(columns), candidates, plan, afs, root)
    yield from _written(rows, emptied, plan, afs, root, task)


def _overlapping(executions: pa.Table, plan: TaskPlan) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    unit = executions.schema.field("_first_event_at").type
    start, end = pa.scalar(plan.start, unit), pa.scalar(plan.end, unit)
    keep = pc.and_(
        pc.less(executions["_first_event_at"], end),
        pc.greater_equal(executions["_last_event_at"], start),
    )
    return executions.filter(keep)


def _candidates(new: pa.Table, plan: TaskPlan) -> set[tuple[int, dt.date]]:
    """Committed partitions of other days that may hold a re-projected execution's previous row
    (or receive a new row: its first event's date is among those dates too)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not plan.committed:
        return set()
    # Only executions spanning days, or starting on another day, can meet one.
    last_day = pc.cast(pc.cast(new["_last_event_at"], pa.timestamp("us")), pa.date32())
    others = pa.array(sorted(plan.other_days), pa.date32())
    spans = pc.or_(pc.not_equal(new["date"], last_day), pc.is_in(new["date"], value_set=others))
    new = new.filter(spans)
    found = set()
    columns = (new[c].to_pylist() for c in ("client_id", "date", "_last_event_at"))
    for client, first, last in zip(*columns, strict=True):
        day = first
        while day <= last.date():
            if day in plan.other_days and (client, day) in plan.committed:
                found.add((client, day))
            day += dt.timedelta(days=1)
    return found


def _merged(new: pa.Table, candidates, plan: TaskPlan, afs, root: str):
    """(the rows to write: the re-projected executions plus the kept rows of each merged
    partition, the merged partitions left empty)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    parts = [new]
    emptied = []
    ids = new["execution_id"]
    columns = new.column_names
    target = pa.schema([f for f in new.schema if f.name not in PARTITION_COLUMNS])
    for client, day in sorted(candidates):
        files = [f"{root}/{plan.table}/{f}" for f in plan.committed[(client, day)]]
        old = ds.dataset(files, schema=target, format="parquet", filesystem=afs).to_table()
        kept = old.filter(pc.invert(pc.is_in(old["execution_id"], value_set=ids)))
        receives = pc.any(
            pc.and_(pc.equal(new["client_id"], client), pc.equal(new["date"], day))
        ).as_py()
        if kept.num_rows == old.num_rows and not receives:
            continue  # holds no re-projected execution and gets no new row: left as it is
        if kept.num_rows == 0 and not receives:
            emptied.append((client, day))
            continue
        n = kept.num_rows
        kept = kept.append_column("client_id", pa.array([client] * n, pa.int64()))
        kept = kept.append_column("date", pa.array([day] * n, pa.date32()))
        parts.append(kept.select(columns).cast(new.schema))
    return pa.concat_tables(parts), emptied


def _written(rows: pa.Table, emptied, plan: TaskPlan, afs, root: str, task: str | None):
    """Write one file per (client_id, date) of `rows`, sorted by (triggered_at, execution_id),
    and report each; then report the emptied partitions."""
    import numpy as np
    import pyarrow as pa

    from deep_storage.io import parquet_files

    keys = (*PARTITION_COLUMNS, "triggered_at", "execution_id")
    order = [(c, "ascending", "at_start") for c in keys]
    rows = rows.sort_by(order)
    target = pa.schema([f for f in rows.schema if f.name not in PARTITION_COLUMNS])
    clients = rows["client_id"].to_numpy()
    days = rows["date"].cast(pa.int32()).to_numpy()
    cuts = np.flatnonzero((clients[1:] != clients[:-1]) | (days[1:] != days[:-1])) + 1
    task = task or parquet_files.task_name()
    pairs = zip([0, *cuts], [*cuts, rows.num_rows], strict=True)
    bounds = [(lo, hi) for lo, hi in pairs if hi > lo]

    def write(index: int) -> tuple:
        lo, hi = bounds[index]
        part = rows.slice(lo, hi - lo)
        client, day = part["client_id"][0].as_py(), part["date"][0].as_py()
        relpath = f"client_id={client}/date={day.isoformat()}/"
        relpath += parquet_files.new_name(task, index, plan.tag)
        parquet_files.write_file(afs, root, f"{plan.table}/{relpath}", part, target)
        return (relpath, client, day, part.num_rows, *_facts(part))

    # Most of a file's time is the store's round trip, not this CPU: several in flight at once.
    with ThreadPoolExecutor(WRITERS, thread_name_prefix="silver-write") as pool:
        report = list(pool.map(write, range(len(bounds))))
    report += [(None, client, day, 0, "{}", None) for client, day in emptied]
    if report:
        schema = report_schema()
        yield pa.RecordBatch.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in report], schema=schema
        )


def _facts(part: pa.Table) -> tuple[str, int | None]:
    """(rows per status as JSON, the newest event time among NEWEST_COLUMNS in unix micros)."""
    import pyarrow.compute as pc

    counts = pc.value_counts(part["status"]).to_pylist()
    statuses = json.dumps({c["values"]: c["counts"] for c in counts}, sort_keys=True)
    newest = [pc.max(part[c]) for c in NEWEST_COLUMNS]
    values = [v.cast("int64").as_py() for v in newest if v.is_valid]
    return statuses, max(values) if values else None


def report_schema() -> pa.Schema:
    """What each task reports to the driver: one row per file written (or partition emptied)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("file", pa.string()),
            ("client_id", pa.int64()),
            ("date", pa.date32()),
            ("rows", pa.int64()),
            ("statuses", pa.string()),
            ("newest_us", pa.int64()),
        ]
    )
