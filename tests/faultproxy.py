"""A loopback HTTP proxy that answers a share of requests with AWS-style throttling or 503s.

botocore's Stubber bypasses the retry handler, so retries are tested over real HTTP:
boto3 talks to this proxy, which forwards to the moto server except for the requests
it fails. A failed request never reaches moto, as when AWS sheds load before acting.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

import attrs

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>faultproxy</RequestID></Response>"
)
UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>ServiceUnavailable</Code><Message>Service is unavailable.</Message>"
    b"</Error></Errors><RequestID>faultproxy</RequestID></Response>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@attrs.frozen
class Reply:
    """An answer the proxy gives itself instead of forwarding."""

    status: int
    content_type: str
    body: bytes


@attrs.frozen
class Forward:
    """Forward ``body`` upstream, then pass the upstream response body through ``after``.
    ``lost``: the answer never comes back (the connection drops once upstream acted)."""

    body: bytes
    after: Callable[[bytes], bytes] = lambda body: body
    lost: bool = False


class FaultProxy:
    """Forwards to ``upstream``; fails each request with probability ``share``.

    ``delay_s`` holds every forwarded request that long first, as a distant region's
    round trip would (default: none).
    """

    def __init__(self, upstream: str, *, share: float, seed: int = 7, delay_s: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.share = share
        self.delay_s = delay_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.forwarded = 0
        self.failed = 0
        self.failed_actions: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def intercept(self, headers: Mapping[str, str], body: bytes) -> Reply | Forward:
        """Seam for shims built on this proxy (tests/capacityshim.py): answer a request
        here, or rewrite it and its response. The plain proxy forwards as is."""
        return Forward(body)

    def _should_fail(self) -> bool:
        with self._lock:
            return self._random.random() < self.share

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                if self.command != "HEAD":  # a HEAD reply's length describes the absent body
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Content-Length", dict(headers).get("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                if proxy._should_fail():
                    with proxy._lock:
                        proxy.failed += 1
                        proxy.failed_actions.append(f"{self.command} {self.path[:60]}")
                    fault = THROTTLED if proxy.failed % 2 else UNAVAILABLE
                    self._reply(503, [("Content-Type", "text/xml")], fault)
                    return
                time.sleep(proxy.delay_s)
                decided = proxy.intercept(dict(self.headers.items()), body)
                if isinstance(decided, Reply):
                    self._reply(
                        decided.status, [("Content-Type", decided.content_type)], decided.body
                    )
                    return
                body = decided.body
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, timeout=60
                )
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    headers["Host"] = self.headers.get("Host", proxy.upstream.netloc)
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    answer = decided.after(response.read())
                    if decided.lost:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    else:
                        self._reply(response.status, response.getheaders(), answer)
                finally:
                    upstream.close()
                with proxy._lock:
                    proxy.forwarded += 1

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        return Handler
