"""The platform profile: what every task of the pipeline gets on the user's cluster.

KFP has no pipeline-wide pod defaults, so this one helper is applied to each task: placement on
the analytics node pool, the pull secret, labels, resources (with Spark's driver memory derived
from the memory limit), the two secrets as env vars, retries, a timeout, and no caching.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import dsl, kubernetes

from deep_storage.core.config import DB_ENV as DB_SECRET_KEYS
from deep_storage.core.config import STORE_ENV as S3_SECRET_KEYS
from deep_storage_kfp.components._image import IMAGE_TAG


@dataclass(frozen=True)
class StepSize:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    timeout_s: int

    @property
    def driver_memory(self) -> str:
        """60% of the limit for the JVM heap: the rest is off-heap, Python and the OS."""
        units = {"Mi": 1, "Gi": 1024}
        number, unit = self.memory_limit[:-2], self.memory_limit[-2:]
        return f"{int(float(number) * units[unit] * 0.6)}m"

    @property
    def spark_master(self) -> str:
        return f"local[{max(1, int(float(self.cpu_limit)))}]"


# The sizing used on the cluster so far (docs/source.md).
SIZES = {
    "bronze": StepSize("1", "2", "2Gi", "4Gi", timeout_s=2 * 3600),
    "silver": StepSize("1", "2", "4Gi", "8Gi", timeout_s=2 * 3600),
    "quality": StepSize("1", "2", "4Gi", "8Gi", timeout_s=3600),
    # No Spark: delta-rs removes days in one commit and vacuums (a listing and deletes).
    "retention": StepSize("500m", "1", "1Gi", "2Gi", timeout_s=3600),
}
# The training pipeline's steps, sized like silver until measured: gold reads a week of silver
# per day it builds, a training set and the baseline hold their rows in one process. Steps of
# their own so their pods say what they are (app.kubernetes.io/component).
SIZES["gold"] = SIZES["silver"]  # gold_features and training_set
SIZES["baseline"] = SIZES["silver"]  # train_baseline
# Registering names: one Spark session on the Hive catalog, a few metastore calls.
SIZES["catalog"] = SIZES["retention"]
SETTINGS_CONFIG_MAP = "deep-storage-settings"
# The ConfigMap's keys each step reads. Only the catalog step gets the metastore: with
# HIVE_METASTORE_URI set, a step's Spark session is on the metastore, and a metastore that is down
# must never fail bronze, silver or the gate.
SETTINGS_KEYS = ("PUSHGATEWAY_URL",)
SETTINGS_KEYS_BY_STEP = {"catalog": (*SETTINGS_KEYS, "HIVE_METASTORE_URI")}
# A gate that fails has judged the lake: a retry judges it again and fails again, 2 × backoff later.
NOT_RETRIED = ("quality",)
SECRETS_BY_STEP = {
    "bronze": ("db", "s3"),
    "silver": ("s3",),
    "quality": ("db", "s3"),
    "retention": ("s3",),
    "gold": ("s3",),
    "baseline": ("s3",),
    "catalog": ("s3",),
}


@dataclass(frozen=True)
class Profile:
    node_pool_key: str = "robson.io/pool"
    node_pool: str = "analytics"
    taint_key: str = "robson.io/dedicated"
    taint_value: str = "analytics"
    pull_secret: str = "ghcr-pull-secret"
    retries: int = 2
    backoff: str = "120s"
    backoff_factor: float = 2.0
    backoff_max: str = "900s"
    # Empty: each component's own image (components/_image.py). `deep-storage run-local --image`
    # runs the tasks in a build of another tag.
    image: str = ""


CLUSTER = Profile()
LOCAL = Profile(retries=0)  # kfp.local honours retries with real backoff: none locally


def apply_platform_profile(
    task: dsl.PipelineTask,
    step: str,
    *,
    db_secret: str = "django-db-credentials",
    s3_secret: str = "contabo-s3-credentials",
    profile: Profile = CLUSTER,
) -> dsl.PipelineTask:
    """Everything a component's task needs on the cluster, for your own pipelines too: caching
    off, requests and limits, the Spark driver's memory and master, retries (none for the
    gate: it fails the same way every time), the analytics node pool and its toleration, the
    image pull secret, labels, the timeout, the metrics ConfigMap and the secrets as env.

    `step` is "bronze", "silver", "quality", "retention", "gold" or "baseline" (the
    component's sizing and secrets); the secret names are the cluster's. Returns the task, for
    chaining."""
    if step not in SIZES:
        raise ValueError(f"step {step!r} is not one of {', '.join(SIZES)}")
    size = SIZES[step]
    task.set_caching_options(False)
    task.set_cpu_request(size.cpu_request).set_cpu_limit(size.cpu_limit)
    task.set_memory_request(size.memory_request).set_memory_limit(size.memory_limit)
    task.set_env_variable("DEEP_STORAGE_DRIVER_MEMORY", size.driver_memory)
    task.set_env_variable("DEEP_STORAGE_SPARK_MASTER", size.spark_master)
    if profile.retries and step not in NOT_RETRIED:
        task.set_retry(
            profile.retries,
            backoff_duration=profile.backoff,
            backoff_factor=profile.backoff_factor,
            backoff_max_duration=profile.backoff_max,
        )
    kubernetes.add_node_selector(task, profile.node_pool_key, profile.node_pool)
    kubernetes.add_toleration(
        task,
        key=profile.taint_key,
        operator="Equal",
        value=profile.taint_value,
        effect="NoSchedule",
    )
    kubernetes.set_image_pull_secrets(task, [profile.pull_secret])
    kubernetes.add_pod_label(task, "app.kubernetes.io/name", "deep-storage")
    kubernetes.add_pod_label(task, "app.kubernetes.io/component", step)
    kubernetes.add_pod_label(task, "app.kubernetes.io/version", IMAGE_TAG)
    kubernetes.set_timeout(task, size.timeout_s)
    if profile.image:
        task.set_container_image(profile.image)
    # The cluster's optional settings, from an optional ConfigMap, so a cluster without them runs
    # the same spec: where the steps push their metrics (PUSHGATEWAY_URL; without it
    # deep_storage/io/metrics.py pushes nothing) and, for the catalog step, the Hive Metastore the
    # tables are named in (HIVE_METASTORE_URI; without it the step skips).
    keys = SETTINGS_KEYS_BY_STEP.get(step, SETTINGS_KEYS)
    kubernetes.use_config_map_as_env(task, SETTINGS_CONFIG_MAP, {k: k for k in keys}, optional=True)
    secrets = {"db": (db_secret, DB_SECRET_KEYS), "s3": (s3_secret, S3_SECRET_KEYS)}
    for which in SECRETS_BY_STEP[step]:
        name, keys = secrets[which]
        kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env={k: k for k in keys})
    return task


# --- Spark on Kubernetes: executors from the same image, for backfills ---------------------------

K8S_MASTER = "k8s://https://kubernetes.default.svc"
NAMESPACE = "analytics-jobs"
SERVICE_ACCOUNT = "deep-storage-pipeline"  # every scheduled run: cannot create pods
BACKFILL_SERVICE_ACCOUNT = "deep-storage-backfill"  # backfill --executors: creates executor pods
EXECUTOR_TEMPLATE_CONFIG_MAP = "deep-storage-executor-template"
EXECUTOR_TEMPLATE_DIR = "/etc/deep-storage"
EXECUTOR_TEMPLATE_FILE = "executor-pod-template.yaml"
# Fixed ports, so the NetworkPolicies can name them: executors call the driver's RPC port, and
# driver and executors fetch shuffle blocks from each other's block manager.
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
EXECUTOR_SIZE = StepSize("1", "1", "3Gi", "4Gi", timeout_s=0)
EXECUTOR_STEPS = ("silver", "quality")  # bronze's default engine does not run on Spark
BACKFILL_TIMEOUT_S = 24 * 3600


def set_up_task(
    task: dsl.PipelineTask,
    title: str,
    step: str,
    secrets: dict,
    executors: int = 0,
    s3_secret_name: str = "",
) -> None:
    """Names a pipeline's task and gives it the platform profile (`secrets`: the keyword
    arguments of apply_platform_profile); with `executors`, Spark's executor pods."""
    apply_platform_profile(task.set_display_name(title), step, **secrets)
    if executors:
        use_executors(task, step, executors, s3_secret=s3_secret_name)


def executor_pod_template(step: str, profile: Profile = CLUSTER) -> dict:
    """The executor pods' template (spark.kubernetes.executor.podTemplateFile): the same node
    pool, toleration, pull secret and labels as the task pods, and the executor's size."""
    size = EXECUTOR_SIZE
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {
                "app.kubernetes.io/name": "deep-storage",
                "app.kubernetes.io/component": f"{step}-executor",
                "app.kubernetes.io/version": IMAGE_TAG,
            }
        },
        "spec": {
            "nodeSelector": {profile.node_pool_key: profile.node_pool},
            "tolerations": [
                {
                    "key": profile.taint_key,
                    "operator": "Equal",
                    "value": profile.taint_value,
                    "effect": "NoSchedule",
                }
            ],
            "imagePullSecrets": [{"name": profile.pull_secret}],
            # Executors read S3 and talk to the driver; they never call the Kubernetes API.
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "spark-kubernetes-executor",
                    "resources": {
                        "requests": {"cpu": size.cpu_request, "memory": size.memory_request},
                        "limits": {"cpu": size.cpu_limit, "memory": size.memory_limit},
                    },
                }
            ],
        },
    }


def spark_k8s_conf(
    step: str,
    executors: int,
    *,
    s3_secret: str = "contabo-s3-credentials",
    namespace: str = NAMESPACE,
    service_account: str = BACKFILL_SERVICE_ACCOUNT,
    profile: Profile = CLUSTER,
) -> dict[str, str]:
    """Spark settings for a step whose driver (the task pod, client mode) runs `executors`
    executor pods from the same image. Secrets are referenced by name and key, never by value."""
    from deep_storage_kfp.components._image import IMAGE

    if step not in EXECUTOR_STEPS:
        raise ValueError(f"step {step!r} does not run on executors: one of {EXECUTOR_STEPS}")
    if executors < 1:
        raise ValueError(f"executors must be >= 1, got {executors}")
    size = EXECUTOR_SIZE
    conf = {
        "spark.master": K8S_MASTER,
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.authenticate.driver.serviceAccountName": service_account,
        "spark.kubernetes.container.image": IMAGE,
        "spark.kubernetes.container.image.pullSecrets": profile.pull_secret,
        "spark.kubernetes.executor.podTemplateFile": (
            f"{EXECUTOR_TEMPLATE_DIR}/{EXECUTOR_TEMPLATE_FILE}"
        ),
        "spark.kubernetes.executor.label.app.kubernetes.io/component": f"{step}-executor",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.executor.instances": str(executors),
        "spark.executor.cores": size.cpu_limit,
        "spark.executor.memory": size.driver_memory,
        "spark.kubernetes.executor.request.cores": size.cpu_request,
        "spark.kubernetes.executor.limit.cores": size.cpu_limit,
        "spark.driver.port": str(DRIVER_PORT),
        "spark.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.sql.shuffle.partitions": str(max(8, 4 * executors)),
    }
    # Executors touch the object store only (the database is read by the driver, or by bronze's
    # JDBC engine, which takes its credentials in the plan): the S3 secret alone, as env.
    for key in S3_SECRET_KEYS:
        conf[f"spark.kubernetes.executor.secretKeyRef.{key}"] = f"{s3_secret}:{key}"
    return conf


def executor_template_manifest(profile: Profile = CLUSTER) -> str:
    """deploy/executor-pod-template.yaml: the executor pods' template as the ConfigMap a task
    with executors mounts (written by `python -m deep_storage_kfp.pipelines.platform`;
    tests/test_deploy.py checks the file is current)."""
    import yaml

    class _Literal(str):
        pass

    class dumper(yaml.SafeDumper):
        pass

    dumper.add_representer(
        _Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|")
    )
    template = yaml.safe_dump(executor_pod_template("spark", profile), sort_keys=True)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": EXECUTOR_TEMPLATE_CONFIG_MAP,
            "labels": {"app.kubernetes.io/name": "deep-storage"},
        },
        "data": {EXECUTOR_TEMPLATE_FILE: _Literal(template)},
    }
    return (
        "# Generated from pipelines/platform.py by\n"
        "# `python -m deep_storage_kfp.pipelines.platform`: the executor pods' template for\n"
        "# Spark on Kubernetes, mounted by the tasks that run executors.\n"
        + yaml.dump(config_map, Dumper=dumper, sort_keys=True)
    )


def use_executors(task: dsl.PipelineTask, step: str, executors: int, **secrets) -> None:
    """Run the task's Spark with `executors` executor pods (Kubernetes, client mode): the
    settings from spark_k8s_conf as one env variable, the driver's address from the pod's IP,
    the executor template mounted from its ConfigMap."""
    import json

    conf = spark_k8s_conf(step, executors, **secrets)
    task.set_env_variable("DEEP_STORAGE_SPARK_MASTER", conf["spark.master"])
    task.set_env_variable("DEEP_STORAGE_SPARK_CONF", json.dumps(conf, sort_keys=True))
    kubernetes.use_field_path_as_env(task, "DEEP_STORAGE_DRIVER_HOST", "status.podIP")
    # The executors' owner: they go when the task pod goes, however it ends (a retry never
    # meets the pods of the attempt before), and their names derive from it.
    kubernetes.use_field_path_as_env(task, "DEEP_STORAGE_DRIVER_POD", "metadata.name")
    # A backfill covers weeks: the profile's per-day timeouts would end it midway.
    kubernetes.set_timeout(task, BACKFILL_TIMEOUT_S)
    kubernetes.use_config_map_as_volume(
        task, EXECUTOR_TEMPLATE_CONFIG_MAP, mount_path=EXECUTOR_TEMPLATE_DIR
    )


if __name__ == "__main__":
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / "deploy" / EXECUTOR_TEMPLATE_FILE
    target.write_text(executor_template_manifest())
    print(f"wrote {target}")
