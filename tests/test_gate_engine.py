"""Which engine judges a day's rules (deep_storage.quality.validate.engine_for): DuckDB in the
step's process up to a day's threshold of rows, Spark above it, unless set."""

from __future__ import annotations

import pytest

from deep_storage.core import defaults
from deep_storage.core.errors import InputError
from deep_storage.quality.validate import engine_for

pytestmark = pytest.mark.unit


def test_the_gate_engine_is_chosen_by_the_days_rows_unless_set(monkeypatch):
    monkeypatch.delenv("DEEP_STORAGE_GATE_ENGINE", raising=False)
    assert engine_for(0) == engine_for(defaults.GATE_DUCKDB_MAX_ROWS) == "duckdb"
    assert engine_for(defaults.GATE_DUCKDB_MAX_ROWS + 1) == "spark"
    monkeypatch.setenv("DEEP_STORAGE_GATE_ENGINE", "Spark")
    assert engine_for(10) == "spark"
    monkeypatch.setenv("DEEP_STORAGE_GATE_ENGINE", "pandas")
    with pytest.raises(InputError, match="DEEP_STORAGE_GATE_ENGINE 'pandas' is unknown"):
        engine_for(10)
