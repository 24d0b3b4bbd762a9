"""Partitioned Parquet written by Spark's tasks with pyarrow: one file per partition value,
straight under a new name in the lake (lake.Writer.write_partitioned commits them).

Runs in the executors' Python workers (`mapInArrow`), so it scales out with the job; each task
writes only the partitions its rows hash to, and returns (file, rows) for each file it wrote.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from deep_storage.config import StoreConfig
    from deep_storage.lake import LakeFS

_RESULT = "file string, rows long"


def write_partitions(
    frame: DataFrame,
    fs: LakeFS,
    table: str,
    partition_by: tuple[str, str],
    sort_by: list[str],
    store: StoreConfig | None,
) -> list[str]:
    """Write `frame` under `{lake}/{table}/{p0}=v0/{p1}=v1/`, one file per value pair, rows in
    `sort_by` order; the partition columns live in the folder names, not in the files.
    Returns the new files, relative to the table root."""
    from pyspark.sql.pandas.types import to_arrow_schema

    lake, tag = fs.lake, uuid.uuid4().hex
    data_columns = [c for c in frame.columns if c not in partition_by]
    target = to_arrow_schema(frame.select(*data_columns).schema)

    def write(batches):
        yield from _write_task(batches, lake, store, table, partition_by, target, tag)

    ordered = frame.repartition(*partition_by).sortWithinPartitions(*partition_by, *sort_by)
    return [r.file for r in ordered.mapInArrow(write, _RESULT).collect()]


def _write_task(batches, lake, store, table, partition_by, target, tag):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark import TaskContext

    from deep_storage.lake import LakeFS

    afs, root = LakeFS(lake, store).arrow()
    context = TaskContext.get()
    task = f"{context.partitionId():05d}-{context.attemptNumber()}" if context else "00000-0"
    done: list[tuple[str, int]] = []
    state: dict = {"key": None, "writer": None, "rows": 0}

    def close() -> None:
        if state["writer"] is not None:
            state["writer"].close()
            done.append((state["file"], state["rows"]))
        state["writer"] = None

    for batch in batches:
        if batch.num_rows == 0:
            continue
        first, second = (batch.column(c) for c in partition_by)
        a = first.to_numpy(zero_copy_only=False)
        b = second.cast(pa.int32()) if pa.types.is_date32(second.type) else second
        b = b.to_numpy(zero_copy_only=False)
        cuts = np.flatnonzero((a[1:] != a[:-1]) | (b[1:] != b[:-1])) + 1
        for lo, hi in zip([0, *cuts], [*cuts, batch.num_rows], strict=True):
            run = batch.slice(lo, hi - lo)
            key = tuple(run.column(c)[0].as_py() for c in partition_by)
            if key != state["key"]:
                close()
                folder = "/".join(f"{c}={v}" for c, v in zip(partition_by, key, strict=True))
                name = f"part-{task}-{len(done):04d}-{tag}.snappy.parquet"
                if root.startswith("/"):  # the local disk has folders to create
                    afs.create_dir(f"{root}/{table}/{folder}", recursive=True)
                state.update(
                    key=key,
                    rows=0,
                    file=f"{folder}/{name}",
                    writer=pq.ParquetWriter(
                        f"{root}/{table}/{folder}/{name}",
                        target,
                        filesystem=afs,
                        compression="snappy",
                        store_decimal_as_integer=True,
                        write_time_adjusted_to_utc=True,
                    ),
                )
            data = pa.Table.from_batches([run]).select(target.names).cast(target)
            state["writer"].write_table(data)
            state["rows"] += run.num_rows
    close()
    if done:
        yield pa.RecordBatch.from_pydict(
            {"file": [f for f, _ in done], "rows": [n for _, n in done]},
            schema=pa.schema([("file", pa.string()), ("rows", pa.int64())]),
        )
