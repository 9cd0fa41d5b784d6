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
from lstmgan.errors import UserError
from lstmgan.pipeline import show_summary, wandb_where

app = typer.Typer()
PANEL = "Results"

SweepDirArg = Annotated[Path, typer.Argument(help="A sweep, study or any folder above them, e.g. runs/palindrome "
                                             "or runs.")]


def existing_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give a sweep or study folder such as runs/palindrome")
    return folder


@app.command(rich_help_panel=PANEL)
def status(sweep_dir: SweepDirArg) -> None:
    """Per run: SLURM id, state, epoch reached, last val acc or FID, log file; for each sweep, study part or
    folder of one-off runs found in the folder or beneath it."""
    from lstmgan.results.summary import find_sweeps
    from lstmgan.runner.status import task_statuses

    shown = 0
    for folder in find_sweeps(existing_folder(sweep_dir)):
        if statuses := task_statuses(folder):
            print_status(folder, statuses)
            shown += 1
    if not shown:
        raise UserError(f"{sweep_dir} holds no runs and no SLURM submission, nor does any folder beneath it")


@app.command(rich_help_panel=PANEL)
def collect(
    sweep_dir: SweepDirArg,
    wandb: Annotated[WandbMode, typer.Option(help="Also log the table and figures to the sweep's W&B report run.",
                                             show_default=True)] = WandbMode.disabled,
) -> None:
    """Summary table, summary.md/.csv and figures from the runs that finished so far, for each folder of
    palindrome runs found in the folder or beneath it."""
    from lstmgan.config import TrackingConfig
    from lstmgan.results.summary import find_sweeps, load_runs

    tracking = None if wandb is WandbMode.disabled else TrackingConfig(mode=value(wandb))
    notes: list[tuple[Path, str]] = []
    folders = [folder for folder in find_sweeps(existing_folder(sweep_dir)) if load_runs(folder, notes)]
    for path, why in notes:  # damaged runs are named, the rest is summarised
        warn(f"damaged run {path.relative_to(sweep_dir)}: {why}")
    if not folders:
        raise UserError(f"{sweep_dir} holds no palindrome runs, nor does any folder beneath it; `lstmgan status "
                        f"{sweep_dir}` shows what it holds")
    reports = [show_summary(display, folder, f"Sweep {folder.name} (collected)", tracking) for folder in folders]
    if tracking is not None:
        wandb_where(display, [r for r in reports if r is not None], tracking.mode)


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
    say(f"Report: {built.md_path} and {built.html_path}")
    if wandb is not WandbMode.disabled:
        from lstmgan.config import TrackingConfig
        from lstmgan.tracking.publish import publish_report

        tracking = TrackingConfig(mode=value(wandb))
        run = publish_report(folder, built.named_tables(), built.figures, tracking)
        wandb_where(display, [run] if run else [], tracking.mode)


@app.command(rich_help_panel=PANEL)
def configs() -> None:
    """The job files and cluster profiles that ship with lstmgan (use the name with --config or --cluster)."""
    rows = [[item["kind"], item["name"], item["description"], str(item["path"])] for item in catalog.listing()]
    print_table("Packaged configs", rows, ["kind", "name", "description", "path"])
