"""In-process thinking-budget control for any HF causal LM with a Nano 2 style chat template.

Algorithm (per prompt, batched with left padding, greedy when ``temperature == 0``):

1. **Reasoning.** If the prompt opens a trace (its last ``<think>`` is not closed, i.e. it ends with
   ``<think>\\n``), generate at most ``B + grace_tokens`` tokens (never more than ``max_tokens``):
   * the model closes the trace by itself (``</think>`` within the first ``B`` tokens): generation pauses
     at token ``B`` (or at EOS, which finishes the answer);
   * otherwise, once ``B`` tokens are spent, the trace ends at the first token holding a newline, at a
     ``</think>`` the model emits in the grace window, or is hard-cut at ``B + grace_tokens``.
2. **Close.** A trace that did not close itself gets ``close`` appended: by default the template's
   separator ``"\\n</think>\\n"`` (just ``"</think>\\n"`` after a trailing newline, so the text is what
   the template renders for that reasoning); the model card's ``".\\n</think>\\n\\n"`` can be passed.
3. **Answer.** The text so far (prompt + trace [+ close]) is continued with the tokens left of
   ``max_tokens``. By default (``cached=True``, ``one_pass``) the close is forced into the same
   ``generate`` call and the answer continues from its cache; ``two_call`` re-tokenizes the text and
   generates again, as the model card's second, raw ``/v1/completions`` call does. Greedy outputs are
   identical (rows the one pass cannot match token for token are re-run with two calls). With
   ``grace_tokens=0`` this reproduces ``ThinkingBudgetClient`` against ``posttrain serve`` token for token.

Engines. ``budgeted`` runs the algorithm on any runner that can generate traces (step 1) and plain
continuations: ``generate_budgeted`` in process (``_Runner``), ``vllm_server.generate_budgeted_http``
over a server, which cannot stop a row mid-generation: it generates each trace to ``B + grace_tokens``
and ``cut_traces`` cuts it where ``TraceStop`` would have stopped (greedy decoding is causal, so the cut
run is the run that stopping there generates). An engine with its settings bound is a ``Generate``.

``budget=None`` is plain generation (one ``generate`` call, nothing inserted). Prompts that skip
reasoning (``/no_think``: they end with ``<think></think>``) are plain generation too. ``budget=0``
closes the trace at once (no grace window: the window only extends a trace that has started).

Departures from the model card: the inserted close does not count against ``max_tokens`` (only generated
tokens do); a trace that closed itself is not re-closed; the newline grace window is the server-side
variant described for Nano 2 (the model card's client hard-cuts at ``B``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from posttrain.inference.generate import batch_starts, timed_generate
from posttrain.inference.one_pass import Row, one_pass
from posttrain.reasoning import MODEL_CARD_CLOSE, THINK_CLOSE, close_for, opens_trace, reasoning_end, split

__all__ = ["MODEL_CARD_CLOSE", "BudgetResult", "Generate", "budgeted", "generate_budgeted", "opens_trace"]
DEFAULT_GRACE_TOKENS = 500

_NEWLINE_MASKS: WeakKeyDictionary = WeakKeyDictionary()


@dataclass
class BudgetResult:
    """One budgeted completion. ``text`` is the answer to the prompt: trace [+ close] + answer."""

    reasoning: str
    content: str
    text: str
    thinking_tokens: int  # generated reasoning tokens (the inserted close not counted)
    total_tokens: int  # all generated tokens (reasoning + answer)
    forced_close: bool
    finish_reason: str  # "stop" (EOS) or "length"
    reasoning_on: bool


# ``generate(texts, *, budget, progress)``: one engine's budgeted generation with its settings bound (a
# ``functools.partial`` of ``generate_budgeted`` or ``generate_budgeted_http``): what the eval and the
# budget sweep take
Generate = Callable[..., list[BudgetResult]]


def newline_mask(tok) -> torch.Tensor:
    """Boolean mask over the vocabulary: tokens whose decoded text contains a newline (cached per tokenizer)."""
    try:
        return _NEWLINE_MASKS[tok]
    except (KeyError, TypeError):
        pass
    texts = tok.batch_decode([[i] for i in range(len(tok))])
    mask = torch.tensor(["\n" in t for t in texts], dtype=torch.bool)
    try:
        _NEWLINE_MASKS[tok] = mask
    except TypeError:
        pass
    return mask


def _eos_ids(model, tok) -> set[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    return {int(i) for i in ids} | ({int(tok.eos_token_id)} if tok.eos_token_id is not None else set())


class TraceStop(StoppingCriteria):
    """Per-row stop for the reasoning phase (step 1 above); records each row's generated length."""

    def __init__(self, tok, budget: int, close_ids: list[int], nl_mask: torch.Tensor, eos: set[int]):
        self.tok, self.budget, self.prompt_len = tok, budget, -1
        self.close_ids, self.nl_mask, self.eos = close_ids, nl_mask, eos
        self.lengths: dict[int, int] = {}

    def _closed(self, gen: torch.Tensor) -> torch.Tensor:
        if len(self.close_ids) == 1:
            return (gen == self.close_ids[0]).any(dim=1)
        return torch.tensor([THINK_CLOSE in t for t in self.tok.batch_decode(gen)], dtype=torch.bool)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.prompt_len < 0:  # called once per new token, first with prompt + 1 token
            self.prompt_len = input_ids.shape[1] - 1
        gen = input_ids[:, self.prompt_len :]
        t = gen.shape[1]
        last = gen[:, -1].cpu()  # the bookkeeping runs on CPU whatever the model's device
        done = torch.tensor([int(x) in self.eos for x in last], dtype=torch.bool)
        if t == self.budget:
            done |= self._closed(gen).cpu()
        elif t > self.budget:
            done |= self.nl_mask[last.clamp(max=len(self.nl_mask) - 1)]
            done |= self._closed(gen[:, -len(self.close_ids) :]).cpu()
        for i in torch.nonzero(done).flatten().tolist():
            self.lengths.setdefault(i, t)
        return done.to(input_ids.device)


def _first_eos(ids: list[int], eos: set[int]) -> int | None:
    return next((i for i, x in enumerate(ids) if x in eos), None)


class _Runner:
    """Batched, left-padded ``generate`` with fixed sampling settings."""

    def __init__(
        self,
        model,
        tok,
        temperature: float,
        top_p: float,
        batch_size: int,
        procs: list | None,
        progress: str | None = None,
    ):
        self.model, self.tok, self.eos = model, tok, _eos_ids(model, tok)
        self.temperature, self.top_p, self.batch_size, self.procs = temperature, top_p, batch_size, procs
        self.progress = progress

    def batches(self, n: int, phase: str):
        return batch_starts(n, self.batch_size, f"{self.progress} ({phase})" if self.progress else None)

    @torch.no_grad()
    def generate(
        self,
        texts: list[str],
        max_new: int,
        stop: StoppingCriteria | None = None,
        *,
        extra: list | None = None,
        stop_at_eos: bool = True,
    ) -> list[list[int]]:
        """Generated ids per text; ``extra`` logits processors run after the configured ones."""
        tok, sample = self.tok, self.temperature > 0
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        out = timed_generate(
            self.model,
            (self.eos if stop_at_eos else set()) | {tok.pad_token_id},
            **enc,
            max_new_tokens=max_new,
            do_sample=sample,
            temperature=self.temperature if sample else None,
            top_p=self.top_p if sample else None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id if stop_at_eos else None,
            stopping_criteria=StoppingCriteriaList([stop]) if stop is not None else None,
            logits_processor=LogitsProcessorList(procs)
            if (procs := [*(self.procs or []), *(extra or [])])
            else None,
        )
        return [row.tolist() for row in out[:, enc["input_ids"].shape[1] :]]

    def finish(self, texts: list[str], limits: list[int]) -> list[tuple[str, list[int], bool]]:
        """Plain generation with per-row token limits: (text, generated ids, ended by EOS)."""
        res: list[tuple[str, list[int], bool]] = [("", [], False)] * len(texts)
        todo = [i for i, m in enumerate(limits) if m > 0]
        for s in self.batches(len(todo), "answer"):
            idx = todo[s : s + self.batch_size]
            for i, ids in zip(idx, self.generate([texts[i] for i in idx], max(limits[i] for i in idx))):
                ids = ids[: limits[i]]  # greedy is causal: a prefix of a longer run is the shorter run
                e = _first_eos(ids, self.eos)
                ids = ids if e is None else ids[: e + 1]
                res[i] = (self.tok.decode(ids, skip_special_tokens=True), ids, e is not None)
        return res

    def traces(self, texts: list[str], budget: int, cap: int) -> list[tuple[list[int], bool]]:
        """Step 1 for every text: (trace ids without EOS, ended by EOS)."""
        close_ids = self.tok(THINK_CLOSE, add_special_tokens=False)["input_ids"]
        nl = newline_mask(self.tok)
        out: list[tuple[list[int], bool]] = []
        for s in self.batches(len(texts), "reasoning"):
            chunk = texts[s : s + self.batch_size]
            if cap == 0:
                out += [([], False)] * len(chunk)
                continue
            stop = TraceStop(self.tok, budget, close_ids, nl, self.eos)
            for j, ids in enumerate(self.generate(chunk, cap, stop)):
                out.append(_cut(ids, stop.lengths.get(j, cap), self.eos))
        return out


def _cut(ids: list[int], length: int, eos: set[int]) -> tuple[list[int], bool]:
    """A trace stopped after ``length`` generated tokens: (its ids without EOS, ended by EOS)."""
    ids = ids[:length]
    e = _first_eos(ids, eos)
    return (ids if e is None else ids[:e], e is not None)


def cut_traces(
    tok, runs: list[tuple[list[int], bool]], budget: int, cap: int
) -> list[tuple[list[int], bool]]:
    """Step 1 after the fact: each greedy run of ``cap`` tokens (ids without EOS, ended by EOS: then
    shorter) cut where ``TraceStop`` stops it, replayed token by token over the finished runs."""
    if cap == 0 or not runs:
        return [([], False) for _ in runs]
    eos = tok.eos_token_id
    close_ids = tok(THINK_CLOSE, add_special_tokens=False)["input_ids"]
    stop = TraceStop(tok, budget, close_ids, newline_mask(tok), {eos})
    grid = torch.tensor([(ids + [eos] * cap)[:cap] for ids, _ in runs])  # EOS where a run ended
    for t in range(1, cap + 1):
        stop(grid[:, :t], None)
        if len(stop.lengths) == len(runs):
            break
    return [_cut(row, stop.lengths.get(j, cap), {eos}) for j, row in enumerate(grid.tolist())]


def _n_think(tok, ids: list[int], gen: str) -> int:
    """Generated reasoning tokens: those before the last ``</think>`` (all of them when unclosed)."""
    end = reasoning_end(gen)
    if end is None:
        return len(ids)
    close_ids = tok(THINK_CLOSE, add_special_tokens=False)["input_ids"]
    if len(close_ids) == 1 and close_ids[0] in ids:
        return len(ids) - 1 - ids[::-1].index(close_ids[0])
    return len(tok(gen[:end], add_special_tokens=False)["input_ids"])


@torch.no_grad()
def generate_budgeted(
    model,
    tok,
    texts: list[str],
    *,
    budget: int | None,
    max_tokens: int,
    grace_tokens: int = DEFAULT_GRACE_TOKENS,
    close: str | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    logits_processors: list | None = None,
    progress: str | None = None,
    cached: bool = True,
    stats: dict | None = None,
) -> list[BudgetResult]:
    """Continue each chat-templated ``text`` with at most ``budget`` thinking tokens (+ the grace window).

    ``max_tokens`` caps all generated tokens (reasoning + answer). ``logits_processors`` go to every
    ``generate`` call; ``progress`` (a label) shows a progress bar over batches. ``cached`` (default)
    continues each answer from its trace's cache in one call (``one_pass``; rows it cannot match
    token for token are re-run with two calls); ``stats``, if given, counts ``one_pass``/``two_call`` rows. Raises ``ValueError``
    for a negative budget, a budget over ``max_tokens`` or a negative grace window.
    """
    model.eval()
    run = _Runner(model, tok, temperature, top_p, batch_size, logits_processors, progress)
    old_side, tok.padding_side = tok.padding_side, "left"
    try:
        return budgeted(
            run, texts, budget=budget, max_tokens=max_tokens, grace_tokens=grace_tokens, close=close,
            cached=cached, stats=stats,
        )  # fmt: skip
    finally:
        tok.padding_side = old_side


def budgeted(
    run,
    texts: list[str],
    *,
    budget: int | None,
    max_tokens: int,
    grace_tokens: int,
    close: str | None = None,
    cached: bool = False,
    stats: dict | None = None,
) -> list[BudgetResult]:
    """Steps 1-3 on a runner: ``run.tok``, ``run.traces(texts, budget, cap)`` -> (trace ids without EOS,
    ended by EOS) and ``run.finish(texts, limits)`` -> (text, ids with EOS, ended by EOS); ``cached``
    (``one_pass``) needs the in-process ``_Runner``. Validates as ``generate_budgeted`` documents."""
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    if budget is not None and not 0 <= budget <= max_tokens:
        raise ValueError(f"budget must be in [0, max_tokens={max_tokens}] or None, got {budget}")
    if grace_tokens < 0:
        raise ValueError(f"grace_tokens must be >= 0, got {grace_tokens}")
    tok = run.tok
    on = [opens_trace(t) for t in texts]
    think = [i for i in range(len(texts)) if on[i] and budget is not None]
    plain = [i for i in range(len(texts)) if not (on[i] and budget is not None)]
    results: list[BudgetResult | None] = [None] * len(texts)
    outs = run.finish([texts[i] for i in plain], [max_tokens] * len(plain))
    for i, (text, ids, ended) in zip(plain, outs):
        reasoning, content = split(text)[:2] if on[i] else ("", text)
        k = _n_think(tok, ids, text) if on[i] else 0
        finish = "stop" if ended else "length"
        results[i] = BudgetResult(reasoning, content, text, k, len(ids), False, finish, on[i])
    if think:
        sub = [texts[i] for i in think]
        _budgeted(run, sub, think, results, budget, max_tokens, grace_tokens, close, cached, stats)
    return results  # type: ignore[return-value]


def two_call(run: _Runner, texts, budget: int, cap: int, max_tokens: int, close: str | None) -> list[Row]:
    """Steps 1-3 as two ``generate`` calls: traces, then the answers from the re-tokenized text."""
    tok, traces, cont, limits = run.tok, [], [], []
    for text, (ids, ended) in zip(texts, run.traces(texts, budget, cap)):
        gen = tok.decode(ids, skip_special_tokens=True)
        closed = THINK_CLOSE in gen
        so_far = gen if closed else gen + close_for(text + gen, close)
        traces.append((ids, ended, so_far))
        cont.append(text + so_far)
        limits.append(0 if (ended and closed) else max_tokens - len(ids) - int(ended))
    return [(*t, ids, ended) for t, (_, ids, ended) in zip(traces, run.finish(cont, limits))]


def _budgeted(
    run: _Runner,
    texts,
    idx,
    results,
    budget: int,
    max_tokens: int,
    grace: int,
    close: str | None,
    cached: bool,
    stats: dict | None,
) -> None:
    """Steps 1-3 for the rows ``idx`` (whose prompts are ``texts``); fills ``results`` in place."""
    tok = run.tok
    cap = 0 if budget == 0 else min(budget + grace, max_tokens)  # B=0: no trace, close at once
    close_ids = tok(THINK_CLOSE, add_special_tokens=False)["input_ids"]
    rows: list[Row | None] = [None] * len(texts)
    if cached and len(close_ids) == 1:
        rows = one_pass(run, texts, budget, cap, max_tokens, close, close_ids[0], newline_mask(tok))
    redo = [j for j, r in enumerate(rows) if r is None]
    for j, row in zip(redo, two_call(run, [texts[j] for j in redo], budget, cap, max_tokens, close)):
        rows[j] = row
    if stats is not None:
        stats["one_pass"] = stats.get("one_pass", 0) + len(texts) - len(redo)
        stats["two_call"] = stats.get("two_call", 0) + len(redo)
    for i, (ids, ended, so_far, aids, a_ended) in zip(idx, rows):  # type: ignore[misc]
        gen = tok.decode(ids, skip_special_tokens=True)
        ans = tok.decode(aids, skip_special_tokens=True)
        n_think, used = _n_think(tok, ids, gen), len(ids) + int(ended)
        if reasoning_end(ans) is not None:  # closed again in the answer: the reasoning runs to that close
            n_think = len(ids) + _n_think(tok, aids, ans)
        done = ended and THINK_CLOSE in gen
        reasoning, content = split(so_far + ans)[:2]
        finish = "stop" if (done or a_ended) else "length"
        forced = THINK_CLOSE not in gen
        results[i] = BudgetResult(
            reasoning, content, so_far + ans, n_think, used + len(aids), forced, finish, True
        )
