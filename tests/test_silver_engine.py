"""Which engine projects a silver run (deep_storage.tables.silver.engine_for): in the step's
process up to its threshold on a local master, Spark above it or with executors, unless set; and
how many threads the in-process engine takes."""

from __future__ import annotations

import os

import pytest

from deep_storage.core import defaults
from deep_storage.core.errors import InputError
from deep_storage.tables.silver import _threads, engine_for

pytestmark = pytest.mark.unit


def test_silver_runs_in_process_up_to_its_threshold_on_a_local_master_else_on_spark(monkeypatch):
    monkeypatch.delenv("DEEP_STORAGE_SILVER_ENGINE", raising=False)
    most = defaults.SILVER_DUCKDB_MAX_ROWS
    assert engine_for(0, master="local[2]") == engine_for(most, master="local[2]") == "duckdb"
    assert engine_for(most + 1, master="local[2]") == "spark"
    # Executors (a backfill's --executors, a standalone cluster): what exceeds one pod.
    assert engine_for(10, master="k8s://https://kubernetes.default.svc") == "spark"
    assert engine_for(10, master="spark://127.0.0.1:7077") == "spark"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "Spark")
    assert engine_for(10, master="local[2]") == "spark"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "duckdb")
    assert engine_for(most + 1, master="k8s://x") == "duckdb"
    monkeypatch.setenv("DEEP_STORAGE_SILVER_ENGINE", "polars")
    with pytest.raises(InputError, match="DEEP_STORAGE_SILVER_ENGINE 'polars' is unknown"):
        engine_for(10, master="local[2]")
    assert (_threads("local[3]"), _threads("local")) == (3, 1)
    assert 1 <= _threads("local[*]") <= len(os.sched_getaffinity(0))
