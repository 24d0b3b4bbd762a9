"""One Parquet data file written with pyarrow straight under a new name in the lake: what silver's
Spark tasks call for each (client_id, date) partition they build (silver_task.py). Nothing is
visible until lake.Writer.commit adds the file to the Delta log."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def new_name(task: str, index: int, tag: str) -> str:
    """A file name no other write produces: the task, its attempt, the file's index in the task
    and the run's tag (unique per run)."""
    return f"part-{task}-{index:04d}-{tag}.snappy.parquet"


def write_file(afs, root: str, relpath: str, data: pa.Table, target: pa.Schema) -> None:
    """Write `data` (cast to `target`; other columns dropped) to `{root}/{relpath}` on the
    pyarrow file system `afs`, as the lake's Parquet: snappy, decimals as integers, timestamps
    adjusted to UTC."""
    import pyarrow.parquet as pq

    path = f"{root}/{relpath}"
    if root.startswith("/"):  # the local disk has folders to create
        afs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(
        data.select(target.names).cast(target),
        path,
        filesystem=afs,
        compression="snappy",
        store_decimal_as_integer=True,
        write_time_adjusted_to_utc=True,
    )


def task_name() -> str:
    """The running Spark task's partition and attempt ("00003-0"), "00000-0" outside Spark."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return f"{context.partitionId():05d}-{context.attemptNumber()}" if context else "00000-0"
