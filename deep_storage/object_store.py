"""Object-storage preflight: reach the endpoint, check the credentials and the bucket in about a
second, before Spark starts and before anything is written."""

from __future__ import annotations

from deep_storage.config import StoreConfig, lake_bucket, redact
from deep_storage.errors import StoreError


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
    from urllib.parse import urlsplit

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
