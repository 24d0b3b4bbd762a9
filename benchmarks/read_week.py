"""The notebook reader against DuckDB: a week of silver into pandas.

    python -m benchmarks.read_week --events-per-day N [--days 7] [--json PATH]   (make bench-read)

Starts its own PostgreSQL and SeaweedFS S3, loads `--days` days of N generated events, runs bronze
and silver over them as a user would, then reads the week of silver into pandas three ways, each
in a fresh process, timing the read call alone (imports and interpreter start excluded):
  reference      DuckDB: read_parquet(<the files of silver's current snapshot, local copies>).df()
  reader local   deep_storage.read("silver", first, last) on a local copy of the lake
  reader s3      deep_storage.read("silver", first, last) on the lake in S3
The target is reader local / reference <= 1.5 (the same files on the same disk); reader s3 adds
the object store's transfer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.run import CLI, PASSWORD, REPO, _machine, service_env
from deep_storage import lake as lakes
from deep_storage.core import schemas
from demo import synthetic
from demo.local_services import PostgresServer, SeaweedS3Server

LAST = dt.date(2025, 6, 7)

_READER = """
import json, sys, time
import deep_storage
t = time.perf_counter()
frame = deep_storage.read("silver", sys.argv[1], sys.argv[2], lake=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(frame)}))
"""

_DUCKDB = """
import json, sys, time
import duckdb
files = json.load(open(sys.argv[1]))
t = time.perf_counter()
frame = duckdb.read_parquet(files, hive_partitioning=True).df()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(frame)}))
"""


def _python(code: str, *args: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"read failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step(args: list[str], env: dict) -> None:
    out = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {out.stderr.strip().splitlines()[-1:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/read-latest.json")
    args = parser.parse_args(argv)
    first = LAST - dt.timedelta(days=args.days - 1)
    results: dict = {
        "events_per_day": args.events_per_day,
        "days": args.days,
        "machine": _machine(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    with PostgresServer() as pg, SeaweedS3Server() as s3:
        _load_week(pg, s3, first, args)
        env = service_env(pg, s3)
        lake = "s3a://bench/lake"
        span = ["--date", first.isoformat(), "--until", LAST.isoformat(), "--lake", lake]
        print("running bronze and silver ...", file=sys.stderr, flush=True)
        _step(["bronze", *span, "--max-days", str(args.days)], env)
        _step(["silver", *span], env)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "lake"
            _download_silver(s3, local)
            files = _silver_files(local)
            listing = Path(tmp) / "files.json"
            listing.write_text(json.dumps(files))
            _read_three_ways(first, lake, local, listing, env, results)
            results["files"] = len(files)
    results["ratios"] = _ratios(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


def _load_week(pg, s3, first: dt.date, args) -> None:
    """The app's database and the bucket, then `--days` days of events from `first` on."""
    pg.create_app_database("trading", "django", PASSWORD)
    s3.create_bucket("bench")
    with pg.connect("trading", "django", PASSWORD) as conn:
        conn.execute(schemas.SOURCE_DDL)
        for i in range(args.days):
            day = first + dt.timedelta(days=i)
            print(f"loading {day} ...", file=sys.stderr, flush=True)
            synthetic.copy_into(
                conn,
                synthetic.generate(day, args.events_per_day, seed=10 + i, clients=args.clients),
            )
        conn.execute("VACUUM ANALYZE stop_events")


def _download_silver(s3, local: Path) -> None:
    """Silver's files and the `_days` table from the bucket's lake into the folder `local`."""
    client = s3.client()
    for prefix in (f"lake/{lakes.SILVER_EXECUTIONS}/", f"lake/{lakes.DAYS}/"):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix)
        for obj in (o for page in pages for o in page.get("Contents", [])):
            target = local / obj["Key"][len("lake/") :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file("bench", obj["Key"], str(target))


def _silver_files(local: Path) -> list[str]:
    """The paths of the files in silver's current snapshot of the lake copy in `local`."""
    fs = lakes.LakeFS(f"file://{local}")
    _, folders = lakes.snapshot_files(fs, lakes.SILVER_EXECUTIONS)
    return [
        str(local / lakes.SILVER_EXECUTIONS / rel)
        for listed in folders.values()
        for rel, _ in listed
    ]


def _read_three_ways(
    first: dt.date, lake: str, local: Path, listing: Path, env: dict, results: dict
) -> None:
    """The week read by DuckDB, then by the reader on the local copy and on S3, each timed in a
    fresh process."""
    print("reading ...", file=sys.stderr, flush=True)
    results["reference_duckdb"] = _python(_DUCKDB, str(listing), env=env)
    results["reader_local"] = _python(
        _READER, first.isoformat(), LAST.isoformat(), f"file://{local}", env=env
    )
    results["reader_s3"] = _python(_READER, first.isoformat(), LAST.isoformat(), lake, env=env)


def _ratios(results: dict) -> dict:
    """The readers' seconds against DuckDB's, once the three reads agree on the rows."""
    rows = {results[k]["rows"] for k in ("reference_duckdb", "reader_local", "reader_s3")}
    if len(rows) != 1:
        raise SystemExit(f"the reads disagree on the rows: {results}")
    ref = results["reference_duckdb"]["seconds"]
    return {
        "reader_local_vs_duckdb": round(results["reader_local"]["seconds"] / ref, 2),
        "reader_s3_vs_duckdb": round(results["reader_s3"]["seconds"] / ref, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
