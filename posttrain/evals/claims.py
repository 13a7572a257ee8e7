"""What a finished run shows: the claims its pipeline declares, checked from the stages' manifests.

A pipeline lists them in its YAML, as data, not code::

    pipeline:
      claims:
        - claim: /no_think uses far fewer tokens than /think
          check: eval.tokens_off <= 0.6 * eval.tokens_on

``check`` is an expression over metrics. ``<stage>.<key>`` is metric ``key`` of the named stage's
manifest (``eval.sft.format_on``, ``eval.delta_vs_dpo.accuracy_ci_math[0]``; ``[i]`` indexes a list such
as an interval). It allows numbers, ``+ - * /``, comparisons (chains too), ``and`` / ``or`` / ``not``
and parentheses, nothing else: it is parsed with ``ast`` and walked here, never ``eval``-ed. A stage
that is not ``done``, or a metric it does not have, makes the claim ``None`` (not measured), never a
pass. ``check_claims`` validates the declarations when the plan is built, before any stage runs.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Iterable
from typing import Any

from posttrain import PosttrainError

REF = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_][\w.]*)")
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CMP = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class Missing(Exception):
    """A referenced stage or metric is absent: the claim is not measured."""


def parse(check: str) -> tuple[ast.Expression, list[tuple[str, str]]]:
    """``(tree, refs)``: the expression with each ``<stage>.<key>`` replaced by a name ``_r<i>``, and the
    ``(stage, key)`` of each. Raises ``ValueError`` naming what is not allowed."""
    refs: list[tuple[str, str]] = []

    def sub(m: re.Match) -> str:
        refs.append((m.group(1), m.group(2)))
        return f"_r{len(refs) - 1}"

    text = REF.sub(sub, check)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an expression: {e.msg}") from None
    for node in ast.walk(tree):
        ok = isinstance(
            node,
            (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Subscript, ast.Load),
        ) or isinstance(node, (ast.And, ast.Or, ast.Not, ast.USub, *_BIN, *_CMP))
        ok = ok or (isinstance(node, ast.Name) and re.fullmatch(r"_r\d+", node.id) is not None)
        ok = ok or (isinstance(node, ast.Constant) and type(node.value) in (int, float))
        if not ok:
            raise ValueError(
                f"{ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__!r} "
                "is not allowed (metrics as <stage>.<key>, numbers, + - * /, comparisons, "
                "and/or/not)"
            )
    return tree, refs


def _value(node: ast.expr, refs: list[Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return refs[int(node.id[2:])]
    if isinstance(node, ast.Subscript):
        seq, i = _value(node.value, refs), _value(node.slice, refs)
        if not isinstance(seq, list) or not isinstance(i, int) or not -len(seq) <= i < len(seq):
            raise Missing(f"{ast.unparse(node)}: not a list index")
        return seq[i]
    if isinstance(node, ast.UnaryOp):
        v = _value(node.operand, refs)
        return (not v) if isinstance(node.op, ast.Not) else -_num(v, node.operand)
    if isinstance(node, ast.BinOp):
        return _BIN[type(node.op)](_num(_value(node.left, refs), node), _num(_value(node.right, refs), node))
    if isinstance(node, ast.BoolOp):
        vals = (bool(_value(v, refs)) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        left = _num(_value(node.left, refs), node)
        for op, right_node in zip(node.ops, node.comparators):
            right = _num(_value(right_node, refs), node)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    raise Missing(f"{ast.dump(node)}")  # unreachable after parse()


def _num(v: Any, node: ast.AST) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Missing(f"{ast.unparse(node)}: {v!r} is not a number")
    return v


def evaluate(check: str, metrics: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
    """``(passed, evidence)`` of ``check`` against ``{stage: manifest metrics}`` of the done stages;
    ``passed`` is None when a referenced stage or metric is missing."""
    tree, refs = parse(check)
    values, shown = [], []
    for stage, key in refs:
        if stage not in metrics:
            return None, f"stage {stage!r} not done"
        if key not in metrics[stage]:
            return None, f"{stage}.{key} not recorded"
        v = metrics[stage][key]
        values.append(v)
        shown.append(f"{stage}.{key} = {_show(v)}")
    try:
        return bool(_value(tree.body, values)), "; ".join(dict.fromkeys(shown))
    except Missing as e:
        return None, str(e)


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def check_claims(claims: Iterable[Any], stages: Iterable[str]) -> list[tuple[str, str]]:
    """``(key, why)`` for every malformed declaration: not a ``{claim, check}`` mapping, a check that
    does not parse, or one that names a stage with no config (``stages``: every ``stage.<name>``, so a
    run that leaves a stage out reports its claims as not measured instead of failing)."""
    known, out = set(stages), []
    for i, c in enumerate(claims):
        key = f"claims[{i}]"
        if not isinstance(c, dict) or {c.get("claim"), c.get("check")} & {None, "", "???"}:
            out.append((key, "needs `claim` (the sentence) and `check` (the expression)"))
            continue
        try:
            _, refs = parse(str(c["check"]))
        except ValueError as e:
            out.append((f"{key}.check", str(e)))
            continue
        unknown = sorted({s for s, _ in refs} - known)
        if not refs:
            out.append((f"{key}.check", "references no metric (<stage>.<key>)"))
        elif unknown:
            out.append((f"{key}.check", f"unknown stage(s) {unknown}; the plan has {sorted(known)}"))
    return out


def check_all(claims: Iterable[dict[str, Any]], metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{claim, check, passed, evidence}]`` for ``claims`` against ``{stage: metrics}`` of the done
    stages (``posttrain report claims=true`` reads them from the run's manifests)."""
    rows = []
    for c in claims:
        try:
            passed, evidence = evaluate(str(c["check"]), metrics)
        except ValueError as e:
            raise PosttrainError(f"claim {c.get('claim')!r}: check {c['check']!r}: {e}") from None
        rows.append({"claim": c["claim"], "check": c["check"], "passed": passed, "evidence": evidence})
    return rows


def claims_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(this run's pipeline declares no claims: pipeline.claims is empty)\n"
    mark = {True: "yes", False: "**no**", None: "not measured"}
    lines = ["| claim | shown | evidence |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {mark[r['passed']]} | {r['evidence']} |" for r in rows]
    return "\n".join(lines) + "\n"
