"""Spark on Kubernetes, generated from the platform profile in one place (pipelines/platform.py):
the Spark settings, the executor pods' template, the ConfigMap in deploy/ and what a task with
executors gets in the compiled spec. Checked without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kfp import compiler

from deep_storage.core.config import SparkSettings
from deep_storage.core.errors import InputError
from deep_storage_kfp.components._image import IMAGE
from deep_storage_kfp.pipelines import platform
from deep_storage_kfp.pipelines.deep_storage_pipeline import build
from tests.services import APP_PASSWORD

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
S3_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT", "AWS_REGION", "S3_BUCKET"}


def test_the_spark_settings_of_a_step_with_executors():
    conf = platform.spark_k8s_conf("silver", 4, s3_secret="my-s3")
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert conf["spark.submit.deployMode"] == "client"  # the task pod is the driver
    assert conf["spark.kubernetes.container.image"] == IMAGE  # executors from the same image
    assert conf["spark.executor.instances"] == "4"
    assert conf["spark.kubernetes.namespace"] == "analytics-jobs"
    # The backfill account: the scheduled runs' account may not create pods.
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == (
        "deep-storage-backfill"
    )
    assert conf["spark.kubernetes.container.image.pullSecrets"] == "ghcr-pull-secret"
    assert conf["spark.kubernetes.executor.podTemplateFile"] == (
        "/etc/deep-storage/executor-pod-template.yaml"
    )
    assert (conf["spark.driver.port"], conf["spark.blockManager.port"]) == ("7078", "7079")
    refs = {
        k.rsplit(".", 1)[1]: v
        for k, v in conf.items()
        if k.startswith("spark.kubernetes.executor.secretKeyRef.")
    }
    assert refs == {k: f"my-s3:{k}" for k in S3_KEYS}  # executors read no database
    gate = platform.spark_k8s_conf("quality", 2)
    gate_refs = {k.rsplit(".", 1)[1] for k in gate if "secretKeyRef" in k}
    assert gate_refs == S3_KEYS
    with pytest.raises(ValueError, match="bronze"):
        platform.spark_k8s_conf("bronze", 2)


def test_the_executor_template_places_and_sizes_executors_as_the_tasks():
    template = platform.executor_pod_template("silver")
    spec = template["spec"]
    assert spec["nodeSelector"] == {"robson.io/pool": "analytics"}
    assert spec["tolerations"] == [
        {"key": "robson.io/dedicated", "operator": "Equal", "value": "analytics",
         "effect": "NoSchedule"}
    ]  # fmt: skip
    assert spec["imagePullSecrets"] == [{"name": "ghcr-pull-secret"}]
    resources = spec["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "1", "memory": "3Gi"},
        "limits": {"cpu": "1", "memory": "4Gi"},
    }
    # the labels the NetworkPolicies select on
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "deep-storage"


def test_the_deploy_config_map_is_generated_from_the_profile():
    current = (REPO / "deploy" / "executor-pod-template.yaml").read_text()
    assert current == platform.executor_template_manifest(), (
        "run `python -m deep_storage_kfp.pipelines.platform` and commit"
    )
    config_map = yaml.safe_load(current)
    template = yaml.safe_load(config_map["data"]["executor-pod-template.yaml"])
    assert template["spec"] == platform.executor_pod_template("spark")["spec"]


def test_a_pipeline_with_executors_gives_silver_and_the_gate_the_settings(tmp_path):
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(build(executors=3, s3_secret_name="s3x"), str(path))
    pipeline, k8s = yaml.safe_load_all(path.read_text())
    executors = k8s["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    containers = pipeline["deploymentSpec"]["executors"]
    for task, step in (("silver-transform", "silver"), ("quality-gate", "quality")):
        env = {e["name"]: e["value"] for e in containers[f"exec-{task}"]["container"]["env"]}
        conf = json.loads(env["DEEP_STORAGE_SPARK_CONF"])
        assert conf == platform.spark_k8s_conf(step, 3, s3_secret="s3x")
        assert env["DEEP_STORAGE_SPARK_MASTER"] == conf["spark.master"]
        ex = executors[f"exec-{task}"]
        assert ex["fieldPathAsEnv"] == [
            {"name": "DEEP_STORAGE_DRIVER_HOST", "fieldPath": "status.podIP"},
            {"name": "DEEP_STORAGE_DRIVER_POD", "fieldPath": "metadata.name"},
        ]
        assert int(ex["activeDeadlineSeconds"]) == platform.BACKFILL_TIMEOUT_S
        assert ex["configMapAsVolume"][0]["configMapName"] == "deep-storage-executor-template"
        assert ex["configMapAsVolume"][0]["mountPath"] == "/etc/deep-storage"
    bronze_env = {e["name"] for e in containers["exec-bronze-ingest"]["container"]["env"]}
    assert "DEEP_STORAGE_SPARK_CONF" not in bronze_env
    text = path.read_text()
    assert APP_PASSWORD not in text and "local-secret-key" not in text


def test_the_session_takes_the_generated_settings_from_the_environment():
    conf = platform.spark_k8s_conf("silver", 2)
    settings = SparkSettings.from_env(
        {
            "DEEP_STORAGE_SPARK_MASTER": conf["spark.master"],
            "DEEP_STORAGE_SPARK_CONF": json.dumps(conf),
            "DEEP_STORAGE_DRIVER_HOST": "10.42.0.7",
            "DEEP_STORAGE_DRIVER_POD": "deep-storage-abc-silver",
        }
    )
    assert dict(settings.extra_conf) == conf
    assert settings.driver_host == "10.42.0.7" and settings.master == conf["spark.master"]
    assert settings.driver_pod == "deep-storage-abc-silver"
    flags = SparkSettings.from_env({"DEEP_STORAGE_SPARK_CONF": '{"spark.x.enabled": true}'})
    assert dict(flags.extra_conf) == {"spark.x.enabled": "true"}  # Spark's spelling
    with pytest.raises(InputError, match="DEEP_STORAGE_SPARK_CONF is not a JSON object"):
        SparkSettings.from_env({"DEEP_STORAGE_SPARK_CONF": "[1, 2]"})


def test_the_executor_template_is_a_valid_pod():
    import kubernetes_validate

    kubernetes_validate.validate(platform.executor_pod_template("silver"), "1.30.0", strict=True)


def test_executors_elsewhere_commit_through_the_magic_committer():
    """The staging committers keep pending uploads on a path driver and executors must share;
    pods on different nodes share none. The magic committer keeps them in the store."""
    from deep_storage.core.config import StoreConfig
    from deep_storage.io.spark_session import s3a_options

    store = StoreConfig("k", "s", "http://127.0.0.1:1")
    assert s3a_options(store)["fs.s3a.committer.name"] == "directory"
    assert s3a_options(store, executors_elsewhere=True)["fs.s3a.committer.name"] == "magic"
