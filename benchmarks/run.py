"""Speed and memory of each step, as ratios against references measured in the same run.

    python -m benchmarks.run --events N [--json PATH]     (make bench N=...)

Starts its own PostgreSQL and SeaweedFS S3 on loopback, loads N generated events for one UTC day
(about 200 clients, full lifecycles, executions across midnight) with COPY, then times, each as a
fresh `deep-storage` process exactly as a user runs it:
  reference  psql \\copy (SELECT ... window) TO '/dev/null' WITH (FORMAT binary)
  bronze     deep-storage bronze --date D      -> ratio: reference / bronze (throughput share)
  silver     deep-storage silver --date D
  validate   deep-storage validate --date D    -> ratio: validate / (bronze + silver)
  (the gate on the engine it picks for the day's size; then once more with --full on Spark, the
  other engine, against the same run: validate_spark)
  gold       deep-storage gold --date D        -> ratio: gold / DuckDB running gold's own
  (FEATURES_SQL over local copies of the same silver files, in a fresh process: what the step
  adds to its query, i.e. the process, reading silver from S3, writing, the commit, the lease)
and samples the resident memory of each step's whole process tree (Python + JVM). Then, each
against the runs above: silver against DuckDB's same projection of the same bronze files; a
quiet hour (the steps again, nothing new; then gold without --date, `gold_quiet`); bronze of
the same day from a source table that holds 60 and 365 days; and the hourly run at the end of
the day (an hour's more events, the steps again, seconds). Before those, once silver and gold
are built (benchmarks/trino_read.py; --no-trino skips it): a week's lake of its own (the 6
days before the day at --history-fraction, from a database of their own, and the day), a Hive
Metastore and Trino on the bench's PostgreSQL and S3, both lakes' tables registered by
`deep-storage catalog`, and Trino's read of silver's day and week against DuckDB over delta-rs
on the same pinned versions (no target: measured). The JSON keeps every figure and its
reference; `ratios` holds the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks import duckdb_silver
from deep_storage import lake as lakes
from deep_storage.core import defaults, schemas
from deep_storage.core.config import StoreConfig
from demo import synthetic
from demo.local_services import PostgresServer, SeaweedS3Server

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "deep-storage")
DAY = dt.date(2025, 6, 2)
PASSWORD = "bench-pa$$!"
LIMITS_GIB = {
    "bronze": 4,
    "silver": 8,
    "validate": 8,
    "gold": 8,
}  # the platform profile's limits  # pipelines/platform.py memory limits


def _tree_rss_kib(pid: int) -> int:
    """Resident memory (KiB) of a process and all its descendants: the step's Python and its
    JVM. A process that ends, or cannot be read, between the listing and the reading counts 0."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
    total = 0
    for proc in tree:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total // 1024


VERBOSE = False


def timed(cmd: list[str], env: dict) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS (MiB) of the command's process tree, and the per-phase times the
    step printed in its --json result (empty for other commands)."""
    seconds, peak, output = measured(cmd, env)
    return seconds, peak, output.get("phases", {})


def measured(cmd: list[str], env: dict) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS (MiB) of the command's process tree, and the JSON object the
    command printed on stdout (a step's --json result; empty when it printed none)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if VERBOSE:
        print(
            "\n".join("    " + line for line in err.splitlines() if " INFO " in line),
            file=sys.stderr,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {err.strip().splitlines()[-1:]}")
    try:
        output = json.loads(out)
    except ValueError:
        output = {}
    return elapsed, peak // 1024, output if isinstance(output, dict) else {}


def _with_event_log(env: dict, folder: Path, wanted: bool) -> dict:
    if not wanted:
        return env
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file://{folder}"}
    return {**env, "DEEP_STORAGE_SPARK_CONF": json.dumps(conf)}


def spark_stages(folder: Path) -> list[dict]:
    """Each completed stage of the Spark event logs in `folder`: what the Spark UI's Stages tab
    shows (wall seconds, tasks, the tasks' summed run time, rows in and shuffle bytes)."""
    stages = []
    for log in sorted(folder.iterdir()):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event.get("Event") != "SparkListenerStageCompleted":
                continue
            info = event["Stage Info"]
            sums = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}
            metric = "internal.metrics."
            stages.append(
                {
                    "stage": info["Stage ID"],
                    "name": info["Stage Name"].split(" at ")[0],
                    "tasks": info["Number of Tasks"],
                    "seconds": round((info["Completion Time"] - info["Submission Time"]) / 1000, 2),
                    "task_seconds": round(int(sums.get(metric + "executorRunTime", 0)) / 1000, 1),
                    "rows_read": int(sums.get(metric + "input.recordsRead", 0)),
                    "shuffle_write_mib": round(
                        int(sums.get(metric + "shuffle.write.bytesWritten", 0)) / 2**20, 1
                    ),
                }
            )
    return stages


def service_env(pg, s3) -> dict:
    """The steps' settings for the benchmark's own PostgreSQL and S3 (as the cluster's secrets
    name them)."""
    return {
        **os.environ,
        "DJANGO_DB_HOST": "127.0.0.1",
        "DJANGO_DB_PORT": str(pg.port),
        "DJANGO_DB_NAME": "trading",
        "DJANGO_DB_USER": "django",
        "DJANGO_DB_PASSWORD": PASSWORD,
        "PGPASSWORD": PASSWORD,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_ENDPOINT": s3.endpoint,
        "AWS_REGION": s3.region,
        "S3_BUCKET": "bench",
    }


def _machine() -> str:
    """What the figures were measured on: cores, memory, CPU model."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                "?",
            )
        with open("/proc/meminfo") as fh:
            mem_kib = int(fh.readline().split()[1])
    except OSError:
        mem_kib = 0
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB, "
        f"{platform.machine()}, {model}"
    )


def _history_depths(args) -> list[int]:
    """Table depths (days, the measured one included) of the history measurements."""
    depths = [args.history_days] if args.history_days else []
    if args.history_days and args.long_history_days > args.history_days:
        depths.append(args.long_history_days)
    return [d + 1 for d in depths]


def _bronze_from_history(pg, env: dict, lake: str, start: str, args, have: int, depth: int) -> dict:
    """Bronze of the measured day into a fresh lake, after the source table (holding `have`
    days) was filled up to `depth` days: days before the measured one, `--history-fraction` of
    its events each."""
    per_day = max(1, int(args.events * args.history_fraction))
    with pg.connect("trading", "django", PASSWORD) as conn:
        print(f"loading {depth - have} more days of {per_day} events ...", file=sys.stderr)
        for i in range(have, depth):
            synthetic.copy_into(
                conn,
                synthetic.generate(
                    DAY - dt.timedelta(days=i),
                    per_day,
                    seed=100 + i,
                    clients=args.clients,
                    spill_minutes=0,
                ),
            )
        # A real table has statistics; a table just loaded has none until it is analyzed.
        conn.execute("VACUUM ANALYZE stop_events")
        table_rows = conn.execute("SELECT count(*) FROM stop_events").fetchone()[0]
    print(f"running bronze_from_{depth}_days ...", file=sys.stderr, flush=True)
    cmd = [CLI, "bronze", "--date", start, "--lake", f"{lake}-{depth}", "--json"]
    seconds, peak, phases = timed(cmd, env)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "phases": phases,
        "table_days": depth,
        "table_rows": table_rows,
        "events_per_history_day": per_day,
    }


# One row in 200 of the end of day's hour commits late, into the hour before (writers that
# waited on the exchange): the 23:05 run then finds two hours changed, as it would.
LATE_EVERY = 200


def last_hour(rows, day: dt.date, late_every: int = LATE_EVERY):
    """A day's generated rows squeezed into its last hour, as the hour before the 23:05 run
    writes them (the day's order and lifecycles kept, 24 times faster); every `late_every`-th
    row is a writer's late commit, stamped 5 to 55 minutes before that hour."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    hour = start + dt.timedelta(hours=23)
    at = synthetic.COLUMNS.index("occurred_at")
    for i, row in enumerate(rows):
        stamped = hour + (row[at] - start) / 24
        if i % late_every == late_every - 1:
            stamped = hour - dt.timedelta(minutes=5 + i % 51)
        yield (*row[:at], stamped, *row[at + 1 :])


def _end_of_day(pg, env: dict, steps: dict, args) -> dict:
    """The three steps after an hour's more events for the day: what the 23:05 run costs. The
    hour's events are stamped in the day's last hour, a few late ones in the hour before
    (`last_hour`): bronze re-reads the hours that changed."""
    extra = args.events // 24 if args.end_of_day < 0 else args.end_of_day
    print(f"loading {extra} more events for the day ...", file=sys.stderr, flush=True)
    with pg.connect("trading", "django", PASSWORD) as conn:
        generated = synthetic.generate(
            DAY, extra, seed=args.seed + 1000, clients=args.clients, spill_minutes=0
        )
        synthetic.copy_into(conn, last_hour(generated, DAY))
        conn.execute("VACUUM ANALYZE stop_events")
    out: dict = {"events_added": extra}
    for name in ("bronze", "silver", "validate"):
        print(f"running end-of-day {name} ...", file=sys.stderr, flush=True)
        seconds, peak, phases = timed(steps[name], env)
        out[name] = {"seconds": round(seconds, 2), "peak_rss_mib": peak, "phases": phases}
    out["seconds"] = round(sum(out[n]["seconds"] for n in ("bronze", "silver", "validate")), 2)
    return out


def _gate_on_spark(steps: dict, env: dict) -> dict:
    """The same gate judged whole (--full) on Spark, the engine it uses above
    GATE_DUCKDB_MAX_ROWS, on the same lake: what the engine choice is measured against."""
    print("running validate on spark ...", file=sys.stderr, flush=True)
    spark_env = {**env, "DEEP_STORAGE_GATE_ENGINE": "spark"}
    seconds, peak, phases = timed([*steps["validate"], "--full"], spark_env)
    return {"seconds": round(seconds, 2), "peak_rss_mib": peak, "phases": phases}


@dataclass(frozen=True)
class _Run:
    """What the measurements of one run share: its services, their settings, the lake, the
    measured day and the command line of each step."""

    args: argparse.Namespace
    pg: PostgresServer
    s3: SeaweedS3Server
    env: dict
    lake: str
    start: str
    end: str
    steps: dict[str, list[str]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose

    # A CI job cancelled with SIGTERM unwinds the servers' context managers, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results = _header(args)
    with PostgresServer() as pg, SeaweedS3Server() as s3:
        loaded = _load_day(pg, s3, args)
        run = _prepare_run(pg, s3, args)
        _measure_steps(run, results)
        if not args.no_trino:
            results["trino_read"] = _trino_read(run)
        _measure_against_the_steps(run, results)
    results["loaded"] = loaded
    results["ratios"] = _ratios(results, args)
    results["memory_vs_limit"] = {
        k: f"{results[k]['peak_rss_mib']} MiB of {LIMITS_GIB[k] * 1024} MiB" for k in LIMITS_GIB
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results, run.steps, args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed")
    parser.add_argument(
        "--no-hourly",
        action="store_true",
        help="skip the quiet-hour and end-of-day re-runs of the steps",
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    parser.add_argument(
        "--history-days",
        type=int,
        default=59,
        help="other days loaded before the 60-day measurement (0: skip it)",
    )
    parser.add_argument(
        "--history-fraction",
        type=float,
        default=0.2,
        help="events of each history day, as a fraction of --events",
    )
    parser.add_argument(
        "--standalone-workers",
        type=int,
        default=0,
        help="also run silver and validate on a Spark standalone cluster of this many one-core "
        "workers on loopback (0: skip), against the local-mode runs of the same day",
    )
    parser.add_argument(
        "--long-history-days",
        type=int,
        default=364,
        help="other days in the second history measurement (0: skip it; at least --history-days)",
    )
    parser.add_argument(
        "--end-of-day",
        type=int,
        default=-1,
        help="events added to the day before the end-of-day hourly run (default events / 24; "
        "0: skip it)",
    )
    parser.add_argument(
        "--no-trino",
        action="store_true",
        help="skip Trino's read of silver over the catalog (it needs `make jars` and a Java 22+)",
    )
    parser.add_argument("--verbose", action="store_true", help="show each step's progress log")
    return parser


def _header(args) -> dict:
    """The run's parameters and where and when it ran: the first keys of the JSON."""
    return {
        "events": args.events,
        "day": DAY.isoformat(),
        "clients": args.clients,
        "seed": args.seed,
        "machine": _machine(),
        "bronze_engine": os.environ.get("DEEP_STORAGE_READ_PATH", "arrow"),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _load_day(pg, s3, args) -> int:
    """The app's database and the bucket, then the measured day's events; returns the rows
    loaded."""
    pg.create_app_database("trading", "django", PASSWORD)
    s3.create_bucket("bench")
    print(f"loading {args.events} events ...", file=sys.stderr, flush=True)
    with pg.connect("trading", "django", PASSWORD) as conn:
        conn.execute(schemas.SOURCE_DDL)
        loaded = synthetic.copy_into(
            conn, synthetic.generate(DAY, args.events, seed=args.seed, clients=args.clients)
        )
        conn.execute("VACUUM ANALYZE stop_events")
    return loaded


def _prepare_run(pg, s3, args) -> _Run:
    env = service_env(pg, s3)
    lake = "s3a://bench/lake"
    start, end = DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()
    copy = (
        f"\\copy (SELECT * FROM stop_events WHERE occurred_at >= '{start}T00:00:00Z' "
        f"AND occurred_at < '{end}T00:00:00Z') TO '/dev/null' WITH (FORMAT binary)"
    )
    psql = ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "django", "-d", "trading"]
    steps = {
        "reference_copy": [*psql, "-q", "-c", copy],
        "bronze": [CLI, "bronze", "--date", start, "--lake", lake, "--json"],
        "silver": [CLI, "silver", "--date", start, "--lake", lake, "--json"],
        "validate": [CLI, "validate", "--date", start, "--lake", lake, "--json"],
        # After the gate, so the three steps run exactly as before gold was measured.
        "gold": [CLI, "gold", "--date", start, "--lake", lake, "--json"],
    }
    return _Run(args, pg, s3, env, lake, start, end, steps)


def _measure_steps(run: _Run, results: dict) -> None:
    """The reference copy and the four steps, then silver's, the gate's and gold's references:
    DuckDB over the same bronze files, the gate on Spark, DuckDB over the same silver files."""
    event_log = Path(tempfile.mkdtemp(prefix="bench-spark-events-"))
    for name, cmd in run.steps.items():
        print(f"running {name} ...", file=sys.stderr, flush=True)
        # Silver keeps Spark's event log: its stages say where the time goes.
        seconds, peak, output = measured(cmd, _with_event_log(run.env, event_log, name == "silver"))
        results[name] = {"seconds": round(seconds, 2), "peak_rss_mib": peak}
        if output.get("phases"):
            results[name]["phases"] = output["phases"]
        if name == "gold":
            results[name]["rows"] = output.get("rows")
    results["silver"]["spark_stages"] = spark_stages(event_log)
    shutil.rmtree(event_log)
    results["reference_duckdb_silver"] = _duckdb_silver(run)
    results["validate_spark"] = _gate_on_spark(run.steps, run.env)
    results["reference_duckdb_gold"] = _duckdb_gold(run, results["gold"]["rows"])


def _duckdb_silver(run: _Run) -> dict:
    """(2) the reference for silver: DuckDB over the same bronze files, local copies."""
    print("running duckdb reference ...", file=sys.stderr, flush=True)
    commit = lakes.committed_day(
        lakes.LakeFS(run.lake, StoreConfig.from_env(run.env)),
        lakes.BRONZE_EVENTS,
        dt.date.fromisoformat(run.start),
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "bronze"
        local.mkdir()
        for name in commit.files:
            run.s3.client().download_file(
                "bench", f"lake/bronze/events/{name}", str(local / name.rsplit("/", 1)[-1])
            )
        seconds, executions = duckdb_silver.run(local, Path(tmp) / "silver")
    return {"seconds": round(seconds, 2), "executions": executions}


def _duckdb_gold(run: _Run, gold_rows: int | None) -> dict:
    """The reference for gold: its own query (gold_features.FEATURES_SQL) run by DuckDB on every
    core, as the step runs it, over local copies of the silver files it reads (the day's and its
    look-back days'), in a fresh process. What the step adds beside it is the process, reading
    silver from the store, writing, the commit and the lease. Its rows must be the step's."""
    print("running duckdb gold reference ...", file=sys.stderr, flush=True)
    day = dt.date.fromisoformat(run.start)
    days = [day - dt.timedelta(days=n) for n in range(defaults.GOLD_LOOKBACK_DAYS, -1, -1)]
    fs = lakes.LakeFS(run.lake, StoreConfig.from_env(run.env))
    client = run.s3.client()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "silver"
        for commit in lakes.committed(fs, lakes.SILVER_EXECUTIONS, days).values():
            for rel in commit.files:
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
                key = f"lake/{lakes.SILVER_EXECUTIONS}/{rel}"
                client.download_file("bench", key, str(local / rel))
        cmd = [sys.executable, "-m", "benchmarks.duckdb_gold", str(local), str(Path(tmp) / "gold")]
        cmd += ["--first", run.start, "--last", run.start]
        cmd += ["--breach-pct", str(defaults.SLIPPAGE_BREACH_PCT)]
        cmd += ["--threads", str(os.cpu_count() or 1)]
        process_seconds, peak, found = measured(cmd, run.env)
        if found.get("rows") != gold_rows:
            raise SystemExit(f"gold wrote {gold_rows} rows, its DuckDB reference {found}")
        return {
            "seconds": round(found["seconds"], 3),
            "rows": found["rows"],
            "threads": found.get("threads"),
            "process_seconds": round(process_seconds, 2),
            "peak_rss_mib": peak,
            "silver_files": sum(1 for _ in local.rglob("*.parquet")),
        }


def _trino_read(run: _Run) -> dict:
    """(9) Trino over the catalog: silver's day and week read by Trino 476 through the Hive
    Metastore against DuckDB over delta-rs, on the same versions (benchmarks/trino_read.py).
    After gold, before the runs below change silver; the week is built in a lake (and a source
    database) of its own, so the bench's lake and table stay as the runs below expect; its
    servers are stopped when it returns."""
    from benchmarks import trino_read

    return trino_read.measure(run)


def _measure_against_the_steps(run: _Run, results: dict) -> None:
    """The runs measured against the steps above: a quiet hour, a standalone cluster, deeper
    source tables and the end-of-day hourly run, in that order."""
    args = run.args
    # (6) an hourly run after a quiet hour: the same steps again, nothing new at the source.
    # Its reference is the full run of the same steps above (bronze + silver + validate).
    if not args.no_hourly:
        results["hourly_quiet"] = _quiet_hour(run)
        results["gold_quiet"] = _gold_quiet(run)
    # (7) the same silver and gate with executors in other processes: a standalone cluster
    # on this machine, against the local-mode runs above (same day, same bronze).
    if args.standalone_workers:
        results["standalone"] = _standalone(run)
    results["rows_in_day"] = _rows_in_day(run)
    # (4) the same day again, from a table that also holds other days: 60, then 365 days.
    loaded_days = 1
    for depth in _history_depths(args):
        results[f"bronze_from_{depth}_days"] = _bronze_from_history(
            run.pg, run.env, run.lake, run.start, args, loaded_days, depth
        )
        loaded_days = depth
    # (8) the hourly run at the end of the day: an hour's more events (events / 24) for the
    # same day, then the three steps again. Last, so it reads the table with its history.
    if not args.no_hourly and args.end_of_day:
        results["hourly_end_of_day"] = _end_of_day(run.pg, run.env, run.steps, args)


def _quiet_hour(run: _Run) -> dict:
    quiet = {}
    for name in ("bronze", "silver", "validate"):
        print(f"running quiet-hour {name} ...", file=sys.stderr, flush=True)
        quiet[name], _, _ = timed(run.steps[name], run.env)
    out = {k: round(v, 2) for k, v in quiet.items()}
    out["seconds"] = round(sum(quiet.values()), 2)
    return out


def _gold_quiet(run: _Run) -> dict:
    """Gold without --date (every day whose silver inputs changed) after the quiet hour's
    unchanged silver: what gold costs an hourly run with nothing new (it should build nothing).
    Not in the quiet hour's `seconds`, which stays the three steps' sum."""
    print("running quiet-hour gold (changed days) ...", file=sys.stderr, flush=True)
    cmd = [CLI, "gold", "--lake", run.lake, "--json"]
    seconds, peak, output = measured(cmd, run.env)
    if not output.get("skipped"):
        print(f"note: quiet-hour gold built {output.get('dates_committed')}", file=sys.stderr)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "skipped": output.get("skipped"),
        "phases": output.get("phases", {}),
    }


def _standalone(run: _Run) -> dict:
    from demo.local_services import SparkStandalone

    workers = run.args.standalone_workers
    cluster_lake = run.lake + "-cluster"
    timed([CLI, "bronze", "--date", run.start, "--lake", cluster_lake], run.env)
    with SparkStandalone(workers=workers, cores=1, memory="5g") as c:
        cluster_env = {
            **run.env,
            "DEEP_STORAGE_SPARK_MASTER": c.url,
            "DEEP_STORAGE_SPARK_CONF": json.dumps({"spark.executor.memory": "4g"}),
        }
        standalone: dict = {"workers": workers}
        for name in ("silver", "validate"):
            print(f"running standalone {name} ...", file=sys.stderr, flush=True)
            cmd = [CLI, name, "--date", run.start, "--lake", cluster_lake, "--json"]
            seconds, peak, phases = timed(cmd, cluster_env)
            # peak: the driver's process tree; the executors are the workers' children.
            standalone[name] = {"seconds": round(seconds, 2), "driver_peak_rss_mib": peak}
            if phases:
                standalone[name]["phases"] = phases
    return standalone


def _rows_in_day(run: _Run) -> int:
    with run.pg.connect("trading", "django", PASSWORD) as conn:
        return conn.execute(
            "SELECT count(*) FROM stop_events WHERE occurred_at >= %s AND occurred_at < %s",
            (
                dt.datetime.fromisoformat(run.start + "T00:00:00+00:00"),
                dt.datetime.fromisoformat(run.end + "T00:00:00+00:00"),
            ),
        ).fetchone()[0]


def _ratios(results: dict, args) -> dict:
    b, s, v = (results[k]["seconds"] for k in ("bronze", "silver", "validate"))
    ratios = {
        "bronze_throughput_vs_copy": round(results["reference_copy"]["seconds"] / b, 3),
        "validate_vs_bronze_plus_silver": round(v / (b + s), 3),
        "silver_vs_duckdb": round(s / results["reference_duckdb_silver"]["seconds"], 2),
        "gold_vs_duckdb": round(
            results["gold"]["seconds"] / results["reference_duckdb_gold"]["seconds"], 2
        ),
        "validate_spark_vs_bronze_plus_silver": round(
            results["validate_spark"]["seconds"] / (b + s), 3
        ),
    }
    if "hourly_quiet" in results:
        ratios["hourly_quiet_vs_full_run"] = round(
            results["hourly_quiet"]["seconds"] / (b + s + v), 3
        )
    if "standalone" in results:
        for name in ("silver", "validate"):
            ratios[f"{name}_standalone_vs_local"] = round(
                results["standalone"][name]["seconds"] / results[name]["seconds"], 3
            )
    for depth in _history_depths(args):
        ratios[f"bronze_{depth}_days_vs_1_day"] = round(
            results[f"bronze_from_{depth}_days"]["seconds"] / b, 3
        )
    if "hourly_end_of_day" in results:
        ratios["hourly_end_of_day_seconds"] = results["hourly_end_of_day"]["seconds"]
    if "gold_quiet" in results:
        ratios["gold_quiet_seconds"] = results["gold_quiet"]["seconds"]
    if "trino_read" in results:
        ratios.update(_trino_ratios(results["trino_read"]))
    return ratios


def _trino_ratios(trino: dict) -> dict:
    """Trino's query (the client's wall, its first and second run) against DuckDB's whole
    command over delta-rs, per span."""
    ratios = {}
    for span in ("day", "week"):
        reference = trino[span]["duckdb"]["seconds"]
        for run, suffix in (("trino_first", ""), ("trino_second", "_second_run")):
            ratios[f"trino_{span}{suffix}_vs_duckdb"] = round(
                trino[span][run]["seconds"] / reference, 2
            )
    return ratios


# Printed beside the ratio.
TARGETS = {
    "gold_vs_duckdb": "target <= 2",
    **{
        f"trino_{span}{suffix}_vs_duckdb": "no target: measured"
        for span in ("day", "week")
        for suffix in ("", "_second_run")
    },
}


def _print_table(results: dict, steps: dict, args) -> None:
    w = 24
    print(f"\n{'step':<{w}}{'seconds':>10}{'peak MiB':>10}")
    for k in [*steps, *(f"bronze_from_{d}_days" for d in _history_depths(args))]:
        if k in results:
            print(f"{k:<{w}}{results[k]['seconds']:>10.2f}{results[k]['peak_rss_mib']:>10}")
    print(f"{'reference_duckdb':<{w}}{results['reference_duckdb_silver']['seconds']:>10.2f}")
    gold_ref = results["reference_duckdb_gold"]
    print(
        f"{'reference_duckdb_gold':<{w}}{gold_ref['seconds']:>10.2f}{gold_ref['peak_rss_mib']:>10}"
    )
    for k in ("hourly_quiet", "gold_quiet"):
        if k in results:
            print(f"{k:<{w}}{results[k]['seconds']:>10.2f}")
    if "trino_read" in results:
        _print_trino(results["trino_read"], w)
    for k, val in results["ratios"].items():
        target = f"  ({TARGETS[k]})" if k in TARGETS else ""
        print(f"{k:<34}{val:>8}{target}")
    print(f"(json: {args.json})")


def _print_trino(trino: dict, w: int) -> None:
    """Trino's lines: the servers' start, the registration, then per span DuckDB's command and
    Trino's two runs, with the server's account: analysis and planning, when the first split
    started and how long the splits ran."""
    print(f"{'metastore_start':<{w}}{trino['metastore_started_in_s']:>10.2f}")
    catalog = trino["catalog"]
    print(f"{'catalog_register':<{w}}{catalog['seconds']:>10.2f}{catalog['peak_rss_mib']:>10}")
    print(
        f"{'trino_start':<{w}}{trino['trino_started_in_s']:>10.2f}{'':>10}  then "
        f"{trino['trino_schedulable_after_s']:.2f} until its catalog has a node"
    )
    week = trino["week_lake"]
    print(
        f"{'week_lake_build':<{w}}{week['seconds']:>10.2f}{'':>10}  load "
        f"{week['load_seconds']:.2f}, bronze {week['bronze_earlier_days']['seconds']:.2f} + "
        f"{week['bronze_day']['seconds']:.2f}, silver {week['silver']['seconds']:.2f}"
    )
    print(f"{'week_catalog_register':<{w}}{week['catalog']['seconds']:>10.2f}")
    for span in ("day", "week"):
        found = trino[span]
        what = f"{found['days']} day(s), {found['rows']} rows, silver v{found['silver_version']}"
        ref = found["duckdb"]
        print(f"{f'duckdb_{span}':<{w}}{ref['seconds']:>10.2f}{ref['peak_rss_mib']:>10}  {what}")
        for run in ("trino_first", "trino_second"):
            s = found[run]["server"]
            scan = s.get("scan_until_s", 0) - s.get("scan_from_s", 0)
            print(
                f"{f'{run}_{span}':<{w}}{found[run]['seconds']:>10.2f}{'':>10}  analysis "
                f"{s.get('analysis_s', 0):.2f}, planning {s.get('planning_s', 0):.2f}, first "
                f"split at {s.get('scan_from_s', 0):.2f}, splits {scan:.2f} ({s['splits']})"
            )
    print(
        f"{'trino_part_total':<{w}}{trino['seconds']:>10.2f}  (servers stopped in "
        f"{trino['servers_stopped_in_s']:.2f})"
    )


if __name__ == "__main__":
    sys.exit(main())
