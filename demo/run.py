"""`make demo`: the whole pipeline on this machine, on embedded defaults.

A throwaway PostgreSQL (Debian's binaries) seeded with realistic generated trading days, a Hive
Metastore on it, a local Delta lake, both pipelines through kfp.local (their last steps name the
tables in the metastore), a short summary of what landed, and one query by name.

    python -m demo.run [--events N] [--lake-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_PASSWORD = "demo-pa$$w0rd!"


def _step(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", flush=True)
    return time.monotonic()


def _done(started: float) -> None:
    print(f"      done in {time.monotonic() - started:.1f} s", flush=True)


def summarize(lake_dir: Path, run) -> str:
    import pyarrow.dataset as ds

    from deep_storage import lake

    fs = lake.LakeFS(f"file://{lake_dir}")
    lines = ["", "== deep-storage demo: what landed =="]
    for m in lake.committed(fs, lake.BRONZE_EVENTS, with_files=False).values():
        state = "sealed" if m.sealed else "unsealed (today can still change)"
        lines.append(f"bronze  {m.date}: {m.rows:>7} events, {state}")
    _, folders = lake.snapshot_files(fs, lake.SILVER_EXECUTIONS)
    files = [str(lake_dir / lake.SILVER_EXECUTIONS / rel) for f in folders.values() for rel, _ in f]
    if files:
        table = ds.dataset(
            files,
            format="parquet",
            partitioning=ds.partitioning(flavor="hive"),
            partition_base_dir=str(lake_dir / lake.SILVER_EXECUTIONS),
        ).to_table(columns=["status", "date"])
        per_day = Counter(str(d) for d in table.column("date").to_pylist())
        for day, n in sorted(per_day.items()):
            lines.append(f"silver  {day}: {n:>7} executions")
        statuses = Counter(table.column("status").to_pylist())
        lines.append(
            "silver  by status: " + ", ".join(f"{k} {v}" for k, v in statuses.most_common())
        )
    gate = run.metrics.get("quality-gate", {})
    if gate:
        lines.append(
            f"quality {int(gate.get('rows_checked', 0))} rows checked; rules "
            f"{int(gate.get('rules_passed', 0))} passed, "
            f"{int(gate.get('rules_warned', 0))} warned, "
            f"{int(gate.get('rules_failed', 0))} failed; "
            f"{int(gate.get('rows_quarantined', 0))} rows quarantined"
        )
    for name, path in run.outputs.items():
        lines.append(f"report  {name}: {path}")
    lines.append(f"lake    {lake_dir}")
    return "\n".join(lines)


def training_summary(lake_dir: Path, run) -> str:
    """The released version's record, as a data scientist would pin it, and the baseline."""
    import deep_storage

    train, test = deep_storage.training_set("stop_outcome", _released(run), f"file://{lake_dir}")
    record = train.attrs["record"]
    baseline = run.metrics.get("train-baseline", {})
    lines = [
        "",
        f"== training set {record['name']} {record['version']} (record) ==",
        f"range    {record['from']}..{record['to']}, test from {record['test_from']}",
        f"rows     train {record['rows']['train']}, test {record['rows']['test']}; label "
        f"{record['spec']['label']} positive share {record['positive_share']['overall']:.3f}",
        f"rows_sha256 {record['rows_sha256']}",
        f"lineage  gold features v{record['features_version']} <- silver "
        f"v{record['silver_version']}; code {record['code_version']}",
        "rules    "
        + ", ".join(f"{r['name']} {r['outcome']}" for r in record["rules"][:3])
        + " ...",
        f"baseline ROC AUC {baseline.get('roc_auc', float('nan')):.3f}, precision "
        f"{baseline.get('precision', float('nan')):.3f}, recall "
        f"{baseline.get('recall', float('nan')):.3f} on {len(test)} test rows",
        f"read it  deep_storage.training_set('stop_outcome', '{record['version']}')",
    ]
    return "\n".join(lines)


def _released(run) -> str:
    """The version the run's training-set task released (or found unchanged)."""
    import json

    out = json.loads((run.root / "training-set" / "executor_output.json").read_text())
    return out["parameterValues"]["version"]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    from deep_storage.core.errors import DeepStorageError
    from demo.catalog_services import HiveMetastore
    from demo.local_services import PostgresServer

    today = dt.datetime.now(dt.UTC).date()
    day = today - dt.timedelta(days=1)
    # A few days like it before it: a training set needs days to split into train and test, and
    # the gate's volume rule compares a day with the ones before it.
    days = [day - dt.timedelta(days=i) for i in range(args.earlier_days, -1, -1)]
    try:
        started = _step(
            1, TOTAL, "starting a throwaway PostgreSQL on 127.0.0.1 and a Hive Metastore on it"
        )
        with PostgresServer() as pg, HiveMetastore(pg) as metastore:
            pg.create_app_database("trading", "django", _PASSWORD)
            os.environ["HIVE_METASTORE_URI"] = metastore.uri  # the pipelines' catalog steps
            _done(started)
            _seed(pg, days, args)
            _point_the_steps_at(pg)
            lake_dir = _empty_lake_dir(args.lake_dir)
            started = _step(3, TOTAL, f"local lake at file://{lake_dir}")
            _done(started)
            run, trained = _pipelines(days, today, lake_dir)
            _step(6, TOTAL, "summary")
            print(summarize(lake_dir, run))
            print(training_summary(lake_dir, trained))
            _query_by_name()
    except DeepStorageError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


TOTAL = 7  # the demo's numbered steps


def _query_by_name() -> None:
    """One query by name through the metastore the pipelines registered the tables in, in the
    steps' own session (HIVE_METASTORE_URI is set)."""
    from deep_storage.io import spark_session

    started = _step(7, TOTAL, "the tables by name (Spark SQL through the Hive Metastore)")
    spark = spark_session.build("demo")
    print(
        "      "
        + ", ".join(r.tableName for r in spark.sql("SHOW TABLES IN deep_storage").collect())
    )
    query = (
        "SELECT date, count(*) AS executions, sum(fill_price) AS filled "
        "FROM deep_storage.silver_stop_executions GROUP BY date ORDER BY date"
    )
    print(f"      {query}")
    for row in spark.sql(query).collect():
        print(f"      {row.date}  {row.executions:>7}  {row.filled}")
    spark.stop()
    _done(started)


def _seed(pg, days: list[dt.date], args) -> None:
    """The generated days into the throwaway source: the newest with seed 42, as before."""
    from deep_storage.core import schemas
    from demo import synthetic

    started = _step(
        2,
        TOTAL,
        f"seeding {args.events} stop_events a day for {days[0]}..{days[-1]} "
        f"({args.clients} clients, executions across midnight)",
    )
    with pg.connect("trading", "django", _PASSWORD) as conn:
        conn.execute(schemas.SOURCE_DDL)
        for i, day in enumerate(days):
            seed = 42 if day == days[-1] else i
            rows = synthetic.generate(day, args.events, seed=seed, clients=args.clients)
            synthetic.copy_into(conn, rows)
    _done(started)


def _pipelines(days: list[dt.date], today: dt.date, lake_dir: Path):
    """The hourly pipeline over the days and today, then the training pipeline on the days."""
    from deep_storage_kfp.pipelines import local

    lake, root = f"file://{lake_dir}", REPO / ".cache" / "kfp-demo"
    started = _step(
        4,
        TOTAL,
        f"running the pipeline via kfp.local for {days[0]}..{today}: "
        "bronze -> silver -> quality gate (about a minute)",
    )
    run = local.run(days[0], today, lake, root)
    _done(started)
    started = _step(
        5,
        TOTAL,
        f"running the training pipeline via kfp.local on {days[0]}..{days[-1]}: "
        "gold features -> training set -> baseline model",
    )
    trained = local.run_training_local(
        "", lake, root, from_day=days[0].isoformat(), to_day=days[-1].isoformat()
    )
    _done(started)
    return run, trained


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the seeded day")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument(
        "--earlier-days", type=int, default=4, help="days before it, with as many events each"
    )
    parser.add_argument("--lake-dir", type=Path, default=REPO / "demo_lake")
    return parser.parse_args(argv)


def _point_the_steps_at(pg) -> None:
    """The steps run in this process (kfp.local) and read their source from the environment."""
    os.environ.update(
        {
            "DJANGO_DB_HOST": "127.0.0.1",
            "DJANGO_DB_PORT": str(pg.port),
            "DJANGO_DB_NAME": "trading",
            "DJANGO_DB_USER": "django",
            "DJANGO_DB_PASSWORD": _PASSWORD,
            "DEEP_STORAGE_DRIVER_MEMORY": os.environ.get("DEEP_STORAGE_DRIVER_MEMORY", "2g"),
        }
    )


def _empty_lake_dir(lake_dir: Path) -> Path:
    """`lake_dir`, emptied of an earlier demo's lake."""
    lake_dir = lake_dir.resolve()
    shutil.rmtree(lake_dir, ignore_errors=True)
    lake_dir.mkdir(parents=True)
    return lake_dir


if __name__ == "__main__":
    sys.exit(main())
