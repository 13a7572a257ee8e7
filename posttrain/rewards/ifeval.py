"""lm-eval's IFEval instruction checkers (``lm_eval.tasks.ifeval``, lm-eval 0.4.13), loaded offline.

Offline facts (checked with lm-eval 0.4.13, nltk 3.10, langdetect 1.0.9):

* ``lm_eval.tasks.ifeval`` sits under ``lm_eval.tasks``, whose ``__init__`` imports the task manager
  and metrics (``sacrebleu``, ``evaluate``, ``datasets``, ...): the module needs lm-eval's full
  dependency set, not just ``langdetect``/``nltk``/``immutabledict``. ``pip install "lm-eval[ifeval]"``
  brings it all; the first import takes about 1.5 s.
* ``instructions_util`` calls ``nltk.download("punkt_tab")`` at import when the punkt data is missing,
  which needs the network. None of the checkers in ``USED`` touches punkt: word counts use
  ``nltk.tokenize.RegexpTokenizer(r"\\w+")`` (a regex), the lowercase check uses ``langdetect``, whose
  language profiles ship inside its wheel. So the import runs with ``nltk.download`` swapped for a no-op
  (and the "Downloaded punkt_tab" line it prints regardless swallowed). Checkers that do need punkt
  (``length_constraints:number_sentences``, ``change_case:capital_word_frequency``) are not used.
* ``langdetect`` is randomised; ``DetectorFactory.seed = 0`` makes its verdicts reproducible.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Mapping
from typing import Any

USED = (
    "length_constraints:number_words",
    "change_case:english_lowercase",
    "keywords:existence",
    "keywords:forbidden_words",
    "startend:end_checker",
    "detectable_format:number_bullet_lists",
    "punctuation:no_comma",
)
_LOCK = threading.Lock()
_REGISTRY: Mapping[str, type] | None = None


def registry() -> Mapping[str, type]:
    """lm-eval's ``INSTRUCTION_DICT`` (instruction id -> checker class), imported once without network."""
    global _REGISTRY
    with _LOCK:
        if _REGISTRY is None:
            import langdetect
            import nltk

            real_download = nltk.download
            nltk.download = lambda *args, **kwargs: False
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    from lm_eval.tasks.ifeval import instructions_registry
            finally:
                nltk.download = real_download
            langdetect.DetectorFactory.seed = 0
            missing = [i for i in USED if i not in instructions_registry.INSTRUCTION_DICT]
            if missing:
                raise ImportError(f"lm-eval's IFEval registry lacks {missing}")
            _REGISTRY = instructions_registry.INSTRUCTION_DICT
    return _REGISTRY


def follows(instruction_id: str, text: str, **kwargs: Any) -> bool:
    """lm-eval's strict verdict: ``check_following(text)`` of the checker built with ``kwargs``."""
    checker = registry()[instruction_id](instruction_id)
    checker.build_description(**kwargs)
    return bool(checker.check_following(text))
