"""One-pass budgeted generation: the answer continues from the reasoning call's cache.

The two-call path (``budget.two_call``) stops each trace, appends the close and prefills prompt +
trace + close again to generate the answer. Here one ``generate`` call does both: a per-row phase
machine (``_Stream``), fed every appended token by a stopping criterion, forces the close tokens into
the stream through a logits processor exactly where the two-call path would stop and append them.
The answer is decoded from the same KV cache (attention) and conv/SSM state (Mamba): nothing is
prefilled twice, and no answer waits for the batch's longest trace.

Exactness. The two-call path re-tokenizes ``prompt + decode(trace) + close``; the stream holds
``prompt ids + trace ids + close ids``. Where the two token sequences are equal the model sees the same
context, so greedy decoding continues identically. Rows where they differ (a non-canonical
tokenization, or a special token that decoding drops) and rows that emit EOS inside an open trace (the
two-call path drops that EOS and closes the trace) come back as ``None`` and are re-run by the two-call
path, so greedy outputs equal the two-call path's by construction. The caller counts the re-runs.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from posttrain.reasoning import THINK_CLOSE, close_for

# What the two-call path knows about one row: trace ids, trace ended by EOS, text so far (trace [+
# close]), answer ids (EOS included when there is one), answer ended by EOS.
Row = tuple[list[int], bool, str, list[int], bool]


class _Stream:
    """Per-row phases think -> (force ->) answer -> done, advanced by each appended token.

    Mirrors ``budget.TraceStop``: a trace that closes itself runs on into its answer; after ``budget``
    tokens the first newline token ends it and ``cap`` tokens hard-cut it, and then the close is forced
    one token per step. Only generated tokens count against ``max_tokens``, never forced ones.
    """

    def __init__(self, tok, texts, budget, cap, max_tokens, close, close_id, nl_mask, eos):
        self.tok, self.texts, self.close, self.close_id = tok, texts, close, close_id
        self.budget, self.cap, self.max_tokens, self.nl, self.eos = budget, cap, max_tokens, nl_mask, eos
        n = len(texts)
        self.phase, self.free, self.length = ["think"] * n, [0] * n, [0] * n
        self.queue: list[list[int]] = [[] for _ in range(n)]
        self.forced: list[list[int]] = [[] for _ in range(n)]
        self.close_str = [""] * n
        self.trace_end = [-1] * n  # generated tokens before the answer starts (two-call pause point)
        self.prompt_len = -1
        if cap == 0:  # budget 0: no trace, close at once
            for r in range(n):
                self._force(r, [])

    def _force(self, r: int, gen: list[int]) -> None:
        s = close_for(self.texts[r] + self.tok.decode(gen, skip_special_tokens=True), self.close)
        ids = self.tok(s, add_special_tokens=False)["input_ids"]
        self.close_str[r], self.trace_end[r], self.phase[r] = s, len(gen), "force"
        self.queue[r], self.forced[r] = list(ids), list(ids)

    def mask(self, scores: torch.FloatTensor) -> torch.FloatTensor:
        for r, q in enumerate(self.queue):
            if self.phase[r] == "force" and q:
                scores[r] = float("-inf")
                scores[r, q[0]] = 0.0
        return scores

    def step(self, input_ids: torch.LongTensor) -> torch.BoolTensor:
        t = input_ids.shape[1] - self.prompt_len
        for r, x in enumerate(input_ids[:, -1].tolist()):
            ph = self.phase[r]
            if ph == "done":
                continue
            self.length[r] = t
            if ph == "force":
                self.queue[r].pop(0)
                if not self.queue[r]:
                    self.phase[r] = "done" if self.free[r] >= self.max_tokens else "answer"
                continue
            self.free[r] += 1
            if x in self.eos or (ph == "answer" and self.free[r] >= self.max_tokens):
                self.phase[r] = "done"  # in an open trace: a re-run (trace_end stays -1)
            elif ph == "answer":
                continue
            elif x == self.close_id:  # the two-call path pauses at B, or here when later
                self.trace_end[r] = max(self.budget, t)
                self.phase[r] = "done" if self.free[r] >= self.max_tokens else "answer"
            elif (t > self.budget and bool(self.nl[min(x, len(self.nl) - 1)])) or t >= self.cap:
                self._force(r, input_ids[r, self.prompt_len :].tolist())
        return torch.tensor([p == "done" for p in self.phase], dtype=torch.bool, device=input_ids.device)


class _Force(LogitsProcessor):
    def __init__(self, stream: _Stream):
        self.stream = stream

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.stream.prompt_len < 0:
            self.stream.prompt_len = input_ids.shape[1]
        return self.stream.mask(scores)


class _Watch(StoppingCriteria):
    def __init__(self, stream: _Stream):
        self.stream = stream

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return self.stream.step(input_ids)


def one_pass(
    run,
    texts: list[str],
    budget: int,
    cap: int,
    max_tokens: int,
    close: str | None,
    close_id: int,
    nl_mask: torch.Tensor,
) -> list[Row | None]:
    """The two-call path's ``Row`` for each text from single ``generate`` calls per batch; ``None``
    where the row must be re-run by the two-call path (see the module docstring)."""
    tok, out = run.tok, []
    longest = max_tokens + len(tok(close_for("", close), add_special_tokens=False)["input_ids"]) + 1
    for s in run.batches(len(texts), "reasoning + answer"):
        chunk = texts[s : s + run.batch_size]
        st = _Stream(tok, chunk, budget, cap, max_tokens, close, close_id, nl_mask, run.eos)
        # EOS is the stream's business: one inside an open trace is not the end
        gen = run.generate(chunk, longest, _Watch(st), extra=[_Force(st)], stop_at_eos=False)
        for r, text in enumerate(chunk):
            prompt = tok(text, add_special_tokens=False)["input_ids"]
            ids = gen[r][: st.length[r]]
            out.append(_row(tok, text, prompt, ids, st, r))
    return out


def _row(tok, text: str, prompt: list[int], ids: list[int], st: _Stream, r: int) -> Row | None:
    end, forced = st.trace_end[r], st.forced[r]
    if end < 0:
        return None
    e = next((i for i, x in enumerate(ids) if x in st.eos), None)
    if not forced and e is not None and e < end:  # closed, and finished before the pause point
        return ids[:e], True, tok.decode(ids[:e], skip_special_tokens=True), [], False
    trace, ans = ids[:end], ids[end + len(forced) :]
    gen = tok.decode(trace, skip_special_tokens=True)
    if forced and THINK_CLOSE in gen:
        return None  # a close spelled in several tokens: the two-call path sees it as closed
    so_far = gen + st.close_str[r]
    if tok(text + so_far, add_special_tokens=False)["input_ids"] != prompt + trace + forced:
        return None
    k = next((i for i, x in enumerate(ans) if x in st.eos), None)
    return trace, False, so_far, ans if k is None else ans[: k + 1], k is not None
