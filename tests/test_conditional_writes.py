"""The store's conditional writes are checked, never assumed: SeaweedFS passes the probe, and a
store that ignores `If-None-Match` / `If-Match` (SeaweedFS behind a proxy that strips them) stops
a writing step with one line naming the fix, before the lease is taken or anything is written."""

from __future__ import annotations

import re

import pytest

from deep_storage.core.config import StoreConfig
from deep_storage.core.errors import StoreError
from deep_storage.io import object_store
from deep_storage.lake import writer_lock
from demo.header_stripping_proxy import HeaderStrippingProxy
from tests.services import BUCKET, run_cli

integration = pytest.mark.integration

FIX = (
    "the writer lease and the Delta commits need conditional writes; use a store that honours "
    "them (AWS S3, Ceph RGW, SeaweedFS, MinIO) or remove the proxy that strips them"
)


def keys(s3, lake: str) -> list[str]:
    prefix = lake.split(f"s3a://{BUCKET}/", 1)[1]
    resp = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(o["Key"] for o in resp.get("Contents", []))


def through(s3, proxy: HeaderStrippingProxy) -> StoreConfig:
    return StoreConfig(s3.access_key, s3.secret_key, proxy.endpoint, s3.region)


def probe_uri(lake: str) -> str:
    return re.escape(lake) + r"/_locks/probe-[0-9a-f]{32}\.json"


@pytest.fixture()
def fresh_cache(monkeypatch):
    """Forget which stores this process has already probed."""
    monkeypatch.setattr(object_store, "_CONDITIONAL_OK", set())


@integration
def test_seaweedfs_honours_conditional_writes_and_the_probe_leaves_nothing(
    s3, lake, store_config, fresh_cache
):
    object_store.check_conditional_writes(store_config, lake)
    assert (store_config.endpoint_url, BUCKET) in object_store._CONDITIONAL_OK
    assert keys(s3, lake) == []


@integration
def test_the_probe_runs_once_per_process_and_store(s3, lake, service_env):
    with HeaderStrippingProxy(s3.endpoint, s3.secret_key, strip=()) as proxy:  # forwards all
        store = through(s3, proxy)
        object_store.check_conditional_writes(store, lake)
        assert proxy.requests == 4  # create, create again (412), If-Match (412), delete
        object_store.check_conditional_writes(store, f"{lake}-other-prefix")
        with writer_lock.hold(lake, "test", "2025-06-01", "run-1", store):
            assert proxy.requests == 4 + 2  # the lease's GET and conditional PUT; no probe
        assert proxy.requests == 4 + 3  # and its conditional DELETE
    assert keys(s3, lake) == []


@integration
@pytest.mark.parametrize(
    "strip, expected",
    [
        (
            ("if-none-match", "if-match"),
            r"ignores If-None-Match on PUT \(a second conditional create of {uri} succeeded, "
            r"expected HTTP 412\)",
        ),
        (
            ("if-match",),
            r"ignores If-Match on PUT \(a PUT of {uri} with an ETag it does not have succeeded, "
            r"expected HTTP 412\)",
        ),
    ],
    ids=["both headers stripped", "If-Match stripped"],
)
def test_a_store_that_ignores_the_conditions_is_named_in_one_line(s3, lake, strip, expected):
    with HeaderStrippingProxy(s3.endpoint, s3.secret_key, strip=strip) as proxy:
        with pytest.raises(StoreError) as info:
            object_store.check_conditional_writes(through(s3, proxy), lake)
        dropped = {line.rsplit(" ", 1)[1] for line in proxy.stripped}
        assert dropped and dropped <= set(strip)
    message = str(info.value)
    pattern = f"object storage at {re.escape(proxy.endpoint)}: {expected}: {re.escape(FIX)}"
    assert re.fullmatch(pattern.format(uri=probe_uri(lake)), message), message
    assert s3.access_key not in message and s3.secret_key not in message
    assert keys(s3, lake) == []  # the probe object is deleted, even when the probe fails
    assert (proxy.endpoint, BUCKET) not in object_store._CONDITIONAL_OK


@integration
def test_a_writing_step_behind_the_stripping_proxy_exits_4_and_writes_nothing(
    s3, lake, service_env
):
    with HeaderStrippingProxy(s3.endpoint, s3.secret_key) as proxy:
        result = run_cli(
            "silver", "--date", "2025-06-01", "--lake", lake, env={"AWS_ENDPOINT": proxy.endpoint}
        )
        assert proxy.stripped  # the probe went through the proxy and lost its conditions
    assert result.returncode == StoreError.exit_code == 4, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    pattern = (
        f"deep-storage: error: object storage at {re.escape(proxy.endpoint)}: ignores "
        rf"If-None-Match on PUT \(a second conditional create of {probe_uri(lake)} succeeded, "
        rf"expected HTTP 412\): {re.escape(FIX)}"
    )
    assert re.fullmatch(pattern, lines[0]), lines[0]
    for secret in (s3.access_key, s3.secret_key):
        assert secret not in result.stderr + result.stdout
    assert keys(s3, lake) == []  # no lease, no probe object, no table


@pytest.mark.unit
def test_a_store_that_rejects_the_condition_outright_is_named(monkeypatch, fresh_cache):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="AKIDPROBE", aws_secret_access_key="sk!"
    )
    stub = Stubber(client)
    stub.add_client_error("put_object", "NotImplemented", "If-None-Match", http_status_code=501)
    monkeypatch.setattr(object_store, "s3_client", lambda store: client)
    store = StoreConfig("AKIDPROBE", "secret-value", "https://s3.example.invalid")
    with stub, pytest.raises(StoreError) as info:
        object_store.check_conditional_writes(store, "s3a://bucket/lake")
    stub.assert_no_pending_responses()
    assert re.fullmatch(
        r"object storage at https://s3\.example\.invalid: the conditional-write probe's create "
        rf"of {probe_uri('s3a://bucket/lake')} answered NotImplemented \(HTTP 501\), expected "
        rf"success: {re.escape(FIX)}",
        str(info.value),
    ), str(info.value)
    assert "AKIDPROBE" not in str(info.value) and "secret-value" not in str(info.value)


@pytest.mark.unit
def test_a_file_lake_is_not_probed(monkeypatch, fresh_cache):
    monkeypatch.setattr(object_store, "s3_client", lambda store: pytest.fail("probed"))
    object_store.check_conditional_writes(StoreConfig("a", "b"), "file:///tmp/lake")
