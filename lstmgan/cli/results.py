"""The commands that read what runs left on disk: status, collect, sync, report; and configs, the packaged
job files and cluster profiles. None of them trains."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmgan import catalog
from lstmgan.cli import display
from lstmgan.cli.display import print_status, print_table, say, warn
from lstmgan.cli.options import WandbMode, value
from lstmgan.config import TrackingConfig
from lstmgan.errors import UserError
from lstmgan.pipeline import show_summary

app = typer.Typer()
PANEL = "Results"

SweepDirArg = Annotated[Path, typer.Argument(help="A sweep folder, e.g. runs/palindrome.")]


def existing_sweep(sweep_dir: Path) -> Path:
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a folder; give a sweep folder such as runs/palindrome")
    return sweep_dir


@app.command(rich_help_panel=PANEL)
def status(sweep_dir: SweepDirArg) -> None:
    """Per task: SLURM id, state, epoch reached, last val acc or FID, log file (local sweeps too)."""
    from lstmgan.runner.status import task_statuses

    statuses = task_statuses(existing_sweep(sweep_dir))
    if not statuses:
        raise UserError(f"{sweep_dir} holds no runs and no SLURM submission")
    print_status(sweep_dir, statuses)


@app.command(rich_help_panel=PANEL)
def collect(
    sweep_dir: SweepDirArg,
    wandb: Annotated[WandbMode, typer.Option(help="Also log the table and figures to the sweep's W&B report run.",
                                             show_default=True)] = WandbMode.disabled,
) -> None:
    """Summary table, summary.md/.csv and figures from the runs that finished so far."""
    from lstmgan.results.summary import load_runs

    skipped: list[tuple[Path, str]] = []
    if not load_runs(existing_sweep(sweep_dir), skipped):
        raise UserError(f"{sweep_dir} holds no palindrome runs; `lstmgan status {sweep_dir}` shows what it holds")
    for path, why in skipped:  # damaged runs are named, the rest is summarised
        warn(f"skipped {path.name}: {why}")
    tracking = None if wandb is WandbMode.disabled else TrackingConfig(mode=value(wandb))
    show_summary(display, sweep_dir, f"Sweep {sweep_dir.name} (collected)", tracking)


@app.command(rich_help_panel=PANEL)
def sync(
    folder: Annotated[Path, typer.Argument(help="A sweep, study or run folder, e.g. runs/palindrome.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded, to which run id, in "
                                          "which order; upload nothing.")] = False,
) -> None:
    """Upload what W&B lacks of each run folder (one W&B run per folder; twice uploads nothing twice)."""
    from lstmgan.tracking.sync import sync as sync_folder

    for line in sync_folder(folder, dry_run):
        say(line)


@app.command(rich_help_panel=PANEL)
def report(
    folder: Annotated[Path, typer.Argument(help="A study folder (or a sweep folder), e.g. runs/study.")],
    wandb: Annotated[WandbMode, typer.Option(help="Log the figures to a W&B run (none unless asked).",
                                             show_default=True)] = WandbMode.disabled,
) -> None:
    """Rebuild the study report (report.md, report.html, figures/) from run folders; never trains."""
    from lstmgan.fs import check_writable
    from lstmgan.results.report import build_report

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the study folder, e.g. runs/study")
    check_writable(folder)
    built = build_report(folder)
    if wandb is not WandbMode.disabled:
        from lstmgan.tracking.publish import publish_report

        publish_report(folder, built.named_tables(), built.figures, TrackingConfig(mode=value(wandb)))
    say(f"Report: {built.md_path} and {built.html_path}")


@app.command(rich_help_panel=PANEL)
def configs() -> None:
    """The job files and cluster profiles that ship with lstmgan (use the name with --config or --cluster)."""
    rows = [[item["kind"], item["name"], item["description"], str(item["path"])] for item in catalog.listing()]
    print_table("Packaged configs", rows, ["kind", "name", "description", "path"])
