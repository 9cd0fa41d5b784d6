"""The text of results/: numbers as the summaries and the report write them, and the one Markdown table
writer (the sweep summary and the study report print tables with it)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table, one line per row, without a trailing newline. Cells are written as
    given: a `|` inside a cell is the caller's to avoid (summaries and reports hold numbers and names)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.0f} %" if float(100 * x).is_integer() else f"{100 * x:.1f} %"


def mean_std_text(values: Sequence[float], fmt: str = "{:.1f}", scale: float = 1.0) -> str:
    """"m ± s" over seeds (sample std); one value has no ± part."""
    mean = fmt.format(scale * statistics.fmean(values))
    return mean if len(values) == 1 else f"{mean} ± {fmt.format(scale * statistics.stdev(values))}"


def acc_text(values: Sequence[float]) -> str:
    """Accuracies as "m ± s %"; "–" for none (a set-up without a finished run)."""
    return mean_std_text(values, scale=100) + " %" if values else "–"
