"""Opening the lake after a long history: `deep_storage.status()` after N commits per table.

    python -m benchmarks.open_table [--commits 10000] [--json PATH]      (make bench-open)

An hourly schedule commits to each table 24 times a day, so a year holds ~9,000 commits per
table (and as many to `_days`). This starts its own SeaweedFS S3, then builds two lakes through
the steps' own commit path (lake.Writer.commit under the writer lease) on a local folder and
uploads each byte for byte to S3 (`--build-on s3` commits on S3 itself: the same log, about 3x
slower to build):
  history    bronze: `--commits` commits, each replacing one day of 90 (two files a day);
             silver: `--commits` commits, each replacing `--silver-partitions` partitions of one
             day of 365 (an active snapshot of 365 x that many files)
  reference  the same final snapshots, each table written in ONE commit
and, in a fresh process each, times opening both tables from S3 with every day's facts and its
files in the snapshot (`lake.committed`), then `deep_storage.status()` (what `deep-storage status`
prints: the last 14 days of each table with the gate's verdicts). The files the log names are
never read, so they are not written: the figure is the log's cost alone. Target: under 2 s
after 10,000 commits; the ratio to the reference says what the history adds.

The history's clock: a checkpoint keeps the `remove` of a replaced file until it is older than
`delta.deletedFileRetentionDuration` (7 days), so what a year of hourly commits leaves in the
log depends on the commits being an hour apart, not seconds. The history is therefore built in a
child process under libfaketime (Debian's `faketime`), whose wall clock the build sets to one
hour (`--hours-per-commit`) past the previous commit before each one, ending at the real time
of the build: every timestamp delta-rs and the commit path write (commit times, removes'
deletion times) and the checkpoint writer's idea of "now" follow that clock. Monotonic clocks
stay real. `--hours-per-commit 0` builds at the real clock (every tombstone kept: an upper bound).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import REPO, _machine
from deep_storage import lake as lakes
from deep_storage.core.config import StoreConfig
from deep_storage.lake import writer_lock
from demo.local_services import SeaweedS3Server

FIRST = dt.date(2025, 1, 1)

_STATUS = """
import json, sys, time
t0 = time.perf_counter()
import deep_storage
from deep_storage import lake as lakes
t1 = time.perf_counter()
fs = lakes.LakeFS(sys.argv[1])
days = {t: lakes.committed(fs, t) for t in (lakes.BRONZE_EVENTS, lakes.SILVER_EXECUTIONS)}
t2 = time.perf_counter()
rows = deep_storage.status(sys.argv[1])
t3 = time.perf_counter()
files = sum(len(m.files) for found in days.values() for m in found.values())
print(json.dumps({"open_seconds": t2 - t1, "status_seconds": t3 - t2, "seconds": t3 - t1,
                  "import_seconds": t1 - t0, "files": files, "status_rows": len(rows)}))
"""


def _fake(table: str, folder: str, i: int) -> lakes.DataFile:
    return lakes.DataFile(f"{folder}/part-{i:08d}.snappy.parquet", 10, 4096, 1_700_000_000_000)


def _written(table: str, folders: list[str], tag: int, schema) -> lakes.Written:
    files = [
        _fake(table, f, tag * 10 + k) for f in folders for k in range(2 if "/" not in f else 1)
    ]
    by_day: dict[dt.date, list[str]] = {}
    for f in files:
        by_day.setdefault(lakes.partition_date(f.path), []).append(f.path)
    return lakes.Written(table, by_day, sum(f.rows for f in files), files, schema)


def _day(table: str, day: dt.date, folders: list[str]) -> lakes.CommittedDay:
    return lakes.CommittedDay(
        table=table,
        date=day.isoformat(),
        rows=10 * len(folders),
        sealed=True,
        files=[],
        partitions={f: 10 for f in folders},
        run_id="",
        written_at="",
        details={"newest_event_at": f"{day.isoformat()}T23:59:00+00:00"},
    )


def _schemas():
    from pyspark.sql.pandas.types import to_arrow_schema

    from deep_storage.core import schemas

    return (
        to_arrow_schema(schemas.BRONZE_EVENTS_SCHEMA),
        to_arrow_schema(schemas.SILVER_EXECUTIONS_SCHEMA),
    )


def upload(folder: Path, store: StoreConfig, prefix: str) -> int:
    """Copy every file under `folder` to s3://{bucket}/{prefix}/..., keys as the relative paths."""
    from concurrent.futures import ThreadPoolExecutor

    from deep_storage.io.object_store import s3_client

    s3 = s3_client(store)
    files = [p for p in folder.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3.put_object(Bucket=store.bucket, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return len(files)


def build(
    lake: str,
    store: StoreConfig | None,
    commits: int,
    silver_partitions: int,
    one_shot: bool,
    clock: Clock | None = None,
):
    """Commit the history (or, `one_shot`, its final snapshot in one commit per table); with a
    `clock`, each round of commits happens at its hour."""
    bronze_schema, silver_schema = _schemas()
    bronze_days = [FIRST + dt.timedelta(days=i) for i in range(90)]
    silver_days = [FIRST + dt.timedelta(days=i) for i in range(365)]

    def silver_folders(day):
        return [f"client_id={c}/date={day}" for c in range(1, silver_partitions + 1)]

    fs = lakes.LakeFS(lake, store)
    if clock is not None:
        clock.lake = Path(lake)
        clock.set(0)
    with writer_lock.hold(lake, "bench", "open-table", "bench", store) as lease:
        bronze = lakes.Writer(fs, lakes.BRONZE_EVENTS, lease, "bench")
        silver = lakes.Writer(fs, lakes.SILVER_EXECUTIONS, lease, "bench")
        # First every day once, then the hourly commits replace one day each.
        first_b = [f"date={d}" for d in bronze_days]
        bronze.commit(
            [_day(lakes.BRONZE_EVENTS, d, [f"date={d}"]) for d in bronze_days],
            _written(lakes.BRONZE_EVENTS, first_b, 0, bronze_schema),
        )
        folders = [f for d in silver_days for f in silver_folders(d)]
        silver.commit(
            [_day(lakes.SILVER_EXECUTIONS, d, silver_folders(d)) for d in silver_days],
            _written(lakes.SILVER_EXECUTIONS, folders, 0, silver_schema),
            replace=set(folders),
        )
        if one_shot:
            return
        start = time.perf_counter()
        for i in range(1, commits):
            if clock is not None:
                clock.set(i)
            day = bronze_days[i % len(bronze_days)]
            bronze.commit(
                [_day(lakes.BRONZE_EVENTS, day, [f"date={day}"])],
                _written(lakes.BRONZE_EVENTS, [f"date={day}"], i, bronze_schema),
            )
            sday = silver_days[i % len(silver_days)]
            silver.commit(
                [_day(lakes.SILVER_EXECUTIONS, sday, silver_folders(sday))],
                _written(lakes.SILVER_EXECUTIONS, silver_folders(sday), i, silver_schema),
                replace=set(silver_folders(sday)),
            )
            if i % 500 == 0:
                rate = i / (time.perf_counter() - start)
                print(f"  {i} commits per table ({rate:.1f}/s)", file=sys.stderr, flush=True)


class Clock:
    """The wall clock of a process run under libfaketime with FAKETIME_TIMESTAMP_FILE = `path`
    and FAKETIME_NO_CACHE=1: `set(i)` moves it to commit i's hour. The file system stamps files
    with the kernel's own clock, so `set` also stamps the log files written since the last call
    with the hour they were written at, as a store would: Delta's expired-log cleanup (log files
    older than `delta.logRetentionDuration`, 30 days, behind a checkpoint) then runs as it
    would over a real year."""

    def __init__(self, path: Path, start: dt.datetime, hours_per_commit: float):
        self.path, self.start, self.step = path, start, dt.timedelta(hours=hours_per_commit)
        self.lake: Path | None = None
        self._at: dt.datetime | None = None
        self._stamped: set[str] = set()

    def set(self, i: int) -> None:
        if self.lake is not None and self._at is not None:
            self._stamp(self.lake, self._at.timestamp())
        self._at = self.start + i * self.step
        self.path.write_text(self._at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") + "\n")

    def _stamp(self, lake: Path, at: float) -> None:
        # By path: this process's time.time() is the faked clock, not the file system's.
        for log in (lake / "_days", lake / "bronze/events", lake / "silver/stop_executions"):
            try:
                paths = {e.path for e in os.scandir(log / "_delta_log") if e.is_file()}
            except FileNotFoundError:
                continue
            for path in paths - self._stamped:
                os.utime(path, (at, at))
            self._stamped = self._stamped - {p for p in self._stamped if p.startswith(str(log))}
            self._stamped |= paths


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise SystemExit(
            "libfaketime not found: `apt-get install faketime` (or --hours-per-commit 0 for a "
            "history built at the real clock)"
        )
    return found[0]


def build_at_hours(folder: Path, commits: int, silver_partitions: int, hours: float) -> None:
    """The history in `folder`, built by a child process whose clock runs one commit per
    `hours`, ending now."""
    clock_file = folder.parent / f"{folder.name}.clock"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours * commits)
    Clock(clock_file, start, hours).set(0)
    env = {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "TZ": "UTC",
    }
    args = [sys.executable, "-m", "benchmarks.open_table", "--build-history", str(folder)]
    args += ["--commits", str(commits), "--silver-partitions", str(silver_partitions)]
    args += ["--clock", f"{clock_file}@{start.isoformat()}@{hours}"]
    subprocess.run(args, env=env, check=True, cwd=REPO)


def checkpoint_actions(folder: Path) -> dict:
    """Per table under `folder`: its newest checkpoint's version and how many add and remove
    actions (tombstones) it carries, the part of the log every open reads."""
    import pyarrow.parquet as pq

    out = {}
    for last in sorted(folder.rglob("_delta_log/_last_checkpoint")):
        version = json.loads(last.read_text())["version"]
        parts = sorted(last.parent.glob(f"{version:020d}.checkpoint*.parquet"))
        table = pq.ParquetDataset(parts).read(columns=["add", "remove"])
        out[last.parent.parent.relative_to(folder).as_posix()] = {
            "version": version,
            "adds": table.column("add").drop_null().length(),
            "removes": table.column("remove").drop_null().length(),
        }
    return out


def _status(lake: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _STATUS, lake], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"status failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


_LAKES = ("reference", "history")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.build_history is not None:
        return _build_history_child(args)
    if args.hours_per_commit and args.build_on == "s3":
        parser.error("--build-on s3 builds at the real clock: add --hours-per-commit 0")
    results: dict = {
        "commits_per_table": args.commits,
        "silver_files": 365 * args.silver_partitions,
        "machine": _machine(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    with SeaweedS3Server() as s3:
        s3.create_bucket("bench")
        store = StoreConfig(s3.access_key, s3.secret_key, s3.endpoint, s3.region, "bench")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_ENDPOINT": s3.endpoint,
            "AWS_REGION": s3.region,
        }
        results["built_on"] = args.build_on
        results["hours_per_commit"] = args.hours_per_commit
        for name in _LAKES:
            _build_lake(name, args, store, results)
        _time_status(env, args.repeat, results)
    results["ratio_history_vs_reference"] = round(
        results["history"]["seconds"] / results["reference"]["seconds"], 2
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--silver-partitions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--build-on",
        choices=("local", "s3"),
        default="local",
        help="commit the history on a local folder, then upload it (default), or on S3 itself",
    )
    parser.add_argument(
        "--hours-per-commit",
        type=float,
        default=1.0,
        help="the history's commits this many hours apart on a faked clock (0: the real clock)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/open-latest.json")
    # Internal: the child process that builds the history under libfaketime.
    parser.add_argument("--build-history", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clock", help=argparse.SUPPRESS)
    return parser


def _build_history_child(args) -> int:
    """The child of `build_at_hours`: the history under the faked clock `--clock` names."""
    path, start, hours = args.clock.split("@")
    clock = Clock(Path(path), dt.datetime.fromisoformat(start), float(hours))
    build(str(args.build_history), None, args.commits, args.silver_partitions, False, clock)
    return 0


def _build_lake(name: str, args, store: StoreConfig, results: dict) -> None:
    """Build lake `name` (the reference in one commit, or the history) in s3://bench/{name}."""
    print(f"building {name} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    one_shot = name != "history"
    if args.build_on == "s3":
        build(f"s3a://bench/{name}", store, args.commits, args.silver_partitions, one_shot)
    else:
        with tempfile.TemporaryDirectory(prefix=f"open-{name}-") as tmp:
            folder = Path(tmp) / "lake"
            if one_shot or not args.hours_per_commit:
                build(str(folder), None, args.commits, args.silver_partitions, one_shot)
            else:
                hours = args.hours_per_commit
                build_at_hours(folder, args.commits, args.silver_partitions, hours)
            results[f"{name}_checkpoints"] = checkpoint_actions(folder)
            results[f"{name}_objects"] = upload(folder, store, name)
    results[f"{name}_build_seconds"] = round(time.perf_counter() - t, 1)


def _time_status(env: dict, repeat: int, results: dict) -> None:
    """The fastest of `repeat` opens of each lake, and every run's seconds."""
    # Measured back to back, alternating, once both lakes exist: the same load on both.
    runs: dict[str, list[dict]] = {name: [] for name in _LAKES}
    for _ in range(repeat):
        for name in _LAKES:
            runs[name].append(_status(f"s3a://bench/{name}", env))
    for name in _LAKES:
        results[name] = min(runs[name], key=lambda r: r["seconds"])
        results[f"{name}_all_seconds"] = [round(r["seconds"], 3) for r in runs[name]]


if __name__ == "__main__":
    raise SystemExit(main())
