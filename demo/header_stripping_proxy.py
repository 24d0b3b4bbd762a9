"""A reverse proxy on loopback in front of an S3 server that drops the conditional-write headers:
the "store that ignores If-None-Match / If-Match" the tests point the steps at.

Every request is forwarded to the upstream S3 port as it came (same path, query, body and Host
header, so its SigV4 signature still holds), except that `If-None-Match` and `If-Match` are
removed. botocore signs those headers (its SigV4 signer signs every header but a short list of
hop-by-hop ones: auth.SIGNED_HEADERS_BLACKLIST), so a request that loses one no longer matches
its signature, and SeaweedFS would answer 403 SignatureDoesNotMatch, not ignore the condition. The
proxy therefore re-signs such a request with the store's key, as a gateway that rewrites
requests must: SignedHeaders loses the stripped names and the signature is computed again over
the same date, scope and payload hash. Streaming (aws-chunked) payloads chain their chunk
signatures off the seed signature and cannot be re-signed without rewriting the body; the clients
that go through this proxy (boto3 over http) sign the whole payload and send a Content-Length,
which is how the proxy reads a body.

Standard library only (http.server, http.client), threaded. A context manager, like the servers
of local_services.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

STRIPPED = ("if-none-match", "if-match")
# Not forwarded: they describe this hop, not the request. The body is read whole here (no
# transfer-encoding), and the client's `Expect: 100-continue` is answered here.
_HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade")
_HOP = {*_HOP_BY_HOP, "transfer-encoding", "expect"}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<scope>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def resign(method: str, target: str, headers: list[tuple[str, str]], secret_key: str) -> bool:
    """Recompute the SigV4 `Authorization` of a header-authenticated request in place, over the
    headers it still has. False when it cannot be (no or foreign auth, a streaming payload)."""
    index = next((i for i, (k, _) in enumerate(headers) if k.lower() == "authorization"), None)
    if index is None:
        return False
    match = _AUTH.match(headers[index][1])
    values = {k.lower(): v for k, v in headers}
    payload = values.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    if match is None or payload.startswith("STREAMING-") or "x-amz-date" not in values:
        return False
    present = [h for h in match["signed"].split(";") if h in values]
    path, _, query = target.partition("?")
    canonical = "\n".join(
        [
            method,
            path,
            _canonical_query(query),
            *(f"{h}:{' '.join(values[h].split())}" for h in present),
            "",
            ";".join(present),
            payload,
        ]
    )
    scope = match["scope"]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            values["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers[index] = (
        headers[index][0],
        f"AWS4-HMAC-SHA256 Credential={match['key']}/{scope}, "
        f"SignedHeaders={';'.join(present)}, Signature={signature}",
    )
    return True


class HeaderStrippingProxy:
    """Forwards 127.0.0.1:port to `upstream` (an http S3 endpoint), dropping `strip` request
    headers and re-signing what it changed with `secret_key`. `requests` counts the requests
    forwarded; `stripped` records "METHOD path header" for every header it dropped."""

    def __init__(self, upstream: str, secret_key: str, strip: tuple[str, ...] = STRIPPED) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream {upstream!r}: expected http://host:port")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.strip = tuple(h.lower() for h in strip)
        self._secret_key = secret_key
        self.requests = 0
        self.stripped: list[str] = []
        self._lock = threading.Lock()
        self.port = 0  # set by start(), kept after stop() for messages that name it
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers, dropped = [], []
                for name, value in self.headers.items():
                    lname = name.lower()
                    if lname in proxy.strip:
                        dropped.append(lname)
                    elif lname not in _HOP:
                        headers.append((name, value))
                if dropped:
                    resign(self.command, self.path, headers, proxy._secret_key)
                with proxy._lock:
                    proxy.requests += 1
                    proxy.stripped += [f"{self.command} {self.path} {h}" for h in dropped]
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=60
                )
                try:
                    # The client's Host header is kept: it is part of the signature.
                    upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in headers:
                        upstream.putheader(name, value)
                    upstream.endheaders(body or None)
                    resp = upstream.getresponse()
                    data = resp.read()
                    self.send_response_only(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        lname = name.lower()
                        if lname in _HOP or (lname == "content-length" and self.command != "HEAD"):
                            continue
                        self.send_header(name, value)
                    if self.command != "HEAD":
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except OSError as exc:  # upstream down: answer as a gateway would
                    self.send_error(502, f"upstream: {type(exc).__name__}")
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args) -> None:  # the tests read `stripped`, not a log
                return None

        return Handler

    def start(self) -> HeaderStrippingProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="header-stripping-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HeaderStrippingProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
