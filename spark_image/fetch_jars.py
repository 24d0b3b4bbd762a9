#!/usr/bin/env python3
"""Fetch the artifacts named in a manifest into a folder and verify each sha256.

Standard library only: it runs before the project's dependencies exist (CI bootstrap, image build).
Artifacts come through Maven (`mvn dependency:copy`), the registry client this project's machines
are set up with; a file whose checksum differs from the manifest is deleted and the run fails.
spark_image/jars.lock names the JARs (`group:artifact:version`); spark_image/archives.lock the
other artifacts (`group:artifact:version:type[:classifier]`, e.g. a tar.gz).

    python3 spark_image/fetch_jars.py [--manifest FILE] [--dest DIR] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "jars.lock"
DEFAULT_DEST = HERE.parent / ".cache" / "jars"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str
    type: str = "jar"
    classifier: str = ""

    @property
    def coordinates(self) -> str:
        tail = f":{self.type}:{self.classifier}" if self.classifier else f":{self.type}"
        return f"{self.group}:{self.artifact}:{self.version}" + ("" if tail == ":jar" else tail)

    @property
    def filename(self) -> str:
        classifier = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{classifier}.{self.type}"


def read_manifest(path: Path = MANIFEST) -> list[Jar]:
    jars = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            coords, sha = line.split()
            group, artifact, version, *rest = coords.split(":")
            if len(rest) > 2:
                raise ValueError
        except ValueError:
            raise SystemExit(  # noqa: B904 - a one-line message, no traceback wanted
                f"{path}:{lineno}: expected 'group:artifact:version[:type[:classifier]] sha256', "
                f"got {raw!r}"
            )
        if len(sha) != 64:
            raise SystemExit(f"{path}:{lineno}: sha256 must be 64 hex digits, got {sha!r}")
        jars.append(Jar(group, artifact, version, sha.lower(), *rest))
    return jars


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(jar: Jar, path: Path) -> str | None:
    """None when the file is there with the manifest's checksum, else why not."""
    if not path.is_file():
        return "missing"
    actual = sha256_of(path)
    if actual != jar.sha256:
        return f"sha256 {actual} differs from the manifest's {jar.sha256}"
    return None


def fetch(jar: Jar, dest: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("mvn not found: install Maven (apt-get install maven) to fetch the JARs")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            mvn,
            "-q",
            "-B",
            DEPENDENCY_PLUGIN,
            f"-Dartifact={jar.group}:{jar.artifact}:{jar.version}:{jar.type}"
            + (f":{jar.classifier}" if jar.classifier else ""),
            f"-DoutputDirectory={tmp}",
            "-Dtransitive=false",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / jar.filename
        if proc.returncode != 0 or not got.is_file():
            tail = " | ".join(line for line in proc.stdout.splitlines() if "ERROR" in line)[:400]
            raise SystemExit(f"could not fetch {jar.coordinates} from Maven Central: {tail}")
        problem = verify(jar, got)
        if problem:
            raise SystemExit(f"{jar.coordinates}: {problem}; refusing to use it")
        shutil.move(str(got), dest / jar.filename)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="folder for the files")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--check", action="store_true", help="verify only, fetch nothing")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    failures = []
    for jar in read_manifest(args.manifest):
        path = args.dest / jar.filename
        problem = verify(jar, path)
        if problem and not args.check:
            if path.exists():
                path.unlink()
            print(f"fetching {jar.coordinates}", file=sys.stderr)
            fetch(jar, args.dest)
            problem = verify(jar, path)
        if problem:
            failures.append(f"{jar.filename}: {problem}")
        else:
            print(f"ok {jar.filename}", file=sys.stderr)
    if failures:
        print(
            f"{args.manifest.name} check failed: " + "; ".join(failures) + " (run `make jars`)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
