"""Runs the compiled pipeline on a KFP API server: connect, submit, schedule, backfill.

Everything goes through `kfp.Client` (KFP v2beta1 REST API). Failures become one-line
`PlatformError`s that name the host, what went wrong and the fix; bad arguments become
`InputError`s. The bearer token is never part of a message.

This module is the entry point the CLI, the tests and the docs use; the work is split by concern:

    kfp_api             connecting, and each API call's failure as one line (the transport)
    kfp_runs            one-off runs: submit, backfill; the package, parameters and experiment
    kfp_recurring_runs  recurring runs: schedule (idempotent by name), validate_cron
"""

from __future__ import annotations

from deep_storage_kfp.pipelines.kfp_api import connect
from deep_storage_kfp.pipelines.kfp_recurring_runs import SPEC_MARK, schedule, validate_cron
from deep_storage_kfp.pipelines.kfp_runs import (
    DEFAULT_EXPERIMENT,
    MAX_BACKFILL_DAYS,
    PACKAGE_SUFFIXES,
    backfill,
    ensure_experiment,
    submit,
)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "MAX_BACKFILL_DAYS",
    "PACKAGE_SUFFIXES",
    "SPEC_MARK",
    "backfill",
    "connect",
    "ensure_experiment",
    "schedule",
    "submit",
    "validate_cron",
]
