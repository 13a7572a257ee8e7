"""Small helpers shared by the reward modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def load_metadata(metadata: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Return verifier metadata as a dict; accepts a dict or its JSON encoding (as stored in datasets).

    Top-level ``None`` values are dropped: Arrow struct columns give every row every key of the column.
    """
    if metadata is None:
        return {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"metadata is not valid JSON: {e}") from e
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict or a JSON object string, got {type(metadata).__name__}")
    return {k: v for k, v in metadata.items() if v is not None}


def clip01(x: float) -> float:
    """Clamp a reward into [0, 1]."""
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)
