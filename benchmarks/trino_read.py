"""Trino over the catalog against DuckDB over delta-rs: one silver day and a week, part of
`make bench` (benchmarks/run.py calls `measure` once silver and gold are built).

On the bench's own PostgreSQL and S3: pin silver's current version v (delta-rs), then
  reference  DuckDB over delta-rs at v: LakeFS.scan (delta-rs names the files, pyarrow reads
             them) of the span's date partitions, then QUERY over the Arrow table; one fresh
             process per span, timed as a whole command (interpreter start and imports included)
  servers    a Hive Metastore on a database of its own in the bench's PostgreSQL, `deep-storage
             catalog` registering the lake's tables (a subprocess: it starts Spark), then Trino
             476 with its Delta Lake catalog on that metastore and the bench's S3, waited for
             until a query on the catalog is scheduled (PROBE: bronze's log, no Parquet file)
  trino      the same QUERY on delta.deep_storage.silver_stop_executions FOR VERSION AS OF v,
             twice per span (first: silver's first read on the server, which has answered only
             the probe; second: the same query again), timed from the client (execute +
             fetchall), with the server's own account of the query
             (GET /v1/query/{id}): queued, analysis (the name through the metastore, the Delta log
             at v), planning, starting the tasks, the window in which the scan's splits ran, the
             operators' summed wall and CPU, bytes and rows read.
The spans are the bench's day and the week ending on it (the days silver holds of it). Both
engines must return the same rows (counts and decimal sums exactly, the average within 1e-9),
else the bench fails. No target: the figures are measured and reported.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
import time
import urllib.request
from decimal import Decimal

from benchmarks.run import CLI, measured
from deep_storage import lake as lakes
from deep_storage.core.config import StoreConfig

TABLE = "delta.deep_storage.silver_stop_executions"  # as `deep-storage catalog` names it
# The week: the bench's day and the 6 before it.
WEEK_DAYS = 7
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


def measure(run) -> dict:
    """Trino's read of the bench's day and week against DuckDB's over delta-rs, on silver's
    version as it stands now; every server started here is stopped on the way out."""
    from demo.catalog_services import HiveMetastore, TrinoServer

    began = time.perf_counter()
    day = dt.date.fromisoformat(run.start)
    spans = {"day": (day, day), "week": (day - dt.timedelta(days=WEEK_DAYS - 1), day)}
    fs = lakes.LakeFS(run.lake, StoreConfig.from_env(run.env))
    version = fs.delta(lakes.SILVER_EXECUTIONS, without_files=True).version()
    out: dict = {"silver_version": version, "query": QUERY}
    found = {}
    for name, (first, last) in spans.items():
        print(f"running duckdb {name} reference ...", file=sys.stderr, flush=True)
        out[name] = {"first": first.isoformat(), "last": last.isoformat()}
        out[name]["duckdb"], found[name] = _duckdb(run, version, first, last)
    print("starting the metastore ...", file=sys.stderr, flush=True)
    with HiveMetastore(run.pg) as metastore:
        out["metastore_started_in_s"] = round(metastore.started_in_s, 2)
        out["catalog"] = _register(run, metastore.uri)
        print("starting trino ...", file=sys.stderr, flush=True)
        with TrinoServer(metastore, run.s3) as trino:
            out["trino_started_in_s"] = round(trino.started_in_s, 2)
            out["trino_schedulable_after_s"] = _wait_for_a_node(trino)
            table = f"{TABLE} FOR VERSION AS OF {version}"
            for name, (first, last) in spans.items():
                print(f"running trino {name} ...", file=sys.stderr, flush=True)
                sql = query(table, first, last)
                for run_name in ("trino_first", "trino_second"):
                    out[name][run_name], rows = _trino(trino, sql)
                    _agree(rows, found[name], f"{name} ({run_name})", version)
            stopping = time.perf_counter()
    out["servers_stopped_in_s"] = round(time.perf_counter() - stopping, 2)
    out["seconds"] = round(time.perf_counter() - began, 2)
    for name in spans:
        out[name]["days"] = len(found[name])
        out[name]["rows"] = sum(row[1] for row in found[name])
    return out


def _duckdb(run, version: int, first: dt.date, last: dt.date) -> tuple[dict, list]:
    """The reference for one span, in a fresh process timed as a whole command."""
    sql = query("silver", first, last)
    cmd = [sys.executable, "-c", _DUCKDB, run.lake, str(version), first.isoformat()]
    cmd += [last.isoformat(), sql, *COLUMNS]
    seconds, peak, found = measured(cmd, run.env)
    rows = found.pop("rows")
    return {"seconds": round(seconds, 2), "peak_rss_mib": peak, **found}, rows


def _register(run, metastore_uri: str) -> dict:
    """`deep-storage catalog` as a user runs it: its own process (and Spark session)."""
    print("running catalog ...", file=sys.stderr, flush=True)
    cmd = [CLI, "catalog", "--lake", run.lake, "--metastore", metastore_uri, "--json"]
    seconds, peak, found = measured(cmd, run.env)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": peak,
        "tables": [t["name"] for t in found.get("tables", [])],
    }


# Readiness: a query that schedules on the Delta catalog without reading silver (bronze's log
# only: no partition matches, so no Parquet file is opened).
PROBE = "SELECT count(*) FROM delta.deep_storage.bronze_events WHERE date = DATE '1900-01-01'"


def _wait_for_a_node(server, timeout_s: float = 60) -> float:
    """Seconds until the server schedules a query on the Delta catalog. /v1/info stops saying
    "starting", and system.runtime.nodes lists the coordinator as active, seconds before the
    catalog has a node: a scan sent in between fails with NO_NODES_AVAILABLE."""
    start = time.perf_counter()
    while True:
        try:
            _execute(server, PROBE, attempts=1)
            return round(time.perf_counter() - start, 2)
        except _NoNodes:
            if time.perf_counter() - start > timeout_s:
                raise SystemExit(
                    f"Trino at {server.url} had no node for its catalog `delta` after {timeout_s} s"
                ) from None
            time.sleep(0.5)


class _NoNodes(Exception):
    """Trino's NO_NODES_AVAILABLE: the query was refused before it ran."""


def _execute(server, sql: str, attempts: int = 10) -> tuple[float, list, dict, str, int]:
    """The client's wall seconds (execute + fetchall), the rows, cursor.stats, the query id and
    the retries: a query refused with NO_NODES_AVAILABLE (the node map is refreshed every few
    seconds) is sent again, up to `attempts` times in all."""
    from trino.exceptions import TrinoQueryError

    for attempt in range(attempts):
        conn = server.connect()
        try:
            cursor = conn.cursor()
            start = time.perf_counter()
            cursor.execute(sql)
            rows = cursor.fetchall()
            seconds = time.perf_counter() - start
            return seconds, rows, dict(cursor.stats), cursor.query_id, attempt
        except TrinoQueryError as exc:
            if exc.error_name != "NO_NODES_AVAILABLE":
                raise
        finally:
            conn.close()
        time.sleep(0.5)
    raise _NoNodes(f"{attempts} attempt(s) refused with NO_NODES_AVAILABLE")


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
    seconds, rows, stats, query_id, retries = _execute(server, sql)
    info = _query_info(server.url, query_id)
    return {
        "seconds": round(seconds, 3),
        "query_id": query_id,
        "refused_before": retries,  # NO_NODES_AVAILABLE answers before this run (expected 0)
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


def _agree(trino_rows: list, duckdb_rows: list, what: str, version: int) -> None:
    """Fail the bench unless both engines returned the same rows."""
    ours, theirs = [_normal(r) for r in trino_rows], [_normal(r) for r in duckdb_rows]

    def same(a: tuple, b: tuple) -> bool:
        if a[:4] != b[:4] or (a[4] is None) != (b[4] is None):
            return False
        return a[4] is None or math.isclose(a[4], b[4], rel_tol=1e-9)

    if len(ours) != len(theirs) or not all(map(same, ours, theirs)):
        raise SystemExit(
            f"Trino and DuckDB disagree on silver's {what} at v{version}: "
            f"trino {ours}, duckdb {theirs}"
        )
