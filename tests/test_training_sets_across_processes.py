"""Training set releases across processes, on a file:// lake in a tmp folder: a release killed
before its commit leaves nothing a reader sees, and two `deep-storage training-set` processes
releasing one version commit it once. Subprocesses of a few seconds each, so marked slow (not
unit); the same lake and rows as test_training_sets.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable

from deep_storage.core.errors import LakeStateError
from deep_storage.lake import LakeFS, releases
from deep_storage.tables import training_sets
from deep_storage.training import release_training_set, training_set
from tests.services import CLI
from tests.test_training_sets import D1, D2, ROWS, day, release, row, write_features

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def lake(tmp_path) -> str:
    uri = f"file://{tmp_path}/lake"
    write_features(uri, ROWS, silver_version=7)
    return uri


_KILLED_RELEASE = """
import datetime as dt, sys
from deep_storage.training import release_training_set
release_training_set("stop_outcome", "2.0.0", dt.date(2025, 6, 1), dt.date(2025, 6, 10),
                     lake=sys.argv[1], run_id="killed")
"""


def test_a_release_killed_before_its_commit_is_invisible(lake):
    fs = LakeFS(lake)
    release(lake, training_sets.build(fs, training_sets.spec("stop_outcome"), D1, D2,
                                      version="1.0.0"))  # fmt: skip
    write_features(lake, [row("e12", day(6), "FAILED", False, None)], mode="append")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RELEASE, lake],
        cwd=REPO,
        env={**os.environ, "DEEP_STORAGE_KILL_AT": "gold:written"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    root = Path(fs.delta_uri("gold/training_sets/stop_outcome"))
    landed = sorted(p.name for p in (root / "version=2.0.0").rglob("*.parquet"))
    assert len(landed) == 2, "the killed run left no files: the test proves nothing"
    assert fs.read_text(releases.record_uri(fs, "stop_outcome", "2.0.0")) is not None
    # Written, not committed: no reader sees them.
    assert releases.versions(fs, "stop_outcome") == ["1.0.0"]
    everything = fs.scan("gold/training_sets/stop_outcome", DeltaTable(str(root)))
    assert set(everything["version"].to_pylist()) == {"1.0.0"}
    with pytest.raises(LakeStateError, match=r"released: 1\.0\.0"):
        training_set("stop_outcome", "2.0.0", lake=lake)
    # The next run releases the version; the leftovers stay unnamed (vacuum's full mode).
    done = release_training_set("stop_outcome", "2.0.0", D1, D2, lake=lake, run_id=uuid.uuid4().hex)
    assert done.outcome == "released" and done.record["rows"] == {"train": 6, "test": 3}
    train, _ = training_set("stop_outcome", "2.0.0", lake=lake)
    assert len(train) == 6


def test_two_releases_of_one_version_at_once_commit_it_once(lake):
    args = [CLI, "training-set", "--version", "1.0.0", "--from", str(D1), "--to", str(D2)]
    procs = [
        subprocess.Popen([*args, "--lake", lake, "--json"], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = sorted(json.loads(p.communicate(timeout=300)[0])["outcome"] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    # The lease orders them: one releases, the other finds the same rows released.
    assert outcomes == ["released", "unchanged"]
    assert [
        h["version"] for h in LakeFS(lake).delta("gold/training_sets/stop_outcome").history()
    ] == [0]
