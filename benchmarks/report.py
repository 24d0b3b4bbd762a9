"""Benchmark tables in Markdown, from result files of `benchmarks.run`:

    python -m benchmarks.report benchmarks/results/scale-*.json

Prints Markdown: one row per run (events, seed, clients) with each step's time, its reference
from the same run, the ratio against the target, and the peak memory against the profile's
limit; then the per-phase breakdown of each step of the 5M runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"bronze": ">= 0.5", "silver": "<= 2", "validate": "<= 0.25"}
LIMITS_MIB = {"bronze": 4096, "silver": 8192, "validate": 8192}


def _mark(ok: bool) -> str:
    return "met" if ok else "missed"


def scaling(runs: list[dict]) -> str:
    lines = [
        "| events | seed | clients | bronze s (COPY s) | bronze / COPY throughput | "
        "silver s (DuckDB s) | silver / DuckDB | validate s | validate / (bronze + silver) | "
        "peak MiB bronze / silver / validate |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r["events"], r.get("seed", 1))):
        b, s, v = (r[k]["seconds"] for k in ("bronze", "silver", "validate"))
        ratios = r["ratios"]
        bt, st, vt = (
            ratios["bronze_throughput_vs_copy"],
            ratios["silver_vs_duckdb"],
            ratios["validate_vs_bronze_plus_silver"],
        )
        peaks = " / ".join(
            f"{r[k]['peak_rss_mib']}{'' if r[k]['peak_rss_mib'] <= LIMITS_MIB[k] else ' (over)'}"
            for k in ("bronze", "silver", "validate")
        )
        lines.append(
            f"| {r['events']:,} | {r.get('seed', 1)} | {r.get('clients', 200)} "
            f"| {b:.1f} ({r['reference_copy']['seconds']:.1f}) | {bt:.2f} ({_mark(bt >= 0.5)}) "
            f"| {s:.1f} ({r['reference_duckdb_silver']['seconds']:.1f}) "
            f"| {st:.2f}x ({_mark(st <= 2)}) | {v:.1f} | {vt:.2f} ({_mark(vt <= 0.25)}) "
            f"| {peaks} |"
        )
    return "\n".join(lines)


def phases(run: dict) -> str:
    lines = [
        f"Per phase at {run['events']:,} events (seed {run.get('seed', 1)}), seconds of wall "
        "time inside the step; the rest of each step's time is process start and imports:",
        "",
        "| step | total s | phases |",
        "|---|---:|---|",
    ]
    for step in ("bronze", "silver", "validate"):
        parts = run[step].get("phases", {})
        shown = ", ".join(f"{name} {secs:.1f}" for name, secs in parts.items() if secs >= 0.05)
        lines.append(f"| {step} | {run[step]['seconds']:.1f} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    runs = [json.loads(p.read_text()) for p in paths]
    if not runs:
        print("usage: python -m benchmarks.report RESULT.json ...", file=sys.stderr)
        return 2
    machines = sorted({r.get("machine", "?") for r in runs})
    print(f"Machine: {'; '.join(machines)}. Targets: bronze {TARGETS['bronze']} of COPY's ")
    print(
        f"throughput, silver {TARGETS['silver']}x DuckDB, validate {TARGETS['validate']} of "
        "bronze + silver; memory within the profile's limits (bronze 4 GiB, silver and "
        "validate 8 GiB).\n"
    )
    print(scaling(runs))
    for run in runs:
        if run["events"] == 5_000_000:
            print()
            print(phases(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
