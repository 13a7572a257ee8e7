"""Code-reward tests split so that the candidate's interpreter never decides whether a test passed.

A test is Python source made only of top-level ``assert <expr>`` statements, literal assignments
(``xs = [3, 1, 2]``) and ``import math``. ``compile_tests`` turns each assert into a check tree that the
trusted parent evaluates:

* literals, names bound by literal assignments and builtin type names are constants in the parent;
* comparisons, ``and``/``or``/``not``, arithmetic, subscripts, containers and calls of a few builtins
  (``SAFE_CALLS``: ``abs len sorted isinstance math.isclose ...``) are evaluated in the parent;
* every other maximal subexpression (a call of the candidate's function, ...) is a *probe*: the sandbox
  evaluates it and writes ``repr(value)``; the parent rebuilds it with ``decode``, which only makes plain
  ``None bool int float complex str bytes tuple list dict set frozenset``.

So an always-equal ``__eq__``, an int subclass, patched ``exec``/``compile``/``json.dumps``, a rewritten
test list or a trace function editing the harness change at most the probe values the child reports, and
the parent compares those against expected values the child is never sent.

Not covered: a test whose comparison would run in the child (``all(f(i) == i for i in ...)``) or that
defines helpers or imports other modules is refused with ``ValueError``, since the candidate could patch
those; a probe value the decoder rejects (a numpy scalar, a custom class) fails that test. Probes are
evaluated eagerly in the child; an error counts only when the parent's short-circuit evaluation needs it.
Builtin names in ``SAFE_CALLS`` mean the real builtin even if the candidate defines one with that name.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from typing import Any

_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset)}
SAFE_CALLS = {
    **{f.__name__: f for f in (abs, round, len, sorted, sum, min, max, any, all, isinstance, repr)},
    "type": lambda value: type(value),
    **{k: v for k, v in _TYPES.items() if k != "bytes"},
    **{f"math.{n}": getattr(math, n) for n in ("isclose", "isnan", "isinf", "isfinite", "floor", "ceil")},
}
_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UN = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_SPECIAL = {"nan": math.nan, "inf": math.inf, "nanj": complex(0, math.nan), "infj": complex(0, math.inf)}
MAX_INT_BITS = 1 << 16
MAX_ITEMS = 10**6


class CheckFailed(Exception):
    """A check cannot pass: a probe it needs raised, was not reported, or an operation is refused."""


@dataclass(frozen=True)
class Test:
    steps: list[tuple[str, str]]  # ("exec", source) or ("probe", expression), in order, for the child
    checks: list[tuple]  # one check tree per assert, evaluated by the parent


class _Compiler:
    def __init__(self, index: int, entry_point: str | None) -> None:
        self.index, self.entry_point = index, entry_point
        self.env: dict[str, Any] = {}
        self.steps: list[tuple[str, str]] = []
        self.probes = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"code test {self.index}: {why}")

    def statement(self, stmt: ast.stmt, checks: list) -> None:
        if isinstance(stmt, ast.Assert):
            checks.append(self.expr(stmt.test))
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and (value := _literal(stmt.value)) is not _NOT_LITERAL
        ):
            self.env[stmt.targets[0].id] = value
            self.steps.append(("exec", ast.unparse(stmt)))
        elif isinstance(stmt, ast.Import) and all(a.name == "math" and a.asname is None for a in stmt.names):
            self.steps.append(("exec", "import math"))
        else:
            raise self.fail(
                f"unsupported statement {ast.unparse(stmt)[:60]!r}: tests may hold only top-level asserts, "
                "literal assignments and `import math` (anything else could be patched by the candidate)"
            )

    def probe(self, node: ast.expr) -> tuple:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Compare, ast.BoolOp, ast.IfExp)) or (
                isinstance(sub, ast.UnaryOp) and isinstance(sub.op, ast.Not)
            ):
                raise self.fail(
                    f"the comparison in {ast.unparse(node)[:60]!r} would run in the candidate's "
                    "interpreter; compare at the top level of the assert instead"
                )
        self.steps.append(("probe", ast.unparse(node)))
        self.probes += 1
        return ("p", self.probes - 1)

    def call_name(self, func: ast.expr) -> str | None:
        if isinstance(func, ast.Name) and func.id != self.entry_point and func.id not in self.env:
            return func.id if func.id in SAFE_CALLS else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "math":
            name = f"math.{func.attr}"
            return name if name in SAFE_CALLS else None
        return None

    def expr(self, node: ast.expr) -> tuple:
        if (value := _literal(node)) is not _NOT_LITERAL:
            return ("c", value)
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return ("c", self.env[node.id])
            if node.id in _TYPES and node.id != self.entry_point:
                return ("c", _TYPES[node.id])
            return self.probe(node)
        if isinstance(node, ast.Compare):
            ops = [type(op) for op in node.ops]
            return ("cmp", ops, [self.expr(e) for e in (node.left, *node.comparators)])
        if isinstance(node, ast.BoolOp):
            return ("and" if isinstance(node.op, ast.And) else "or", [self.expr(e) for e in node.values])
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return ("not", self.expr(node.operand))
            return ("un", type(node.op), self.expr(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            return ("bin", type(node.op), self.expr(node.left), self.expr(node.right))
        if isinstance(node, ast.Subscript):
            return ("sub", self.expr(node.value), self.expr(node.slice))
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return ("slice", *[None if p is None else self.expr(p) for p in parts])
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and not any(
            isinstance(e, ast.Starred) for e in node.elts
        ):
            return (type(node).__name__.lower(), [self.expr(e) for e in node.elts])
        if isinstance(node, ast.Dict) and None not in node.keys:
            return ("dict", [(self.expr(k), self.expr(v)) for k, v in zip(node.keys, node.values)])
        if isinstance(node, ast.Call) and (name := self.call_name(node.func)) is not None:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                return self.probe(node)
            kwargs = {k.arg: self.expr(k.value) for k in node.keywords}
            return ("call", name, [self.expr(a) for a in node.args], kwargs)
        return self.probe(node)


def compile_tests(tests: list[str], entry_point: str | None = None) -> list[Test]:
    """Split each test into child steps and parent checks; ``ValueError`` names a test it cannot secure."""
    out = []
    for i, source in enumerate(tests):
        try:
            module = ast.parse(source)
        except SyntaxError as e:
            raise ValueError(f"code test {i} is not valid Python: {e.msg}") from None
        comp, checks = _Compiler(i, entry_point), []
        for stmt in module.body:
            comp.statement(stmt, checks)
        if not checks:
            raise ValueError(f"code test {i} has no top-level assert")
        out.append(Test(comp.steps, checks))
    return out


_NOT_LITERAL = object()


def _literal(node: ast.expr) -> Any:
    if any(isinstance(n, ast.Name) for n in ast.walk(node)):
        return _NOT_LITERAL  # in a test, ``nan`` and ``set`` are names the candidate could bind
    try:
        return _decode_node(node)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return _NOT_LITERAL


def _decode_node(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and not isinstance(node.value, type(...)):
        value = node.value
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise ValueError("integer too large")
        return value
    if isinstance(node, ast.Name) and node.id in _SPECIAL:
        return _SPECIAL[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _decode_node(node.operand)
        if type(operand) not in (int, float, complex):
            raise ValueError("sign on a non-number")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = _decode_node(node.left), _decode_node(node.right)
        if type(left) not in (int, float) or type(right) is not complex:
            raise ValueError("only complex literals add")
        return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_decode_node(e) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_decode_node(k): _decode_node(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id in ("set", "frozenset") and len(node.args) <= 1:
            items = _decode_node(node.args[0]) if node.args else ()
            if type(items) not in (tuple, list, set):
                raise ValueError("set of a non-collection")
            return (set if node.func.id == "set" else frozenset)(items)
    raise ValueError(f"not a plain literal: {type(node).__name__}")


def decode(text: str) -> Any:
    """A plain value from ``repr`` text written by untrusted code; raises ``ValueError`` for anything else."""
    try:
        return _decode_node(ast.parse(text, mode="eval").body)
    except (SyntaxError, TypeError, RecursionError, MemoryError, OverflowError) as e:
        raise ValueError(f"undecodable value: {type(e).__name__}") from None


def _binop(op: type, a: Any, b: Any) -> Any:
    """Arithmetic on decoded values, refusing results that would blow up the trusted parent."""
    seq = (str, bytes, list, tuple)
    if op is ast.Mult and (isinstance(a, seq) or isinstance(b, seq)):
        n = b if isinstance(a, seq) else a
        if not isinstance(n, int) or len(a if isinstance(a, seq) else b) * max(n, 0) > MAX_ITEMS:
            raise CheckFailed("repetition too large")
    if op is ast.Pow and isinstance(a, int) and isinstance(b, int) and abs(a) > 1:
        if b > 0 and a.bit_length() * b > MAX_INT_BITS:
            raise CheckFailed("power too large")
    if op is ast.Mod and isinstance(a, (str, bytes)):
        raise CheckFailed("string formatting is not a check")
    return _BIN[op](a, b)


def evaluate(tree: tuple, values: dict[int, tuple[str, Any]]) -> Any:
    """Evaluate a check tree over decoded probe values ``{k: ("ok", value) | ("err", name)}``."""
    kind = tree[0]
    if kind == "c":
        return tree[1]
    if kind == "p":
        got = values.get(tree[1])
        if got is None or got[0] != "ok":
            raise CheckFailed(f"probe {tree[1]}: {got[1] if got else 'not reported'}")
        return got[1]
    ev = lambda t: evaluate(t, values)  # noqa: E731
    if kind == "cmp":
        ops, operands = tree[1], tree[2]
        left = ev(operands[0])
        for op, t in zip(ops, operands[1:]):
            right = ev(t)
            if not _CMP[op](left, right):
                return False
            left = right
        return True
    if kind in ("and", "or"):
        result = None
        for t in tree[1]:
            result = ev(t)
            if bool(result) is (kind == "or"):
                return result
        return result
    if kind == "not":
        return not ev(tree[1])
    if kind == "un":
        return _UN[tree[1]](ev(tree[2]))
    if kind == "bin":
        return _binop(tree[1], ev(tree[2]), ev(tree[3]))
    if kind == "sub":
        return ev(tree[1])[ev(tree[2])]
    if kind == "slice":
        return slice(*[None if t is None else ev(t) for t in tree[1:]])
    if kind in ("tuple", "list", "set"):
        return {"tuple": tuple, "list": list, "set": set}[kind](ev(t) for t in tree[1])
    if kind == "dict":
        return {ev(k): ev(v) for k, v in tree[1]}
    if kind == "call":
        return SAFE_CALLS[tree[1]](*[ev(a) for a in tree[2]], **{k: ev(v) for k, v in tree[3].items()})
    raise CheckFailed(f"unknown check node {kind!r}")


def passes(test: Test, values: dict[int, tuple[str, Any]]) -> bool:
    """True iff every assert of ``test`` holds on the decoded probe values (any error means False)."""
    try:
        return all(bool(evaluate(check, values)) for check in test.checks)
    except Exception:  # noqa: BLE001 - CheckFailed, or a TypeError etc. from comparing the values
        return False
