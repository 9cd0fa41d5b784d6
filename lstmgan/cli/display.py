"""What the CLI shows: the live progress display, tables and one-line messages.

Results go to stdout (tables, the final "→ where" lines, --print-config's YAML), so they can be piped;
progress, warnings and errors go to stderr. Nothing here imports torch: `--help` stays fast. The module
itself is the `lstmgan.pipeline.Display` the commands hand to the pipeline.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lstmgan.words import plural

if TYPE_CHECKING:
    from lstmgan.runner.status import TaskStatus

console = Console(stderr=True)  # progress, warnings, errors
# Results. Piped into a file or a log (not a terminal), tables get room instead of rich's 80 columns, so a
# header or a SLURM state is never folded in two.
out_console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

Reporter = Callable[[int, int, str], None]  # (done, total, text): lstmgan.runner.job.Progress


def say(text: str) -> None:
    """A result line on stdout, printed as is (paths hold characters rich would read as markup)."""
    out_console.print(text, markup=False, highlight=False)


def warn(text: str) -> None:
    console.print(f"lstmgan: {text}", markup=False, highlight=False, soft_wrap=True)


@contextmanager
def progress_display(quiet: bool, total: int) -> Iterator[Progress | None]:
    """A live display on stderr: runs done out of all, then one line per run in progress with its steps
    (epochs, or batches when a trainer reports within epochs), the trainer's text (e.g. images/s) and an
    ETA. With `quiet`, nothing (yields None)."""
    if quiet:
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[text]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        progress.add_task("runs", total=total, text="")
        yield progress


def run_reporter(progress: Progress | None, index: int, label: str) -> Reporter:
    """Progress of one run as a line of the display, shown from its first report until it ends."""
    if progress is None:
        return lambda done, total, text: None
    runs_task = progress.task_ids[0]
    task: list[Any] = []

    def report(done: int, total: int, text: str) -> None:
        if not task:
            task.append(progress.add_task(f"run {index + 1}: {label}", total=total, text=""))
        progress.update(task[0], completed=done, total=total, text=text)
        if done == total:
            progress.update(runs_task, advance=1)
            progress.remove_task(task[0])

    return report


def print_table(title: str, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column, overflow="fold")  # long paths wrap instead of being cut
    for cells in rows:
        table.add_row(*cells)
    out_console.print(table)


STATUS_HEADER = ["run", "SLURM id", "state", "epoch", "last val acc / FID", "log"]


def natural(text: str) -> list[Any]:
    """Sort key that reads numbers as numbers: rnn-L5-s0 before rnn-L10-s0."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def print_status(sweep_dir: Path, statuses: Sequence[TaskStatus]) -> None:
    statuses = sorted(statuses, key=lambda s: natural(s.run_dir.name))
    rows = [[s.run_dir.name, s.job_id, s.state + (f": {s.error}" if s.error and s.error != s.state else ""),
             "–" if s.epoch is None else str(s.epoch), s.last_metric, s.log] for s in statuses]
    slurm = any(s.job_id != "–" for s in statuses)  # a local sweep has runs, not SLURM tasks
    print_table(f"{sweep_dir}: {plural(len(statuses), 'task' if slurm else 'run')}", rows, STATUS_HEADER)


def task_counts(progress: Progress | None, statuses: Sequence[TaskStatus]) -> None:
    """SLURM --wait: tasks finished out of all, and how many are in each state."""
    if progress is None:
        return
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    text = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
    progress.update(progress.task_ids[0], completed=sum(s.outcome != "active" for s in statuses), text=text)
