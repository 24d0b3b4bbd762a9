"""Each boundary turns bad input into one clear line that names the value as the caller gave it,
before anything runs (no services needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from deep_storage import cli as library_cli
from deep_storage import steps
from deep_storage.core.errors import InputError
from deep_storage.quality import validate
from deep_storage_kfp.pipelines import cli, kfp_api, kfp_recurring_runs, kfp_runs

pytestmark = pytest.mark.unit


def test_a_garbage_as_of_is_refused_not_taken_as_now():
    with pytest.raises(InputError, match="as_of 'yesterday-ish' is not a time"):
        steps.parse_instant("yesterday-ish", "as_of")
    # an unresolved KFP placeholder (one-off run) and empty mean "not given"
    assert steps.parse_instant("{{$.pipeline_job_schedule_time_utc}}", "as_of") is None
    assert steps.parse_instant("", "as_of") is None


def test_a_step_names_the_value_as_its_caller_did():
    with pytest.raises(InputError, match=r"^first_day '2025-13-01' is not a calendar date"):
        steps.silver("file:///tmp/x", "2025-13-01", "2025-12-02")
    with pytest.raises(InputError, match=r"^--date '2025-13-01' is not a calendar date"):
        steps.silver("file:///tmp/x", "2025-13-01", "", names=library_cli.FLAGS)
    with pytest.raises(InputError, match=r"^until_date 2025-06-01 is before run_date 2025-06-02"):
        steps.bronze("file:///tmp/x", "2025-06-02", "2025-06-01")


def test_a_partial_database_setting_fails_the_gate_instead_of_skipping_the_count(monkeypatch):
    for key in ("DJANGO_DB_HOST", "DJANGO_DB_NAME", "DJANGO_DB_USER", "DJANGO_DB_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    assert validate._source_from_env() is None  # not configured at all: noted, not an error
    monkeypatch.setenv("DJANGO_DB_HOST", "db.example")
    with pytest.raises(InputError, match="DJANGO_DB_NAME is not set"):
        validate._source_from_env()


def test_submit_refuses_a_bad_date_before_contacting_the_cluster():
    result = CliRunner().invoke(
        cli.command(),
        ["submit", "--host", "http://127.0.0.1:9", "--date", "2025-02-30"],
        standalone_mode=False,
    )
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("--date '2025-02-30' is not a calendar date")


def test_every_option_an_error_suggests_exists():
    """The client's errors tell people to pass options: each must be one the commands take."""
    modules = (kfp_api, kfp_runs, kfp_recurring_runs)  # what pipelines/client.py re-exports
    text = "".join(Path(module.__file__).read_text() for module in modules)
    suggested = set(re.findall(r"pass (--[a-z-]+)", text)) | set(
        re.findall(r"check (--[a-z-]+)", text)
    )
    assert suggested
    group = cli.command()
    offered = {
        opt
        for c in group.commands.values()
        for p in c.params
        for opt in (*p.opts, *p.secondary_opts)
    }
    assert suggested <= offered, suggested - offered


def test_a_python_failure_inside_spark_shows_its_reason_not_its_wrapper():
    class PythonException(Exception):
        pass

    exc = PythonException(
        "\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
        'Traceback (most recent call last):\n  File "x.py", line 3, in f\n'
        "OSError: When uploading part for key 'lake/silver/x.parquet': AWS Error ACCESS_DENIED\n"
    )
    assert library_cli._python_reason(exc).startswith("OSError: When uploading part")
