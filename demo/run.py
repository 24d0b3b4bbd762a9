"""`make demo`: the whole pipeline on this machine, on embedded defaults.

A throwaway PostgreSQL (Debian's binaries) seeded with a realistic generated trading day,
a local Parquet lake, the pipeline through kfp.local, and a short summary of what landed.

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


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    from deep_storage.core import schemas
    from deep_storage.core.errors import DeepStorageError
    from deep_storage_kfp.pipelines import local
    from demo import synthetic
    from demo.local_services import PostgresServer

    total = 5
    today = dt.datetime.now(dt.UTC).date()
    day = today - dt.timedelta(days=1)
    try:
        started = _step(1, total, "starting a throwaway PostgreSQL on 127.0.0.1")
        with PostgresServer() as pg:
            pg.create_app_database("trading", "django", _PASSWORD)
            _done(started)
            started = _step(
                2,
                total,
                f"seeding {args.events} stop_events for {day} "
                f"({args.clients} clients, executions across midnight)",
            )
            with pg.connect("trading", "django", _PASSWORD) as conn:
                conn.execute(schemas.SOURCE_DDL)
                synthetic.copy_into(
                    conn, synthetic.generate(day, args.events, seed=42, clients=args.clients)
                )
            _done(started)
            _point_the_steps_at(pg)
            lake_dir = _empty_lake_dir(args.lake_dir)
            started = _step(3, total, f"local lake at file://{lake_dir}")
            _done(started)
            started = _step(
                4,
                total,
                f"running the pipeline via kfp.local for {day}..{today}: "
                "bronze -> silver -> quality gate (about a minute)",
            )
            run = local.run(day, today, f"file://{lake_dir}", REPO / ".cache" / "kfp-demo")
            _done(started)
            _step(5, total, "summary")
            print(summarize(lake_dir, run))
    except DeepStorageError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the seeded day")
    parser.add_argument("--clients", type=int, default=40)
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
