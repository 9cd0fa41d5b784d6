"""The `lstmgan` command line. Each command parses flags into configs and calls one function.

Errors a user can fix (UserError, bad flags) print one line and exit with code 2; nothing is written
before every input has been checked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lstmgan.config import (DATASETS, GanConfig, PalindromeConfig, SweepConfig, TrackingConfig, build, parse_sets,
                            to_dict)
from lstmgan.errors import UserError
from lstmgan.gan.classifier import load_classifier, save_classifier, train_classifier
from lstmgan.gan.data import load_images
from lstmgan.gan.posthoc import load_trained, make_strips, write_samples
from lstmgan.gan.train import CLASSIFIER_EPOCHS, run_gan
from lstmgan.launch import Job, resolve_device, run_inprocess
from lstmgan.report import build_report
from lstmgan.rundir import RunDir, check_writable, inspect
from lstmgan.study import load_study, study_jobs
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


@app.command()
def gan(
    dataset: Annotated[str | None, typer.Option(help="mnist | fashion-mnist")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the IDX files (torchvision layout or flat).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the data.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for initialisation, batches, z and evaluation.")] = None,
    epochs: EpochsOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: OutOpt = Path("runs"),
    name: Annotated[str, typer.Option("--name", help="Runs go to OUT/NAME/<dataset>-s<seed>/.")] = "gan",
    wandb: WandbOpt = "auto",
    wandb_project: ProjectOpt = "lstmgan",
    wandb_entity: EntityOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the MLP GAN; sample grids, losses, classifier-FID and a checkpoint every epoch."""
    cfg = build(GanConfig, yaml_path=config,
                flags={"dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
                       "download": download or None, "seed": seed, "epochs": epochs, "device": device},
                sets=set_)
    if not cfg.classifier:
        cfg = replace(cfg, classifier=str(out / "classifiers" / f"{cfg.dataset}.pt"))
    tracking = replace(tracking_config(wandb, wandb_project, wandb_entity), group=name, job_type="gan",
                       tags=("gan", cfg.dataset))
    job = Job(run_gan, cfg, out / name / f"{cfg.dataset}-s{cfg.seed}", tracking, step_key="step", force=force)
    preflight([job], out)
    check_gan_inputs(cfg)
    with progress_display(quiet, 1) as progress:
        (outcome,) = run_inprocess([job], lambda i, j: epoch_reporter(progress, i, j))
    result = outcome.result or {}
    fid = "–" if result.get("fid") is None else f"{result['fid']:.2f}"
    out_console.print(f"{job.label}: {result.get('epochs')} epochs, classifier-FID {fid} "
                      f"(real-vs-real floor {result.get('fid_floor', 0):.2f}), "
                      f"mean max-prob {result.get('mean_max_prob') or 0:.3f} → {job.run_dir}")


def check_gan_inputs(cfg: GanConfig) -> None:
    """Data files and a cached classifier are read before anything is written."""
    for train in (True, False):
        load_images(cfg.dataset, Path(cfg.data_dir), train=train, download=cfg.download)
    if Path(cfg.classifier).exists():
        load_classifier(cfg.classifier)


@app.command()
def classifier(
    dataset: Annotated[str, typer.Option(help="mnist | fashion-mnist")] = "mnist",
    data_dir: Annotated[Path, typer.Option(help="Folder with the IDX files.")] = Path("data"),
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the data.")] = False,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = CLASSIFIER_EPOCHS,
    out: OutOpt = Path("runs"),
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Train (or show) the small CNN that scores GAN samples: classifier-FID, class histograms."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    path = out / "classifiers" / f"{dataset}.pt"
    if path.exists() and not force:
        _, meta = load_classifier(path)
        out_console.print(f"{path}: {dataset} test accuracy {100 * meta['test_accuracy']:.2f} % (cached; "
                          f"--force retrains)")
        return
    check_writable(out)
    dev = resolve_device(device or "auto")
    train = load_images(dataset, data_dir, train=True, download=download, device=dev)
    test = load_images(dataset, data_dir, train=False, download=download, device=dev)
    with console.status(f"training the {dataset} classifier ({epochs} epochs)"):
        model, accuracy = train_classifier(*train, *test, epochs=epochs, seed=0, device=dev)
    save_classifier(model, path, {"dataset": dataset, "test_accuracy": accuracy, "train_images": len(train[0])})
    out_console.print(f"{path}: {dataset} test accuracy {100 * accuracy:.2f} %")


RunDirArg = Annotated[Path, typer.Argument(help="A GAN run folder, e.g. runs/gan/mnist-s0.")]


@app.command("interpolate")
def interpolate_cmd(
    run_dir: RunDirArg,
    steps: Annotated[int, typer.Option(help="Intermediate points (the strip has steps + 2 images).")] = 7,
    method: Annotated[str, typer.Option(help="lerp | slerp")] = "lerp",
    pairs: Annotated[int, typer.Option(help="Number of strips.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for drawing latent candidates.")] = 0,
    min_confidence: Annotated[float, typer.Option(help="Classifier confidence both ends need.")] = 0.9,
    wandb: WandbOpt = "auto",
    wandb_project: ProjectOpt = "lstmgan",
    wandb_entity: EntityOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Interpolate in latent space between two samples of different classes; a strip per pair."""
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if pairs < 1:
        raise UserError(f"--pairs must be at least 1, got {pairs}")
    if method not in ("lerp", "slerp"):
        raise UserError(f"unknown --method {method!r}; choose lerp or slerp")
    if not 0 < min_confidence <= 1:
        raise UserError(f"--min-confidence must be in (0, 1], got {min_confidence}")
    dev = resolve_device(device or "auto")
    trained = load_trained(run_dir, dev)
    tracking = tracking_config(wandb, wandb_project, wandb_entity)
    strips = make_strips(trained, steps=steps, method=method, pairs=pairs, seed=seed, min_confidence=min_confidence,
                         tracking=tracking, device=dev)
    for strip in strips:
        classes = " → ".join(str(c) for c in strip["classes"])
        out_console.print(f"{strip['png']}: {classes}")


@app.command()
def sample(
    run_dir: RunDirArg,
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    out: Annotated[Path, typer.Option("--out", help="samples.npy (N×28×28 float32 in [-1, 1]) or a .png grid.")]
    = Path("samples.npy"),
    seed: Annotated[int, typer.Option(help="Seed for z.")] = 0,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Draw N samples from a trained GAN run into a .npy array or a .png grid."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out} must end in .npy (array) or .png (grid)")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another --out or pass --force to overwrite it")
    check_writable(out.parent if str(out.parent) else Path("."))
    dev = resolve_device(device or "auto")
    path = write_samples(load_trained(run_dir, dev), n, seed, out, dev)
    out_console.print(f"{n} samples → {path}")


@app.command()
def study(
    preset: Annotated[str | None, typer.Option(help="A preset of the study file, e.g. quick or full.")] = None,
    config: Annotated[Path, typer.Option("--config", help="The study file.")] = Path("jobs/study.yaml"),
    set_: SetOpt = None,
    dataset: Annotated[str | None, typer.Option(help="GAN dataset: mnist | fashion-mnist.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="GAN data folder (IDX files).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the GAN data.")] = False,
    out: Annotated[Path, typer.Option("--out", help="The study folder.")] = Path("runs/study"),
    wandb: WandbOpt = "auto",
    wandb_project: ProjectOpt = "lstmgan",
    wandb_entity: EntityOpt = None,
    device: DeviceOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run everything the report needs: the sweep, the ablation, one GAN run and its interpolation."""
    overrides: dict[str, Any] = {"gan.dataset": dataset, "gan.data_dir": str(data_dir) if data_dir else None,
                                 "gan.download": download or None}
    if device:
        overrides.update({"sweep.device": device, "ablation.device": device, "gan.device": device})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_study(config, preset, {**overrides, **parse_sets(set_)})
    jobs = study_jobs(cfg, out, tracking_config(wandb, wandb_project, wandb_entity), force=force)
    preflight(jobs, out)
    check_gan_inputs(jobs[-1].config)
    with progress_display(quiet, len(jobs)) as progress:
        run_inprocess(jobs, lambda i, j: epoch_reporter(progress, i, j))
    if cfg.interpolation_pairs:
        dev = resolve_device(cfg.gan.device)
        try:
            make_strips(load_trained(jobs[-1].run_dir, dev), steps=cfg.interpolation_steps, method="lerp",
                        pairs=cfg.interpolation_pairs, seed=0, min_confidence=0.9,
                        tracking=tracking_config(wandb, wandb_project, wandb_entity), device=dev)
        except UserError as e:  # a weak GAN is a result to report, not a failed study
            console.print(f"interpolation skipped: {e}", markup=False)
    sweep_dir = out / cfg.sweep.name
    print_summary(f"Study {out.name}: palindrome sweep", table_rows(write_summary(sweep_dir, load_runs(sweep_dir))))
    out_console.print(f"Study complete: {len(jobs)} runs under {out}. Next: lstmgan report {out}")


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A study folder (or a sweep folder), e.g. runs/study.")],
    wandb: Annotated[str, typer.Option("--wandb", help="auto | online | offline | disabled: log the figures to W&B.")]
    = "auto",
) -> None:
    """Rebuild the study report (report.md, report.html, figures/) from run folders; never trains."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the study folder, e.g. runs/study")
    tracking_config(wandb, "lstmgan", None)
    check_writable(folder)
    md, page = build_report(folder, wandb)
    out_console.print(f"Report: {md} and {page}")


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
