"""deep_storage.core.config: settings from the secrets' keys, the lake's URI, the store's endpoint,
a run's id and read path; secrets redacted."""

from __future__ import annotations

import pytest

from deep_storage.core import config
from deep_storage.core.config import SourceConfig, StoreConfig, redact, resolve_lake
from deep_storage.core.errors import InputError

pytestmark = pytest.mark.unit


def test_lake_uri_defaults_to_the_bucket_and_rejects_relative_paths():
    assert resolve_lake(None, {"S3_BUCKET": "rbs"}) == "s3a://rbs"
    assert resolve_lake("s3://rbs/lake/", {}) == "s3a://rbs/lake"
    assert resolve_lake("file:///tmp/lake", {}) == "file:///tmp/lake"
    with pytest.raises(InputError, match="no lake given"):
        resolve_lake(None, {})
    with pytest.raises(InputError, match="unsupported scheme"):
        resolve_lake("gs://x", {})


def test_endpoint_bare_host_means_https_and_url_keeps_its_scheme():
    bare = StoreConfig("a", "secret-1", endpoint="eu2.contabostorage.com")
    assert (bare.endpoint_url, bare.ssl) == ("https://eu2.contabostorage.com", True)
    local = StoreConfig("a", "secret-1", endpoint="http://127.0.0.1:8333")
    assert (local.endpoint_url, local.ssl) == ("http://127.0.0.1:8333", False)


def test_settings_come_from_the_secret_keys_and_secrets_are_redacted():
    env = {
        "DJANGO_DB_HOST": "db",
        "DJANGO_DB_NAME": "robson",
        "DJANGO_DB_USER": "app",
        "DJANGO_DB_PASSWORD": "pa!ss$word",
    }
    cfg = SourceConfig.from_env(env)
    assert (cfg.port, cfg.jdbc_url) == (5432, "jdbc:postgresql://db:5432/robson")
    assert "pa!ss$word" not in repr(cfg) and "pa!ss$word" not in cfg.jdbc_url
    assert redact("login pa!ss$word failed") == "login *** failed"
    with pytest.raises(InputError, match="DJANGO_DB_PASSWORD is not set"):
        SourceConfig.from_env({k: v for k, v in env.items() if k != "DJANGO_DB_PASSWORD"})
    with pytest.raises(InputError, match="not a TCP port"):
        SourceConfig.from_env({**env, "DJANGO_DB_PORT": "54x"})


def test_run_id_and_read_path_come_from_one_place():
    assert config.run_id("given", {"DEEP_STORAGE_RUN_ID": "env"}) == "given"
    assert config.run_id(None, {"DEEP_STORAGE_RUN_ID": "env"}) == "env"
    assert config.run_id(None, {}) != config.run_id(None, {})
    assert config.read_path(None, {}) == "arrow"
    assert config.read_path(None, {"DEEP_STORAGE_READ_PATH": "jdbc"}) == "jdbc"
