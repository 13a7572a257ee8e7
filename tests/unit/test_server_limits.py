"""``posttrain serve`` under abuse: a real server on loopback, flooded with malformed, oversized and
slow requests, answers each with the right status within its read timeout, refuses work beyond its
limits with 503, and still serves a valid request afterwards."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from posttrain.inference.server import Limits, make_server

LIMITS = Limits(max_body_bytes=4096, max_concurrency=2, max_connections=40, read_timeout=1.0)
VALID = {"prompt": "def add(a, b):", "max_tokens": 2}


@pytest.fixture(scope="module")
def server(tiny):
    model, tok = tiny
    srv = make_server(None, "127.0.0.1", 0, model=model, tokenizer=tok, max_context=64, limits=LIMITS)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, body: bytes, *, headers: dict | None = None) -> tuple[int | None, float]:
    """Send a raw POST and wait: the status (None: closed without one) and the seconds until the
    server answered or closed (a short body with a longer Content-Length is a slowloris client)."""
    head = {"Content-Length": str(len(body)), **(headers or {})}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items() if v is not None)
    t0 = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=10) as s:
        try:
            s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode() + body)
        except OSError:
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
    status = int(data.split()[1]) if data.startswith(b"HTTP/") else None
    return status, time.monotonic() - t0


def slow_headers(srv) -> tuple[int | None, float]:
    t0 = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Le")
        data = s.recv(65536)
    return (int(data.split()[1]) if data.startswith(b"HTTP/") else None), time.monotonic() - t0


def drip(srv, head: bytes, every: float = 0.3) -> tuple[int | None, float]:
    """Slowloris: one byte at a time, each well within the per-read timeout, for up to 6 s."""
    t0 = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=10) as s:
        s.sendall(head)
        try:
            while time.monotonic() - t0 < 6:
                s.sendall(b"a")
                time.sleep(every)
        except OSError:  # the server stopped reading
            pass
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
    return (int(data.split()[1]) if data.startswith(b"HTTP/") else None), time.monotonic() - t0


def post(srv, body: dict) -> tuple[int, dict, dict]:
    url = "http://{}:{}/v1/completions".format(*srv.server_address[:2])
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


FLOOD = [
    (lambda s: request(s, b"{not json"), 400),
    (lambda s: request(s, b"[1, 2]"), 400),
    (lambda s: request(s, b"[" * 1500 + b"]" * 1500), 400),
    (lambda s: request(s, b"\xff\xfe"), 400),
    (lambda s: request(s, b"x" * 50_000), 413),
    (lambda s: request(s, b"{}", headers={"Content-Length": "99999999999"}), 413),
    (lambda s: request(s, b"{}", headers={"Content-Length": "-5"}), 400),
    (lambda s: request(s, b"{}", headers={"Content-Length": None}), 411),
    (
        lambda s: request(
            s, b"2\r\n{}\r\n0\r\n\r\n", headers={"Content-Length": None, "Transfer-Encoding": "chunked"}
        ),
        411,
    ),
    (lambda s: request(s, b'{"prompt": "hi"', headers={"Content-Length": "100"}), 408),
    (slow_headers, 408),
    (lambda s: drip(s, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n"), 408),
    (lambda s: drip(s, b"POST /v1/completions HTTP/1.1\r\nX-Slow: "), 408),
]


def test_flood_then_a_valid_request_succeeds(server):
    jobs = [case for case in FLOOD for _ in range(3)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda c: (c[0](server), c[1]), jobs))
    for ((status, seconds), want), case in zip(results, jobs):
        assert status == want, (FLOOD.index(case), status)
        assert seconds < LIMITS.read_timeout + 3, (FLOOD.index(case), seconds)  # nothing hangs
    status, body, _ = post(server, VALID)
    assert status == 200 and body["usage"]["completion_tokens"] == 2
    assert server.stats["read_timeouts"] >= 6  # the drips: only the whole-request deadline stops them


def test_saturation_gives_503_and_the_admitted_requests_finish(server):
    engine = server.RequestHandlerClass.engine
    engine.lock.acquire()  # the model is busy: admitted requests wait for it
    held = True
    try:
        with ThreadPoolExecutor(LIMITS.max_concurrency) as pool:
            waiting = [pool.submit(post, server, VALID) for _ in range(LIMITS.max_concurrency)]
            deadline = time.monotonic() + 30
            while server.stats["in_flight"] < LIMITS.max_concurrency and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.stats["in_flight"] == LIMITS.max_concurrency  # both admitted, both waiting
            status, body, headers = post(server, VALID)
            assert status == 503 and body["error"]["code"] == "busy" and headers["Retry-After"] == "1"
            engine.lock.release()
            held = False
            assert [f.result(timeout=60)[0] for f in waiting] == [200] * LIMITS.max_concurrency
    finally:
        if held:
            engine.lock.release()
    assert post(server, VALID)[0] == 200  # (in_flight drops just after the response is written)


def test_connection_cap_refuses_at_accept_and_idle_sockets_are_closed(server):
    addr = server.server_address[:2]
    idle = [socket.create_connection(addr, timeout=10) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.3)
        with socket.create_connection(addr, timeout=10) as extra:
            assert extra.recv(65536).startswith(b"HTTP/1.0 503")
        t0 = time.monotonic()
        assert all(s.recv(1) == b"" for s in idle)  # the server closed them at the read timeout
        assert time.monotonic() - t0 < LIMITS.read_timeout + 3
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    assert post(server, VALID)[0] == 200


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="max_concurrency"):
        Limits(max_concurrency=0)
