"""Gold features on the real services: built from silver, read by delta-rs, rebuilt exactly where
silver changed, and every run one atomic, exclusive commit (killed midway, or two at once)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from decimal import Decimal

import pytest

from deep_storage import steps
from deep_storage.core.dates import DayRange
from deep_storage.lake import GOLD_FEATURES, LakeFS
from deep_storage.tables import bronze, gold, silver
from tests.events import event, insert
from tests.services import CLI

pytestmark = pytest.mark.integration

D = dt.date(2025, 6, 2)  # a Monday
D1 = dt.date(2025, 6, 3)
PRICES = {"trigger_price": Decimal("101.5"), "stop_price": Decimal("100"), "quantity": Decimal("2")}


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), dt.UTC)


def _events() -> list[dict]:
    """g:1 executed, g:2 blocked five minutes later, g:3 still pending the next morning."""
    g2 = {**PRICES, "trigger_price": Decimal("103")}
    return [
        event(at(D, 10), "STOP_TRIGGERED", execution_token="g:1", **PRICES),
        event(at(D, 10, 0, 2), "EXECUTED", execution_token="g:1", **PRICES),
        event(at(D, 10, 5), "STOP_TRIGGERED", execution_token="g:2", operation_id=102, **g2),
        event(at(D, 10, 5, 1), "KILL_SWITCH", execution_token="g:2", operation_id=102, **g2),
        event(at(D1, 9), "STOP_TRIGGERED", execution_token="g:3", operation_id=103, **PRICES),
    ]


@pytest.fixture()
def silver_lake(db, spark, lake):
    insert(db, _events())
    bronze.run(DayRange(D, D1), lake, spark=spark)
    silver.run(DayRange(D, D1), lake, spark=spark)
    return lake


def gold_rows(lake: str) -> dict[str, dict]:
    """execution_token -> its gold row, read by delta-rs (not by our code)."""
    from deltalake import DeltaTable

    fs = LakeFS(lake)
    table = DeltaTable(fs.delta_uri(GOLD_FEATURES), storage_options=fs.delta_options())
    return {r["execution_token"]: r for r in fs.scan(GOLD_FEATURES, table).to_pylist()}


def test_gold_holds_each_execution_with_features_from_before_its_as_of(silver_lake):
    result = gold.run(DayRange(D, D1), silver_lake)
    assert result.dates_committed == [str(D), str(D1)] and result.rows == 3
    rows = gold_rows(silver_lake)
    assert sorted(rows) == ["g:1", "g:2", "g:3"]
    g1, g2, g3 = rows["g:1"], rows["g:2"], rows["g:3"]
    # |101.5 - 100| / 100 * 100 = 1.5; 2 * 100 = 200
    assert (g1["stop_distance_pct"], g1["notional"]) == (1.5, 200.0)
    assert (g1["hour_of_day"], g1["day_of_week"], g1["date"]) == (10, 1, D)
    assert (g1["status"], g1["execution_success"], g1["label_known_at"]) == (
        "EXECUTED", True, at(D, 10, 0, 2)
    )  # fmt: skip
    assert g1["execution_time_sec"] == 2.0 and g1["slippage_breach"] is False  # 0.007 <= 0.25
    # g:2 at 10:05 sees g:1 (10:00, outcome known at 10:00:02): one execution, all succeeded;
    # range (103 - 101.5) / 101.5 * 100 over both triggers of the last 15 minutes.
    assert (g2["client_executions_7d"], g2["client_success_rate_7d"]) == (1, 1.0)
    assert g2["symbol_triggers_15m"] == 1
    assert g2["symbol_price_range_pct_15m"] == pytest.approx(1.5 / 101.5 * 100, rel=1e-12)
    assert (g2["status"], g2["execution_success"], g2["label_known_at"]) == (
        "BLOCKED", False, at(D, 10, 5, 1)
    )  # fmt: skip
    # g:3 the next morning: two earlier executions, one success and one block: 1/2.
    assert (g3["client_executions_7d"], g3["client_success_rate_7d"]) == (2, 0.5)
    assert (g3["symbol_triggers_15m"], g3["symbol_price_range_pct_15m"]) == (0, 0.0)
    assert g3["execution_success"] is None and g3["label_known_at"] is None


def test_without_a_date_gold_rebuilds_exactly_the_days_whose_silver_changed(db, spark, silver_lake):
    first = steps.gold(silver_lake)
    assert (first.first_day, first.last_day) == (str(D), str(D1))
    assert steps.gold(silver_lake).metrics["skipped"] == 1  # nothing changed since

    # A late execution of D: silver's day D changes, so gold's D and D1 (whose week holds D).
    insert(db, [event(at(D, 11), "STOP_TRIGGERED", execution_token="g:4", operation_id=104)])
    bronze.run(DayRange(D, D), silver_lake, spark=spark)
    silver.run(DayRange(D, D), silver_lake, spark=spark)
    again = steps.gold(silver_lake)
    assert again.result.dates_committed == [str(D), str(D1)]
    assert gold_rows(silver_lake)["g:3"]["client_executions_7d"] == 3


def test_a_killed_gold_run_leaves_the_last_whole_version_and_the_rerun_completes_it(silver_lake):
    def killed_at(point: str) -> None:
        env = {**os.environ, "DEEP_STORAGE_KILL_AT": point}
        cmd = [CLI, "gold", "--date", str(D), "--until", str(D1), "--lake", silver_lake]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]

    killed_at("gold:written")  # files written, nothing committed
    assert LakeFS(silver_lake).delta(GOLD_FEATURES) is None
    steps.gold(silver_lake, str(D), str(D1))
    expected = gold_rows(silver_lake)
    assert sorted(expected) == ["g:1", "g:2", "g:3"]

    killed_at("gold:swapped")  # committed, killed before `_days` learnt of it
    assert gold_rows(silver_lake) == expected
    assert steps.gold(silver_lake).metrics["skipped"] == 1  # the commit's own facts count


def test_two_gold_runs_at_once_each_commit_whole_and_one_after_the_other(silver_lake):
    args = [CLI, "gold", "--date", str(D), "--until", str(D1), "--lake", silver_lake]
    procs = [subprocess.Popen(args, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    assert sorted(gold_rows(silver_lake)) == ["g:1", "g:2", "g:3"]
    history = LakeFS(silver_lake).delta(GOLD_FEATURES).history()
    assert [h["version"] for h in history] == [1, 0]  # two whole commits, not interleaved
