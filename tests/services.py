"""What the service fixtures (tests/conftest.py) and the tests share: the app's credentials on the
test PostgreSQL, the test bucket, and the `deep-storage` CLI run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Every character that broke a shell-escaped secret before: ! $ ' " @ : /
APP_PASSWORD = "s3cr!t$'\"@:/pw"
APP_USER = "django"
APP_DB = "trading"
BUCKET = "lake"
CLI = str(Path(sys.executable).parent / "deep-storage")


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
