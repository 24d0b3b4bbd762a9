"""deep_storage.io.spark_session without a JVM: what the factory waits for before it starts one."""

from __future__ import annotations

import threading
import time

import pytest

from deep_storage.io import spark_session

pytestmark = pytest.mark.unit


def test_spark_waits_for_a_background_import_before_it_forks_its_jvm():
    """A fork while another thread imports deadlocks (pyspark's JVM launch has a preexec_fn):
    the session factory waits for every "preload-" thread before it launches the JVM."""
    done = threading.Event()

    def slow_import():
        time.sleep(0.5)
        done.set()

    threading.Thread(target=slow_import, name="preload-test", daemon=True).start()
    spark_session.wait_for_background_imports()
    assert done.is_set()
