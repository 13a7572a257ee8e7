"""Math: reasoning-gym tasks with a step-by-step trace and a ``\\boxed{}`` answer.

Sample ``i`` picks a task from ``cfg.math_tasks`` by weight, then item ``i`` of that task's
reasoning-gym dataset (seeded from the recipe seed and task name). The trace:

* arithmetic expressions (``basic_arithmetic``, ``chain_sum`` and any task whose metadata has an
  ``expression``): one line per operation, innermost-leftmost first (``57 + 87 = 144.``), when the
  exact result equals reasoning-gym's answer (it rounds inexact divisions; those get the fallback);
* ``gsm_symbolic``: reasoning-gym's own chain of thought (``answer_cot`` without its ``####`` line);
* other tasks: a short restatement (reasoning-gym ships no trace for them).

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


def _reduce(node: ast.AST, steps: list[str]) -> ast.AST:
    """Evaluate one innermost-leftmost operation of ``node`` (recording it) and return the new tree."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if isinstance(node.operand, ast.Constant):  # a negated (already evaluated) sub-expression
            value = -Fraction(node.operand.value)
            steps.append(f"-({_fmt(-value)}) = {_fmt(value)}.")
            return ast.Constant(value)
        return ast.UnaryOp(node.op, _reduce(node.operand, steps))
    if isinstance(node, ast.BinOp):
        if not isinstance(node.left, ast.Constant):
            return ast.BinOp(_reduce(node.left, steps), node.op, node.right)
        if not isinstance(node.right, ast.Constant):
            return ast.BinOp(node.left, node.op, _reduce(node.right, steps))
        sym, fn = _OPS[type(node.op)]
        a, b = Fraction(node.left.value), Fraction(node.right.value)
        value = fn(a, b)
        steps.append(f"{_fmt(a)} {sym} {_fmt(b)} = {_fmt(value)}.")
        return ast.Constant(value)
    raise ValueError(f"unsupported expression node {type(node).__name__}")


class _NegativeLiterals(ast.NodeTransformer):
    """Fold ``-5`` (a negative number literal) into a constant, so only negated expressions are steps."""

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        node = self.generic_visit(node)
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return ast.Constant(-node.operand.value)
        return node


def expression_steps(expression: str) -> list[str]:
    """``"5 - 3 * 2"`` -> ``["3 * 2 = 6.", "5 - 6 = -1."]`` (Python precedence, exact fractions);
    a negated sub-expression is a step of its own: ``"-(2 + 3)"`` -> ``["2 + 3 = 5.", "-(5) = -5."]``."""
    node: ast.AST = _NegativeLiterals().visit(ast.parse(expression.strip(), mode="eval").body)
    steps: list[str] = []
    while not isinstance(node, ast.Constant):
        node = _reduce(node, steps)
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


def trace(task: str, item: dict) -> str:
    meta, answer = item["metadata"], item["answer"]
    if "expression" in meta:
        try:
            steps = expression_steps(meta["expression"])
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
            msg("assistant", f"The answer is \\boxed{{{answer}}}", reasoning=trace(task, item)),
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
