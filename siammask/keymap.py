"""Renaming state-dict keys by prefix rules: what every foreign checkpoint format's loader shares."""
from __future__ import annotations

from collections.abc import Sequence


def map_prefix(key: str, rules: Sequence[tuple[str, str]]) -> str | None:
    """`key` renamed by the first (from, to) rule whose `from` prefix it starts with; None if none does."""
    for old, new in rules:
        if key.startswith(old):
            return new + key[len(old):]
    return None
