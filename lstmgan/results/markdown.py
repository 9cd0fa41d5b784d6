"""The one Markdown table writer of results/: the sweep summary and the study report print tables with it."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table, one line per row, without a trailing newline. Cells are written as
    given: a `|` inside a cell is the caller's to avoid (summaries and reports hold numbers and names)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
