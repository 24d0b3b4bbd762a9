"""What the cluster will run: the compiled pipeline spec in compiled/, read as YAML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from deep_storage import __version__
from deep_storage_kfp.pipelines import compile as compiling
from tests.services import APP_PASSWORD

pytestmark = pytest.mark.unit

SPEC_FILE = compiling.COMPILED / compiling.PIPELINE_FILE
STEPS = {
    "bronze-ingest": "bronze",
    "silver-transform": "silver",
    "quality-gate": "quality",
    "retention": "retention",
    "catalog-tables": "catalog",
}


@pytest.fixture(scope="module")
def spec():
    pipeline, platform = yaml.safe_load_all(SPEC_FILE.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compiled_is_in_sync_with_the_sources():
    problems = compiling.stale()
    assert problems == [], f"run `make compile` and commit: {problems}"


def test_parameters_and_their_defaults(spec):
    pipeline, _ = spec
    params = pipeline["root"]["inputDefinitions"]["parameters"]
    assert {k: v.get("defaultValue") for k, v in params.items()} == {
        "run_date": "",
        "until_date": "",
        "lake_uri": "",
        "lookback_days": 7,
        "max_days": 14,
        "db_secret": "django-db-credentials",
        "s3_secret": "contabo-s3-credentials",
    }


def test_the_run_date_falls_back_to_schedule_then_creation_time(spec):
    pipeline, _ = spec
    bronze = pipeline["root"]["dag"]["tasks"]["bronze-ingest"]["inputs"]["parameters"]
    assert bronze["run_date"] == {"componentInputParameter": "run_date"}
    assert bronze["scheduled_time"]["runtimeValue"]["constant"] == (
        "{{$.pipeline_job_schedule_time_utc}}"
    )
    assert bronze["create_time"]["runtimeValue"]["constant"] == "{{$.pipeline_job_create_time_utc}}"
    assert "$(date" not in SPEC_FILE.read_text()


def test_retention_runs_after_the_gate_as_of_the_last_day_bronze_ingested(spec):
    pipeline, _ = spec
    task = pipeline["root"]["dag"]["tasks"]["retention"]
    assert set(task["dependentTasks"]) == {"bronze-ingest", "quality-gate"}
    assert task["inputs"]["parameters"]["as_of"] == {
        "taskOutputParameter": {"outputParameterKey": "last_day", "producerTask": "bronze-ingest"}
    }
    assert "dry_run" not in task["inputs"]["parameters"]  # the component's default: False


def test_the_tables_are_named_last_and_the_metastore_comes_from_the_optional_settings(spec):
    pipeline, executors = spec
    tasks = pipeline["root"]["dag"]["tasks"]
    assert tasks["catalog-tables"]["dependentTasks"] == ["retention"]
    assert not [t for t in tasks.values() if "catalog-tables" in t.get("dependentTasks", [])]
    assert tasks["catalog-tables"]["inputs"]["parameters"] == {
        "lake_uri": {"componentInputParameter": "lake_uri"}
    }
    for task in STEPS:
        (settings,) = executors[f"exec-{task}"]["configMapAsEnv"]
        assert settings["configMapName"] == "deep-storage-settings"
        assert settings["optional"] is True
        keys = {k["configMapKey"] for k in settings["keyToEnv"]}
        # Only the catalog step's Spark is on the metastore: one that is down fails no other.
        wanted = (
            {"PUSHGATEWAY_URL", "HIVE_METASTORE_URI"}
            if task == "catalog-tables"
            else {"PUSHGATEWAY_URL"}
        )
        assert keys == wanted, task


def test_secrets_are_referenced_by_name_and_key_never_by_value(spec):
    _, executors = spec
    db_keys = ["DJANGO_DB_HOST", "DJANGO_DB_NAME", "DJANGO_DB_USER", "DJANGO_DB_PASSWORD"]
    s3_keys = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT",
        "AWS_REGION",
        "S3_BUCKET",
    ]
    wanted = {
        "bronze-ingest": {"db_secret": db_keys, "s3_secret": s3_keys},
        "silver-transform": {"s3_secret": s3_keys},
        "quality-gate": {"db_secret": db_keys, "s3_secret": s3_keys},
        "retention": {"s3_secret": s3_keys},
        "catalog-tables": {"s3_secret": s3_keys},
    }
    for task, secrets in wanted.items():
        got = {
            s["secretNameParameter"]["componentInputParameter"]: [
                (k["secretKey"], k["envVar"]) for k in s["keyToEnv"]
            ]
            for s in executors[f"exec-{task}"]["secretAsEnv"]
        }
        assert got == {name: [(k, k) for k in keys] for name, keys in secrets.items()}, task
    # No value of a secret anywhere: neither as a container env value nor in the text.
    text = SPEC_FILE.read_text()
    for task in STEPS:
        container = pipeline_container(spec, task)
        names = {e["name"] for e in container.get("env", [])}
        assert not names & {*db_keys, *s3_keys}, f"{task} sets a secret key as a plain env var"
    for value in (
        APP_PASSWORD,
        "local-secret-key",
        "demo-pa$$w0rd!",
        *(os.environ.get(k) for k in ("DJANGO_DB_PASSWORD", "AWS_SECRET_ACCESS_KEY")),
    ):
        if value:
            assert value not in text


def pipeline_container(spec, task):
    pipeline, _ = spec
    return pipeline["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def test_every_task_is_placed_sized_retried_and_uncached(spec):
    pipeline, executors = spec
    tasks = pipeline["root"]["dag"]["tasks"]
    limits = {
        "bronze": ("2", "4Gi", "2457m"),
        "silver": ("2", "8Gi", "4915m"),
        "quality": ("2", "8Gi", "4915m"),
        "retention": ("1", "2Gi", "1228m"),
        "catalog": ("1", "2Gi", "1228m"),
    }
    for task, step in STEPS.items():
        assert tasks[task]["cachingOptions"] == {}, f"{task}: caching must be off"
        if step == "quality":  # a failed gate fails the same way again: not retried
            assert "retryPolicy" not in tasks[task]
        else:
            assert tasks[task]["retryPolicy"]["maxRetryCount"] == 2
        ex = executors[f"exec-{task}"]
        assert ex["nodeSelector"]["labels"] == {"robson.io/pool": "analytics"}
        assert ex["tolerations"] == [
            {
                "effect": "NoSchedule",
                "key": "robson.io/dedicated",
                "operator": "Equal",
                "value": "analytics",
            }
        ]
        assert [s["secretName"] for s in ex["imagePullSecret"]] == ["ghcr-pull-secret"]
        assert ex["podMetadata"]["labels"]["app.kubernetes.io/component"] == step
        assert int(ex["activeDeadlineSeconds"]) > 0
        container = pipeline["deploymentSpec"]["executors"][f"exec-{task}"]["container"]
        cpu, memory, driver = limits[step]
        assert (
            container["resources"]["resourceCpuLimit"],
            container["resources"]["resourceMemoryLimit"],
        ) == (cpu, memory)
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["DEEP_STORAGE_DRIVER_MEMORY"] == driver
        assert container["image"] == f"ghcr.io/ldamasio/rbs-spark:{__version__}"
        assert "pip install" not in " ".join(container["command"]), "nothing installs at run time"


def test_each_component_has_its_own_compiled_spec():
    names = sorted(p.stem for p in (compiling.COMPILED / "components").glob("*.yaml"))
    assert names == [
        "bronze_ingest",
        "catalog_tables",
        "gold_features",
        "quality_gate",
        "retention",
        "silver_transform",
        "train_baseline",
        "training_set",
    ]
    assert (
        Path(compiling.COMPILED / "components" / "quality_gate.yaml")
        .read_text()
        .count("system.HTML")
        >= 1
    )


def test_a_component_compiled_on_its_own_is_not_cached():
    """Someone who runs or imports one spec of compiled/components/ must not get a cached,
    skipped ingest or gate."""
    for path in sorted((compiling.COMPILED / "components").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        tasks = spec["root"]["dag"]["tasks"]
        assert all(t.get("cachingOptions", {}) == {} for t in tasks.values()), path.name
        assert "enableCache: true" not in path.read_text()


OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


def _doc_block(marker: str) -> str:
    text = OPERATIONS.read_text()
    after = text[text.index(marker) :]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_docs_example_of_an_own_pipeline_gets_the_platform_profile(tmp_path, monkeypatch):
    """docs/operations.md's "The components in your own pipeline", compiled as a user would."""
    monkeypatch.chdir(tmp_path)
    code = compile(_doc_block("<!-- own-pipeline:"), str(OPERATIONS), "exec", dont_inherit=True)
    exec(code, {})
    pipeline, platform = yaml.safe_load_all((tmp_path / "rebuild_silver.yaml").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = {
        task: sorted(s["secretName"] for s in ex["secretAsEnv"]) for task, ex in executors.items()
    }
    assert secrets == {
        "exec-silver-transform": ["contabo-s3-credentials"],
        "exec-quality-gate": ["contabo-s3-credentials", "django-db-credentials"],
    }
    for ex in executors.values():
        assert ex["nodeSelector"]["labels"] == {"robson.io/pool": "analytics"}
        assert ex["tolerations"][0]["value"] == "analytics"
        assert [s["secretName"] for s in ex["imagePullSecret"]] == ["ghcr-pull-secret"]
    tasks = pipeline["root"]["dag"]["tasks"]
    assert all(t["cachingOptions"] == {} for t in tasks.values())
    assert tasks["silver-transform"]["retryPolicy"]["maxRetryCount"] == 2


def test_component_readmes_are_current():
    from deep_storage_kfp.pipelines import readmes

    assert readmes.stale() == [], "run `make readme` and commit"


# --- the training pipeline: compiled/training_pipeline.yaml ---------------------------------------

TRAINING_FILE = compiling.COMPILED / compiling.TRAINING_FILE
TRAINING_STEPS = {
    "gold-features": "gold",
    "training-set": "gold",
    "train-baseline": "baseline",
    "catalog-tables": "catalog",
}
S3_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT", "AWS_REGION", "S3_BUCKET"]


@pytest.fixture(scope="module")
def training():
    pipeline, platform = yaml.safe_load_all(TRAINING_FILE.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compile_writes_both_pipelines_beside_each_other():
    assert set(compiling.PIPELINES) == {"deep_storage_pipeline.yaml", "training_pipeline.yaml"}
    for name in compiling.PIPELINES:
        assert (compiling.COMPILED / name).is_file(), f"run `make compile`: {name} is missing"


def test_the_training_pipeline_is_named_and_its_version_defaults_to_the_next(training):
    pipeline, _ = training
    assert pipeline["pipelineInfo"]["name"] == "deep-storage-training"
    params = pipeline["root"]["inputDefinitions"]["parameters"]
    # An empty version: each run releases the next patch version, or none when rows did not move.
    assert {k: v.get("defaultValue") for k, v in params.items()} == {
        "version": "",
        "name": "stop_outcome",
        "from_day": "",
        "to_day": "",
        "test_from": "",
        "lake_uri": "",
        "s3_secret": "contabo-s3-credentials",
    }


def test_gold_then_the_training_set_then_the_baseline(training):
    pipeline, _ = training
    tasks = pipeline["root"]["dag"]["tasks"]
    assert set(tasks) == set(TRAINING_STEPS)
    assert "dependentTasks" not in tasks["gold-features"]
    assert tasks["training-set"]["dependentTasks"] == ["gold-features"]
    assert tasks["train-baseline"]["dependentTasks"] == ["training-set"]
    assert tasks["catalog-tables"]["dependentTasks"] == ["training-set"]  # beside the baseline
    given = {
        task: {
            k: v["componentInputParameter"]
            for k, v in t["inputs"]["parameters"].items()
            if "componentInputParameter" in v
        }
        for task, t in tasks.items()
    }
    assert given == {
        "gold-features": {"lake_uri": "lake_uri"},  # no days: those silver changed
        "training-set": {
            k: k for k in ("name", "version", "from_day", "to_day", "test_from", "lake_uri")
        },
        "train-baseline": {"name": "name", "lake_uri": "lake_uri"},
        "catalog-tables": {"lake_uri": "lake_uri"},
    }
    # The baseline trains on the version the release resolved, not on the parameter.
    version = tasks["train-baseline"]["inputs"]["parameters"]["version"]["taskOutputParameter"]
    assert version == {"outputParameterKey": "version", "producerTask": "training-set"}
    outputs = pipeline["components"]["comp-train-baseline"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "metrics": "system.Metrics",
        "classification": "system.ClassificationMetrics",
        "model": "system.Model",
    }


def test_the_training_tasks_get_the_platform_profile_and_the_s3_secret_by_name(training):
    pipeline, executors = training
    tasks = pipeline["root"]["dag"]["tasks"]
    for task, step in TRAINING_STEPS.items():
        assert tasks[task]["cachingOptions"] == {}, f"{task}: caching must be off"
        assert tasks[task]["retryPolicy"]["maxRetryCount"] == 2
        ex = executors[f"exec-{task}"]
        assert ex["nodeSelector"]["labels"] == {"robson.io/pool": "analytics"}
        assert [s["secretName"] for s in ex["imagePullSecret"]] == ["ghcr-pull-secret"]
        assert ex["podMetadata"]["labels"]["app.kubernetes.io/component"] == step
        assert int(ex["activeDeadlineSeconds"]) > 0
        (secret,) = ex["secretAsEnv"]
        assert secret["secretNameParameter"] == {"componentInputParameter": "s3_secret"}
        assert [(k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]] == [
            (k, k) for k in S3_KEYS
        ]
        container = pipeline["deploymentSpec"]["executors"][f"exec-{task}"]["container"]
        # gold and the baseline sized like silver; the catalog like retention
        limit = "2Gi" if step == "catalog" else "8Gi"
        assert container["resources"]["resourceMemoryLimit"] == limit
        assert not {e["name"] for e in container.get("env", [])} & set(S3_KEYS)
        assert container["image"] == f"ghcr.io/ldamasio/rbs-spark:{__version__}"
        assert "pip install" not in " ".join(container["command"]), "nothing installs at run time"
    text = TRAINING_FILE.read_text()
    assert "DJANGO_DB" not in text, "the training pipeline never reads the source database"
    for value in (
        APP_PASSWORD,
        "local-secret-key",
        "demo-pa$$w0rd!",
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
    ):
        if value:
            assert value not in text
