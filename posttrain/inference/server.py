"""``posttrain serve``: a small OpenAI-compatible HTTP server over HF generation.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``. One generation
runs at a time (a lock); greedy unless ``temperature > 0`` (default 0). Supported fields: ``model``,
``messages``/``prompt``, ``max_tokens`` (default: what is left of the context), ``temperature``,
``top_p``, ``stop``, ``n`` (1 only), ``seed``, ``tools``, ``chat_template_kwargs``, and vLLM's
``add_generation_prompt`` / ``continue_final_message`` (top level or inside ``chat_template_kwargs``) and
``return_token_ids`` (``/v1/completions``: the choice's ``token_ids``, the generated ids, EOS included,
not cut at a ``stop`` string; not with ``thinking_budget``).

Like vLLM without a reasoning parser, chat ``content`` is the raw completion (reasoning, ``</think>``
and answer), which is what the model card's ThinkingBudgetClient expects. ``continue_final_message``
renders the earlier turns with the generation prompt and appends the final assistant content verbatim
(a leading ``<think>`` opener in it is dropped, the prompt has one): Nano 2's template re-inserts
``</think>`` around assistant content, so HF's truncation of the rendered turn would not continue it.
Extension: ``thinking_budget`` (+ ``thinking_grace_tokens``, default 500) runs the server-side budget of
``posttrain.inference.budget`` (trace ended at the next newline after the budget, or hard-cut later).
Errors are JSON ``{"error": {"message", "type", "param", "code"}}`` with 4xx codes. Request size,
concurrency, connections and read time are bounded (``posttrain.inference.http.Limits``: 413, 503, 408,
400 for malformed JSON); ``GET /health`` reports the limits and counters.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from posttrain import PosttrainError
from posttrain.inference.budget import DEFAULT_GRACE_TOKENS, _eos_ids, _first_eos, generate_budgeted
from posttrain.inference.http import ApiError, Handler, LimitedServer, Limits
from posttrain.reasoning import THINK_CLOSE, THINK_OPEN

__all__ = ["ApiError", "Engine", "Limits", "make_server", "serve_main"]


class Engine:
    """Holds the model and tokenizer; turns validated requests into completions."""

    def __init__(self, model, tok, name: str, max_context: int | None = None):
        self.model, self.tok, self.name = model.eval(), tok, name
        cfg_len = getattr(model.config, "max_position_embeddings", None)
        self.max_context = int(max_context or cfg_len or tok.model_max_length)
        self.eos = _eos_ids(model, tok)
        self.lock = threading.Lock()

    def render_chat(self, body: dict[str, Any]) -> str:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ApiError(400, "'messages' is required: a non-empty list of messages", "messages", "missing")
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, "each message needs a string 'role'", "messages", "invalid_value")
            if isinstance(m.get("content"), list):  # OpenAI content parts: keep the text parts
                m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
        kw = dict(body.get("chat_template_kwargs") or {})
        cont = bool(kw.pop("continue_final_message", body.get("continue_final_message", False)))
        add_gen = bool(kw.pop("add_generation_prompt", body.get("add_generation_prompt", not cont)))
        tools = body.get("tools")
        if cont and add_gen:
            raise ApiError(
                400, "continue_final_message needs add_generation_prompt=false", "continue_final_message"
            )
        try:
            if cont:
                if msgs[-1].get("role") != "assistant":
                    raise ApiError(400, "continue_final_message needs a final assistant message", "messages")
                head = self.tok.apply_chat_template(
                    msgs[:-1], tools=tools, add_generation_prompt=True, tokenize=False, **kw
                )
                tail = msgs[-1].get("content") or ""
                if head.endswith(THINK_OPEN + "\n") and tail.startswith(THINK_OPEN):
                    tail = tail[len(THINK_OPEN) :].lstrip("\n")
                elif head.endswith(THINK_OPEN + THINK_CLOSE) and tail.startswith(THINK_OPEN + THINK_CLOSE):
                    tail = tail[len(THINK_OPEN + THINK_CLOSE) :]
                return head + tail
            return self.tok.apply_chat_template(
                msgs, tools=tools, add_generation_prompt=add_gen, tokenize=False, **kw
            )
        except ApiError:
            raise
        except Exception as e:  # template errors (unknown role ...) are the client's fault
            raise ApiError(400, f"cannot apply the chat template: {e}", "messages", "invalid_value") from None

    def params(self, body: dict[str, Any], n_prompt: int, what: str) -> dict[str, Any]:
        if n_prompt >= self.max_context:  # no room left for a single new token
            raise ApiError(
                400,
                f"This model's maximum context length is {self.max_context} tokens; the {what} has {n_prompt}",
                what,
                "context_length_exceeded",
            )
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = self.max_context - n_prompt
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
            msg = f"max_tokens must be a positive integer, got {max_tokens!r}"
            raise ApiError(400, msg, "max_tokens", "invalid_value")
        if n_prompt + max_tokens > self.max_context:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.max_context} tokens; you requested "
                f"{n_prompt + max_tokens} ({n_prompt} in the {what}, {max_tokens} in the completion)",
                "max_tokens",
                "context_length_exceeded",
            )
        temperature = body.get("temperature", 0.0)
        top_p = body.get("top_p", 1.0)
        for key, val in (("temperature", temperature), ("top_p", top_p)):
            if not isinstance(val, (int, float)) or isinstance(val, bool) or val < 0:
                raise ApiError(400, f"{key} must be a non-negative number", key, "invalid_value")
        if body.get("n", 1) != 1:
            raise ApiError(400, "only n=1 is supported", "n", "invalid_value")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ApiError(400, "stop must be a string or a list of strings", "stop", "invalid_value")
        return {
            "max_tokens": max_tokens,
            "temperature": float(temperature),
            "top_p": float(top_p),
            "stop": stop,
        }

    @torch.no_grad()
    def complete(
        self, prompt_ids: list[int], p: dict[str, Any], seed: int | None = None
    ) -> tuple[str, str, list[int]]:
        """Generate from token ids; returns (text, finish_reason, generated ids, EOS included)."""
        ids = torch.tensor([prompt_ids], device=self.model.device)
        sample = p["temperature"] > 0
        with self.lock:
            if seed is not None:
                torch.manual_seed(int(seed))
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=p["max_tokens"],
                do_sample=sample,
                temperature=p["temperature"] if sample else None,
                top_p=p["top_p"] if sample else None,
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=self.tok.eos_token_id,
                stop_strings=p["stop"] or None,
                tokenizer=self.tok if p["stop"] else None,
            )
        new = out[0, len(prompt_ids) :].tolist()
        e = _first_eos(new, self.eos)
        finish = "stop" if e is not None else "length"
        new = new if e is None else new[: e + 1]
        text = self.tok.decode(new, skip_special_tokens=True)
        for s in p["stop"]:
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        return text, finish, new

    def budgeted(self, prompt: str, p: dict[str, Any], body: dict[str, Any]) -> tuple[str, str, int]:
        """Server-side budget (extension): ``thinking_budget`` [+ ``thinking_grace_tokens``], see budget.py."""
        budget, grace = body["thinking_budget"], body.get("thinking_grace_tokens", DEFAULT_GRACE_TOKENS)
        for key, v in (("thinking_budget", budget), ("thinking_grace_tokens", grace)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ApiError(400, f"{key} must be a non-negative integer, got {v!r}", key, "invalid_value")
        if budget > p["max_tokens"] or p["stop"]:
            msg = "thinking_budget must be <= max_tokens and cannot be combined with stop"
            raise ApiError(400, msg, "thinking_budget", "invalid_value")
        with self.lock:
            (o,) = generate_budgeted(
                self.model,
                self.tok,
                [prompt],
                budget=budget,
                max_tokens=p["max_tokens"],
                grace_tokens=grace,
                temperature=p["temperature"],
                top_p=p["top_p"],
            )
        return o.text, o.finish_reason, o.total_tokens

    def handle(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model is not None and model != self.name:
            msg = f"The model `{model}` does not exist; this server serves `{self.name}`"
            raise ApiError(404, msg, "model", "model_not_found")
        chat = path == "/v1/chat/completions"
        if chat:
            prompt, what = self.render_chat(body), "messages"
        else:
            prompt, what = body.get("prompt"), "prompt"
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise ApiError(400, "'prompt' is required: a string", "prompt", "missing")
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"]
        p = self.params(body, len(ids), what)
        new = None
        if body.get("thinking_budget") is not None:
            if body.get("return_token_ids"):
                msg = "return_token_ids cannot be combined with thinking_budget"
                raise ApiError(400, msg, "return_token_ids", "invalid_value")
            text, finish, n = self.budgeted(prompt, p, body)
        else:
            text, finish, new = self.complete(ids, p, body.get("seed"))
            n = len(new)
        usage = {"prompt_tokens": len(ids), "completion_tokens": n, "total_tokens": len(ids) + n}
        head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": self.name,
        }
        if chat:
            msg = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": []}
            choice = {"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}
            return {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        if body.get("return_token_ids") and new is not None:
            choice["token_ids"] = new
        return {**head, "object": "text_completion", "choices": [choice], "usage": usage}

    def models(self) -> dict[str, Any]:
        card = {
            "id": self.name,
            "object": "model",
            "created": 0,
            "owned_by": "posttrain",
            "max_model_len": self.max_context,
        }
        return {"object": "list", "data": [card]}


def make_server(
    checkpoint: str | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_context: int | None = None,
    served_model_name: str | None = None,
    model=None,
    tokenizer=None,
    dtype: str = "float32",
    limits: Limits | None = None,
) -> LimitedServer:
    """Load ``checkpoint`` (or use ``model``/``tokenizer``) and bind; run ``server.serve_forever()`` in a thread.

    ``port=0`` picks a free port (read it from ``server.server_address``). The served model name defaults
    to the checkpoint directory's name; ``limits`` defaults to ``Limits()``.
    """
    from posttrain.models import load_model, load_tokenizer

    if model is None:
        model = load_model(checkpoint, dtype=dtype, what="checkpoint")
    if tokenizer is None:
        tokenizer = load_tokenizer(checkpoint, what="checkpoint")
    name = served_model_name or (Path(checkpoint).name if checkpoint else "posttrain")
    handler = type("BoundHandler", (Handler,), {"engine": Engine(model, tokenizer, name, max_context)})
    return LimitedServer((host, port), handler, limits or Limits())


def serve_main(argv: list[str]) -> int:
    """``posttrain serve <checkpoint> [key=value ...]``; the settings and their defaults are
    ``posttrain.config.commands.ServeConfig``."""
    from posttrain.config.commands import ServeConfig, parse_command

    cfg = parse_command(ServeConfig, argv, "posttrain serve", positional=("checkpoint",))
    if cfg is None:
        return 0
    try:
        limits = Limits(cfg.max_body_bytes, cfg.max_concurrency, cfg.max_connections, cfg.read_timeout)
    except ValueError as e:
        raise PosttrainError(f"posttrain serve: {e}") from None
    server = make_server(
        cfg.checkpoint,
        cfg.host,
        cfg.port,
        max_context=cfg.max_context,
        served_model_name=cfg.served_model_name,
        dtype=cfg.dtype,
        limits=limits,
    )
    host, port = server.server_address[:2]
    engine = server.RequestHandlerClass.engine  # type: ignore[attr-defined]
    print(
        f"serving {engine.name} on http://{host}:{port}/v1 (context {engine.max_context}, {limits})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
