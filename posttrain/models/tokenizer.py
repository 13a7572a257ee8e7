"""A small, deterministic byte-level BPE tokenizer with the Nano 2 chat template.

The tokenizer is trained locally with the ``tokenizers`` library on a fixed corpus (Python
standard-library docstrings and sources plus template markers and digits), so no hub access is
ever needed. It is built once and cached under ``$POSTTRAIN_CACHE/tokenizer-<hash>``.

* Digits are split individually (as Nemotron/Llama-3 tokenizers do), which helps a tiny model
  with arithmetic.
* ``<SPECIAL_10>``, ``<SPECIAL_11>``, ``<SPECIAL_12>`` (turn markers), ``<pad>`` and ``<s>`` are
  special tokens; ``<SPECIAL_12>`` is the end-of-turn / EOS token.
* ``<think>``, ``</think>`` and the tool markers are *added non-special* tokens: TRL's GRPO decodes
  completions with ``skip_special_tokens=True`` and would otherwise strip them silently.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from posttrain.models.template import ADDED_TOKENS as _ADDED
from posttrain.models.template import NANO2, render_template

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>"]
ADDED_TOKENS = list(_ADDED)
EOS_TOKEN = "<SPECIAL_12>"
TOKENIZER_VERSION = "1"
DEFAULT_VOCAB_SIZE = 4096

# Fixed list: changing it changes the tokenizer hash (and invalidates every cache keyed on it).
_CORPUS_MODULES = [
    "json",
    "textwrap",
    "collections",
    "functools",
    "string",
    "re",
    "random",
    "statistics",
    "fractions",
    "decimal",
    "datetime",
    "calendar",
    "pathlib",
    "argparse",
    "logging",
    "dataclasses",
    "typing",
    "heapq",
    "bisect",
    "csv",
    "difflib",
    "shutil",
    "tempfile",
    "unittest",
]


def chat_template() -> str:
    """The Jinja chat template of the built-in tokenizer (Nano 2 conventions and turn markers)."""
    return render_template(NANO2)


def _corpus() -> list[str]:
    texts: list[str] = []
    for name in _CORPUS_MODULES:
        mod = importlib.import_module(name)
        texts.append(inspect.getsource(mod))
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                texts.append(doc)
    markers = " ".join(SPECIAL_TOKENS + ADDED_TOKENS) + " /think /no_think System User Assistant"
    numbers = " ".join(
        f"{a} + {b} = {a + b}. {a} * {b} = {a * b}." for a in range(50) for b in range(0, 50, 7)
    )
    return [markers] * 50 + [numbers] + texts


def cache_root() -> Path:
    """posttrain's cache (tokenizers, imported models, data builds): ``$POSTTRAIN_CACHE`` or ~/.cache/posttrain."""
    return Path(os.environ.get("POSTTRAIN_CACHE", Path.home() / ".cache" / "posttrain"))


def tokenizer_hash(vocab_size: int = DEFAULT_VOCAB_SIZE) -> str:
    """Hash of everything that determines the built tokenizer (corpus text, template, settings)."""
    h = hashlib.sha256()
    for part in (
        TOKENIZER_VERSION,
        str(vocab_size),
        chat_template(),
        *SPECIAL_TOKENS,
        *ADDED_TOKENS,
        *_corpus(),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _train(vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token=EOS_TOKEN,
        pad_token="<pad>",
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    fast.add_tokens(ADDED_TOKENS, special_tokens=False)
    fast.chat_template = chat_template()
    return fast


def build_tokenizer(
    vocab_size: int = DEFAULT_VOCAB_SIZE, cache_dir: str | os.PathLike | None = None
) -> PreTrainedTokenizerFast:
    """Return the posttrain tokenizer, training it once and loading it from the cache afterwards."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / f"tokenizer-{tokenizer_hash(vocab_size)}"
    if not (path / "tokenizer.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=root))
        _train(vocab_size).save_pretrained(tmp)
        try:
            tmp.rename(path)  # atomic publish; a concurrent builder may have won the race
        except OSError:
            if not (path / "tokenizer.json").exists():
                raise
    return PreTrainedTokenizerFast.from_pretrained(str(path))
