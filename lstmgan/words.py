"""Counting words the same way everywhere: `1 run`, `2 runs`."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`1 run`, `0 runs`, `3 runs`."""
    return f"{count} {noun if count == 1 else noun + 's'}"
