"""A palindrome sweep's summary: a row per model × length × varied settings, over seeds, as summary.md,
summary.csv and figures/L<length>.png (the jobs themselves are made in lstmgan/experiments.py).

The summary is rebuilt from disk alone (config.yaml + result.json + metrics.jsonl of each run), so it
works the same after a local sweep, after SLURM jobs came back, or on a half-finished sweep. Which
settings a sweep varied besides model, length and seed (its grid) is read from the configs on disk too:
the summary gets a column for each.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmgan.config import PalindromeConfig, from_dict, run_kind
from lstmgan.errors import UserError
from lstmgan.fs import write_text_atomic
from lstmgan.results.markdown import acc_text, markdown_table
from lstmgan.rundir import RunDir, is_number, rows_with

# Settings that never count as varied: the sweep's own axes (rows and run names show them already) and
# where a run trained, which does not change what it is.
NOT_VARIED = ("model", "length", "seed", "device")


@dataclass
class RunRecord:
    config: PalindromeConfig
    path: Path
    metrics: list[dict[str, Any]]
    result: dict[str, Any] | None


@dataclass
class Row:
    model: str
    length: int
    finished: int
    total: int
    final_val_acc: list[float]
    epoch_to_99: list[int | None]
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # the varied settings' values

    @property
    def label(self) -> str:
        """The model and the row's varied settings: `LSTM`, `LSTM hidden=64 lr=0.003`."""
        return " ".join([self.model.upper(), *(f"{k}={cell(v)}" for k, v in self.settings.items())])

    @property
    def hit(self) -> list[int]:
        """The epochs to 99 % of the seeds that got there."""
        return [e for e in self.epoch_to_99 if e is not None]

    @property
    def reached(self) -> int:
        return len(self.hit)

    def cells(self) -> list[str]:
        """The cells every table of rows starts with: model, length, varied settings, runs finished, accuracy."""
        return [self.model, str(self.length), *map(cell, self.settings.values()), f"{self.finished}/{self.total}",
                acc_text(self.final_val_acc)]

    def mean_epoch_text(self) -> str:
        return f"{statistics.fmean(self.hit):.0f}" if self.hit else "never"

    def epochs_text(self) -> str:
        return f"{self.mean_epoch_text()} ({self.reached}/{self.finished} seeds)" if self.finished else "–"


def cell(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


# The numbers a metrics row needs for the curves.
CURVE_NUMBERS = ("epoch", "train_acc", "val_acc", "train_loss", "val_loss")


def load_runs(sweep_dir: Path, skipped: list[tuple[Path, str]] | None = None) -> list[RunRecord]:
    """Every palindrome run directory under sweep_dir that has a config, finished or not. Folders of another
    kind (a GAN run beside the sweep) are passed over; damaged ones too, with (folder, reason) appended to
    `skipped` when given: readers list them and go on. A result.json that cannot be summarised counts as
    unfinished; metrics rows without the plotted numbers are left out. Folders written before config.yaml
    recorded its `kind` are recognised by parsing."""
    notes: list[tuple[Path, str]] = [] if skipped is None else skipped
    records = []
    for config_file in sorted(sweep_dir.glob("*/config.yaml")):
        run = RunDir(config_file.parent)
        stored, why = run.config_or_reason()
        if stored is None:
            notes.append((run.path, why))
            continue
        kind = run_kind(stored)
        if kind not in (None, "palindrome"):
            continue
        try:
            cfg = from_dict(PalindromeConfig, stored, str(config_file))
        except UserError as e:
            if kind is not None:  # declared a palindrome run, yet unreadable: say so
                notes.append((run.path, str(e)))
            continue  # no `kind` (an older folder): most likely another experiment's run, passed over as before
        result, why = run.result_or_reason(("final_val_acc",))
        if result is None and why != "not finished":
            notes.append((run.path, f"{why}; counted as unfinished"))
        elif result is not None and not (result.get("epoch_to_99") is None or is_number(result["epoch_to_99"])):
            result = {**result, "epoch_to_99": None}  # "never reached 99 %" as far as a summary can tell
        if damage := run.metrics_damage():
            notes.append((run.path, damage))
        records.append(RunRecord(cfg, run.path, rows_with(run.metrics(), CURVE_NUMBERS), result))
    return records


def run_folders(folder: Path) -> list[Path]:
    """The run folders directly under `folder` (each holds a config.yaml)."""
    return sorted(p.parent for p in folder.glob("*/config.yaml"))


def find_sweeps(folder: Path, depth: int = 3) -> list[Path]:
    """`folder` and the folders beneath it (down to `depth` levels) that hold runs or a SLURM submission:
    a sweep folder, a study's sweep/ablation/gan folders, `runs/` with a sweep and one-off runs. A run folder's
    own subfolders are not searched; links are not followed."""
    found: list[Path] = []

    def visit(path: Path, level: int) -> None:
        if (path / "config.yaml").is_file():
            return  # a run folder: its parent holds it
        # slurm.json of any kind: a FIFO there is named by its reader, not passed over
        if run_folders(path) or (path / "slurm.json").exists():
            found.append(path)
        if level < depth:
            try:
                children = sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:  # unreadable: what the rest holds is still found
                return
            for child in children:
                visit(child, level + 1)

    visit(folder, 0)
    return found


def varied_keys(records: Sequence[RunRecord]) -> list[str]:
    """Per-run settings whose values differ between the records (a grid's keys, or the ablation's init and
    encoding), in the config's field order; model, length, seed and device never count."""
    names = [f.name for f in dataclasses.fields(PalindromeConfig) if f.name not in NOT_VARIED]
    return [k for k in names if len({json.dumps(getattr(r.config, k)) for r in records}) > 1]


def series(records: Sequence[RunRecord]) -> Callable[[RunRecord], str]:
    """Names a record's line in the figures: its model, plus the varied settings (`LSTM hidden=64`)."""
    keys = varied_keys(records)
    return lambda rec: " ".join([rec.config.model.upper(), *(f"{k}={cell(getattr(rec.config, k))}" for k in keys)])


def summarise(records: list[RunRecord]) -> list[Row]:
    """One row per model × length × combination of varied settings, in that order."""
    keys = varied_keys(records)
    rows: dict[tuple[Any, ...], Row] = {}
    for rec in records:
        settings = {k: getattr(rec.config, k) for k in keys}
        key = (rec.config.length, rec.config.model, *settings.values())
        row = rows.setdefault(key, Row(rec.config.model, rec.config.length, 0, 0, [], [], settings))
        row.total += 1
        if rec.result is not None:
            row.finished += 1
            row.final_val_acc.append(rec.result["final_val_acc"])
            row.epoch_to_99.append(rec.result["epoch_to_99"])
    order = {"rnn": 0, "lstm": 1}
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], order.get(k[1], 9), k[1], *k[2:]))]


HEADER = ["model", "length", "runs finished", "final val acc (mean ± std)"]  # Row.cells()'s columns


def table_header(rows: list[Row], last: Sequence[str] = ("epochs to 99 % val acc",)) -> list[str]:
    """HEADER with a column for each varied setting after `length`, then `last` (the summary's by default)."""
    return [*HEADER[:2], *(rows[0].settings if rows else ()), *HEADER[2:], *last]


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [[*r.cells(), r.epochs_text()] for r in rows]


def write_summary(sweep_dir: Path, records: list[RunRecord]) -> list[Row]:
    """summary.md, summary.csv and figures/L<length>.png in the sweep folder, from the runs on disk."""
    rows = summarise(records)
    table = markdown_table(table_header(rows), table_rows(rows))
    write_text_atomic(sweep_dir / "summary.md", f"# Sweep {sweep_dir.name}\n\n{table}\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    varied = list(rows[0].settings) if rows else []
    writer.writerow(["model", "length", *varied, "finished", "total", "val_acc_mean", "val_acc_std",
                     "epoch_to_99_mean", "reached_99"])
    for r in rows:
        accs, hit = r.final_val_acc, r.hit
        writer.writerow([r.model, r.length, *(cell(v) for v in r.settings.values()), r.finished, r.total,
                         f"{statistics.fmean(accs):.4f}" if accs else "",
                         f"{statistics.stdev(accs):.4f}" if len(accs) > 1 else ("0.0000" if accs else ""),
                         f"{statistics.fmean(hit):.1f}" if hit else "", r.reached])
    write_text_atomic(sweep_dir / "summary.csv", buf.getvalue())
    from lstmgan.results.plots import curves_by_length  # matplotlib is imported only when figures are drawn

    curves_by_length(records, sweep_dir / "figures", series=series(records))
    return rows
