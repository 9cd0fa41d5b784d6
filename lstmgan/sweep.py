"""A palindrome sweep: expand model × length × seed into jobs; summarise finished run directories.

The summary is rebuilt from disk alone (result.json + metrics.jsonl of each run), so it works the same
after a local sweep, after SLURM jobs came back, or on a half-finished sweep.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lstmgan.config import PalindromeConfig, SweepConfig, TrackingConfig, from_dict
from lstmgan.launch import Job
from lstmgan.palindrome.train import run_palindrome
from lstmgan.rundir import RunDir, write_text_atomic
from lstmgan.tracking import group_id


def run_name(cfg: PalindromeConfig, *, variant: bool = False) -> str:
    """rnn-L5-s0; with variant=True also the initialisation and encoding: rnn-L5-normal-scalar-s0."""
    middle = f"-{cfg.init}-{cfg.encoding}" if variant else ""
    return f"{cfg.model}-L{cfg.length}{middle}-s{cfg.seed}"


def expand(sweep: SweepConfig) -> list[PalindromeConfig]:
    return [replace(sweep.run, model=m, length=length, seed=s)
            for length in sweep.lengths for m in sweep.models for s in sweep.seeds]


def palindrome_job(cfg: PalindromeConfig, sweep_dir: Path, tracking: TrackingConfig, *, force: bool,
                   variant: bool = False) -> Job:
    """One run, tracked so that W&B groups a sweep's runs: group = the sweep folder's (or --group)."""
    tags = (cfg.model, f"L{cfg.length}", *((cfg.init, cfg.encoding) if variant else ()), *tracking.tags)
    tracking = replace(tracking, group=tracking.group or group_id(sweep_dir), job_type="palindrome", tags=tags)
    return Job(run_palindrome, cfg, sweep_dir / run_name(cfg, variant=variant), tracking, force=force)


def make_jobs(sweep: SweepConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    return [palindrome_job(cfg, out / sweep.name, tracking, force=force) for cfg in expand(sweep)]


def longest_first(jobs: list[Job]) -> list[Job]:
    """Order palindrome jobs by expected cost, so runs side by side end together (longest first)."""
    def cost(job: Job) -> float:
        cfg = job.config
        return cfg.length * cfg.epochs * cfg.samples * cfg.hidden * (4 if cfg.model == "lstm" else 1)

    return sorted(jobs, key=cost, reverse=True)


# --- summary ---------------------------------------------------------------------------------------


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

    @property
    def reached(self) -> int:
        return sum(e is not None for e in self.epoch_to_99)

    def acc_text(self) -> str:
        return mean_std_text(self.final_val_acc, pct=True)

    def epochs_text(self) -> str:
        hit = [e for e in self.epoch_to_99 if e is not None]
        if not self.finished:
            return "–"
        mean = f"{statistics.fmean(hit):.0f}" if hit else "never"
        return f"{mean} ({self.reached}/{self.finished} seeds)"


def mean_std_text(values: list[float], pct: bool = False) -> str:
    if not values:
        return "–"
    k = 100 if pct else 1
    mean = statistics.fmean(values) * k
    std = statistics.stdev(values) * k if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}" + (" %" if pct else "")


def load_runs(sweep_dir: Path) -> list[RunRecord]:
    """Every run directory under sweep_dir that has a config, finished or not."""
    records = []
    for config_file in sorted(sweep_dir.glob("*/config.yaml")):
        run = RunDir(config_file.parent)
        stored = run.stored_config() or {}
        try:
            cfg = from_dict(PalindromeConfig, stored, str(config_file))
        except Exception:  # noqa: BLE001 - not a palindrome run (e.g. a GAN run beside it): skip
            continue
        records.append(RunRecord(cfg, run.path, run.metrics(), run.result()))
    return records


def summarise(records: list[RunRecord]) -> list[Row]:
    rows: dict[tuple[int, str], Row] = {}
    for rec in records:
        key = (rec.config.length, rec.config.model)
        row = rows.setdefault(key, Row(rec.config.model, rec.config.length, 0, 0, [], []))
        row.total += 1
        if rec.result is not None:
            row.finished += 1
            row.final_val_acc.append(rec.result["final_val_acc"])
            row.epoch_to_99.append(rec.result["epoch_to_99"])
    order = {"rnn": 0, "lstm": 1}
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], order.get(k[1], 9), k[1]))]


HEADER = ["model", "length", "runs finished", "final val acc (mean ± std)", "epochs to 99 % val acc"]


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [[r.model, str(r.length), f"{r.finished}/{r.total}", r.acc_text(), r.epochs_text()] for r in rows]


def write_summary(sweep_dir: Path, records: list[RunRecord]) -> list[Row]:
    """summary.md, summary.csv and figures/L<length>.png in the sweep folder, from the runs on disk."""
    rows = summarise(records)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    write_text_atomic(sweep_dir / "summary.md", f"# Sweep {sweep_dir.name}\n\n" + "\n".join(lines) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "length", "finished", "total", "val_acc_mean", "val_acc_std", "epoch_to_99_mean",
                     "reached_99"])
    for r in rows:
        accs, hit = r.final_val_acc, [e for e in r.epoch_to_99 if e is not None]
        writer.writerow([r.model, r.length, r.finished, r.total,
                         f"{statistics.fmean(accs):.4f}" if accs else "",
                         f"{statistics.stdev(accs):.4f}" if len(accs) > 1 else ("0.0000" if accs else ""),
                         f"{statistics.fmean(hit):.1f}" if hit else "", r.reached])
    write_text_atomic(sweep_dir / "summary.csv", buf.getvalue())
    from lstmgan.plots import curves_by_length  # matplotlib is imported only when figures are drawn

    curves_by_length(records, sweep_dir / "figures")
    return rows
