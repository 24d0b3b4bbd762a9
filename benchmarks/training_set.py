"""The time to build a training set: `deep-storage training-set` over DAYS days of gold features.

    python -m benchmarks.training_set --days 90 --per-day 20000 [--json PATH]  (make bench-training)

Starts its own SeaweedFS S3 (no PostgreSQL: nothing here reads the source), writes a synthetic
gold features table of `--days` days, `--per-day` executions each (columns exactly
gold_features.arrow_schema(); about 75% executed, 15% failed or blocked, 10% still open with no
label; seeded, so the same arguments write the same rows) straight with delta-rs, one commit per
day as gold commits its days, into s3://bench/lake/gold/stop_execution_features. Then times, each
as a fresh process exactly as a user runs it, with the peak memory of its process tree:
  release    deep-storage training-set --name stop_outcome --version 1.0.0 --from D1 --to DN
  rebuild    the same command again: the version exists with the same rows ("unchanged")
  reference  Python reading the same days of the features table with delta-rs into Arrow (the
             set's columns) and keeping the rows whose label is known: the floor any release pays
Ratios: release_vs_read and rebuild_vs_read (whole processes, interpreter start included). The
release and the reference must agree on the rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.run import CLI, REPO, _machine, measured
from deep_storage import lake as lakes
from deep_storage.core import defaults
from deep_storage.core.config import StoreConfig
from deep_storage.tables import gold_features, training_sets
from demo import synthetic
from demo.local_services import SeaweedS3Server

LAKE = "s3a://bench/lake"
LAST = dt.date(2025, 6, 1)
SET = "stop_outcome"

_READ = """
import datetime as dt, json, sys, time
t = time.perf_counter()
import pyarrow.compute as pc
from deep_storage.lake import GOLD_FEATURES, LakeFS
lake, first, last, label, *columns = sys.argv[1:]
fs = LakeFS(lake)  # delta-rs names the files, pyarrow reads them: what the release reads with
days = [("date", ">=", dt.date.fromisoformat(first)), ("date", "<=", dt.date.fromisoformat(last))]
rows = fs.scan(GOLD_FEATURES, fs.delta(GOLD_FEATURES), columns=columns, filters=days)
known = rows.filter(pc.is_valid(rows[label]))
print(json.dumps({"seconds": time.perf_counter() - t, "rows": known.num_rows,
                  "rows_read": rows.num_rows}))
"""


def _keys(rng, day: dt.date, n: int, clients: int) -> dict:
    """The key columns of a day's executions: ids, client, symbol, side, source, as_of."""
    import numpy as np

    ids = [hashlib.md5(f"{day}:{i}".encode()).hexdigest() for i in range(n)]
    token = rng.random(n) < 0.95  # the rest were blocked before they were submitted
    midnight = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    return {
        "execution_id": ids,
        "execution_token": [
            f"tok-{e[:16]}" if t else None for e, t in zip(ids, token, strict=True)
        ],
        "client_id": rng.integers(1, clients + 1, n),
        "symbol": rng.choice(synthetic.DEFAULT_SYMBOLS, n),
        "side": np.where(rng.random(n) < 0.7, "SELL", "BUY"),
        "source": rng.choice(["ws"] * 14 + ["cron"] * 5 + ["manual"], n),
        "date": [day] * n,
        "as_of": midnight + rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]"),
    }


def _features(rng, n: int, as_of) -> dict:
    """What was knowable at as_of: plausible values, a few NULL where a look-back is empty."""
    import numpy as np

    hours = as_of.astype("datetime64[h]").astype("int64")
    days = as_of.astype("datetime64[D]").astype("int64")
    return {
        "stop_distance_pct": np.abs(rng.normal(0.0, 0.3, n)),
        "notional": rng.lognormal(7.0, 1.2, n),
        "hour_of_day": (hours % 24).astype("int32"),
        "day_of_week": ((days + 3) % 7 + 1).astype("int32"),  # ISO: 1970-01-01 was a Thursday
        "client_executions_7d": rng.poisson(50, n),
        "client_success_rate_7d": np.where(rng.random(n) < 0.03, np.nan, rng.beta(6, 2, n)),
        "symbol_triggers_15m": rng.poisson(3, n),
        "symbol_price_range_pct_15m": np.where(
            rng.random(n) < 0.02, np.nan, np.abs(rng.normal(0.0, 0.4, n))
        ),
    }


def _labels(rng, n: int, as_of) -> dict:
    """What happened: ~75% EXECUTED, ~10% FAILED, ~5% BLOCKED, ~10% open (label NULL)."""
    import numpy as np
    import pyarrow as pa

    u = rng.random(n)
    status = np.select(
        [u < 0.75, u < 0.85, u < 0.90, u < 0.95],
        ["EXECUTED", "FAILED", "BLOCKED", "SUBMITTED"],
        "PENDING",
    )
    executed, closed = u < 0.75, u < 0.90
    slippage = np.round(np.abs(rng.normal(0.0, 0.15, n)), 4)
    breach = float(defaults.SLIPPAGE_BREACH_PCT)
    after = rng.exponential(5_000_000, n).astype("int64").astype("timedelta64[us]")
    return {
        "status": status,
        "execution_success": pa.array(executed, mask=~closed),
        "slippage_pct": pa.array(slippage, mask=~executed).cast(pa.decimal128(10, 4)),
        "slippage_breach": pa.array(slippage > breach, mask=~executed),
        "execution_time_sec": pa.array(rng.gamma(2.0, 0.5, n), mask=~executed),
        "label_known_at": pa.array(as_of + after, mask=~closed),
    }


def features_day(day: dt.date, n: int, seed: int, clients: int):
    """A day of gold features (gold_features.arrow_schema()), sorted by execution_id as gold
    writes it; the same (day, n, seed, clients) gives the same rows."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, day.toordinal()])
    columns = _keys(rng, day, n, clients)
    columns |= _features(rng, n, columns["as_of"])
    columns |= _labels(rng, n, columns["as_of"])
    schema = gold_features.arrow_schema()
    arrays = {}
    for f in schema:
        value = columns[f.name]
        if not isinstance(value, pa.Array):  # NaN is NULL in the numpy columns
            value = pa.array(value, from_pandas=isinstance(value, np.ndarray))
        arrays[f.name] = value.cast(f.type)
    return pa.table(arrays, schema=schema).sort_by("execution_id")


def write_features(fs: lakes.LakeFS, first: dt.date, args) -> dict:
    """The features table of `args.days` days from `first`, one delta-rs commit per day."""
    from deltalake import write_deltalake

    uri, options = fs.delta_uri(lakes.GOLD_FEATURES), fs.delta_options()
    start, rows = time.perf_counter(), 0
    for i in range(args.days):
        day = first + dt.timedelta(days=i)
        table = features_day(day, args.per_day, args.seed, args.clients)
        write_deltalake(
            uri,
            table,
            mode="append",
            partition_by=["date"],
            storage_options=options,
            configuration=lakes.TABLE_CONFIG if i == 0 else None,
        )
        rows += table.num_rows
    return {"rows": rows, "commits": args.days, "seconds": round(time.perf_counter() - start, 2)}


def s3_env(s3: SeaweedS3Server) -> dict:
    """The steps' settings for the benchmark's own S3 (as the cluster's secrets name them)."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_ENDPOINT": s3.endpoint,
        "AWS_REGION": s3.region,
        "S3_BUCKET": "bench",
    }


def _release(cmd: list[str], env: dict) -> dict:
    """One `deep-storage training-set --json` run: seconds, peak RSS and what its record says."""
    seconds, peak, record = measured(cmd, env)
    rows = record.get("rows") or {}
    rules = record.get("rules") or []
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "rows": sum(rows.values()),
        "rows_by_split": rows,
        "rows_sha256": record.get("rows_sha256"),
        "outcome": record.get("outcome"),
        "run_id": record.get("run_id"),
        "rules_warned": [r["name"] for r in rules if r.get("outcome") == "warned"],
    }


def _reference(fs: lakes.LakeFS, first: dt.date, env: dict) -> dict:
    """The floor: a fresh Python reading the set's columns of the same days with delta-rs and
    keeping the label-known rows."""
    spec = training_sets.spec(SET)
    columns = list(dict.fromkeys([*spec.columns, *spec.filters]))
    cmd = [sys.executable, "-c", _READ, LAKE]
    cmd += [first.isoformat(), LAST.isoformat(), spec.label, *columns]
    seconds, peak, found = measured(cmd, env)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "read_seconds": round(found["seconds"], 2),
        "rows": found["rows"],
        "rows_read": found["rows_read"],
    }


def measure(s3: SeaweedS3Server, args, results: dict) -> None:
    """Write the features, then time the release, its rebuild and the reference read."""
    env = s3_env(s3)
    fs = lakes.LakeFS(LAKE, StoreConfig.from_env(env))
    first = LAST - dt.timedelta(days=args.days - 1)
    s3.create_bucket("bench")
    print(f"writing {args.days} days of {args.per_day} features ...", file=sys.stderr, flush=True)
    results["features"] = write_features(fs, first, args)
    cmd = [CLI, "training-set", "--name", SET, "--version", "1.0.0", "--from", first.isoformat()]
    cmd += ["--to", LAST.isoformat(), "--lake", LAKE, "--json"]
    for name in ("release", "rebuild"):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = _release(cmd, env)
    if results["rebuild"]["outcome"] != "unchanged":
        raise SystemExit(f"the identical rebuild was {results['rebuild']['outcome']}")
    del results["rebuild"]["rules_warned"]  # the stored record's: the release's, not the rebuild's
    print("running reference read ...", file=sys.stderr, flush=True)
    results["reference_read"] = _reference(fs, first, env)
    rows = {k: results[k]["rows"] for k in ("release", "rebuild", "reference_read")}
    if len(set(rows.values())) != 1:
        raise SystemExit(f"the release and the reference disagree on the rows: {rows}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days of gold features (>= 2)")
    parser.add_argument("--per-day", type=int, default=20_000, help="executions per day")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed")
    parser.add_argument(
        "--json", type=Path, help="default benchmarks/results/training-set-<days>d.json"
    )
    args = parser.parse_args(argv)
    if args.days < 2:
        parser.error("--days must be at least 2: a set needs a train and a test split")
    path = args.json or REPO / f"benchmarks/results/training-set-{args.days}d.json"
    results: dict = {
        "days": args.days,
        "per_day": args.per_day,
        "clients": args.clients,
        "seed": args.seed,
        "from": (LAST - dt.timedelta(days=args.days - 1)).isoformat(),
        "to": LAST.isoformat(),
        "machine": _machine(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    with SeaweedS3Server() as s3:
        measure(s3, args, results)
    read = results["reference_read"]["seconds"]
    results["ratios"] = {
        "release_vs_read": round(results["release"]["seconds"] / read, 2),
        "rebuild_vs_read": round(results["rebuild"]["seconds"] / read, 2),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results, path)
    return 0


def _print_table(results: dict, path: Path) -> None:
    print(f"\n{'step':<16}{'seconds':>10}{'peak MiB':>10}{'rows':>12}")
    for k in ("release", "rebuild", "reference_read"):
        r = results[k]
        print(f"{k:<16}{r['seconds']:>10.2f}{r['peak_rss_mib']:>10}{r['rows']:>12}")
    print(
        f"(features: {results['features']['rows']} rows in {results['features']['commits']} "
        f"commits, written in {results['features']['seconds']} s; rebuild: "
        f"{results['rebuild']['outcome']})"
    )
    for k, val in results["ratios"].items():
        print(f"{k:<20}{val:>8}")
    print(f"(json: {path})")


if __name__ == "__main__":
    sys.exit(main())
