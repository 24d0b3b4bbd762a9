"""One writer at a time per lake: a lease that every writing step holds while it runs.

Why a lease in the lake itself, and not a PostgreSQL advisory lock: silver and the gate never
need the source database, and giving them its secret only to lock would widen what a silver pod
can reach. The lake is the one thing every writer already shares, so the lock lives there:

- s3a lakes: `{lake}/_locks/writer.json`, created with a conditional PUT (`If-None-Match: *`),
  renewed by a background thread with `If-Match: <etag>` every ttl/3, deleted with `If-Match` on
  release. A holder that dies stops renewing: once `expires_at` is past, the next run takes the
  lease over with `If-Match` on the expired body, so two runs that both see it expired cannot
  both win. Each acquisition increments `token` (a fencing token): a writer checks before every
  commit that the lease in the store still carries its token and that its last renewal is
  younger than the ttl, so a holder that was paused past its lease commits nothing.
  S3 conditional writes are served by AWS S3, Ceph RGW and SeaweedFS; `hold` checks the store
  honours them (object_store.check_conditional_writes, once per process and store) before it
  takes the lease, so a store or proxy that drops the headers fails the step (exit 4) instead of
  letting two writers both win.
- file:// lakes: `flock` on `{lake}/_locks/writer.lock`, which the kernel frees when the holder
  dies; the holder's record is kept in the same file for error messages.

A holder on the same host whose pid is gone is taken over at once (a killed CLI run on a laptop
does not make the next one wait out the ttl).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from deep_storage.core import defaults
from deep_storage.core.config import StoreConfig, lake_bucket
from deep_storage.core.errors import LakeBusyError, LakeStateError

log = logging.getLogger(__name__)

LOCK_KEY = "_locks/writer.json"
_POLL_S = 2.0


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the lease, as recorded in the lake."""

    owner: str  # "host:pid"
    step: str
    days: str
    run_id: str
    since: str
    expires_at: str
    token: int

    def describe(self) -> str:
        return f"{self.step} {self.days} (run {self.run_id}, {self.owner}, since {self.since})"

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def expired(self, now: dt.datetime) -> bool:
        try:
            return dt.datetime.fromisoformat(self.expires_at) <= now
        except ValueError:
            return True

    def dead_here(self) -> bool:
        """True when the holder ran on this host and its process is gone."""
        host, _, pid = self.owner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def settings_from_env(env=None) -> tuple[float, float]:
    """(wait, ttl) in seconds from DEEP_STORAGE_LOCK_WAIT / DEEP_STORAGE_LOCK_TTL."""
    from deep_storage.core.errors import InputError

    env = os.environ if env is None else env
    out = []
    for key, default in (
        ("DEEP_STORAGE_LOCK_WAIT", defaults.LOCK_WAIT_S),
        ("DEEP_STORAGE_LOCK_TTL", defaults.LOCK_TTL_S),
    ):
        text = env.get(key) or str(default)
        try:
            value = float(text)
            if value < 0:
                raise ValueError
        except ValueError:
            raise InputError(f"{key} {text!r} is not a number of seconds >= 0") from None
        out.append(value)
    wait, ttl = out
    if ttl < 3:
        raise InputError(f"DEEP_STORAGE_LOCK_TTL {ttl:g} is too short: expected at least 3 seconds")
    return wait, ttl


class Lease:
    """A held lease. `check()` before every commit; `previous` is the record of a holder that
    died holding it (its run was cut short), else None."""

    def __init__(self, holder: Holder, previous: Holder | None) -> None:
        self.holder = holder
        self.previous = previous

    def check(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _S3Lease(Lease):
    def __init__(self, client, bucket: str, key: str, holder: Holder, etag: str, ttl: float,
                 previous: Holder | None) -> None:  # fmt: skip
        super().__init__(holder, previous)
        self._client, self._bucket, self._key, self._ttl = client, bucket, key, ttl
        self._etag = etag
        self._renewed = time.monotonic()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._renew_loop, name="lake-lease", daemon=True)
        self._thread.start()

    def _body(self) -> bytes:
        expires = _now() + dt.timedelta(seconds=self._ttl)
        self.holder = Holder(**{**asdict(self.holder), "expires_at": expires.isoformat()})
        return json.dumps(asdict(self.holder)).encode()

    def _renew_loop(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        while not self._stop.wait(self._ttl / 3):
            with self._lock:
                try:
                    resp = self._client.put_object(
                        Bucket=self._bucket, Key=self._key, Body=self._body(), IfMatch=self._etag
                    )
                    self._etag, self._renewed = resp["ETag"], time.monotonic()
                except ClientError as exc:
                    if _status(exc) == 412:
                        self._lost = "another run took the writer lease over"
                        return
                    log.warning("writer lease: renewal failed (%s); retrying", _code(exc))
                except BotoCoreError as exc:
                    log.warning("writer lease: renewal failed (%s); retrying", type(exc).__name__)

    def check(self) -> None:
        with self._lock:
            age = time.monotonic() - self._renewed
            if self._lost is None and age > self._ttl * 0.8:
                self._lost = f"the lease was last renewed {age:.0f} s ago (ttl {self._ttl:g} s)"
            if self._lost is None:
                current = _get(self._client, self._bucket, self._key)
                if current is None or current[1].token != self.holder.token:
                    self._lost = "the lease in the lake is no longer this run's"
        if self._lost:
            raise LakeStateError(
                f"{self.holder.step} {self.holder.days} lost the lake's writer lease "
                f"({self._lost}): nothing more is committed; re-run the step"
            )

    def release(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._lost:
                return
            try:
                self._client.delete_object(Bucket=self._bucket, Key=self._key, IfMatch=self._etag)
            except (ClientError, BotoCoreError) as exc:
                log.warning("writer lease: release failed (%s); it expires by itself", exc)


class _LocalLease(Lease):
    def __init__(self, fd: int, holder: Holder, previous: Holder | None) -> None:
        super().__init__(holder, previous)
        self._fd = fd

    def check(self) -> None:
        return None  # flock is held by the kernel for as long as this process lives

    def release(self) -> None:
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _status(exc) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", _status(exc)))


def _get(client, bucket: str, key: str) -> tuple[str, Holder] | None:
    from botocore.exceptions import ClientError

    try:
        resp = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _status(exc) == 404 or _code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    holder = Holder.from_json(resp["Body"].read().decode("utf-8", "replace"))
    if holder is None:  # a torn or foreign body: treat as expired
        holder = Holder("?:?", "?", "?", "?", "?", "1970-01-01T00:00:00+00:00", 0)
    return resp["ETag"], holder


def _busy(holder: Holder, waited: float) -> LakeBusyError:
    return LakeBusyError(
        f"the lake is being written by {holder.describe()}; waited {waited:.0f} s: "
        "wait for it to finish, or raise DEEP_STORAGE_LOCK_WAIT"
    )


def _acquire_s3(lake, store, me: Holder, wait: float, ttl: float) -> _S3Lease:
    from botocore.exceptions import BotoCoreError, ClientError

    from deep_storage.io.object_store import s3_client

    client = s3_client(store)
    bucket = lake_bucket(lake)
    prefix = urlsplit(lake).path.strip("/")
    key = f"{prefix}/{LOCK_KEY}" if prefix else LOCK_KEY
    started = time.monotonic()
    previous: Holder | None = None
    while True:
        try:
            current = _get(client, bucket, key)
            token = (current[1].token if current else 0) + 1
            holder = Holder(**{**asdict(me), "token": token})
            expires = (_now() + dt.timedelta(seconds=ttl)).isoformat()
            body = json.dumps({**asdict(holder), "expires_at": expires}).encode()
            if current is None:
                resp = client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            elif current[1].expired(_now()) or current[1].dead_here():
                resp = client.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=current[0])
                previous = current[1]
                log.warning(
                    "writer lease: took over from %s, which stopped without releasing it",
                    current[1].describe(),
                )
            else:
                waited = time.monotonic() - started
                if waited >= wait:
                    raise _busy(current[1], waited)
                log.info("writer lease: held by %s; waiting", current[1].describe())
                time.sleep(min(_POLL_S, max(0.1, wait - waited)))
                continue
        except ClientError as exc:
            if _status(exc) in (409, 412):
                continue  # another run won the race: look again
            raise LakeStateError(
                f"cannot take the writer lease {key} in bucket {bucket!r}: {_code(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise LakeStateError(f"cannot take the writer lease {key}: {exc}") from None
        holder = Holder(**{**asdict(holder), "expires_at": expires})
        return _S3Lease(client, bucket, key, holder, resp["ETag"], ttl, previous)


def _acquire_local(lake: str, me: Holder, wait: float) -> _LocalLease:
    folder = Path(urlsplit(lake).path) / "_locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= wait:
                os.close(fd)
                holder = Holder.from_json(path.read_text() or "{}") or Holder(
                    "?", "another run", "?", "?", "?", "", 0
                )
                raise _busy(holder, waited) from None
            time.sleep(min(0.5, max(0.05, wait - waited)))
    previous = Holder.from_json(os.pread(fd, 65536, 0).decode("utf-8", "replace") or "{}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
    return _LocalLease(fd, me, previous)


@contextlib.contextmanager
def hold(
    lake: str,
    step: str,
    days: str,
    run_id: str,
    store: StoreConfig | None = None,
    *,
    wait_s: float | None = None,
    ttl_s: float | None = None,
) -> Iterator[Lease]:
    """Hold the lake's writer lease for the block; wait up to `wait_s` for a live holder."""
    env_wait, env_ttl = settings_from_env()
    wait = env_wait if wait_s is None else wait_s
    ttl = env_ttl if ttl_s is None else ttl_s
    me = Holder(
        owner=f"{socket.gethostname()}:{os.getpid()}",
        step=step,
        days=days,
        run_id=run_id,
        since=_now().isoformat(timespec="seconds"),
        expires_at="",
        token=0,
    )
    if lake.startswith("s3a://"):
        from deep_storage.io.object_store import check_conditional_writes

        store = store or StoreConfig.from_env()
        check_conditional_writes(store, lake)
        lease: Lease = _acquire_s3(lake, store, me, wait, ttl)
    else:
        lease = _acquire_local(lake, me, wait)
    log.info("writer lease: %s holds %s (token %d)", step, lake, lease.holder.token)
    try:
        yield lease
    finally:
        lease.release()
