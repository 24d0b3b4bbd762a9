"""Defaults live in deep_storage/core/defaults.py. KFP needs literals in a component's and the
pipeline's signature, and click shows its own: each literal must match the one source."""

from __future__ import annotations

import inspect

import pytest

from deep_storage.cli import cli
from deep_storage.core import defaults
from deep_storage_kfp.components import (
    bronze_ingest,
    gold_features,
    quality_gate,
    silver_transform,
    train_baseline,
    training_set,
)
from deep_storage_kfp.pipelines import deep_storage_pipeline, training_pipeline

pytestmark = pytest.mark.unit

SOURCE = {
    "lookback_days": defaults.LOOKBACK_DAYS,
    "seal_margin_s": defaults.SEAL_MARGIN_S,
    "volume_k": defaults.VOLUME_K,
    "max_days": defaults.MAX_DAYS,
}


def _signature_defaults(func) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize(
    "component", [bronze_ingest, silver_transform, quality_gate], ids=lambda c: c.name
)
def test_component_literals_match_the_defaults(component):
    found = _signature_defaults(component.python_func)
    shared = {k: v for k, v in found.items() if k in SOURCE}
    assert shared, f"{component.name} takes none of the shared defaults"
    assert shared == {k: SOURCE[k] for k in shared}


def test_pipeline_literals_match_the_defaults():
    spec = deep_storage_pipeline.deep_storage_pipeline.component_spec.inputs
    found = {name: spec[name].default for name in spec if name in SOURCE}
    assert found == {k: SOURCE[k] for k in found} and set(found) == {"lookback_days", "max_days"}


@pytest.mark.parametrize(
    "component", [gold_features, training_set, train_baseline], ids=lambda c: c.name
)
def test_the_training_components_leave_every_default_to_the_library(component):
    """Their literals are empty strings ("not given": the library decides the days, the test
    split, the version and the lake) and the default set's name, defaults.py's."""
    found = _signature_defaults(component.python_func)
    named = {k: v for k, v in found.items() if k == "name"}
    assert named in ({}, {"name": defaults.TRAINING_SET_NAME})
    assert found and {v for k, v in found.items() if k != "name"} == {""}, found


def test_the_training_pipeline_passes_empty_days_on_to_the_library():
    spec = training_pipeline.deep_storage_training_pipeline.component_spec.inputs
    found = {name: spec[name].default for name in spec}
    assert {k: found[k] for k in ("from_day", "to_day", "test_from", "lake_uri")} == dict.fromkeys(
        ("from_day", "to_day", "test_from", "lake_uri"), ""
    )
    assert found["version"] == ""  # each run: the next version when the rows moved
    assert found["name"] == defaults.TRAINING_SET_NAME


def test_cli_options_use_the_defaults():
    options = {
        (command, p.name): p.default
        for command, c in cli.commands.items()
        for p in c.params
        if p.name in {"seal_margin", "lookback_days", "volume_k", "max_days", "read_partitions"}
    }
    assert options == {
        ("bronze", "seal_margin"): defaults.SEAL_MARGIN_S,
        ("bronze", "read_partitions"): defaults.READ_PARTITIONS,
        ("bronze", "max_days"): defaults.MAX_DAYS,
        ("silver", "lookback_days"): defaults.LOOKBACK_DAYS,
        ("validate", "volume_k"): defaults.VOLUME_K,
    }


def test_the_retention_windows_are_stated_where_they_are_used():
    """Bronze's catch-up and retention share one window (retention.floor); the texts that
    state the windows say the defaults' numbers; vacuum's window is the tables' own."""
    from deep_storage import lake
    from deep_storage_kfp.components import bronze_ingest, retention

    bronze_days = f"{defaults.BRONZE_RETENTION_DAYS} days"
    silver_days = str(defaults.SILVER_RETENTION_DAYS)
    week = f"{defaults.VACUUM_RETENTION_HOURS // 24}-day"
    for text in (cli.commands["retention"].help, retention.python_func.__doc__):
        assert bronze_days in text and silver_days in text and week in text, text
    for text in (cli.commands["bronze"].help, bronze_ingest.python_func.__doc__):
        assert f"within {bronze_days}" in text, text
    retained = lake.TABLE_CONFIG["delta.deletedFileRetentionDuration"]
    assert retained == f"interval {defaults.VACUUM_RETENTION_HOURS // 24} days"
