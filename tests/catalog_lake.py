"""A small lake built through the real steps (bronze, silver, gold) for the catalog's tests, with
the per-day figures a SQL user would ask for worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal

from deep_storage.core.dates import DayRange
from deep_storage.tables import bronze, gold, silver
from tests.events import event, insert
from tests.services import APP_DB, APP_PASSWORD, APP_USER, CLI

D = dt.date(2025, 6, 2)
D1 = dt.date(2025, 6, 3)
D2 = dt.date(2025, 6, 4)


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), dt.UTC)


def _execution(token: str, client: int, op: int, start: dt.datetime, fill: str | None, end=None):
    """A triggered stop and, with a fill, its execution `end` (default: 2 s later)."""
    common = {"execution_token": token, "client_id": client, "operation_id": op}
    rows = [event(start, "STOP_TRIGGERED", **common)]
    if fill is not None:
        done = end or start + dt.timedelta(seconds=2)
        rows.append(event(done, "EXECUTED", **common, fill_price=Decimal(fill)))
    return rows


def events() -> list[dict]:
    """Day D: three executions, one of them executed after midnight (it stays in D, its first
    event's day), and its EXECUTED event stamped by a clock that runs ahead. Day D1: one
    executed, one still pending."""
    return [
        *_execution("c:1", 7, 201, at(D, 10), "64005.5"),
        *_execution("c:2", 8, 202, at(D, 11), "100.25"),
        *_execution("c:3", 7, 203, at(D, 23, 59, 50), "64100", end=at(D1, 0, 0, 5)),
        *_execution("c:4", 9, 204, at(D1, 9), "10.5"),
        *_execution("c:5", 7, 205, at(D1, 10), None),
    ]


# What silver holds per day, worked out from events(): executions and the sum of their fills.
PER_DAY = {D: (3, Decimal("128205.75")), D1: (2, Decimal("10.5"))}
# After late_day(): D2 gains one execution filled at 99.
LATE = {D2: (1, Decimal("99"))}


def build(pg, spark, lake: str) -> None:
    """bronze, silver and gold of D..D1 from events() in the source, through the steps."""
    with pg.connect(APP_DB, APP_USER, APP_PASSWORD) as conn:
        conn.execute("TRUNCATE stop_events")
        insert(conn, events())
    bronze.run(DayRange(D, D1), lake, spark=spark)
    silver.run(DayRange(D, D1), lake, spark=spark)
    gold.run(DayRange(D, D1), lake)


def late_day(pg, spark, lake: str) -> None:
    """A later run: D2's one execution reaches bronze and silver (new commits on both)."""
    with pg.connect(APP_DB, APP_USER, APP_PASSWORD) as conn:
        insert(conn, _execution("c:6", 9, 206, at(D2, 8), "99"))
    bronze.run(DayRange(D2, D2), lake, spark=spark)
    silver.run(DayRange(D2, D2), lake, spark=spark)


def run_catalog(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "catalog", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def spark_sql(queries: dict[str, str], metastore_uri: str) -> dict[str, list]:
    """Each query's rows, run by a fresh process's session from the one factory with
    HIVE_METASTORE_URI set, as a notebook or a step would (this process's session has no
    metastore: Spark's catalog is fixed when a session starts)."""
    script = (
        "import json, sys\n"
        "from deep_storage.core.config import StoreConfig\n"
        "from deep_storage.io import spark_session\n"
        "spark = spark_session.build('test', StoreConfig.from_env())\n"
        "queries = json.loads(sys.argv[1])\n"
        "out = {k: [[str(v) for v in r] for r in spark.sql(q).collect()]\n"
        "       for k, q in queries.items()}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(queries)],
        capture_output=True,
        text=True,
        env={**os.environ, "HIVE_METASTORE_URI": metastore_uri},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def registered(metastore, database: str) -> dict[str, str]:
    """table -> location, as the metastore's own PostgreSQL tables hold them (the `path` a
    Spark data-source table keeps in its storage parameters). `metastore`: a
    demo.catalog_services.HiveMetastore (its database and role)."""
    with metastore.pg.connect(metastore.dbname, metastore.user, metastore.password) as conn:
        rows = conn.execute(
            """SELECT t."TBL_NAME", p."PARAM_VALUE"
               FROM "TBLS" t JOIN "DBS" d ON d."DB_ID" = t."DB_ID"
               JOIN "SDS" s ON s."SD_ID" = t."SD_ID"
               JOIN "SERDE_PARAMS" p ON p."SERDE_ID" = s."SERDE_ID" AND p."PARAM_KEY" = 'path'
               WHERE d."NAME" = %s""",
            (database,),
        ).fetchall()
    return dict(rows)
