#!/bin/bash
# The image's entrypoint. KFP replaces the command of its task containers, and people pass their
# own (`deep-storage ...`, `bash ...`): both run as given. Spark on Kubernetes starts each
# executor pod of a step's driver with the one argument `executor` and its settings as env
# (SPARK_DRIVER_URL, SPARK_EXECUTOR_*; the pyspark wheel ships no entrypoint of its own): that
# becomes Spark's executor backend, bound to the pod's IP rather than the image's loopback
# SPARK_LOCAL_IP, so the driver and the other executors can reach its block manager.
set -euo pipefail

if [ "${1:-}" != "executor" ]; then
    exec "$@"
fi

: "${SPARK_EXECUTOR_POD_IP:?not set: the executor command is for pods that Spark on Kubernetes starts}"
export SPARK_LOCAL_IP="$SPARK_EXECUTOR_POD_IP"
# Spark hands the executor's Java options over as SPARK_JAVA_OPT_0, _1, ... in order.
mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
exec "$JAVA_HOME/bin/java" "${java_opts[@]}" \
    -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
    -cp "$SPARK_HOME/jars/*" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "$SPARK_DRIVER_URL" \
    --executor-id "$SPARK_EXECUTOR_ID" \
    --cores "$SPARK_EXECUTOR_CORES" \
    --app-id "$SPARK_APPLICATION_ID" \
    --hostname "$SPARK_EXECUTOR_POD_IP" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
    --podName "$SPARK_EXECUTOR_POD_NAME"
