"""The HTTP side of ``posttrain serve``: a threaded server with limits, and the request handler.

Limits (``Limits``; CLI flags of the same names), each with a clear status and a JSON error body:

* ``max_body_bytes`` (1 MiB): a larger ``Content-Length`` gets 413 before the body is read; a missing
  one (or chunked encoding) 411; a malformed one 400; a body that is not JSON 400.
* ``read_timeout`` (10 s): the whole request (headers and body) must arrive within it. A reaper thread
  half-closes connections past their deadline, so a slowloris client that sends one byte at a time
  cannot hold a thread: a partial body gets 408, partial headers a closed connection.
* ``max_connections`` (64): connections handled at once; one more gets a 503 and is closed at
  accept, so no thread is started for it.
* ``max_concurrency`` (8): requests admitted to generation (running or waiting for the model, which
  generates one request at a time); one more gets 503 with ``Retry-After: 1``.

A client that disconnects mid-response is counted (``/health``), not printed as a traceback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from posttrain.config.commands import ServeConfig

_KINDS = {404: "not_found_error", 408: "timeout_error", 503: "server_overloaded"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = _KINDS.get(self.status, "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = ServeConfig.max_body_bytes  # the defaults live in `posttrain serve`'s schema
    max_concurrency: int = ServeConfig.max_concurrency
    max_connections: int = ServeConfig.max_connections
    read_timeout: float = ServeConfig.read_timeout

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_concurrency", "max_connections", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _raw_error(status: int, reason: str, err: ApiError) -> bytes:
    data = json.dumps(err.body()).encode()
    head = (
        f"HTTP/1.0 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


class LimitedServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a connection cap, an admission cap, read deadlines and counters."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, limits: Limits):
        self.limits = limits
        self.connections = threading.BoundedSemaphore(limits.max_connections)
        self.admission = threading.BoundedSemaphore(limits.max_concurrency)
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._reading: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._closed = threading.Event()
        super().__init__(address, handler)
        threading.Thread(target=self._reap, name="serve-reaper", daemon=True).start()

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def reading(self, sock: socket.socket, on: bool) -> None:
        """Start or stop the read deadline of ``sock`` (started when a connection is accepted)."""
        with self._lock:
            if on:
                self._reading[sock] = time.monotonic() + self.limits.read_timeout
            else:
                self._reading.pop(sock, None)

    def expired(self, sock: socket.socket) -> bool:
        """Whether ``sock`` ran past its read deadline (its request arrived incomplete)."""
        with self._lock:
            return sock in self._expired

    def _reap(self) -> None:
        while not self._closed.wait(0.1):
            now = time.monotonic()
            with self._lock:
                late = [s for s, t in self._reading.items() if t < now]
                for s in late:
                    del self._reading[s]
                self._expired.update(late)
            for s in late:
                self.count("read_timeouts")
                try:
                    s.shutdown(socket.SHUT_RD)  # the blocked read returns EOF; a 408 can still be written
                except OSError:
                    pass

    def process_request(self, request, client_address) -> None:
        if not self.connections.acquire(blocking=False):
            self.count("refused_connections")
            err = ApiError(503, f"too many connections (max_connections={self.limits.max_connections})")
            try:
                request.settimeout(0.5)
                request.sendall(_raw_error(503, "Service Unavailable", err))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            self.reading(request, True)
            super().process_request_thread(request, client_address)
        finally:
            self.reading(request, False)
            with self._lock:
                self._expired.discard(request)
            self.connections.release()

    def handle_error(self, request, client_address) -> None:  # a vanished client is not a crash
        self.count("connection_errors")

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


class Handler(BaseHTTPRequestHandler):
    server_version = "posttrain-serve/0.1"
    engine: Any  # set by make_server
    server: LimitedServer

    def setup(self) -> None:
        # the reaper ends the request at read_timeout (408); a per-recv timeout is only the backstop
        self.timeout = 2 * self.server.limits.read_timeout
        super().setup()

    def log_message(self, fmt: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(fmt, *args)

    def _send(self, status: int, obj: dict[str, Any], retry: bool = False) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client went away
            self.server.count("connection_errors")
        self.server.count(f"status_{status}")

    def _linger(self) -> None:
        """After an error sent before the body was read: stop writing and drain briefly, so the client
        reads the response instead of a reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            end = time.monotonic() + 1.0
            while time.monotonic() < end and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.reading(self.connection, False)
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, self.engine.models())
        if self.path.rstrip("/") == "/health":
            limits = self.server.limits
            return self._send(200, {"status": "ok", **dict(self.server.stats), "limits": limits.__dict__})
        self._send(404, ApiError(404, f"unknown path {self.path}", None, "not_found").body())

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ApiError(
                411, "chunked bodies are not supported; send Content-Length", None, "length_required"
            )
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, "Content-Length is required", None, "length_required")
        if not length.strip().isdigit():
            raise ApiError(400, f"bad Content-Length {length!r}", None, "invalid_length")
        n, limit = int(length), self.server.limits.max_body_bytes
        if n > limit:
            raise ApiError(
                413,
                f"request body is {n} bytes; the limit is {limit} (--max-body-bytes)",
                None,
                "body_too_large",
            )
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.rfile.read1(n - got)
            except (TimeoutError, OSError):
                chunk = b""
            if not chunk:
                t = self.server.limits.read_timeout
                raise ApiError(
                    408, f"request body incomplete after {t:g} s ({got} of {n} bytes)", None, "timeout"
                )
            chunks.append(chunk)
            got += len(chunk)
        self.server.reading(self.connection, False)
        return b"".join(chunks)

    def do_POST(self) -> None:  # noqa: N802
        path, read = self.path.rstrip("/"), False
        try:
            if self.server.expired(self.connection):
                t = self.server.limits.read_timeout
                raise ApiError(408, f"request headers incomplete after {t:g} s", None, "timeout")
            if path not in ("/v1/chat/completions", "/v1/completions"):
                raise ApiError(404, f"unknown path {self.path}", None, "not_found")
            raw, read = self._body(), True
            try:
                body = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise ApiError(400, f"request body is not valid JSON: {e}", None, "invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object", None, "invalid_json")
            if not self.server.admission.acquire(blocking=False):
                n = self.server.limits.max_concurrency
                raise ApiError(
                    503, f"server busy: {n} requests in flight (max_concurrency); retry", None, "busy"
                )
            self.server.count("in_flight")
            try:
                self._send(200, self.engine.handle(path, body))
            finally:
                self.server.count("in_flight", -1)
                self.server.admission.release()
        except ApiError as e:
            self._send(e.status, e.body(), retry=e.status == 503)
            if not read:
                self._linger()
        except Exception as e:  # a bug or an out-of-memory: report it, keep serving
            self._send(
                500, {"error": {"message": str(e), "type": "server_error", "param": None, "code": None}}
            )
