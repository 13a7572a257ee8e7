"""Console settings: library warnings and progress bars off unless ``POSTTRAIN_VERBOSE=1``.

Two steps, so a command pays for torch and transformers only when it uses them: ``quiet()`` sets the
libraries' own environment variables (read when they are first imported, no import here), and
``quiet_libraries()`` imports torch and transformers for the settings that have no variable (the
weight-loading progress bars, DeepSpeed's accelerator). The pipeline runner calls the second just
before a stage runs, so ``posttrain run`` composes its config, checks its data cache, submits to
Slurm or finds every stage done without importing either.
"""

from __future__ import annotations

import os

_libraries_done = False


def verbose() -> bool:
    return os.environ.get("POSTTRAIN_VERBOSE") == "1"


def quiet() -> None:
    if verbose():
        return
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")


def quiet_libraries() -> None:
    """Import torch and transformers and apply the settings that have no environment variable (once)."""
    global _libraries_done
    if _libraries_done or verbose():
        return
    _libraries_done = True
    quiet()
    import torch
    import transformers

    if not torch.cuda.is_available():  # DeepSpeed (imported by TRL) warns when it has to guess the CPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    transformers.logging.disable_progress_bar()  # weight loading/saving bars; the Trainer's bar stays
