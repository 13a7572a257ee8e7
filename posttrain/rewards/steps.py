"""Dense math reward: the share of a reasoning trace's arithmetic steps that are right and grounded.

Why: with a binary answer reward and groups of 4, most GRPO groups on arithmetic have no reward
variance (measured on SmolLM2 after SFT: 50-100 % of groups per step), so they give no gradient,
and the failures are single wrong steps (``9 - 4 = 7``). Checking each step gives partial credit
exactly where the skill fails. A process reward checked by arithmetic, not by a learned model.

A *step* is any trace line with an ``=`` between numbers. It is *right* when it has the form
``a op b = c`` (``op`` in ``+ - * /``, numbers integers or ``p/q``; or the negation ``-(a) = c``)
and ``c`` equals ``a op b`` exactly; a line in any other form (``67 + 2 * 96 = 1344``) counts as a
step that is not right, so writing several operations on one line does not dodge the check. It is
*grounded* when every operand appears in the problem text or as the result of an earlier right and
grounded step, so a
trace cannot raise its score with unrelated true sums (``1 + 1 = 2``).

``step_score = right-and-grounded steps / steps``, 0.0 for a trace with no step. Only the reasoning
part (before ``</think>``) is read; the final answer stays the job of the correctness reward. This is
a departure from the Nano 2 report, whose RL rewards are outcome-only.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from posttrain.rewards.format import reasoning_on, split_completion

_NUM = r"-?\d+(?:/\d+)?"
_BINARY = re.compile(rf"^\s*({_NUM})\s*([-+*/])\s*({_NUM})\s*=\s*({_NUM})\s*\.?\s*$")
_NEGATION = re.compile(rf"^\s*-\(\s*({_NUM})\s*\)\s*=\s*({_NUM})\s*\.?\s*$")
_STEP = re.compile(r"[\d)]\s*=\s*-?\d")
_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else None,
}


def _num(text: str) -> Fraction:
    return Fraction(text)


def step_score(reasoning: str, problem: str) -> float:
    """Share of the steps in ``reasoning`` that are right and grounded in ``problem`` (see module doc)."""
    known = {Fraction(n) for n in re.findall(r"\d+(?:/\d+)?", problem)}
    known |= {-n for n in known}
    steps = good = 0
    for line in reasoning.splitlines():
        if not _STEP.search(line):
            continue
        steps += 1
        m, neg = _BINARY.match(line), _NEGATION.match(line)
        if m:
            a, op, b, c = _num(m[1]), m[2], _num(m[3]), _num(m[4])
            right = _OPS[op](a, b) == c
            operands = (a, b)
        elif neg:
            a, c = _num(neg[1]), _num(neg[2])
            right, operands = (-a == c), (a,)
        else:
            continue
        if right and all(x in known for x in operands):
            good += 1
            known |= {c, -c}  # only a right, grounded result can ground later steps
    return good / steps if steps else 0.0


def _text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content") or "") for m in prompt if isinstance(m, dict))


def math_steps_reward(
    prompts: list[Any] | None = None,
    completions: list[Any] | None = None,
    completion_ids: list[list[int]] | None = None,
    *,
    category: list[str],
    reasoning: list[str],
    **_: Any,
) -> list[float]:
    """TRL reward: ``step_score`` of a math completion's trace against its prompt, for a well-formed
    reasoning-ON completion; 0.0 otherwise.

    Only a well-formed ``/think`` completion has a trace. A ``/no_think`` completion that writes steps
    and then a ``</think>`` of its own is malformed for its mode; crediting its steps paid the policy to
    think inside ``/no_think`` (measured on SmolLM2: the gain of GRPO's seed 0 came from such answers,
    and the habit spread to code and chat on seed 1).
    """
    from posttrain.rewards.grpo import completion_text

    if completions is None or prompts is None:
        raise ValueError("prompts and completions are required")
    out = []
    for p, c, cat, r in zip(prompts, completions, category, reasoning):
        parsed = split_completion(completion_text(c), r)
        credited = cat == "math" and reasoning_on(r) and parsed.well_formed
        out.append(step_score(parsed.reasoning, _text(p)) if credited and parsed.reasoning else 0.0)
    return out
