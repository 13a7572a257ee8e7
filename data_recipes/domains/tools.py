"""Tool calling: JSON-schema tool lists, one or two calls, the tool responses and a final answer.

Conversation: ``system(/think) -> user -> assistant(tool_calls) -> tool (one per call) -> assistant``.
The chat template renders the tools as ``<AVAILABLE_TOOLS>[...]</AVAILABLE_TOOLS>`` in the system
turn, the calls as ``<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>`` and the results as
``<TOOL_RESPONSE>...</TOOL_RESPONSE>``. The tool list is the needed tool(s), plus one distractor for single calls.
Tool results are deterministic functions of the arguments (a fake but consistent world).
Metadata: ``{"expected_calls": [{"name", "arguments"}], "tools": [schemas]}``.

Index layout (so the small builds stay byte-identical to generator version 1): sample ``i`` calls
tool ``pick(i)`` first, as before; with ``j = i // 6`` and ``n`` the size of that tool's version-1
space (slot values x phrasings), ``j < n`` takes combination ``pick(j)`` of the version-1 space and
draws the second call (if any) from it, exactly as before; ``j >= n`` takes combination ``j - n``
of a seeded permutation of the widened space (``tools_tables``: more cities, symbols, currencies,
amounts, minutes, words and phrasings, times 6 leads) minus the version-1 combinations, and draws
the second call from the whole widened space. ``calculate`` (97200 combinations) is not widened.
"""

from __future__ import annotations

import json
from functools import lru_cache

from data_recipes.domains.common import make_sample, msg, pick, rng_for, unrank
from data_recipes.domains.tools_tables import (
    LEADS,
    MORE_CITIES,
    MORE_CUR,
    MORE_PHRASINGS,
    MORE_SYMBOLS,
    MORE_WORDS,
)

_CITIES = [
    "Paris",
    "Tokyo",
    "Lima",
    "Cairo",
    "Oslo",
    "Rome",
    "Delhi",
    "Austin",
    "Berlin",
    "Seoul",
    "Madrid",
    "Dublin",
    "Nairobi",
    "Lisbon",
    "Denver",
    "Vienna",
    "Sydney",
    "Quito",
    "Hanoi",
    "Boston",
]
_SYMBOLS = [
    "NVDA",
    "AAPL",
    "MSFT",
    "AMZN",
    "GOOG",
    "META",
    "TSLA",
    "INTC",
    "AMD",
    "IBM",
    "ORCL",
    "SAP",
    "ADBE",
    "CSCO",
    "QCOM",
    "SONY",
]
_CUR = ["USD", "EUR", "GBP", "JPY", "CHF"]
_WORDS = {
    "hello": ["hola", "bonjour", "hallo"],
    "thank you": ["gracias", "merci", "danke"],
    "good night": ["buenas noches", "bonne nuit", "gute Nacht"],
    "cat": ["gato", "chat", "Katze"],
    "dog": ["perro", "chien", "Hund"],
    "water": ["agua", "eau", "Wasser"],
    "book": ["libro", "livre", "Buch"],
    "house": ["casa", "maison", "Haus"],
    "friend": ["amigo", "ami", "Freund"],
    "sun": ["sol", "soleil", "Sonne"],
}
_ALL_WORDS = {**_WORDS, **MORE_WORDS}
_LANGS = ["Spanish", "French", "German"]
_CONDITIONS = ["sunny", "cloudy", "rainy", "windy"]


def _h(*parts) -> int:
    return sum((i + 7) * ord(c) for i, c in enumerate("".join(map(str, parts))))


def _schema(name: str, desc: str, **props: str) -> dict:
    """A compact JSON schema (every parameter is required; ``required`` is left out to save tokens)."""
    return {
        "name": name,
        "description": desc,
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in props.items()}},
    }


# name -> (schema, slot sizes, args(slots), phrasings, result(args), answer(args, result))
_TOOLS = {
    "get_weather": (
        _schema("get_weather", "Weather in a city.", city="string"),
        [len(_CITIES)],
        lambda s: {"city": _CITIES[s[0]]},
        ["What's the weather in {city}?", "Is it sunny in {city} right now?", "How warm is it in {city}?"],
        lambda a: {"temperature": 5 + _h(a["city"]) % 25, "condition": _CONDITIONS[_h(a["city"]) % 4]},
        lambda a, r: f"It is {r['temperature']} degrees and {r['condition']} in {a['city']}.",
    ),
    "get_price": (
        _schema("get_price", "Stock price.", symbol="string"),
        [len(_SYMBOLS)],
        lambda s: {"symbol": _SYMBOLS[s[0]]},
        [
            "What is the price of {symbol}?",
            "How much is {symbol} stock?",
            "Get me the {symbol} share price.",
            "Look up {symbol} for me.",
        ],
        lambda a: {"price": 20 + _h(a["symbol"]) % 400},
        lambda a, r: f"{a['symbol']} trades at {r['price']} dollars.",
    ),
    "convert": (
        _schema("convert", "Convert currency.", amount="number", src="string", dst="string"),
        [40, len(_CUR), len(_CUR) - 1],
        lambda s: {
            "amount": 5 * (s[0] + 1),
            "src": _CUR[s[1]],
            "dst": [c for c in _CUR if c != _CUR[s[1]]][s[2]],
        },
        ["Convert {amount} {src} to {dst}.", "How much is {amount} {src} in {dst}?"],
        lambda a: {"result": round(a["amount"] * (1 + _h(a["src"], a["dst"]) % 90 / 100), 2)},
        lambda a, r: f"{a['amount']} {a['src']} is {r['result']} {a['dst']}.",
    ),
    "set_timer": (
        _schema("set_timer", "Start a timer.", minutes="integer"),
        [90],
        lambda s: {"minutes": s[0] + 1},
        [
            "Set a timer for {minutes} minutes.",
            "Start a {minutes} minute timer.",
            "Remind me in {minutes} minutes.",
        ],
        lambda a: {"status": "started"},
        lambda a, r: f"Your timer for {a['minutes']} minutes has started.",
    ),
    "translate": (
        _schema("translate", "Translate text.", text="string", lang="string"),
        [len(_WORDS), len(_LANGS)],
        lambda s: {"text": list(_WORDS)[s[0]], "lang": _LANGS[s[1]]},
        ["Translate '{text}' into {lang}.", "How do you say '{text}' in {lang}?"],
        lambda a: {"translation": _ALL_WORDS[a["text"]][_LANGS.index(a["lang"])]},
        lambda a, r: f"In {a['lang']}, '{a['text']}' is '{r['translation']}'.",
    ),
    "calculate": (
        _schema("calculate", "Evaluate arithmetic.", expression="string"),
        [90, 90, 3],
        lambda s: {"expression": f"{s[0] + 10} {'+-*'[s[2]]} {s[1] + 10}"},
        ["Use the calculator to compute {expression}.", "What is {expression}? Use a tool."],
        lambda a: {"result": eval(a["expression"])},  # noqa: S307 - our own "a op b" strings
        lambda a, r: f"{a['expression']} = {r['result']}.",
    ),
}
_NAMES = sorted(_TOOLS)
_ALL_CITIES, _ALL_SYMBOLS, _ALL_CUR = _CITIES + MORE_CITIES, _SYMBOLS + MORE_SYMBOLS, _CUR + MORE_CUR
# name -> (slot sizes, args(slots)) of the widened space; phrasings are version 1's plus MORE_PHRASINGS
_WIDE = {
    "get_weather": ([len(_ALL_CITIES)], lambda s: {"city": _ALL_CITIES[s[0]]}),
    "get_price": ([len(_ALL_SYMBOLS)], lambda s: {"symbol": _ALL_SYMBOLS[s[0]]}),
    "convert": (
        [80, len(_ALL_CUR), len(_ALL_CUR) - 1],
        lambda s: {
            "amount": 5 * (s[0] + 1),
            "src": _ALL_CUR[s[1]],
            "dst": [c for c in _ALL_CUR if c != _ALL_CUR[s[1]]][s[2]],
        },
    ),
    "set_timer": ([180], lambda s: {"minutes": s[0] + 1}),
    "translate": (
        [len(_ALL_WORDS), len(_LANGS)],
        lambda s: {"text": list(_ALL_WORDS)[s[0]], "lang": _LANGS[s[1]]},
    ),
}


def _wide_sizes(name: str) -> list[int]:
    sizes, _ = _WIDE[name]
    return [*sizes, len(_TOOLS[name][3]) + len(MORE_PHRASINGS[name]), len(LEADS)]


@lru_cache(maxsize=8)
def _wide_codes(name: str) -> tuple[int, ...]:
    """Codes of the widened space of ``name`` whose combination version 1 could not draw."""
    old = [*_TOOLS[name][1], len(_TOOLS[name][3]), 1]
    sizes, n = _wide_sizes(name), 1
    for size in _wide_sizes(name):
        n *= size
    return tuple(c for c in range(n) if any(d >= o for d, o in zip(unrank(c, sizes), old)))


def _wide_call(name: str, code: int) -> tuple[dict, str]:
    _, args_of = _WIDE[name]
    slots = unrank(code, _wide_sizes(name))
    args = args_of(slots[:-2])
    phrasings = _TOOLS[name][3] + MORE_PHRASINGS[name]
    return args, LEADS[slots[-1]] + phrasings[slots[-2]].format(**args)


def _size(name: str) -> int:
    n = 1
    for s in _TOOLS[name][1]:
        n *= s
    return n


def _call(name: str, code: int) -> tuple[dict, str]:
    schema, sizes, args_of, phrasings, _, _ = _TOOLS[name]
    slots = unrank(code, [*sizes, len(phrasings)])
    args = args_of(slots[:-1])
    return args, phrasings[slots[-1]].format(**args)


def _conversation(
    calls: list[tuple[str, dict, str]], distractor: str | None
) -> tuple[list[dict], list[dict]]:
    names = [n for n, _, _ in calls]
    tools = [_TOOLS[n][0] for n in sorted({*names, distractor} - {None})]
    user = " ".join(q for _, _, q in calls)
    tool_calls = [
        {"id": f"call_{j}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for j, (n, a, _) in enumerate(calls)
    ]
    plan = "\n".join(f"I will call {n}." for n in names)
    results = [_TOOLS[n][4](a) for n, a, _ in calls]
    answer = " ".join(_TOOLS[n][5](a, r) for (n, a, _), r in zip(calls, results))
    wants = "two things" if len(calls) > 1 else f"the {names[0]} tool"
    messages = [
        msg("user", user),
        msg("assistant", "", reasoning=f"The user needs {wants}.\n{plan}", tool_calls=tool_calls),
        *[msg("tool", json.dumps(r)) for r in results],
        msg("assistant", answer, reasoning="I have the results."),
    ]
    return messages, tools


def generate(cfg, indices: list[int]) -> list[dict]:
    out = []
    for i in indices:
        rng = rng_for(cfg.seed, "tool_calling", i)
        first = _NAMES[pick(cfg.seed, "tools-order", len(_NAMES), i)]
        picked = [first]
        if rng.random() < cfg.tool_multi_fraction:
            picked.append(rng.choice([n for n in _NAMES if n != first]))
        calls, j_first = [], i // len(_NAMES)
        if first not in _WIDE or j_first < _size(first) * len(_TOOLS[first][3]):  # version 1
            for j, name in enumerate(picked):
                code = pick(cfg.seed, f"tools:{name}", _size(name) * len(_TOOLS[name][3]), j_first)
                code = code if j == 0 else rng.randrange(_size(name) * len(_TOOLS[name][3]))
                calls.append((name, *_call(name, code)))
        else:
            codes = _wide_codes(first)
            j_wide = j_first - _size(first) * len(_TOOLS[first][3])
            calls.append(
                (first, *_wide_call(first, codes[pick(cfg.seed, f"tools-wide:{first}", len(codes), j_wide)]))
            )
            for name in picked[1:]:
                if name in _WIDE:
                    n = 1
                    for size in _wide_sizes(name):
                        n *= size
                    calls.append((name, *_wide_call(name, rng.randrange(n))))
                else:
                    calls.append((name, *_call(name, rng.randrange(_size(name) * len(_TOOLS[name][3])))))
        distractor = rng.choice([n for n in _NAMES if n not in picked]) if len(picked) == 1 else None
        messages, tools = _conversation(calls, distractor)
        expected = [{"name": n, "arguments": a} for n, a, _ in calls]
        out.append(
            make_sample("tool_calling", cfg.seed, i, messages, {"expected_calls": expected, "tools": tools})
        )
    return out


def first_call_turn(sample: dict) -> dict:
    return next(m for m in sample["messages"] if m["role"] == "assistant")


def corrupt(sample: dict, rng) -> dict:
    """The first call turn with one argument changed (numbers +1, strings replaced)."""
    turn = first_call_turn(sample)
    calls = [json.loads(json.dumps(c)) for c in turn["tool_calls"]]
    args = json.loads(calls[0]["function"]["arguments"])
    key = rng.choice(sorted(args))
    args[key] = args[key] + 1 if isinstance(args[key], (int, float)) else f"{args[key]}x"
    calls[0]["function"]["arguments"] = json.dumps(args)
    return {**turn, "tool_calls": calls}
