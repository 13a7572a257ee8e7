"""ThinkingBudgetClient: the Nemotron Nano 2 model card's two-call budget algorithm over any OpenAI API.

1. ``POST /v1/chat/completions`` with ``max_tokens = reasoning_budget`` (skipped when the budget is 0).
2. If the reply has no ``</think>``, append the close (model card: ``".\\n</think>\\n\\n"``; ``close=None``
   uses our template's separator, ``"\\n</think>\\n"``, or ``"</think>\\n"`` after a newline).
3. ``POST /v1/completions`` with ``prompt = chat-templated prompt + reasoning so far + close`` (what the
   model card builds with ``continue_final_message=True``) and ``max_tokens`` = what is left.

Departures from the model card: the tokens left are ``max_tokens`` minus the server-reported
``usage.completion_tokens`` of call 1 (the inserted close is not counted, no client-side re-tokenizing);
a first reply that closed its trace and ended (``finish_reason == "stop"``) is returned without a second
call; a reply that closed its trace but ran out is continued as is (no second close).
Only the standard library is used (``urllib``), so it runs anywhere.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from posttrain.reasoning import MODEL_CARD_CLOSE, TEMPLATE_CLOSE, THINK_CLOSE, close_for, split


class ClientError(Exception):
    """The server answered with an error (``status``, and its ``error`` object when it sent one)."""

    def __init__(self, status: int, error: dict[str, Any] | None, text: str):
        super().__init__(f"HTTP {status}: {(error or {}).get('message', text)}")
        self.status, self.error = status, error


class ThinkingBudgetClient:
    """Budgeted chat over an OpenAI-compatible server (vLLM, ``posttrain serve`` ...).

    Give either ``tokenizer`` (its chat template renders the raw prompt) or ``render(messages, tools)``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        tokenizer: Any = None,
        render: Callable[[list[dict[str, Any]], list[Any] | None], str] | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
    ):
        if tokenizer is None and render is None:
            raise ValueError("ThinkingBudgetClient needs a tokenizer or a render(messages, tools) callable")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.render = render or (
            lambda msgs, tools=None: tokenizer.apply_chat_template(
                msgs, tools=tools or None, add_generation_prompt=True, tokenize=False
            )
        )

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                err = json.loads(text).get("error")
            except (json.JSONDecodeError, AttributeError):
                err = None
            raise ClientError(e.code, err if isinstance(err, dict) else None, text) from None

    def chat_completion(
        self,
        messages: list[dict[str, Any]],
        *,
        reasoning_budget: int,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        tools: list[Any] | None = None,
        close: str | None = MODEL_CARD_CLOSE,
    ) -> dict[str, Any]:
        """Returns ``reasoning_content``, ``content``, ``finish_reason``, ``forced_close``, ``completion_tokens``."""
        if not 0 <= reasoning_budget <= max_tokens:
            raise ValueError(
                f"reasoning_budget must be in [0, max_tokens={max_tokens}], got {reasoning_budget}"
            )
        common = {"model": self.model, "temperature": temperature, "top_p": top_p}
        text, finish, used = "", "length", 0
        if reasoning_budget > 0:
            body = {
                **common,
                "messages": messages,
                "max_tokens": reasoning_budget,
                **({"tools": tools} if tools else {}),
            }
            choice, usage = self._first(self.post("/chat/completions", body))
            msg = choice["message"]
            text = msg.get("content") or ""
            if msg.get("reasoning_content") is not None:  # a server with a reasoning parser split it off
                text = msg["reasoning_content"] + (
                    f"{TEMPLATE_CLOSE}{text}" if msg.get("content") is not None else ""
                )
            finish, used = (
                choice.get("finish_reason") or "length",
                int(usage.get("completion_tokens", reasoning_budget)),
            )
        prompt = self.render(messages, tools)
        forced = THINK_CLOSE not in text
        if not forced and finish == "stop":
            return self._result(text, "", finish, False, used)
        so_far = text + close_for(prompt + text, close) if forced else text
        left = max_tokens - used
        if left <= 0:
            return self._result(so_far, "", "length", forced, used)
        choice, usage = self._first(
            self.post("/completions", {**common, "prompt": prompt + so_far, "max_tokens": left})
        )
        n = int(usage.get("completion_tokens", 0))
        return self._result(
            so_far, choice.get("text") or "", choice.get("finish_reason") or "length", forced, used + n
        )

    @staticmethod
    def _first(resp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return resp["choices"][0], resp.get("usage") or {}

    @staticmethod
    def _result(so_far: str, more: str, finish: str, forced: bool, used: int) -> dict[str, Any]:
        head, tail, _ = split(so_far + more)
        return {
            "reasoning_content": head.strip(),
            "content": tail.lstrip("\n"),
            "text": so_far + more,
            "finish_reason": finish,
            "forced_close": forced,
            "completion_tokens": used,
        }
