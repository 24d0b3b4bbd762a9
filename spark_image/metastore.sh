#!/usr/bin/env bash
# The Hive Metastore (Thrift) of the lake's catalog, on PostgreSQL, from the Hive 2.3.9 classes that
# ship in pyspark's own jars/ (the image's $SPARK_HOME/jars) and the PostgreSQL driver of jars.lock.
#
#   metastore.sh init-schema   create the schema (2.3.0) once with Hive's schema tool; a schema
#                              already at 2.3.0 is left alone, so the Job can run again
#   metastore.sh serve         run the Thrift server on $HIVE_METASTORE_PORT (default 9083)
#
# The environment (deploy/metastore.yaml gives the pod these):
#   METASTORE_DB_HOST, METASTORE_DB_PORT (5432), METASTORE_DB_NAME, METASTORE_DB_USER,
#   METASTORE_DB_PASSWORD   its own PostgreSQL database, not the platform's (secret's keys)
#   HIVE_HOME               the schema tool's scripts/metastore/upgrade/postgres (image: /opt/deep-storage/hive)
#   HIVE_WAREHOUSE_DIR      databases' folders on this pod's disk (default file:///tmp/hive-warehouse)
#   HIVE_CLASSPATH          the JARs (default $SPARK_HOME/jars/*)
#   HIVE_METASTORE_HEAP     the JVM's heap (default 512m)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${METASTORE_DB_HOST:?METASTORE_DB_HOST is not set: expected the metastore PostgreSQL host}"
: "${METASTORE_DB_NAME:?METASTORE_DB_NAME is not set: expected the metastore database name}"
: "${METASTORE_DB_USER:?METASTORE_DB_USER is not set: expected the metastore database user}"
: "${METASTORE_DB_PASSWORD:?METASTORE_DB_PASSWORD is not set: expected the metastore database password}"
export METASTORE_DB_PORT=${METASTORE_DB_PORT:-5432}
export HIVE_HOME=${HIVE_HOME:-/opt/deep-storage/hive}
export HIVE_WAREHOUSE_DIR=${HIVE_WAREHOUSE_DIR:-file:///tmp/hive-warehouse}
conf=${HIVE_CONF_DIR:-$here/hive-conf}
classpath="$conf:${HIVE_CLASSPATH:-${SPARK_HOME:?SPARK_HOME or HIVE_CLASSPATH must be set}/jars/*}"
java_opts=(-Xmx"${HIVE_METASTORE_HEAP:-512m}" -Duser.timezone=UTC -Djava.io.tmpdir="${TMPDIR:-/tmp}")
# The schema tool's version: Hive 2.3.9 writes and checks schema 2.3.0.
schema_version=2.3.0

schema_tool() {
    java "${java_opts[@]}" -cp "$classpath" org.apache.hive.beeline.HiveSchemaTool -dbType postgres "$@"
}

case "${1:-}" in
init-schema)
    [ -f "$HIVE_HOME/scripts/metastore/upgrade/postgres/hive-schema-1.2.0.postgres.sql" ] || {
        echo "metastore.sh: no schema scripts under HIVE_HOME=$HIVE_HOME: run \`make jars\`" >&2
        exit 2
    }
    if info=$(schema_tool -info 2>&1) && grep -q "Metastore schema version:[[:space:]]*$schema_version" <<<"$info"; then
        echo "metastore schema is at $schema_version already: nothing to do"
        exit 0
    fi
    if grep -q "Metastore schema version:" <<<"$info"; then
        echo "metastore.sh: the database holds another schema version: $(grep 'Metastore schema version:' <<<"$info")" >&2
        exit 1
    fi
    # The scripts hold a full schema at 1.2.0 and the upgrades after it: init, then upgrade to
    # the tool's own version (HIVE_HOME's upgrade.order.postgres ends at 2.3.0).
    schema_tool -initSchemaTo 1.2.0
    schema_tool -upgradeSchemaFrom 1.2.0
    echo "metastore schema created at $schema_version"
    ;;
serve)
    exec java "${java_opts[@]}" -cp "$classpath" org.apache.hadoop.hive.metastore.HiveMetaStore \
        -p "${HIVE_METASTORE_PORT:-9083}"
    ;;
*)
    echo "usage: metastore.sh init-schema|serve" >&2
    exit 2
    ;;
esac
