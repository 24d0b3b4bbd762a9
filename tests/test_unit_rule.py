"""The rule of `-m unit` (tests/conftest.py, UnitRule) fires: a unit test that asks for a service
fixture, or leaves a process or a SparkContext running, fails; the same test marked integration
runs. Each case is a small test file run by pytester in this process, with the rule's plugin."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.unit

# The processes the inner tests leave running, for this file to end.
LEFT: list[subprocess.Popen] = []

INI = """
[pytest]
markers =
    unit: fast
    integration: services
"""


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest("-p", "tests.conftest", "-p", "no:cacheprovider")


def test_a_unit_test_that_asks_for_a_service_fails_before_the_service_starts(pytester):
    result = run(
        pytester,
        """
import pytest

@pytest.fixture
def built_lake(lake):  # a service, through another fixture
    return lake

@pytest.mark.unit
def test_direct(s3):
    pass

@pytest.mark.unit
def test_through_a_fixture(built_lake):
    pass

@pytest.fixture
def spark():  # a module's own fixture of a service's name is its own
    return "not a session"

@pytest.mark.unit
def test_own_fixture(spark):
    pass
""",
    )
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_direct is marked unit but uses the service fixture(s) s3: mark it integration*",
            "*test_through_a_fixture is marked unit but uses the service fixture(s) lake, pg, s3,"
            " service_env: *",
        ]
    )


def test_a_unit_test_that_leaves_a_process_running_fails_and_an_integration_one_does_not(
    pytester,
):
    try:
        result = run(
            pytester,
            """
import subprocess
import pytest
from tests.test_unit_rule import LEFT

@pytest.mark.unit
def test_leaves_a_process():
    LEFT.append(subprocess.Popen(["sleep", "60"]))

@pytest.mark.unit
def test_ends_its_process():
    with subprocess.Popen(["sleep", "60"]) as proc:
        proc.kill()

@pytest.mark.integration
def test_may_leave_one():
    LEFT.append(subprocess.Popen(["sleep", "60"]))
""",
        )
    finally:
        for proc in LEFT:
            proc.kill()
            proc.wait()
        LEFT.clear()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_leaves_a_process is marked unit but left sleep (pid *) running: *"]
    )


def test_a_unit_test_that_leaves_a_spark_context_fails(pytester):
    from pyspark import SparkContext

    before = SparkContext._active_spark_context
    try:
        result = run(
            pytester,
            """
import pytest
from pyspark import SparkContext

@pytest.mark.unit
def test_starts_spark():
    SparkContext._active_spark_context = object()  # as a started session would leave it
""",
        )
    finally:
        SparkContext._active_spark_context = before
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_starts_spark is marked unit but left a SparkContext*"])
