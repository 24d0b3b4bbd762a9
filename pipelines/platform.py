"""The platform profile: what every task of the pipeline gets on the user's cluster.

KFP has no pipeline-wide pod defaults, so this one helper is applied to each task: placement on
the analytics node pool, the pull secret, labels, resources (with Spark's driver memory derived
from the memory limit), the two secrets as env vars, retries, a timeout, and no caching.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import dsl, kubernetes

from deep_storage.config import DB_ENV as DB_SECRET_KEYS
from deep_storage.config import STORE_ENV as S3_SECRET_KEYS
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
}
SETTINGS_CONFIG_MAP = "deep-storage-settings"
# A gate that fails has judged the lake: a retry judges it again and fails again, 2 × backoff later.
NOT_RETRIED = ("quality",)
SECRETS_BY_STEP = {"bronze": ("db", "s3"), "silver": ("s3",), "quality": ("db", "s3")}


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

    `step` is "bronze", "silver" or "quality" (the component's sizing and secrets); the secret
    names are the cluster's. Returns the task, for chaining."""
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
    # Where the steps push their metrics: PUSHGATEWAY_URL from an optional ConfigMap, so a
    # cluster without a Pushgateway runs the same spec (metrics.py then pushes nothing).
    kubernetes.use_config_map_as_env(
        task, SETTINGS_CONFIG_MAP, {"PUSHGATEWAY_URL": "PUSHGATEWAY_URL"}, optional=True
    )
    secrets = {"db": (db_secret, DB_SECRET_KEYS), "s3": (s3_secret, S3_SECRET_KEYS)}
    for which in SECRETS_BY_STEP[step]:
        name, keys = secrets[which]
        kubernetes.use_secret_as_env(task, secret_name=name, secret_key_to_env={k: k for k in keys})
    return task
