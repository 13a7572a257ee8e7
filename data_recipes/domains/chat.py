"""Chat: IFEval-style prompts with checkable instructions and a response that satisfies them.

A prompt asks for a few sentences about a topic plus 1..``cfg.chat_max_constraints`` instructions
drawn from: max_words, min_words, lowercase, uppercase, include_keywords, exclude_keywords,
end_with, start_with, num_bullets, no_commas (incompatible pairs are never drawn together). The
response is assembled from comma-free topic sentences; word limits are set from the assembled
response's word count (whitespace and ``\\w+`` counts both respected), so the reference always
passes. Metadata: ``{"constraints": [{"kind", "value"?}], "topic"}``; the verifier also requires the
answer to name the topic, so fluent text about something else does not pass.

Index layout (so the small builds stay byte-identical to generator version 1): samples ``i < 400``
(the chat share of a 2000-sample build) draw from the version-1 tables (16 topics, 4 asks, 3 starts
and ends, 8 excluded words) exactly as before; samples ``i >= 400`` draw from the widened tables
(those plus ``chat_topics``: 64 topics, 16 asks, 8 starts and ends, 16 excluded words, 3
phrasings per instruction), with the
topic from a seeded permutation of all 64.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from data_recipes.domains.chat_topics import (
    WIDE_ASK,
    WIDE_ENDS,
    WIDE_OTHER,
    WIDE_SAYS,
    WIDE_STARTS,
    WIDE_TOPICS,
)
from data_recipes.domains.common import make_sample, msg, pick, rng_for

_TOPICS = {
    "cats": [
        "Cats sleep for most of the day.",
        "They clean their fur with rough tongues.",
        "A happy cat often purrs.",
    ],
    "the ocean": [
        "The ocean covers most of the planet.",
        "Its water is salty.",
        "Whales and fish live in the deep sea.",
    ],
    "coffee": [
        "Coffee is made from roasted beans.",
        "Many people drink it in the morning.",
        "It contains caffeine.",
    ],
    "autumn": ["Autumn comes after summer.", "Leaves turn red and gold.", "The air gets cooler each week."],
    "trains": [
        "Trains run on steel rails.",
        "They can carry many people at once.",
        "Fast trains link big cities.",
    ],
    "music": [
        "Music can lift your mood.",
        "People play it on many instruments.",
        "Songs often tell stories.",
    ],
    "gardening": [
        "Gardening starts with good soil.",
        "Plants need water and sunlight.",
        "Weeds should be pulled early.",
    ],
    "the moon": [
        "The moon circles the Earth.",
        "Its light is reflected sunlight.",
        "People first walked on it in 1969.",
    ],
    "bicycles": ["Bicycles have two wheels.", "Riding one is good exercise.", "They do not burn any fuel."],
    "rain": ["Rain falls from clouds.", "Plants need it to grow.", "A light rain can smell fresh."],
    "chess": [
        "Chess is played on a board of squares.",
        "Each side starts with sixteen pieces.",
        "The goal is checkmate.",
    ],
    "bread": [
        "Bread is made from flour and water.",
        "Yeast makes the dough rise.",
        "Fresh bread smells warm.",
    ],
    "mountains": [
        "Mountains rise high above the land.",
        "Their peaks can hold snow all year.",
        "Hikers enjoy the views.",
    ],
    "bees": [
        "Bees collect nectar from flowers.",
        "They make honey in their hives.",
        "Bees help plants grow fruit.",
    ],
    "robots": [
        "Robots are machines that follow programs.",
        "Factories use them to build cars.",
        "Some robots can walk.",
    ],
    "tea": ["Tea is made by soaking leaves in hot water.", "Green tea is light.", "Black tea is stronger."],
}
_STARTS = ["Sure.", "Here it is:", "Of course."]
_ENDS = ["That is all.", "I hope this helps.", "Thanks for asking."]
_ASK = [
    "Write a few sentences about {}.",
    "Tell me about {}.",
    "Describe {} briefly.",
    "Say something about {}.",
]
_OTHER = ["banana", "purple", "volcano", "piano", "desert", "rocket", "candle", "zebra"]
_SAYS = {
    "max_words": ["Answer in at most {} words."],
    "min_words": ["Write at least {} words."],
    "lowercase": ["Use only lowercase letters."],
    "uppercase": ["Write everything in capital letters."],
    "include_keywords": ["Include the word '{[0]}'."],
    "exclude_keywords": ["Do not use the word '{[0]}'."],
    "end_with": ["End with this exact phrase: {}"],
    "start_with": ["Start with this exact phrase: {}"],
    "num_bullets": ["Use exactly {} bullet points starting with '- '."],
    "no_commas": ["Do not use any commas."],
}
_LEGACY = 400
_V1 = SimpleNamespace(
    key="chat-topic",
    topics=_TOPICS,
    order=sorted(_TOPICS),
    ask=_ASK,
    starts=_STARTS,
    ends=_ENDS,
    other=_OTHER,
    says=_SAYS,
)
_ALL_TOPICS = {**_TOPICS, **WIDE_TOPICS}
_WIDE = SimpleNamespace(
    key="chat-topic-wide",
    topics=_ALL_TOPICS,
    order=sorted(_ALL_TOPICS),
    ask=_ASK + WIDE_ASK,
    starts=_STARTS + WIDE_STARTS,
    ends=_ENDS + WIDE_ENDS,
    other=_OTHER + WIDE_OTHER,
    says={k: v + WIDE_SAYS[k] for k, v in _SAYS.items()},
)
_KINDS = [
    "max_words",
    "min_words",
    "lowercase",
    "uppercase",
    "include_keywords",
    "exclude_keywords",
    "end_with",
    "start_with",
    "num_bullets",
    "no_commas",
]
_CLASH = {
    frozenset(p)
    for p in [
        ("lowercase", "uppercase"),
        ("max_words", "min_words"),
        ("max_words", "num_bullets"),
        ("min_words", "num_bullets"),
    ]
}


def word_counts(text: str) -> tuple[int, int]:
    return len(text.split()), len(re.findall(r"\w+", text))


def _kinds(rng, k: int) -> list[str]:
    chosen: list[str] = []
    for kind in rng.sample(_KINDS, len(_KINDS)):
        if len(chosen) < k and not any(frozenset((kind, c)) in _CLASH for c in chosen):
            chosen.append(kind)
    return chosen


def _respond(
    topic: str, kinds: list[str], rng, t: SimpleNamespace = _V1
) -> tuple[str, list[dict], list[str]]:
    sents = t.topics[topic][: rng.randint(2, 3)]
    case = (
        (lambda t: t.lower())
        if "lowercase" in kinds
        else (lambda t: t.upper())
        if "uppercase" in kinds
        else str
    )
    start, end = rng.choice(t.starts), rng.choice(t.ends)
    bullets = rng.randint(2, len(sents)) if "num_bullets" in kinds else 0
    body = "\n".join(f"- {s}" for s in sents[:bullets]) if bullets else " ".join(sents)
    parts = [start if "start_with" in kinds else "", body, end if "end_with" in kinds else ""]
    text = case(("\n" if bullets else " ").join(p for p in parts if p))
    keyword = case(rng.choice([w for w in re.findall(r"[A-Za-z]{4,}", sents[0])]))
    other = case(rng.choice([w for w in t.other if w not in text.lower()]))
    ws, wr = word_counts(text)
    values = {
        "max_words": max(ws, wr) + rng.randint(0, 5),
        "min_words": max(1, min(ws, wr) - rng.randint(0, 3)),
        "include_keywords": [keyword],
        "exclude_keywords": [other],
        "end_with": case(end),
        "start_with": case(start),
        "num_bullets": bullets,
    }
    constraints = [{"kind": k, "value": values[k]} if k in values else {"kind": k} for k in kinds]
    says = [t.says[k][0] if len(t.says[k]) == 1 else rng.choice(t.says[k]) for k in kinds]
    rules = [say.format(values.get(k)) for k, say in zip(kinds, says)]
    return text, constraints, rules


def generate(cfg, indices: list[int]) -> list[dict]:
    out = []
    for i in indices:
        rng, t = rng_for(cfg.seed, "chat", i), _V1 if i < _LEGACY else _WIDE
        topic = t.order[pick(cfg.seed, t.key, len(t.order), i)]
        kinds = _kinds(rng, 1 if rng.random() < 0.25 else max(1, cfg.chat_max_constraints))
        text, constraints, rules = _respond(topic, kinds, rng, t)
        reasoning = "\n".join([f"The user wants a short text about {topic}.", *[f"Rule: {r}" for r in rules]])
        messages = [
            msg("user", " ".join([rng.choice(t.ask).format(topic), *rules])),
            msg("assistant", text, reasoning=reasoning),
        ]
        out.append(make_sample("chat", cfg.seed, i, messages, {"constraints": constraints, "topic": topic}))
    return out


def violate(kind: str, value, text: str) -> str:
    """``text`` changed so that constraint ``kind`` fails."""
    if kind in ("lowercase", "uppercase"):
        j = next(j for j, c in enumerate(text) if c.isalpha())
        return text[:j] + (text[j].upper() if kind == "lowercase" else text[j].lower()) + text[j + 1 :]
    if kind == "max_words":
        return text + " and" * (value + 1)
    if kind == "min_words":
        return text.split()[0] if value > 1 else ""
    if kind == "include_keywords":
        return re.sub(re.escape(value[0]), "", text, flags=re.IGNORECASE)
    if kind == "exclude_keywords":
        return f"{text} {value[0]}"
    if kind == "end_with":
        return f"{text} Bye"
    if kind == "start_with":
        return f"Well {text}"
    if kind == "num_bullets":
        return f"{text}\n- one more point"
    return f"{text}, and more"  # no_commas


def corrupt(sample: dict, rng) -> dict:
    """The reference response with its first instruction broken."""
    last, first = sample["messages"][-1], sample["metadata"]["constraints"][0]
    return {**last, "content": violate(first["kind"], first.get("value"), last["content"])}
