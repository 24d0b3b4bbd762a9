#!/usr/bin/env python3
"""Unpack what the project uses from spark_image/archives.lock's files (fetched and verified into
.cache/archives by `make jars`).

- `.cache/hive`: the Hive schema tool's PostgreSQL scripts, as HIVE_HOME lays them out
  (scripts/metastore/upgrade/postgres). Only the full schema at 1.2.0 and the upgrades up to
  2.3.0, the version of the Hive 2.3.9 classes in pyspark's JARs; the upgrade order stops there,
  since the tool otherwise runs every later upgrade it finds (to 3.1.0, whose tables Hive 2.3.9
  does not know).
- `.cache/trino/trino-server-VERSION`: Trino's launcher, libraries and its Delta Lake plugin only
  (the tarball's other 50 plugins would be loaded at every start).

Standard library only. Re-running replaces both folders.

    python3 spark_image/unpack_archives.py [--archives DIR] [--dest DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / ".cache"
HIVE_ARCHIVE = "hive-standalone-metastore-3.1.3-bin.tar.gz"
HIVE_SCHEMA_VERSION = "2.3.0"
POSTGRES_SCRIPTS = "scripts/metastore/upgrade/postgres"
TRINO_VERSION = "476"
TRINO_PLUGINS = ("delta-lake",)


def hive_scripts(archive: Path, dest: Path) -> Path:
    """The schema scripts up to HIVE_SCHEMA_VERSION under dest/scripts/...; returns that folder."""
    out = dest / POSTGRES_SCRIPTS
    shutil.rmtree(dest, ignore_errors=True)
    out.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = {
            Path(m.name).name: m for m in tar.getmembers() if f"/{POSTGRES_SCRIPTS}/" in m.name
        }
        order = tar.extractfile(members["upgrade.order.postgres"]).read().decode().split()
        kept = []
        for step in order:
            kept.append(step)
            if step.endswith(f"-to-{HIVE_SCHEMA_VERSION}"):
                break
        else:
            raise SystemExit(f"{archive.name}: no upgrade to {HIVE_SCHEMA_VERSION} in its order")
        wanted = ["hive-schema-1.2.0.postgres.sql"]
        wanted += [f"upgrade-{s}.postgres.sql" for s in kept if s.startswith(("1.2.0", "2."))]
        for name in wanted:
            (out / name).write_bytes(tar.extractfile(members[name]).read())
    (out / "upgrade.order.postgres").write_text("\n".join(kept) + "\n")
    return out


def trino(archive: Path, dest: Path) -> Path:
    """Trino's bin/, lib/ and TRINO_PLUGINS under dest/trino-server-VERSION; returns that folder."""
    root = f"trino-server-{TRINO_VERSION}"
    shutil.rmtree(dest / root, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    # Whole, then pruned: its plugins share files as hard links to other plugins' copies, which a
    # partial extract cannot make. GNU tar: Python's tarfile takes 30 s over these 800 MB, tar 6 s.
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=True)
    for plugin in (dest / root / "plugin").iterdir():
        if plugin.name not in TRINO_PLUGINS:
            shutil.rmtree(plugin)
    shutil.rmtree(dest / root / "secrets-plugin", ignore_errors=True)
    return dest / root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", type=Path, default=CACHE / "archives")
    parser.add_argument("--dest", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    hive = args.archives / HIVE_ARCHIVE
    server = args.archives / f"trino-server-{TRINO_VERSION}.tar.gz"
    for path in (hive, server):
        if not path.is_file():
            print(f"{path} is missing: run `make jars`", file=sys.stderr)
            return 1
    print(f"unpacked {hive_scripts(hive, args.dest / 'hive')}", file=sys.stderr)
    print(f"unpacked {trino(server, args.dest / 'trino')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
