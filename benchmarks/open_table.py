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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import REPO, _machine
from deep_storage import lake as lakes
from deep_storage import writer_lock
from deep_storage.config import StoreConfig
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


def _manifest(table: str, day: dt.date, folders: list[str]) -> lakes.Manifest:
    return lakes.Manifest(
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

    from deep_storage import schemas

    return (
        to_arrow_schema(schemas.BRONZE_EVENTS_SCHEMA),
        to_arrow_schema(schemas.SILVER_EXECUTIONS_SCHEMA),
    )


def upload(folder: Path, store: StoreConfig, prefix: str) -> int:
    """Copy every file under `folder` to s3://{bucket}/{prefix}/..., keys as the relative paths."""
    from concurrent.futures import ThreadPoolExecutor

    from deep_storage.object_store import s3_client

    s3 = s3_client(store)
    files = [p for p in folder.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3.put_object(Bucket=store.bucket, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return len(files)


def build(
    lake: str, store: StoreConfig | None, commits: int, silver_partitions: int, one_shot: bool
):
    """Commit the history (or, `one_shot`, its final snapshot in one commit per table)."""
    bronze_schema, silver_schema = _schemas()
    bronze_days = [FIRST + dt.timedelta(days=i) for i in range(90)]
    silver_days = [FIRST + dt.timedelta(days=i) for i in range(365)]

    def silver_folders(day):
        return [f"client_id={c}/date={day}" for c in range(1, silver_partitions + 1)]

    fs = lakes.LakeFS(lake, store)
    with writer_lock.hold(lake, "bench", "open-table", "bench", store) as lease:
        bronze = lakes.Writer(fs, lakes.BRONZE_EVENTS, lease, "bench")
        silver = lakes.Writer(fs, lakes.SILVER_EXECUTIONS, lease, "bench")
        # First every day once, then the hourly commits replace one day each.
        first_b = [f"date={d}" for d in bronze_days]
        bronze.commit(
            [_manifest(lakes.BRONZE_EVENTS, d, [f"date={d}"]) for d in bronze_days],
            _written(lakes.BRONZE_EVENTS, first_b, 0, bronze_schema),
        )
        folders = [f for d in silver_days for f in silver_folders(d)]
        silver.commit(
            [_manifest(lakes.SILVER_EXECUTIONS, d, silver_folders(d)) for d in silver_days],
            _written(lakes.SILVER_EXECUTIONS, folders, 0, silver_schema),
            replace=set(folders),
        )
        if one_shot:
            return
        start = time.perf_counter()
        for i in range(1, commits):
            day = bronze_days[i % len(bronze_days)]
            bronze.commit(
                [_manifest(lakes.BRONZE_EVENTS, day, [f"date={day}"])],
                _written(lakes.BRONZE_EVENTS, [f"date={day}"], i, bronze_schema),
            )
            sday = silver_days[i % len(silver_days)]
            silver.commit(
                [_manifest(lakes.SILVER_EXECUTIONS, sday, silver_folders(sday))],
                _written(lakes.SILVER_EXECUTIONS, silver_folders(sday), i, silver_schema),
                replace=set(silver_folders(sday)),
            )
            if i % 500 == 0:
                rate = i / (time.perf_counter() - start)
                print(f"  {i} commits per table ({rate:.1f}/s)", file=sys.stderr, flush=True)


def _status(lake: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _STATUS, lake], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"status failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    import os

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
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/open-latest.json")
    args = parser.parse_args(argv)
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
        names = ("reference", "history")
        results["built_on"] = args.build_on
        for name in names:
            print(f"building {name} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            one_shot = name != "history"
            if args.build_on == "s3":
                build(f"s3a://bench/{name}", store, args.commits, args.silver_partitions, one_shot)
            else:
                with tempfile.TemporaryDirectory(prefix=f"open-{name}-") as tmp:
                    build(tmp, None, args.commits, args.silver_partitions, one_shot)
                    results[f"{name}_objects"] = upload(Path(tmp), store, name)
            results[f"{name}_build_seconds"] = round(time.perf_counter() - t, 1)
        # Measured back to back, alternating, once both lakes exist: the same load on both.
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.repeat):
            for name in names:
                runs[name].append(_status(f"s3a://bench/{name}", env))
        for name in names:
            results[name] = min(runs[name], key=lambda r: r["seconds"])
            results[f"{name}_all_seconds"] = [round(r["seconds"], 3) for r in runs[name]]
    results["ratio_history_vs_reference"] = round(
        results["history"]["seconds"] / results["reference"]["seconds"], 2
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
