"""Object-storage preflight: reach the endpoint, check the credentials and the bucket in about a
second, before Spark starts and before anything is written; and, before a writer takes the lease,
check that the store honours conditional writes."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from urllib.parse import urlsplit

from deep_storage.core.config import StoreConfig, lake_bucket, redact
from deep_storage.core.errors import StoreError

log = logging.getLogger(__name__)


def s3_client(store: StoreConfig):
    """A boto3 S3 client for the lake's store: path-style, short timeouts and retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=store.endpoint_url,
        region_name=store.region,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2},
            connect_timeout=5,
            read_timeout=20,
        ),
    )


def arrow_s3(store: StoreConfig):
    """pyarrow's S3 filesystem for the lake's store, configured like `s3_client`."""
    from pyarrow import fs as pafs

    url = store.endpoint_url
    endpoint = (
        dict(endpoint_override=urlsplit(url).netloc, scheme=urlsplit(url).scheme) if url else {}
    )
    return pafs.S3FileSystem(
        access_key=store.access_key,
        secret_key=store.secret_key,
        region=store.region,
        force_virtual_addressing=False,  # path-style, as the provider serves it
        connect_timeout=5,
        request_timeout=60,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        **endpoint,
    )


def preflight(store: StoreConfig, lake: str) -> None:
    bucket = lake_bucket(lake)
    if bucket is None:
        return  # a file:// lake needs no object storage
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    where = store.endpoint_url or "the default AWS endpoint"
    client = s3_client(store)
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise StoreError(
                f"bucket {bucket!r} does not exist at {where}: create it, or fix S3_BUCKET / --lake"
            ) from None
        if (
            code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
            or status == 403
        ):
            raise StoreError(
                f"object storage at {where} refused access to bucket {bucket!r} (HTTP 403): "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        raise StoreError(f"object storage at {where}: {redact(str(exc))[:300]}") from None
    except EndpointConnectionError:
        raise StoreError(
            f"cannot reach object storage at {where}: check AWS_ENDPOINT and that the network "
            "policy allows egress to it"
        ) from None
    except BotoCoreError as exc:
        raise StoreError(
            f"cannot reach object storage at {where}: {redact(str(exc))[:300]}"
        ) from None


def checked(lake: str, store: StoreConfig | None = None) -> StoreConfig | None:
    """The store of an s3a lake (from the environment unless given), reached and authorised;
    None for a file:// lake. Runs before Spark starts and before any write."""
    if lake_bucket(lake) is None:
        return None
    store = store or StoreConfig.from_env()
    preflight(store, lake)
    return store


# (endpoint, bucket) pairs whose conditional writes this process has seen honoured.
_CONDITIONAL_OK: set[tuple[str | None, str]] = set()
_CONDITIONAL_LOCK = threading.Lock()
# An ETag no object has: S3 ETags are quoted hex digests (MD5 or MD5-parts).
_NO_SUCH_ETAG = '"00000000000000000000000000000000"'
_CONDITIONAL_FIX = (
    "the writer lease and the Delta commits need conditional writes; use a store that "
    "honours them (AWS S3, Ceph RGW, SeaweedFS, MinIO) or remove the proxy that strips them"
)


def check_conditional_writes(store: StoreConfig, lake: str) -> None:
    """Raise StoreError unless the lake's store honours `If-None-Match: *` and `If-Match` on PUT.

    The writer lease (lake/writer_lock.py) and Delta's commits (delta-rs creates `_delta_log/N.json`
    with `If-None-Match: *`) are exclusive only if the store refuses a conditional write whose
    condition fails. A store, or a proxy in front of it, that drops those headers would let two
    writers both win, silently. So, once per process and (endpoint, bucket), four small requests
    on `{lake}/_locks/probe-<uuid>.json`: a conditional create (must succeed), the same create
    again (must fail 412), a PUT with `If-Match` on an ETag the object does not have (must fail
    412), and a DELETE of the probe.
    """
    bucket = lake_bucket(lake)
    if bucket is None:
        return  # a file:// lake is locked with flock
    cache_key = (store.endpoint_url, bucket)
    with _CONDITIONAL_LOCK:
        if cache_key in _CONDITIONAL_OK:
            return
        _probe_conditional_writes(store, lake, bucket)
        _CONDITIONAL_OK.add(cache_key)


def _probe_conditional_writes(store: StoreConfig, lake: str, bucket: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    where = store.endpoint_url or "the default AWS endpoint"
    prefix = urlsplit(lake).path.strip("/")
    key = "/".join(p for p in (prefix, "_locks", f"probe-{uuid.uuid4().hex}.json") if p)
    uri = f"s3a://{bucket}/{key}"
    body = json.dumps(
        {"probe": "conditional writes", "by": f"{socket.gethostname()}:{os.getpid()}"}
    ).encode()
    client = s3_client(store)

    def refused(step: str, **condition) -> bool:
        return _refused(client, bucket, key, body, where, uri, step, **condition)

    created = False
    try:
        refused("create", IfNoneMatch="*")
        created = True
        if not refused("second create", IfNoneMatch="*"):
            raise StoreError(
                f"object storage at {where}: ignores If-None-Match on PUT (a second conditional "
                f"create of {uri} succeeded, expected HTTP 412): {_CONDITIONAL_FIX}"
            )
        if not refused("If-Match PUT", IfMatch=_NO_SUCH_ETAG):
            raise StoreError(
                f"object storage at {where}: ignores If-Match on PUT (a PUT of {uri} with an "
                f"ETag it does not have succeeded, expected HTTP 412): {_CONDITIONAL_FIX}"
            )
    except BotoCoreError as exc:
        raise StoreError(
            f"cannot reach object storage at {where} (conditional-write probe): "
            f"{redact(str(exc))[:300]}"
        ) from None
    finally:
        if created:
            try:
                client.delete_object(Bucket=bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                log.warning(
                    "conditional-write probe: could not delete %s (%s)", uri, redact(str(exc))
                )
    log.debug("object storage at %s honours If-None-Match and If-Match on PUT", where)


def _refused(
    client, bucket: str, key: str, body: bytes, where: str, uri: str, step: str, **condition
) -> bool:
    """PUT the probe with `condition`: True if the store refused it with 412 (or 409, a
    conflicting conditional write), False if it wrote it."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, **condition)
        return False
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", status)
        if step != "create" and status in (409, 412):
            return True
        if status == 403:
            raise StoreError(
                f"object storage at {where} refused the PUT of {uri} (HTTP 403, {code}): a "
                "writing step needs write access to the lake; check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            ) from None
        expected = "success" if step == "create" else "HTTP 412 PreconditionFailed"
        raise StoreError(
            f"object storage at {where}: the conditional-write probe's {step} of {uri} "
            f"answered {code} (HTTP {status}), expected {expected}: {_CONDITIONAL_FIX}"
        ) from None
