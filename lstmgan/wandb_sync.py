"""TEMP stub of the wandb helper's `lstmgan sync` (dropped at merge): today's behaviour behind its interface."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lstmgan.errors import UserError


def sync(folder: Path, dry_run: bool) -> list[str]:
    from lstmgan.slurm import offline_runs, wandb_sync_command

    runs = offline_runs(folder)
    if not runs:
        raise UserError(f"no offline W&B runs under {folder} (looked for */wandb/offline-run-*)")
    if not dry_run:
        code = subprocess.call(wandb_sync_command(runs))
        if code:
            raise UserError(f"wandb sync failed (exit {code}); log in with `wandb login` or set WANDB_API_KEY")
    return [str(run) for run in runs]
