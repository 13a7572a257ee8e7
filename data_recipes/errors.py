"""Errors raised for bad input data.

Every message is one line: ``<file>:<line>: <field>: <reason>``, so a user can jump straight to the
offending record.
"""

from __future__ import annotations


class DataError(ValueError):
    """A record (or a config value) that the data pipeline cannot accept."""

    def __init__(self, where: str, field: str, reason: str):
        self.where, self.field, self.reason = where, field, reason
        super().__init__(f"{where}: {field}: {reason}")

    def as_reject(self, raw: str | None = None) -> dict:
        """The ``rejects.jsonl`` row for this error (``raw`` is the offending text, cut to 2000 chars)."""
        row = {"where": self.where, "field": self.field, "reason": self.reason}
        if raw is not None:
            row["raw"] = raw[:2000]
        return row
