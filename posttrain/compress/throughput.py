"""Measured decode throughput of a checkpoint, for ranking NAS candidates (Nano 2 ranked its width
candidates by vLLM throughput at its target shape; here: HF ``generate`` on this machine's device).

tokens/s = batch x new_tokens / t, where t is the median wall time of ``repeats`` greedy generations of
exactly ``new_tokens`` tokens (EOS ignored) from the same ``batch`` prompts of ``prompt_tokens`` tokens,
after one warm-up call. Only ratios between candidates measured in the same run mean anything.
"""

from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def decode_throughput(
    model, *, batch: int = 8, prompt_tokens: int = 32, new_tokens: int = 32, repeats: int = 3
) -> float:
    """Tokens generated per second (module doc); the prompts are fixed token ids (content does not
    change the work done), so every candidate decodes the same shapes."""
    vocab = model.config.get_text_config().vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, prompt_tokens), generator=g).to(model.device)
    kw = dict(
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    model.eval()
    model.generate(ids, **kw)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate(ids, **kw)
        times.append(time.perf_counter() - t0)
    return batch * new_tokens / statistics.median(times)
