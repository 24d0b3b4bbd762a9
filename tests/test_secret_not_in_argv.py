"""The object store's secret key never reaches a command line: `ps` in the pod shows argv."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_jvm_command_line_holds_no_credential(spark, store_config):
    proc = spark.sparkContext._gateway.proc  # spark-submit, exec'd into the driver's JVM
    argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "java" in argv or "spark" in argv, argv[:200]
    assert store_config.secret_key not in argv
    assert "fs.s3a.secret.key" not in argv
    # ...and S3 still works: the credentials are in the driver's Hadoop configuration.
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    assert conf.get("fs.s3a.secret.key") == store_config.secret_key
