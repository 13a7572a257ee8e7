"""Bounded loopback load test of a real ``posttrain serve`` process on the tiny model.

    python bench/server_load.py                # ~1-2 min on 2 cores
    python bench/server_load.py --clients 4 --requests 5 --flood 10   # quicker

Phases, each against the server's default limits (``posttrain.inference.http.Limits``):

1. ``concurrent``: ``--clients`` clients x ``--requests`` valid completions each (at most
   ``max_concurrency`` in flight, so every one should get 200): latency p50/p99.
2. ``saturation``: twice ``max_concurrency`` clients at once: 200s and 503s (with Retry-After), no other.
3. ``abuse``: ``--flood`` each of bad JSON, non-object JSON, 2 MiB bodies, a 10 GB Content-Length,
   chunked bodies, slowloris partial bodies, header drips and idle connections, while valid clients
   keep going: each abusive request must get its expected status (or, idle, a close) within the read
   timeout; the valid ones' latency is reported.
4. ``connections``: more idle connections than ``max_connections``: the extra ones get 503 at accept.
5. after: one valid request must succeed and the process must still run.

A crash is the server process exiting or any 5xx other than 503; a hung request is one with no answer
or close within its client timeout. Writes bench/results/server_load.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VALID = {"prompt": "def add(a, b):", "max_tokens": 16}


def start_server(ckpt: Path, log: Path) -> tuple[subprocess.Popen, tuple[str, int]]:
    cmd = [sys.executable, "-m", "posttrain.cli", "serve", str(ckpt), "port=0", "max_context=256"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    line = proc.stdout.readline()  # "serving <name> on http://host:port/v1 (...)"
    hit = re.search(r"http://([\d.]+):(\d+)/v1", line)
    if not hit:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r} {log.read_text()[-2000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
    return proc, (hit.group(1), int(hit.group(2)))


def valid(addr, timeout: float = 120) -> tuple[str, float]:
    url = "http://{}:{}/v1/completions".format(*addr)
    req = urllib.request.Request(
        url, data=json.dumps(VALID).encode(), headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = str(r.status)
    except urllib.error.HTTPError as e:
        status = str(e.code) + ("+retry" if e.headers.get("Retry-After") else "")
    except TimeoutError:
        status = "hung"
    except OSError as e:
        status = f"error:{type(e).__name__}"
    return status, time.perf_counter() - t0


def raw(addr, head: bytes, body: bytes = b"", *, drip: float = 0.0, timeout: float = 30) -> tuple[str, float]:
    """Send ``head`` + ``body`` (``drip``: then one byte per ``drip`` s); the status, ``closed`` or ``hung``."""
    t0 = time.perf_counter()
    data = b""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            try:
                s.sendall(head + body)
                while drip and time.perf_counter() - t0 < timeout:
                    s.sendall(b"a")
                    time.sleep(drip)
            except OSError:
                pass
            while chunk := s.recv(65536):
                data += chunk
    except TimeoutError:
        return "hung", time.perf_counter() - t0
    except OSError:
        pass
    status = data.split()[1].decode() if data.startswith(b"HTTP/") else "closed"
    return status, time.perf_counter() - t0


def post_head(length: int | None, extra: str = "") -> bytes:
    cl = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"POST /v1/completions HTTP/1.1\r\nHost: x\r\n{cl}{extra}\r\n".encode()


def abuse_cases(limits: dict) -> dict:
    big = b"x" * (2 * limits["max_body_bytes"])
    return {
        "bad_json": (lambda a: raw(a, post_head(9), b"{not json"), "400"),
        "non_object_json": (lambda a: raw(a, post_head(6), b"[1, 2]"), "400"),
        "huge_body": (lambda a: raw(a, post_head(len(big)), big), "413"),
        "huge_content_length": (lambda a: raw(a, post_head(10**10), b"{}"), "413"),
        "chunked": (
            lambda a: raw(a, post_head(None, "Transfer-Encoding: chunked\r\n"), b"2\r\n{}\r\n0\r\n\r\n"),
            "411",
        ),
        "slowloris_body": (lambda a: raw(a, post_head(1000), b'{"prompt": ', drip=0.5), "408"),
        "header_drip": (lambda a: raw(a, b"POST /v1/completions HTTP/1.1\r\nX-Slow: ", drip=0.5), "408"),
        "idle_connection": (lambda a: raw(a, b""), "closed"),
    }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(1000 * v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))], 1)


def summary(results: list[tuple[str, float]]) -> dict:
    counts: dict[str, int] = {}
    for status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    ok = [t for s, t in results if s == "200"]
    return {
        "n": len(results),
        "status": dict(sorted(counts.items())),
        "p50_ms": pct(ok, 0.5),
        "p99_ms": pct(ok, 0.99),
    }


def health(addr) -> dict:
    with urllib.request.urlopen("http://{}:{}/health".format(*addr), timeout=30) as r:
        return json.loads(r.read())


def run(clients: int, requests: int, flood: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from posttrain.config.schema import ModelConfig
    from posttrain.models import build_tiny_model, build_tokenizer, save_checkpoint

    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tok = build_tokenizer()
        ckpt = save_checkpoint(*build_tiny_model(ModelConfig(), tokenizer=tok), Path(tmp) / "tiny")
        log = Path(tmp) / "server.log"
        proc, addr = start_server(ckpt, log)
        try:
            limits = health(addr)["limits"]
            for _ in range(3):
                valid(addr)
            phases = {}
            with ThreadPoolExecutor(clients) as pool:
                res = list(pool.map(lambda _: valid(addr), range(clients * requests)))
            phases["concurrent"] = summary(res)
            n_sat = 2 * limits["max_concurrency"]
            with ThreadPoolExecutor(n_sat) as pool:
                res = list(pool.map(lambda _: valid(addr), range(n_sat * 3)))
            phases["saturation"] = summary(res)
            cases = abuse_cases(limits)
            jobs = [(name, fn) for name, (fn, _) in cases.items() for _ in range(flood)]
            background: list[tuple[str, float]] = []
            stop = threading.Event()

            def keep_going():
                while not stop.is_set():
                    background.append(valid(addr))

            workers = [threading.Thread(target=keep_going) for _ in range(max(1, clients // 2))]
            for w in workers:
                w.start()
            deadline = limits["read_timeout"] + 10
            with ThreadPoolExecutor(min(len(jobs), limits["max_connections"] - len(workers) - 4)) as pool:
                out = list(pool.map(lambda j: (j[0], j[1](addr)), jobs))
            stop.set()
            for w in workers:
                w.join()
            abuse = {}
            for name, (_, want) in cases.items():
                got = [r for n, r in out if n == name]
                abuse[name] = {
                    "expected": want,
                    **summary(got),
                    "max_s": round(max(t for _, t in got), 2),
                    "unexpected": sum(s != want for s, _ in got),
                    "over_deadline": sum(t > deadline for _, t in got),
                }
            phases["abuse"] = {"valid_meanwhile": summary(background), "cases": abuse}
            n_conn = limits["max_connections"] + 16
            with ThreadPoolExecutor(n_conn) as pool:
                res = list(pool.map(lambda _: raw(addr, b""), range(n_conn)))
            phases["connections"] = summary(res)
            after = valid(addr)
            alive = proc.poll() is None
            stats = health(addr) if alive else {}
            tracebacks = log.read_text().count("Traceback")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    statuses = [
        phases["concurrent"],
        phases["saturation"],
        phases["abuse"]["valid_meanwhile"],
        phases["connections"],
    ]
    statuses += list(phases["abuse"]["cases"].values())
    all_status = {k: v for p in statuses for k, v in p["status"].items()}
    crashes = int(not alive) + sum(
        v for k, v in all_status.items() if k.startswith("5") and not k.startswith("503")
    )
    hung = sum(v for k, v in all_status.items() if k == "hung") + sum(
        c["over_deadline"] for c in abuse.values()
    )
    valid_phases = statuses[:3]
    errors = sum(v for p in valid_phases for k, v in p["status"].items() if k not in ("200", "503+retry"))
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "model": "tiny NemotronH (random init), max_tokens 16",
        "limits": limits,
        "clients": clients,
        "requests_per_client": requests,
        "flood_per_case": flood,
        "phases": phases,
        "after": {"status": after[0], "ms": round(1000 * after[1], 1)},
        "server_alive": alive,
        "server_stats": {k: v for k, v in stats.items() if k not in ("status", "limits")},
        "crashes": crashes,
        "hung": hung,
        "valid_request_errors": errors,
        "server_tracebacks": tracebacks,
        "unexpected": sum(c["unexpected"] for c in abuse.values()),
        "p50_ms": phases["concurrent"]["p50_ms"],
        "p99_ms": phases["concurrent"]["p99_ms"],
        "seconds": round(time.time() - t_start, 1),
    }


def to_markdown(r: dict) -> str:
    lines = [
        f"# posttrain serve under load ({r['machine']})",
        "",
        f"{r['model']}; limits {r['limits']}. Crashes **{r['crashes']}**, hung **{r['hung']}**, "
        f"unexpected statuses **{r['unexpected']}**, failed valid requests {r['valid_request_errors']}, server "
        f"tracebacks {r['server_tracebacks']}; a valid request afterwards: {r['after']['status']}. "
        f"Ran {r['seconds']} s.",
        "",
        "| phase | requests | statuses | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    rows = [(k, r["phases"][k]) for k in ("concurrent", "saturation")]
    rows += [
        ("valid during abuse", r["phases"]["abuse"]["valid_meanwhile"]),
        ("connections", r["phases"]["connections"]),
    ]
    rows += [
        (f"abuse: {k} (want {v['expected']}, max {v['max_s']} s)", v)
        for k, v in r["phases"]["abuse"]["cases"].items()
    ]
    for name, p in rows:
        lines.append(f"| {name} | {p['n']} | {p['status']} | {p['p50_ms'] or '-'} | {p['p99_ms'] or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--flood", type=int, default=6)
    a = ap.parse_args()
    result = run(a.clients, a.requests, a.flood)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "server_load.md").write_text(to_markdown(result))
    print(to_markdown(result))
    bad = ("crashes", "hung", "unexpected", "valid_request_errors", "server_tracebacks")
    sys.exit(1 if any(result[k] for k in bad) else 0)


if __name__ == "__main__":
    main()
