"""The whole pipeline through kfp.local on the real services, as `deep-storage run-local`."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest

from deep_storage import lake as lakes
from deep_storage.lake import BRONZE_EVENTS, LakeFS
from demo import synthetic
from tests.services import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = dt.date(2025, 6, 1)


def test_run_local_ingests_projects_validates_and_reports(db, spark, lake, tmp_path):
    synthetic.copy_into(db, synthetic.generate(D, 4000, seed=3, clients=25))
    done = run_cli(
        "run-local",
        "--date",
        "2025-06-01",
        "--until",
        "2025-06-02",
        "--lake",
        lake,
        "--pipeline-root",
        str(tmp_path),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pipeline run finished" in done.stdout
    report_line = next(line for line in done.stdout.splitlines() if "  HTML report: " in line)
    report = report_line.split("HTML report:", 1)[1].strip()
    assert "<html" in Path(report).read_text().lower()

    fs = LakeFS(lake)
    days = lakes.committed(fs, BRONZE_EVENTS, [D, D + dt.timedelta(days=1)])
    bronze_rows = [days[D + dt.timedelta(days=i)].rows for i in (0, 1)]
    assert sum(bronze_rows) == 4000 and bronze_rows[1] > 0  # executions spill past midnight
    summary = fs.read_text(f"{lake}/_quality/summary/date=2025-06-01/summary.md")
    assert "Data quality 2025-06-01: passed" in summary
    executor_outputs = list(tmp_path.glob("*/quality-gate/executor_output.json"))
    assert executor_outputs, "the quality gate left no metrics"
    metrics = json.loads(executor_outputs[0].read_text())["artifacts"]["metrics"]["artifacts"][0]
    assert metrics["metadata"]["rules_failed"] == 0
    assert metrics["metadata"]["rows_checked"] >= 4000


def test_the_training_pipeline_runs_whole_gold_then_a_version_then_the_baseline(db, spark, lake):
    from deltalake import DeltaTable

    from deep_storage import steps
    from deep_storage_kfp.pipelines import local

    days = [D + dt.timedelta(days=i) for i in range(3)]
    for i, day in enumerate(days):
        synthetic.copy_into(db, synthetic.generate(day, 3000, seed=10 + i, clients=20))
    ingested = steps.bronze(lake, run_date=str(days[0]), until_date=str(days[-1]))
    steps.silver(lake, ingested.first_day, ingested.last_day)

    root = Path(tempfile.mkdtemp(prefix="kfp-training-"))
    run = local.run_training_local("", lake, root, from_day=str(days[0]), to_day=str(days[-1]))
    # Three days: the test split starts at D + floor(3 * 0.8) = D + 2.
    record = json.loads(
        LakeFS(lake).read_text(f"{lake}/gold/training_sets/stop_outcome/_versions/1.0.0.json")
    )
    assert (record["from"], record["to"], record["test_from"]) == (
        str(D),
        str(days[-1]),
        str(days[2]),
    )
    assert record["rows"]["train"] > 0 and record["rows"]["test"] > 0
    assert "1.0.0" in run.outputs["report"].read_text()
    baseline = run.metrics["train-baseline"]
    assert 0.0 <= baseline["roc_auc"] <= 1.0
    assert run.outputs["model"].exists()
    fs = LakeFS(lake)
    rows = DeltaTable(
        fs.delta_uri("gold/training_sets/stop_outcome"), storage_options=fs.delta_options()
    )
    read = fs.scan(f"{lakes.TRAINING_SETS}/stop_outcome", rows)
    assert read.num_rows == record["rows"]["train"] + record["rows"]["test"]

    # The next week's run with nothing new: the same rows, so no new version.
    again = local.run_training_local("", lake, root, from_day=str(days[0]), to_day=str(days[-1]))
    assert again.metrics["training-set"]["released"] == 0
