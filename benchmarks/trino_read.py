"""Trino over the catalog against DuckDB over delta-rs: one silver day and a week, part of
`make bench` (benchmarks/run.py calls `measure` once silver and gold are built).

On the bench's own PostgreSQL and S3:
  week       the bench's lake holds one day, so the week gets a lake of its own (WEEK_LAKE): the
             6 days before the bench's day (--history-fraction of --events each) loaded into a
             database of their own on the bench's PostgreSQL, bronze of them, bronze of the
             bench's day from the bench's own table, one silver of the 7 days (build_week); the
             bench's lake and the figures measured on it are left as they were
  pin        silver's current version in each lake (delta-rs): v (the day), w (the week)
  reference  DuckDB over delta-rs at that version: LakeFS.scan (delta-rs names the files,
             pyarrow reads them) of the span's date partitions, then QUERY over the Arrow table;
             one fresh process per span, timed as a whole command (interpreter start and imports
             included); the week must hold 7 days (its last day's executions are recorded
             beside the day's: a few may have merged into an earlier day, see _references)
  servers    a Hive Metastore on a database of its own in the bench's PostgreSQL, `deep-storage
             catalog` registering each lake's tables (a subprocess each: it starts Spark; the
             bench's lake in `deep_storage`, the week's in WEEK_DATABASE), then Trino 476 with
             its Delta Lake catalog on that metastore and the bench's S3 (ready once `SELECT 1`
             answers), then waited for until a query on the catalog is scheduled (PROBE:
             bronze's log, no Parquet file)
  trino      the same QUERY on delta.<database>.silver_stop_executions FOR VERSION AS OF v (w),
             twice per span (first: the span's first read on the server, which has answered
             only the probe and, for the week, the day's two runs; second: the same query
             again), timed from the client (execute + fetchall), with the server's own account
             of the query (GET /v1/query/{id}): queued, analysis (the name through the
             metastore, the Delta log at the version), planning, starting the tasks, the window
             in which the scan's splits ran, the operators' summed wall and CPU, bytes read.
Both engines must return the same rows (counts and decimal sums exactly, the average within
1e-9), else the bench fails. No target: the figures are measured and reported.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal

from benchmarks.run import CLI, PASSWORD, measured
from deep_storage import lake as lakes
from deep_storage.core import defaults, schemas
from deep_storage.core.config import StoreConfig
from demo import synthetic

# As `deep-storage catalog` names silver in a metastore database.
TABLE = "delta.{database}.silver_stop_executions"
# The week: the bench's day and the 6 before it, in a lake of its own (WEEK_LAKE, named in the
# metastore database WEEK_DATABASE) so that the bench's lake, and every other figure of the
# bench, stay as they were: its 6 earlier days come from a database of their own
# (WEEK_SOURCE_DB) on the bench's PostgreSQL, the bench's day from the bench's own table.
WEEK_DAYS = 7
WEEK_LAKE = "s3a://bench/week"
WEEK_DATABASE = "bench_week"
WEEK_SOURCE_DB = "trading_week"
COLUMNS = ("date", "fill_price", "slippage_pct")
# What a SQL user asks of a span of silver: executions, fills, money and slippage per day. The
# same text on both engines; only the table reference differs.
QUERY = """SELECT date,
       count(*) AS executions,
       count(fill_price) AS filled,
       sum(fill_price) AS fill_price_sum,
       avg(CAST(slippage_pct AS DOUBLE)) AS avg_slippage_pct
FROM {table}
WHERE date BETWEEN DATE '{first}' AND DATE '{last}'
GROUP BY date
ORDER BY date"""

_DUCKDB = """
import datetime as dt, json, sys, time
t0 = time.perf_counter()
import duckdb
from deep_storage.lake import SILVER_EXECUTIONS, LakeFS
lake, version, first, last, sql, *columns = sys.argv[1:]
fs = LakeFS(lake)
t1 = time.perf_counter()
table = fs.delta(SILVER_EXECUTIONS, version=int(version))
t2 = time.perf_counter()
span = [("date", ">=", dt.date.fromisoformat(first)), ("date", "<=", dt.date.fromisoformat(last))]
arrow = fs.scan(SILVER_EXECUTIONS, table, columns=columns, filters=span)
t3 = time.perf_counter()
con = duckdb.connect()
con.register("silver", arrow)
rows = con.execute(sql).fetchall()
t4 = time.perf_counter()
print(json.dumps({
    "import_seconds": round(t1 - t0, 3), "open_seconds": round(t2 - t1, 3),
    "scan_seconds": round(t3 - t2, 3), "query_seconds": round(t4 - t3, 3),
    "rows_scanned": arrow.num_rows,
    "rows": [[str(v) if v is not None and not isinstance(v, (int, float)) else v for v in row]
             for row in rows],
}))
"""


def query(table: str, first: dt.date, last: dt.date) -> str:
    return QUERY.format(table=table, first=first.isoformat(), last=last.isoformat())


@dataclass(frozen=True)
class Span:
    """What one span reads: a lake's silver at a pinned version, named in a metastore
    database, from `first` to `last`."""

    lake: str
    database: str
    version: int
    first: dt.date
    last: dt.date

    @property
    def table(self) -> str:
        return f"{TABLE.format(database=self.database)} FOR VERSION AS OF {self.version}"


def measure(run) -> dict:
    """Trino's read of the bench's day and week against DuckDB's over delta-rs, each on its
    silver's version as it stands once the week is built; every server started here is stopped
    on the way out."""
    from demo.catalog_services import HiveMetastore, TrinoServer

    began = time.perf_counter()
    day = dt.date.fromisoformat(run.start)
    first = day - dt.timedelta(days=WEEK_DAYS - 1)
    out: dict = {"query": QUERY, "week_lake": build_week(run, first, day)}
    spans = {
        "day": Span(run.lake, defaults.CATALOG_DATABASE, _version(run, run.lake), day, day),
        "week": Span(WEEK_LAKE, WEEK_DATABASE, _version(run, WEEK_LAKE), first, day),
    }
    out["silver_version"] = spans["day"].version
    found = _references(run, spans, out)
    print("starting the metastore ...", file=sys.stderr, flush=True)
    with HiveMetastore(run.pg) as metastore:
        out["metastore_started_in_s"] = round(metastore.started_in_s, 2)
        out["catalog"] = _register(run, run.lake, defaults.CATALOG_DATABASE, metastore.uri)
        out["week_lake"]["catalog"] = _register(run, WEEK_LAKE, WEEK_DATABASE, metastore.uri)
        print("starting trino ...", file=sys.stderr, flush=True)
        with TrinoServer(metastore, run.s3) as trino:
            out["trino_started_in_s"] = round(trino.started_in_s, 2)
            out["trino_schedulable_after_s"] = _wait_for_a_node(trino)
            for name, span in spans.items():
                print(f"running trino {name} ...", file=sys.stderr, flush=True)
                sql = query(span.table, span.first, span.last)
                for run_name in ("trino_first", "trino_second"):
                    out[name][run_name], rows = _trino(trino, sql)
                    _agree(rows, found[name], f"{name} ({run_name})", span.version)
            stopping = time.perf_counter()
    out["servers_stopped_in_s"] = round(time.perf_counter() - stopping, 2)
    out["seconds"] = round(time.perf_counter() - began, 2)
    return out


def _version(run, lake: str) -> int:
    fs = lakes.LakeFS(lake, StoreConfig.from_env(run.env))
    return fs.delta(lakes.SILVER_EXECUTIONS, without_files=True).version()


def _references(run, spans: dict[str, Span], out: dict) -> dict[str, list]:
    """DuckDB over delta-rs per span (out[span]: the span, its command's figures, the days and
    rows it found). The week must hold 7 days; its last day is the bench's day from the same
    source rows, yet it may hold a few executions fewer: an execution without a token is keyed
    by (client, operation), and one of an earlier day with the same key absorbs it (its row
    lives in its first event's day). out["week"]["last_day_vs_day"] says how many."""
    found = {}
    for name, span in spans.items():
        print(f"running duckdb {name} reference ...", file=sys.stderr, flush=True)
        out[name] = {"lake": span.lake, "silver_version": span.version}
        out[name] |= {"first": span.first.isoformat(), "last": span.last.isoformat()}
        out[name]["duckdb"], found[name] = _duckdb(run, span)
        out[name]["days"] = len(found[name])
        out[name]["rows"] = sum(row[1] for row in found[name])
    if len(found["week"]) != WEEK_DAYS or found["week"][-1][0] != found["day"][0][0]:
        raise SystemExit(f"the week lake does not hold the {WEEK_DAYS} days: {found['week']}")
    last, day = found["week"][-1][1], found["day"][0][1]
    out["week"]["last_day_vs_day"] = {"executions": last, "bench_day_executions": day}
    return found


def build_week(run, first: dt.date, day: dt.date) -> dict:
    """The week's lake: the 6 days before the bench's day (--history-fraction of --events
    each, the history measurement's seeds) loaded into a database of their own, bronze of them
    from there and bronze of the bench's day from the bench's table, then one silver of the
    7 days; each step a `deep-storage` process as a user runs it."""
    per_day = max(1, int(run.args.events * run.args.history_fraction))
    began = time.perf_counter()
    print(f"loading {WEEK_DAYS - 1} days of {per_day} events for the week ...", file=sys.stderr)
    _load_week_source(run, day, per_day)
    out: dict = {"lake": WEEK_LAKE, "database": WEEK_DATABASE, "source_db": WEEK_SOURCE_DB}
    out |= {
        "events_per_earlier_day": per_day,
        "load_seconds": round(time.perf_counter() - began, 2),
    }
    before = (day - dt.timedelta(days=1)).isoformat()
    week_env = {**run.env, "DJANGO_DB_NAME": WEEK_SOURCE_DB}
    lake = ["--lake", WEEK_LAKE, "--json"]
    steps = {
        "bronze_earlier_days": (
            [CLI, "bronze", "--date", first.isoformat(), "--until", before, *lake],
            week_env,
        ),
        "bronze_day": ([CLI, "bronze", "--date", day.isoformat(), *lake], run.env),
        "silver": (
            [CLI, "silver", "--date", first.isoformat(), "--until", day.isoformat(), *lake],
            run.env,
        ),
    }
    for name, (cmd, env) in steps.items():
        print(f"running week {name} ...", file=sys.stderr, flush=True)
        seconds, peak, _ = measured(cmd, env)
        out[name] = {"seconds": round(seconds, 2), "peak_rss_mib": peak}
    out["seconds"] = round(time.perf_counter() - began, 2)
    return out


def _load_week_source(run, day: dt.date, per_day: int) -> None:
    """The week's earlier days in database WEEK_SOURCE_DB (the bench's app role owns it): the
    same days, sizes and seeds as the history measurement loads into the bench's table."""
    with run.pg.connect() as conn:
        conn.execute(f"CREATE DATABASE {WEEK_SOURCE_DB} OWNER django")
    with run.pg.connect(WEEK_SOURCE_DB, "django", PASSWORD) as conn:
        conn.execute(schemas.SOURCE_DDL)
        for i in range(1, WEEK_DAYS):
            rows = synthetic.generate(
                day - dt.timedelta(days=i),
                per_day,
                seed=100 + i,
                clients=run.args.clients,
                spill_minutes=0,
            )
            synthetic.copy_into(conn, rows)
        conn.execute("VACUUM ANALYZE stop_events")


def _duckdb(run, span: Span) -> tuple[dict, list]:
    """The reference for one span, in a fresh process timed as a whole command."""
    sql = query("silver", span.first, span.last)
    cmd = [sys.executable, "-c", _DUCKDB, span.lake, str(span.version), span.first.isoformat()]
    cmd += [span.last.isoformat(), sql, *COLUMNS]
    seconds, peak, found = measured(cmd, run.env)
    rows = found.pop("rows")
    return {"seconds": round(seconds, 2), "peak_rss_mib": peak, **found}, rows


def _register(run, lake: str, database: str, metastore_uri: str) -> dict:
    """`deep-storage catalog` as a user runs it: its own process (and Spark session)."""
    print(f"running catalog ({database}) ...", file=sys.stderr, flush=True)
    cmd = [CLI, "catalog", "--lake", lake, "--metastore", metastore_uri, "--database", database]
    seconds, peak, found = measured([*cmd, "--json"], run.env)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "tables": [t["name"] for t in found.get("tables", [])],
    }


# Readiness: a query that schedules on the Delta catalog without reading silver (bronze's log
# only: no partition matches, so no Parquet file is opened).
PROBE = "SELECT count(*) FROM delta.deep_storage.bronze_events WHERE date = DATE '1900-01-01'"


def _wait_for_a_node(server) -> float:
    """Seconds until the server schedules a query on the Delta catalog: TrinoServer.execute
    sends a query refused with NO_NODES_AVAILABLE again (up to 60 s). /v1/info stops saying
    "starting", and SELECT 1 answers, seconds before the catalog has a node."""
    start = time.perf_counter()
    server.execute(PROBE)
    return round(time.perf_counter() - start, 2)


def _execute(server, sql: str) -> tuple[float, list, dict, str]:
    """The client's wall seconds (execute + fetchall), the rows, cursor.stats and the query id.
    One attempt: the probe above made sure the catalog has a node."""
    conn = server.connect()
    try:
        cursor = conn.cursor()
        start = time.perf_counter()
        cursor.execute(sql)
        rows = cursor.fetchall()
        seconds = time.perf_counter() - start
        return seconds, rows, dict(cursor.stats), cursor.query_id
    finally:
        conn.close()


# The client's own summary of a finished query (cursor.stats), as kept in the results.
_CLIENT_STATS = (
    "elapsedTimeMillis",
    "queuedTimeMillis",
    "analysisTimeMillis",
    "planningTimeMillis",
    "finishingTimeMillis",
    "cpuTimeMillis",
    "wallTimeMillis",
    "physicalInputTimeMillis",
    "processedRows",
    "processedBytes",
    "physicalInputBytes",
    "totalSplits",
    "peakMemoryBytes",
)


def _trino(server, sql: str) -> tuple[dict, list]:
    """One run of `sql`: the client's wall seconds (execute + fetchall), its stats and the
    server's account of where the time went; and the rows."""
    seconds, rows, stats, query_id = _execute(server, sql)
    info = _query_info(server.url, query_id)
    return {
        "seconds": round(seconds, 3),
        "query_id": query_id,
        "client_stats": {k: stats[k] for k in _CLIENT_STATS if k in stats},
        "server": where_the_time_goes(info),
    }, rows


def _query_info(url: str, query_id: str, timeout_s: float = 10) -> dict:
    """GET /v1/query/{id}, once the server's record of the query is final."""
    request = urllib.request.Request(
        f"{url}/v1/query/{query_id}", headers={"X-Trino-User": "deep-storage"}
    )
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(request, timeout=5) as resp:
            info = json.load(resp)
        if info.get("finalQueryInfo") or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


_DURATION = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = {"B": 1, "kB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50}


def seconds_of(text: str) -> float:
    """Seconds of an Airlift duration as Trino writes it ("893.04ms", "2.00s")."""
    number, unit = re.fullmatch(r"([0-9.]+)\s*([a-zA-Z]+)", text).groups()
    return float(number) * _DURATION[unit]


def bytes_of(text: str) -> int:
    """Bytes of an Airlift data size as Trino writes it ("1099213B", "1.5MB")."""
    number, unit = re.fullmatch(r"([0-9.]+)\s*([a-zA-Z]+)", text).groups()
    return round(float(number) * _SIZE[unit])


_when = dt.datetime.fromisoformat  # Trino's timestamps: "2026-12-07T15:17:46.824Z"


def _leaf_stages(stage: dict) -> list[dict]:
    """The stages that read the table (no stage below them)."""
    below = stage.get("subStages") or []
    return [stage] if not below else [s for sub in below for s in _leaf_stages(sub)]


def where_the_time_goes(info: dict) -> dict:
    """The server's account of one query (GET /v1/query/{id}): its phases in seconds, when the
    scan's splits ran (seconds since the query was created), and each operator's wall and CPU
    summed over its drivers (threads overlap: the sums may exceed the elapsed time). The
    phases follow each other: queued, analysis, planning, starting, (before the first split),
    the scan's window, (after the last split)."""
    qs = info["queryStats"]
    created = _when(qs["createTime"])
    leaves = _leaf_stages(info["outputStage"]) if info.get("outputStage") else []
    tasks = [t["stats"] for stage in leaves for t in stage.get("tasks", [])]
    starts = [_when(t["firstStartTime"]) for t in tasks if "firstStartTime" in t]
    ends = [_when(t["lastEndTime"]) for t in tasks if "lastEndTime" in t]
    out = {
        key: round(seconds_of(qs[field]), 3)
        for key, field in (
            ("elapsed_s", "elapsedTime"),
            ("queued_s", "queuedTime"),
            ("analysis_s", "analysisTime"),
            ("planning_s", "planningTime"),
            ("starting_s", "startingTime"),
            ("finishing_s", "finishingTime"),
            ("cpu_s", "totalCpuTime"),
            ("scheduled_s", "totalScheduledTime"),
            ("physical_input_read_s", "physicalInputReadTime"),
        )
        if field in qs
    }
    if starts and ends:
        out["scan_from_s"] = round((min(starts) - created).total_seconds(), 3)
        out["scan_until_s"] = round((max(ends) - created).total_seconds(), 3)
        # Between the phases above and the first split's start: the split source listing the
        # version's files, the tasks created and scheduled. After the last split: the final
        # aggregation, the output and the query's end.
        phases = ("queued_s", "analysis_s", "planning_s", "starting_s")
        out["before_first_split_s"] = round(
            out["scan_from_s"] - sum(out.get(k, 0) for k in phases), 3
        )
        out["after_last_split_s"] = round(out.get("elapsed_s", 0) - out["scan_until_s"], 3)
    out["splits"] = sum(stage["stageStats"].get("totalDrivers", 0) for stage in leaves)
    out["physical_input_bytes"] = bytes_of(qs.get("physicalInputDataSize", "0B"))
    out["operators"] = _operators(qs.get("operatorSummaries", []))
    return out


_OPERATORS_KEPT = 4


def _operators(summaries: list[dict]) -> dict:
    """The slowest operator types' wall and CPU seconds, each summed over its drivers."""
    found: dict[str, dict] = {}
    for op in summaries:
        entry = found.setdefault(op["operatorType"], {"wall_s": 0.0, "cpu_s": 0.0})
        for kind, key in (("Wall", "wall_s"), ("Cpu", "cpu_s")):
            for phase in ("addInput", "getOutput", "finish"):
                entry[key] += seconds_of(op.get(f"{phase}{kind}", "0s"))
        if op.get("physicalInputReadTime"):
            read = entry.get("input_read_s", 0.0) + seconds_of(op["physicalInputReadTime"])
            entry["input_read_s"] = read
    ranked = sorted(found.items(), key=lambda kv: -kv[1]["wall_s"])[:_OPERATORS_KEPT]
    return {name: {k: round(v, 3) for k, v in e.items()} for name, e in ranked}


def _normal(row) -> tuple:
    """A result row as both engines' rows are compared: date, counts, the decimal sum, the
    average (a float)."""
    date, executions, filled, money, slippage = row
    return (
        str(date),
        int(executions),
        int(filled),
        None if money is None else Decimal(str(money)),
        None if slippage is None else float(slippage),
    )


def same_rows(ours: list, theirs: list) -> bool:
    """Whether two engines' (or spans') rows agree: dates, counts and decimal sums exactly,
    the average within 1e-9 (summed in another order, a double may differ in its last bits)."""
    ours, theirs = [_normal(r) for r in ours], [_normal(r) for r in theirs]

    def same(a: tuple, b: tuple) -> bool:
        if a[:4] != b[:4] or (a[4] is None) != (b[4] is None):
            return False
        return a[4] is None or math.isclose(a[4], b[4], rel_tol=1e-9)

    return len(ours) == len(theirs) and all(map(same, ours, theirs))


def _agree(trino_rows: list, duckdb_rows: list, what: str, version: int) -> None:
    """Fail the bench unless both engines returned the same rows."""
    if not same_rows(trino_rows, duckdb_rows):
        raise SystemExit(
            f"Trino and DuckDB disagree on silver's {what} at v{version}: "
            f"trino {trino_rows}, duckdb {duckdb_rows}"
        )
