"""Math: reasoning-gym tasks with a step-by-step trace and a ``\\boxed{}`` answer.

Sample ``i`` picks a task from ``cfg.math_tasks`` by weight, then item ``i`` of that task's
reasoning-gym dataset (seeded from the recipe seed and task name). The trace:

* arithmetic expressions (``basic_arithmetic``, ``chain_sum`` and any task whose metadata has an
  ``expression``): one line per operation, innermost-leftmost first (``57 + 87 = 144.``), when the
  exact result equals reasoning-gym's answer (it rounds inexact divisions; those get the fallback);
* ``gsm_symbolic``: reasoning-gym's own chain of thought (``answer_cot`` without its ``####`` line);
* other tasks: a short restatement (reasoning-gym ships no trace for them).

With ``cfg.math_place_value`` an integer step whose operands need a 2-digit fact is written as
the place-value steps a person would do, one ``a op b = c.`` line each (so ``rewards.steps`` still
checks every line): ``57 + 87`` -> ``57 + 80 = 137.`` ``137 + 7 = 144.``; ``87 - 59`` -> ``87 - 50 = 37.``
``37 - 9 = 28.``; ``23 * 7`` -> ``20 * 7 = 140.`` ``3 * 7 = 21.`` ``140 + 21 = 161.``; and ``23 - 57``
(a negative result) -> the steps of ``57 - 23`` then ``-(34) = -34.``. Products of two 2-digit numbers
stay one line. Why: on SmolLM2-135M the errors left after SFT and GRPO were 2-digit arithmetic facts
(2-digit + 0.65, 2-digit - 0.33, negative results 0.09-0.42, 1-digit + 0.97 per step); this is a
data-recipe departure, the report's math traces come from a large teacher. Measured on that model it
lowered held-out accuracy at every stage (runs/pv1, docs/real_model_history.md), so no shipped recipe
turns it on.

The answer line is ``The answer is \\boxed{<answer>}``; metadata is ``{"answer", "source"}`` and
reasoning-gym's scorer accepts the boxed answer once extracted.
"""

from __future__ import annotations

import ast
import hashlib
import operator
from fractions import Fraction
from functools import lru_cache
from typing import Any

from data_recipes.domains.common import make_sample, msg, rng_for

_OPS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _place_value(a: int, sym: str, b: int) -> list[str] | None:
    """The place-value steps of ``a sym b`` (see the module doc), or None to keep it one line."""
    if a < 0 or b < 0 or not (a >= 10 or b >= 10):
        return None
    if sym == "+" and b >= 10 and b % 10:
        tens, units = b - b % 10, b % 10
        return [f"{a} + {tens} = {a + tens}.", f"{a + tens} + {units} = {a + b}."]
    if sym == "-" and a < b and a > 0:
        inner = _place_value(b, "-", a) or [f"{b} - {a} = {b - a}."]
        return [*inner, f"-({b - a}) = {a - b}."]
    if sym == "-" and b >= 10 and b % 10:
        tens, units = b - b % 10, b % 10
        return [f"{a} - {tens} = {a - tens}.", f"{a - tens} - {units} = {a - b}."]
    if sym == "*" and min(a, b) < 10 and max(a, b) % 10 and min(a, b) > 1:
        big, small = max(a, b), min(a, b)
        tens, units = big - big % 10, big % 10
        pair = (
            (f"{tens} * {small}", f"{units} * {small}")
            if a == big
            else (f"{small} * {tens}", f"{small} * {units}")
        )
        return [
            f"{pair[0]} = {tens * small}.",
            f"{pair[1]} = {units * small}.",
            f"{tens * small} + {units * small} = {a * b}.",
        ]
    return None


def _step(a: Fraction, sym: str, b: Fraction, value: Fraction, place_value: bool) -> list[str]:
    if place_value and a.denominator == b.denominator == 1:  # division: _place_value returns None
        parts = _place_value(int(a), sym, int(b))
        if parts:
            return parts
    return [f"{_fmt(a)} {sym} {_fmt(b)} = {_fmt(value)}."]


def _reduce(node: ast.AST, steps: list[str], place_value: bool = False) -> ast.AST:
    """Evaluate one innermost-leftmost operation of ``node`` (recording it) and return the new tree."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if isinstance(node.operand, ast.Constant):  # a negated (already evaluated) sub-expression
            value = -Fraction(node.operand.value)
            steps.append(f"-({_fmt(-value)}) = {_fmt(value)}.")
            return ast.Constant(value)
        return ast.UnaryOp(node.op, _reduce(node.operand, steps, place_value))
    if isinstance(node, ast.BinOp):
        if not isinstance(node.left, ast.Constant):
            return ast.BinOp(_reduce(node.left, steps, place_value), node.op, node.right)
        if not isinstance(node.right, ast.Constant):
            return ast.BinOp(node.left, node.op, _reduce(node.right, steps, place_value))
        sym, fn = _OPS[type(node.op)]
        a, b = Fraction(node.left.value), Fraction(node.right.value)
        value = fn(a, b)
        steps.extend(_step(a, sym, b, value, place_value))
        return ast.Constant(value)
    raise ValueError(f"unsupported expression node {type(node).__name__}")


class _NegativeLiterals(ast.NodeTransformer):
    """Fold ``-5`` (a negative number literal) into a constant, so only negated expressions are steps."""

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        node = self.generic_visit(node)
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return ast.Constant(-node.operand.value)
        return node


def expression_steps(expression: str, place_value: bool = False) -> list[str]:
    """``"5 - 3 * 2"`` -> ``["3 * 2 = 6.", "5 - 6 = -1."]`` (Python precedence, exact fractions);
    a negated sub-expression is a step of its own: ``"-(2 + 3)"`` -> ``["2 + 3 = 5.", "-(5) = -5."]``."""
    node: ast.AST = _NegativeLiterals().visit(ast.parse(expression.strip(), mode="eval").body)
    steps: list[str] = []
    while not isinstance(node, ast.Constant):
        node = _reduce(node, steps, place_value)
    return steps


@lru_cache(maxsize=32)
def _dataset(task: str, seed: int, options: tuple) -> Any:
    import reasoning_gym  # lazily: importing it takes seconds, and corrupt() (preference views) needs none of it

    task_seed = int.from_bytes(hashlib.sha256(f"{seed}:{task}".encode()).digest()[:4], "little")
    return reasoning_gym.create_dataset(task, size=1 << 30, seed=task_seed, **dict(options))


def _options(opts: dict) -> tuple:
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in opts.items() if k != "weight")
    )


def trace(task: str, item: dict, place_value: bool = False) -> str:
    meta, answer = item["metadata"], item["answer"]
    if "expression" in meta:
        try:
            steps = expression_steps(meta["expression"], place_value)
            exact = Fraction(steps[-1].rsplit("= ", 1)[1].rstrip(".")) if steps else None
            if exact is None or exact == Fraction(str(answer)):  # reasoning-gym rounds inexact divisions
                return "\n".join([*steps, f"So the answer is {answer}."])
        except (ValueError, SyntaxError, ZeroDivisionError):
            pass
    if "answer_cot" in meta:
        lines = [ln.rstrip() for ln in meta["answer_cot"].splitlines() if not ln.startswith("####")]
        return "\n".join(ln for ln in lines if ln)
    return f"I need to solve this {task.replace('_', ' ')} task.\nThe answer is {answer}."


def _task_for(cfg, index: int) -> str:
    tasks = sorted(cfg.math_tasks)
    weights = [float(cfg.math_tasks[t].get("weight", 1.0)) for t in tasks]
    u, acc = rng_for(cfg.seed, "math-task", index).random() * sum(weights), 0.0
    for task, w in zip(tasks, weights):
        acc += w
        if u < acc:
            return task
    return tasks[-1]


def generate(cfg, indices: list[int]) -> list[dict]:
    out = []
    for i in indices:
        task = _task_for(cfg, i)
        item = _dataset(task, cfg.seed, _options(cfg.math_tasks[task]))[i]
        answer = str(item["answer"]).strip()
        messages = [
            msg("user", item["question"].strip()),
            msg(
                "assistant",
                f"The answer is \\boxed{{{answer}}}",
                reasoning=trace(task, item, cfg.math_place_value),
            ),
        ]
        out.append(
            make_sample("math", cfg.seed, i, messages, {"answer": answer, "source": f"reasoning_gym/{task}"})
        )
    return out


def wrong_answer(answer: str, rng) -> str:
    try:
        return str(int(answer) + rng.choice([-10, -2, -1, 1, 2, 10]))
    except ValueError:
        return answer + "1"


def corrupt(sample: dict, rng) -> dict:
    """The reference answer with a wrong number in the box."""
    last = sample["messages"][-1]
    bad = wrong_answer(sample["metadata"]["answer"], rng)
    return {**last, "content": f"The answer is \\boxed{{{bad}}}"}
