"""The one helper every structured config uses: a dataclass field with its help text."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})
