"""Generator capacity: the small builds are unchanged, and larger requests stay distinct and verifiable.

* golden: the first samples of the default recipe (every domain at its ``allocate(2000, ...)`` count,
  the size of the reported ``nano2_tiny``/``nano2_smollm`` builds) hash to what they were before the
  generators were widened (sha256 of the JSON, sorted keys);
* capacity: ``N`` samples of code, safety, tools and chat are >= 96 % distinct by
  ``(reasoning, prompt_key)`` (what dedup keeps), and a random subset passes its verifier.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from data_recipes.config import RecipeConfig
from data_recipes.domains import get
from data_recipes.mixture import allocate

# Recorded on the generators before widening (commit 9252c3c).
GOLDEN = {
    "chat": "007eba3f70cab6e9e6fbaa3527635054cb9e41df1451495fd362ebf7f7137210",
    "code": "864147d546548d79d036416bb6e7f67471db3faf2f3d343b5ed337579bcab231",
    "math": "cac8f7df555d757c4225141d6e36bee17767ba54a87251b7824b66fc587130b5",
    "safety": "93e5964f359a9abad5c25d0ad7d4d668074164d6f20c78bd387687ef8b1da5b0",
    "tool_calling": "c48e6130afcc4aec338e33aa7aadfb1114ca11c56d7170e82343b55d9c265e5c",
}


@pytest.mark.parametrize("domain", sorted(GOLDEN))
def test_small_build_samples_unchanged(domain: str) -> None:
    cfg = RecipeConfig()
    n = allocate(2000, cfg.domains)[domain]
    rows = get(domain).generate(cfg, list(range(n)))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    assert digest == GOLDEN[domain], f"{domain}: the first {n} samples changed"
