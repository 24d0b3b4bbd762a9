#!/usr/bin/env bash
# Check a built deep-storage image from the inside. `make spark-image-smoke` runs it as
#
#   docker run --rm --network none IMAGE bash /opt/deep-storage/smoke.sh VERSION PYSPARK_VERSION
#
# with the versions read from pyproject.toml on the host, and without a network, so anything that
# would download at run time fails here. Without arguments it expects the installed deep-storage's
# version and the pyspark version that deep-storage pins. SMOKE_SPARK=0 skips starting a local
# Spark session (the last check).
set -euo pipefail

lock=${JARS_LOCK:-/opt/deep-storage/jars.lock}
fail() {
    echo "smoke: FAIL: $*" >&2
    exit 1
}
ok() { echo "smoke: ok   $*"; }

expected_version=${1:-$(python -c 'import importlib.metadata as m; print(m.version("deep-storage"))')}
expected_pyspark=${2:-$(python -c '
import importlib.metadata as m
from packaging.requirements import Requirement
pins = [Requirement(r) for r in m.requires("deep-storage") if r.startswith("pyspark")]
print(str(pins[0].specifier).removeprefix("=="))
')}

[ "$(id -u)" != 0 ] || fail "runs as root; the image's USER must not be root"
ok "user $(id -u):$(id -g)"

out=$(deep-storage --version)
[ "$out" = "deep-storage, version $expected_version" ] ||
    fail "deep-storage --version printed '$out', expected version $expected_version"
ok "$out"

py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$py" = 3.11 ] || fail "python is $py, expected 3.11"
ok "python $py"

pyspark=$(python -c 'import pyspark; print(pyspark.__version__)')
[ "$pyspark" = "$expected_pyspark" ] || fail "pyspark is $pyspark, expected $expected_pyspark"
pyspark_dir=$(python -c 'import os, pyspark; print(os.path.dirname(os.path.realpath(pyspark.__file__)))')
[ "$(realpath "$SPARK_HOME")" = "$pyspark_dir" ] ||
    fail "SPARK_HOME=$SPARK_HOME is not the pyspark package ($pyspark_dir)"
ok "pyspark $pyspark, SPARK_HOME=$SPARK_HOME"

java_line=$(java -version 2>&1 | head -n 1)
[[ "$java_line" =~ version\ \"17\. ]] || fail "java -version says '$java_line', expected 17"
[ "$(realpath "$(command -v java)")" = "$(realpath "$JAVA_HOME/bin/java")" ] ||
    fail "java on PATH is not \$JAVA_HOME/bin/java ($JAVA_HOME)"
ok "$java_line"

for var in SPARK_HOME PYTHONPATH JAVA_HOME PATH; do
    case ${!var} in
    *[\*\?\[]*) fail "$var contains a glob, which nothing expands: ${!var}" ;;
    esac
done
[ "${SPARK_LOCAL_IP:-}" = 127.0.0.1 ] || fail "SPARK_LOCAL_IP is '${SPARK_LOCAL_IP:-}', expected 127.0.0.1"
ok "environment (no globs, SPARK_LOCAL_IP=127.0.0.1)"

# Every JAR of the manifest, byte for byte, in $SPARK_HOME/jars.
sums=$(awk -v dir="$SPARK_HOME/jars" '{ sub(/#.*/, "") } NF == 2 && split($1, c, ":") == 3 {
    printf "%s  %s/%s-%s.jar\n", tolower($2), dir, c[2], c[3] }' "$lock")
[ -n "$sums" ] || fail "$lock names no JAR"
sha256sum --check --strict --quiet <<<"$sums" || fail "a JAR of $lock is missing or differs in \$SPARK_HOME/jars"
ok "$(wc -l <<<"$sums") JARs of jars.lock in \$SPARK_HOME/jars"

# The session factory must take the baked JARs from Spark's classpath and pass none as spark.jars.
python -c '
from deep_storage.core.config import SparkSettings
from deep_storage.io.spark_session import _find_jars
jars = _find_jars(SparkSettings.from_env())
assert jars == [], f"the session factory would pass spark.jars={jars}"
' || fail "deep_storage.io.spark_session does not use the JARs baked into \$SPARK_HOME/jars"
ok "session factory uses the baked JARs"

# The metastore's script, settings and schema scripts (up to Hive 2.3.9's schema, 2.3.0).
bash -n /opt/deep-storage/metastore.sh || fail "metastore.sh is not valid bash"
[ -f /opt/deep-storage/hive-conf/hive-site.xml ] || fail "no hive-site.xml for the metastore"
scripts=$HIVE_HOME/scripts/metastore/upgrade/postgres
[ -f "$scripts/hive-schema-1.2.0.postgres.sql" ] || fail "no metastore schema scripts in $scripts"
[ "$(tail -n 1 "$scripts/upgrade.order.postgres")" = 2.2.0-to-2.3.0 ] ||
    fail "the schema upgrades in $scripts do not stop at 2.3.0"
ok "metastore script, settings and schema scripts (to 2.3.0)"

if [ "${SMOKE_SPARK:-1}" != 0 ]; then
    EXPECTED_PYSPARK=$expected_pyspark DEEP_STORAGE_DRIVER_MEMORY=512m DEEP_STORAGE_SPARK_MASTER='local[1]' \
        python -c '
import os
import tempfile
from deep_storage.io import spark_session
spark = spark_session.build("smoke")
jvm = spark._jvm
for name in (
    "org.apache.hadoop.fs.s3a.S3AFileSystem",
    "com.amazonaws.services.s3.AmazonS3Client",
    "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
    "org.postgresql.Driver",
    "io.delta.sql.DeltaSparkSessionExtension",
    "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "io.delta.storage.S3SingleDriverLogStore",
    "org.apache.hadoop.hive.metastore.HiveMetaStore",
    "org.apache.hive.beeline.HiveSchemaTool",
):
    jvm.java.lang.Class.forName(name)
assert spark.version == os.environ["EXPECTED_PYSPARK"], spark.version
java = jvm.java.lang.System.getProperty("java.specification.version")
assert java == "17", java
assert spark.range(1000).selectExpr("sum(id)").first()[0] == 499500
# A class that loads can still clash with Spark at run time (delta-spark of another Spark line):
# one commit and one read through the session catalog exercise the extension and the catalog.
table = tempfile.mkdtemp(prefix="smoke-delta-") + "/t"
spark.range(3).write.format("delta").save(table)
spark.catalog.createTable("smoke_delta", path=table, source="delta")
assert spark.sql("SELECT sum(id) FROM smoke_delta").first()[0] == 3
spark.stop()
' || fail "a local Spark session could not start, load the JARs' classes or write a Delta table"
    ok "local Spark session: S3A, S3A committers, PostgreSQL driver, Delta load; a Delta table round trip; Java 17"
fi

echo "smoke: all checks passed"
