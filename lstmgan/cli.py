"""The `lstmgan` command line. Each command parses flags into configs and calls one function.

Errors a user can fix (UserError, bad flags) print one line and exit with code 2; nothing is written
before every input has been checked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lstmgan.config import PalindromeConfig, SweepConfig, TrackingConfig, build, to_dict
from lstmgan.errors import UserError
from lstmgan.launch import Job, run_inprocess
from lstmgan.rundir import RunDir, check_writable, inspect
from lstmgan.sweep import HEADER, load_runs, make_jobs, palindrome_job, table_rows, write_summary

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Palindromes (LSTM vs vanilla RNN) and an MNIST GAN, locally or on SLURM, tracked in W&B.")
console = Console(stderr=True)
out_console = Console(soft_wrap=True)

# Options that take several values: `--lengths 5 10 15 20` and `--lengths 5,10` both work (Typer alone
# only accepts the flag repeated), so argv is rewritten to the repeated form before parsing.
MULTI_VALUE = {"--lengths", "--models", "--seeds"}

# --- shared options --------------------------------------------------------------------------------
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file of settings (under jobs/).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="key=value override, repeatable; wins over all.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder that holds sweep/run folders.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Sweep name: runs go to OUT/NAME/.")]
WandbOpt = Annotated[str, typer.Option("--wandb", help="auto | online | offline | disabled (auto: online if logged in).")]
ProjectOpt = Annotated[str, typer.Option("--wandb-project", help="W&B project.")]
EntityOpt = Annotated[str | None, typer.Option("--wandb-entity", help="W&B entity (team or user).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda (auto = CUDA when present).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Training epochs.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start over even if the run folder holds a run.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress display.")]


def tracking_config(mode: str, project: str, entity: str | None) -> TrackingConfig:
    tracking = TrackingConfig(mode=mode, project=project, entity=entity)
    tracking.validate()
    return tracking


def preflight(jobs: Sequence[Job], out: Path) -> None:
    """Check every run folder before anything is written, so a bad input changes nothing."""
    check_writable(out)
    for job in jobs:  # inspect only reads: it raises on a conflicting or corrupt run folder
        inspect(RunDir(job.run_dir), to_dict(job.config), force=job.force)


@contextmanager
def progress_display(quiet: bool, total: int) -> Iterator[Any]:
    """A two-line rich display: runs done out of all, and the epochs of the current run."""
    if quiet:
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[text]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        progress.add_task("runs", total=total, text="")
        yield progress


def epoch_reporter(progress: Any, index: int, job: Job) -> Any:
    if progress is None:
        return lambda done, total, text: None
    runs_task = progress.task_ids[0]
    task = progress.add_task(f"run {index + 1}: {job.label}", total=None, text="")

    def report(done: int, total: int, text: str) -> None:
        progress.update(task, completed=done, total=total, text=text)
        if done == total:
            progress.update(runs_task, advance=1)
            progress.remove_task(task)

    return report


def print_summary(title: str, rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in HEADER:
        table.add_column(column)
    for cells in rows:
        table.add_row(*cells)
    out_console.print(table)


# --- commands --------------------------------------------------------------------------------------


@app.command()
def palindrome(
    model: Annotated[str | None, typer.Option(help="rnn | lstm")] = None,
    length: Annotated[int | None, typer.Option(help="Digits the network reads (palindrome has length + 1).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data, initialisation and shuffling.")] = None,
    epochs: EpochsOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    wandb: WandbOpt = "auto",
    wandb_project: ProjectOpt = "lstmgan",
    wandb_entity: EntityOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one model on palindromes of one length."""
    cfg = build(PalindromeConfig, yaml_path=config,
                flags={"model": model, "length": length, "seed": seed, "epochs": epochs, "device": device},
                sets=set_)
    job = palindrome_job(cfg, out / (name or "palindrome"), tracking_config(wandb, wandb_project, wandb_entity),
                         force=force)
    preflight([job], out)
    with progress_display(quiet, 1) as progress:
        (outcome,) = run_inprocess([job], lambda i, j: epoch_reporter(progress, i, j))
    result = outcome.result or {}
    out_console.print(f"{job.label}: final val acc {100 * result['final_val_acc']:.1f} %, "
                      f"best {100 * result['best_val_acc']:.1f} % (epoch {result['best_epoch']}) → {job.run_dir}")


@app.command()
def sweep(
    lengths: Annotated[list[int] | None, typer.Option(help="Lengths: --lengths 5 10 15 20 (or 5,10,15,20).")] = None,
    models: Annotated[list[str] | None, typer.Option(help="Models: --models rnn lstm.")] = None,
    seeds: Annotated[list[int] | None, typer.Option(help="Seeds: --seeds 0 1 2.")] = None,
    epochs: EpochsOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: OutOpt = Path("runs"),
    name: NameOpt = None,
    wandb: WandbOpt = "auto",
    wandb_project: ProjectOpt = "lstmgan",
    wandb_entity: EntityOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """RNN and LSTM at each length and seed; prints and writes the summary table and figures."""
    cfg = build(SweepConfig, yaml_path=config,
                flags={"lengths": lengths, "models": models, "seeds": seeds, "name": name, "epochs": epochs,
                       "device": device}, sets=set_)
    jobs = make_jobs(cfg, out, tracking_config(wandb, wandb_project, wandb_entity), force=force)
    preflight(jobs, out)
    with progress_display(quiet, len(jobs)) as progress:
        run_inprocess(jobs, lambda i, j: epoch_reporter(progress, i, j))
    sweep_dir = out / cfg.name
    rows = write_summary(sweep_dir, load_runs(sweep_dir))
    print_summary(f"Sweep {cfg.name}: {len(jobs)} runs, {cfg.run.epochs} epochs", table_rows(rows))
    out_console.print(f"Summary: {sweep_dir / 'summary.md'}, figures: {sweep_dir / 'figures'}")


# --- entry point -----------------------------------------------------------------------------------


def expand_multi_value(argv: Sequence[str]) -> list[str]:
    """`--lengths 5 10 15` / `--lengths 5,10` / `--lengths=5,10` → `--lengths 5 --lengths 10 …`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=")
        if flag in MULTI_VALUE:
            values = [inline] if eq else []
            i += 1
            while not eq and i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            pieces = [p for v in values for p in v.split(",") if p != ""]
            if not pieces:
                out.append(flag)  # let click report the missing value
            for piece in pieces:
                out += [flag, piece]
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. One line on stderr for every error a user can fix."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = expand_multi_value(sys.argv[1:] if argv is None else list(argv))
    command = typer.main.get_command(app)
    try:
        command.main(args, prog_name="lstmgan", standalone_mode=False)
    except UserError as e:
        console.print(f"lstmgan: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except typer.TyperException as e:  # usage errors: unknown option, value of the wrong type, …
        ctx = getattr(e, "ctx", None)
        where = f" (see `lstmgan {ctx.info_name} --help`)" if ctx and ctx.parent else " (see `lstmgan --help`)"
        message = " ".join(e.format_message().split())  # typer may wrap long messages
        console.print(f"lstmgan: error: {message}{where}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        console.print("lstmgan: interrupted; rerun the same command to resume from the last checkpoint")
        return 130
    return 0


def entrypoint() -> None:
    sys.exit(main())
