"""Code: small Python function tasks with unit tests.

A task is a (family, function name, argument names, constant K) combination, e.g. "Write a Python
function `add_3(x)` that returns x plus 3." Sample ``i`` takes combination ``i`` of a seeded
permutation of all of them, so prompts only repeat after the whole space is used. The tests are
``cfg.code_tests`` asserts on seeded random inputs whose expected values come from running the
reference solution itself, and at least one of them tells the family's typical bug apart (so the
corrupted solution, that bug, fails; ``return None`` is the fallback).

Index layout (so the small builds stay byte-identical to generator version 1): sample ``i < 1134``
takes combination ``pick(i)`` of the version-1 space (18 families x 3 names x 3 arg variants x K in
2..20), exactly as before; sample ``i >= 1134`` takes combination ``i - 1134`` of a seeded
permutation of the widened space minus the version-1 combinations (``code_tables``: 28 families,
5 names and 6 arg variants each, K in 2..99 for the arithmetic K-families, K in 2..20 for
``repeat_{k}`` so its tests stay short; about 20k combinations). Inputs for K > 20 (only in the
widened space) scale with K, so the tests still tell the family's bug apart.
"""

from __future__ import annotations

from functools import lru_cache

from data_recipes.domains.code_tables import MORE_ARGS, MORE_NAMES, NEW_FAMILIES, REPEAT_KS, WIDE_KS
from data_recipes.domains.common import make_sample, msg, pick, rng_for

_WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "tiger",
    "lemon",
    "paper",
    "green",
    "music",
    "ocean",
    "bread",
    "night",
    "level",
    "radar",
    "kayak",
    "plant",
    "sugar",
    "chair",
]
_TWO = [("a", "b"), ("x", "y"), ("m", "n")]
_ONE = [("x",), ("n",), ("value",)]
_LIST = [("xs",), ("nums",), ("values",)]
_STR = [("s",), ("text",), ("word",)]

# (names, arg-name variants, input kind, description, body, buggy body, uses K)
_FAMILIES = [
    (
        ["add", "add_numbers", "plus"],
        _TWO,
        "ii",
        "returns the sum of {0} and {1}",
        "{0} + {1}",
        "{0} - {1}",
        False,
    ),
    (
        ["subtract", "minus", "difference"],
        _TWO,
        "ii",
        "returns {0} minus {1}",
        "{0} - {1}",
        "{1} - {0}",
        False,
    ),
    (["multiply", "product", "times"], _TWO, "ii", "returns {0} times {1}", "{0} * {1}", "{0} + {1}", False),
    (
        ["abs_diff", "distance", "gap"],
        _TWO,
        "ii",
        "returns the absolute difference of {0} and {1}",
        "abs({0} - {1})",
        "{0} - {1}",
        False,
    ),
    (
        ["max_of_two", "larger", "bigger"],
        _TWO,
        "ii",
        "returns the larger of {0} and {1}",
        "max({0}, {1})",
        "min({0}, {1})",
        False,
    ),
    (
        ["add_{k}", "plus_{k}", "increment_by_{k}"],
        _ONE,
        "i",
        "returns {0} plus {k}",
        "{0} + {k}",
        "{0} + {k1}",
        True,
    ),
    (
        ["times_{k}", "multiply_by_{k}", "scale_{k}"],
        _ONE,
        "i",
        "returns {0} multiplied by {k}",
        "{0} * {k}",
        "{0} + {k}",
        True,
    ),
    (
        ["mod_{k}", "remainder_{k}", "rem_{k}"],
        _ONE,
        "i",
        "returns the remainder of {0} divided by {k}",
        "{0} % {k}",
        "{0} // {k}",
        True,
    ),
    (
        ["is_divisible_by_{k}", "divisible_{k}", "multiple_of_{k}"],
        _ONE,
        "i",
        "returns True if {0} is divisible by {k}, else False",
        "{0} % {k} == 0",
        "{0} % {k} == 1",
        True,
    ),
    (
        ["is_even", "even", "check_even"],
        _ONE,
        "i",
        "returns True if {0} is even, else False",
        "{0} % 2 == 0",
        "{0} % 2 == 1",
        False,
    ),
    (["square", "squared", "sq"], _ONE, "i", "returns {0} squared", "{0} * {0}", "{0} + {0}", False),
    (
        ["max_of_list", "largest", "biggest"],
        _LIST,
        "l",
        "returns the largest number in the list {0}",
        "max({0})",
        "min({0})",
        False,
    ),
    (
        ["sum_list", "total", "list_sum"],
        _LIST,
        "l",
        "returns the sum of the list {0}",
        "sum({0})",
        "sum({0}) + 1",
        False,
    ),
    (
        ["count_above_{k}", "num_above_{k}", "how_many_above_{k}"],
        _LIST,
        "l",
        "returns how many numbers in {0} are greater than {k}",
        "sum(1 for v in {0} if v > {k})",
        "sum(1 for v in {0} if v >= {k})",
        True,
    ),
    (
        ["reverse_string", "reverse", "backwards"],
        _STR,
        "s",
        "returns the string {0} reversed",
        "{0}[::-1]",
        "{0}",
        False,
    ),
    (
        ["count_vowels", "vowels", "num_vowels"],
        _STR,
        "s",
        "returns the number of vowels (a, e, i, o, u) in {0}",
        "sum(1 for c in {0} if c in 'aeiou')",
        "len({0})",
        False,
    ),
    (
        ["repeat_{k}", "repeat_{k}_times", "echo_{k}"],
        _STR,
        "s",
        "returns the string {0} repeated {k} times",
        "{0} * {k}",
        "{0} * {k1}",
        True,
    ),
    (
        ["first_char", "first_letter", "initial"],
        _STR,
        "s",
        "returns the first character of {0}",
        "{0}[0]",
        "{0}[-1]",
        False,
    ),
]
_KS = range(2, 21)
_BASE_ARGS = {"ii": _TWO, "i": _ONE, "l": _LIST, "s": _STR}
_N_V1 = len(_FAMILIES)


def _family(f: int) -> tuple:
    """Family ``f`` of the widened space (the version-1 names and arg variants come first)."""
    if f < _N_V1:
        names, variants, kind, desc, body, bug, uses_k = _FAMILIES[f]
        return names + MORE_NAMES[f], variants + MORE_ARGS[kind], kind, desc, body, bug, uses_k
    names, kind, desc, body, bug, uses_k = NEW_FAMILIES[f - _N_V1]
    return names, _BASE_ARGS[kind] + MORE_ARGS[kind], kind, desc, body, bug, uses_k


def _wide_ks(f: int):
    names, *_, uses_k = _family(f)
    return (REPEAT_KS if names[0].startswith("repeat") else WIDE_KS) if uses_k else [0]


@lru_cache(maxsize=1)
def _wide_space() -> tuple[tuple[int, int, int, int], ...]:
    """Every widened (family, name, arg variant, K) combination that version 1 could not draw."""
    old, out = set(_space()), []
    for f in range(_N_V1 + len(NEW_FAMILIES)):
        names, variants, *_ = _family(f)
        for n in range(len(names)):
            for v in range(len(variants)):
                out.extend((f, n, v, k) for k in _wide_ks(f) if (f, n, v, k) not in old)
    return tuple(out)


@lru_cache(maxsize=1)
def _space() -> tuple[tuple[int, int, int, int], ...]:
    """Every (family, name, arg variant, K) combination."""
    out = []
    for f, (names, variants, _, _, _, _, uses_k) in enumerate(_FAMILIES):
        for n in range(len(names)):
            for v in range(len(variants)):
                out.extend((f, n, v, k) for k in (_KS if uses_k else [0]))
    return tuple(out)


def _inputs(kind: str, rng, k: int) -> tuple:
    if kind == "i" and k > 20:  # widened constants: near multiples of K, or anywhere in [-3K, 3K]
        return (
            rng.randint(-3, 3) * k + rng.randint(-1, 1) if rng.random() < 0.5 else rng.randint(-3 * k, 3 * k),
        )
    if kind == "l" and k > 20:
        xs = [rng.randint(k - 10, k + 10) for _ in range(rng.randint(1, 5))]
        return ([*xs, k] if rng.random() < 0.3 else xs,)
    if kind == "ii":
        return (rng.randint(-20, 20), rng.randint(-20, 20))
    if kind == "i":
        return (rng.randint(-30, 30),)
    if kind == "l":
        xs = [rng.randint(-9, 25) for _ in range(rng.randint(1, 5))]
        return ([*xs, k] if k and rng.random() < 0.3 else xs,)  # edge value K for the K-families
    return (rng.choice(_WORDS),)


def _run(code: str, name: str, args: tuple):
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own generated reference code
    return scope[name](*args)


def function_code(name: str, args: tuple[str, ...], body: str) -> str:
    return f"def {name}({', '.join(args)}):\n    return {body}\n"


def _fails(code: str, name: str, tests: list[str]) -> bool:
    scope: dict = {}
    try:
        exec(code, scope)  # noqa: S102 - our own generated code
        for t in tests:
            exec(t, scope)  # noqa: S102
    except Exception:  # noqa: BLE001 - any failure means the tests reject it
        return True
    return False


def _tests(code: str, buggy: str, name: str, kind: str, k: int, n: int, rng) -> list[str]:
    """``n`` asserts on distinct random inputs; at least one (if any is found) tells ``buggy`` apart."""
    inputs, seen, telling = [], set(), None
    for _ in range(n * 20):
        inp = _inputs(kind, rng, k)
        if repr(inp) in seen:
            continue
        seen.add(repr(inp))
        if len(inputs) < n:
            inputs.append(inp)
        if telling is None and _run(code, name, inp) != _run(buggy, name, inp):
            telling = inp
        if len(inputs) == n and telling is not None:
            break
    if telling is not None and telling not in inputs:
        inputs[-1] = telling
    return [f"assert {name}({', '.join(map(repr, inp))}) == {_run(code, name, inp)!r}" for inp in inputs]


def generate(cfg, indices: list[int]) -> list[dict]:
    out, space = [], _space()
    for i in indices:
        if i < len(space):
            f, n, v, k = space[pick(cfg.seed, "code", len(space), i)]
        else:
            wide = _wide_space()
            f, n, v, k = wide[pick(cfg.seed, "code-wide", len(wide), i - len(space))]
        names, variants, kind, desc, body, bug, _ = _family(f)
        args, rng = variants[v], rng_for(cfg.seed, "code", i)
        name, fill = names[n].format(k=k), {"k": k, "k1": k + 1}
        body = body.format(*args, **fill)
        code = function_code(name, args, body)
        buggy = function_code(name, args, bug.format(*args, **fill))
        tests = _tests(code, buggy, name, kind, k, cfg.code_tests, rng)
        what = desc.format(*args, **fill)
        reasoning = f"The function {name} takes {', '.join(args)}.\nIt {what}.\nSo it should return {body}."
        messages = [
            msg("user", f"Write a Python function `{name}({', '.join(args)})` that {what}."),
            msg("assistant", f"```python\n{code}```", reasoning=reasoning),
        ]
        out.append(make_sample("code", cfg.seed, i, messages, {"entry_point": name, "tests": tests}))
    return out


@lru_cache(maxsize=1)
def _by_name() -> dict[str, tuple[tuple[int, int], ...]]:
    """Function name -> every (family, K) whose names spell it, in (family, K) order."""
    out: dict[str, list[tuple[int, int]]] = {}
    for f in range(_N_V1 + len(NEW_FAMILIES)):
        names = _family(f)[0]
        for k in _wide_ks(f):
            for nm in dict.fromkeys(nm.format(k=k) for nm in names):
                out.setdefault(nm, []).append((f, k))
    return {nm: tuple(fks) for nm, fks in out.items()}


def corrupt(sample: dict, rng) -> dict:
    """The family's typical bug (an off-by-one, a swapped operator, ...) if it fails a test, else ``return None``."""
    last, meta = sample["messages"][-1], sample["metadata"]
    name, tests = meta["entry_point"], meta["tests"]
    # An off_working copy shows its trace before the code block: keep it, corrupt only the code.
    working, _, code = last["content"].rpartition("```python\n")
    head = next(line for line in code.split("\n") if line.startswith(f"def {name}("))
    args = tuple(a.strip() for a in head[head.index("(") + 1 : head.rindex(")")].split(",") if a.strip())
    for f, k in _by_name().get(name, ()):
        _, _, _, _, body, bug, _ = _family(f)
        fill = {"k": k, "k1": k + 1}
        if function_code(name, args, body.format(*args, **fill)) in last["content"]:
            bad = function_code(name, args, bug.format(*args, **fill))
            if _fails(bad, name, tests):
                return {**last, "content": f"{working}```python\n{bad}```"}
    return {**last, "content": f"{working}```python\n{function_code(name, args, 'None')}```"}
