"""The `lstmgan` command line. Each command parses flags into configs and calls one function.

Errors a user can fix (UserError, bad flags) print one line and exit with code 2; nothing is written
before every input has been checked.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
import logging
import os
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
from lstmgan.launch import Job, resolve_device, run_inprocess, run_parallel
from lstmgan.report import build_report
from lstmgan.rundir import RunDir, check_writable, inspect
from lstmgan.slurm import (ClusterProfile, TaskStatus, load_profile, make_executor, offline_runs, sbatch_script,
                           submit, task_statuses, wait, wandb_sync_command)
from lstmgan.study import load_study, study_jobs
from lstmgan.sweep import HEADER, load_runs, longest_first, make_jobs, palindrome_job, table_rows, write_summary

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
WandbOpt = Annotated[str, typer.Option("--wandb",
                                        help="auto | online | offline | disabled (auto: online if logged in).")]
ProjectOpt = Annotated[str, typer.Option("--wandb-project", help="W&B project.")]
EntityOpt = Annotated[str | None, typer.Option("--wandb-entity", help="W&B entity (team or user).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda (auto = CUDA when present).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Training epochs.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start over even if the run folder holds a run.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress display.")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", help="Runs trained side by side in local processes "
                                             "(default: one per CPU core; 1 on a GPU).")]


def local_workers(requested: int | None, device: str) -> int:
    """How many runs to train side by side: one per core on the CPU (each run uses one thread), one on a GPU."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--jobs must be at least 1, got {requested}")
        return requested
    return 1 if resolve_device(device).type == "cuda" else os.cpu_count() or 1


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
    """Progress of one run as a line of the display, shown from its first epoch until it ends."""
    if progress is None:
        return lambda done, total, text: None
    runs_task = progress.task_ids[0]
    task: list[Any] = []

    def report(done: int, total: int, text: str) -> None:
        if not task:
            task.append(progress.add_task(f"run {index + 1}: {job.label}", total=total, text=""))
        progress.update(task[0], completed=done, total=total, text=text)
        if done == total:
            progress.update(runs_task, advance=1)
            progress.remove_task(task[0])

    return report


def print_summary(title: str, rows: list[list[str]], header: Sequence[str] = HEADER) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column, overflow="fold")  # long paths wrap instead of being cut
    for cells in rows:
        table.add_row(*cells)
    out_console.print(table)


def show_summary(sweep_dir: Path, title: str) -> None:
    """Write summary.md/.csv and figures from the run folders on disk, and print the table."""
    rows = write_summary(sweep_dir, load_runs(sweep_dir))
    print_summary(title, table_rows(rows))
    out_console.print(f"Summary: {sweep_dir / 'summary.md'}, figures: {sweep_dir / 'figures'}")


# --- SLURM -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmRequest:
    profile: ClusterProfile
    source: str  # the profile file, or "built-in defaults"
    wait: bool
    dry_run: bool


def slurm_flags(
    slurm: Annotated[bool, typer.Option("--slurm", help="Submit to SLURM (one job array) instead of training here.")]
    = False,
    cluster: Annotated[Path | None, typer.Option("--cluster", help="Cluster profile YAML (jobs/clusters/); "
                                                 "default: built-in (default partition, 1 CPU, 60 min).")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="SLURM account.")] = None,
    qos: Annotated[str | None, typer.Option("--qos", help="SLURM QOS.")] = None,
    time: Annotated[int | None, typer.Option("--time", help="Time limit per task, minutes.")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per task.")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="CPUs per task.")] = None,
    mem: Annotated[float | None, typer.Option("--mem", help="Memory per task, GB.")] = None,
    constraint: Annotated[str | None, typer.Option("--constraint", help="Node features (sbatch --constraint).")]
    = None,
    container: Annotated[str | None, typer.Option("--container", help="none | apptainer | singularity | pyxis")]
    = None,
    image: Annotated[str | None, typer.Option("--image", help="Container image (.sif file or image reference).")]
    = None,
    wait_: Annotated[bool, typer.Option("--wait", help="With --slurm: block until all tasks end; exit 1 if any "
                                        "failed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --slurm: print the sbatch script, submit "
                                          "nothing.")] = False,
) -> SlurmRequest | None:
    flags = {"partition": partition, "account": account, "qos": qos, "time": time, "gpus": gpus, "cpus": cpus,
             "mem": mem, "constraint": constraint, "container.runtime": container, "container.image": image}
    if not slurm:
        given = [f"--{k.split('.')[-1].replace('runtime', 'container')}" for k, v in flags.items() if v is not None]
        given += [flag for flag, on in (("--cluster", cluster), ("--wait", wait_), ("--dry-run", dry_run)) if on]
        if given:
            raise UserError(f"{', '.join(given)} only apply to SLURM submissions; add --slurm")
        return None
    profile = load_profile(cluster, flags)
    return SlurmRequest(profile, str(cluster) if cluster else "built-in defaults", wait_, dry_run)


def with_slurm_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a training command the flags of `slurm_flags`; the command receives them as one `slurm` argument
    (a SlurmRequest, or None to train here)."""
    own = pyinspect.signature(command, eval_str=True)
    extra = pyinspect.signature(slurm_flags, eval_str=True)
    hints = {**typing.get_type_hints(command, include_extras=True),
             **typing.get_type_hints(slurm_flags, include_extras=True)}

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        request = slurm_flags(**{name: kwargs.pop(name) for name in extra.parameters})
        command(**kwargs, slurm=request)

    params = [p for p in own.parameters.values() if p.name != "slurm"] + list(extra.parameters.values())
    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {k: v for k, v in hints.items() if k not in ("slurm", "return")}
    return wrapper


def run_on_slurm(jobs: Sequence[Job], sweep_dir: Path, request: SlurmRequest, quiet: bool,
                 summary_title: str | None = None) -> None:
    """Submit the jobs as one array (or only print its sbatch script); with --wait, follow it to the end."""
    if request.dry_run:
        executor = make_executor(sweep_dir / "submitit", request.profile, f"lstmgan-{sweep_dir.name}", preview=True)
        out_console.print(f"# {len(jobs)} task(s) from profile {request.source}; submitit folder "
                          f"{executor.folder}; nothing was submitted", markup=False, highlight=False)
        for i, job in enumerate(jobs):
            out_console.print(f"#   task {i}: {job.run_dir}", markup=False, highlight=False)
        out_console.print(sbatch_script(executor, len(jobs)), markup=False, highlight=False)
        return
    record = submit(jobs, sweep_dir, request.profile, request.source)
    out_console.print(f"Submitted SLURM job {record['job_id']} ({len(jobs)} task(s)) → {sweep_dir}; "
                      f"follow it with `lstmgan status {sweep_dir}`", markup=False, highlight=False)
    if not request.wait:
        return
    with progress_display(quiet, len(jobs)) as progress:
        statuses = wait(sweep_dir, record, lambda s: report_tasks(progress, s))
    print_status(sweep_dir, statuses)
    if summary_title:
        show_summary(sweep_dir, summary_title)
    failed = [s for s in statuses if s.outcome == "failed"]
    if failed:
        console.print(f"lstmgan: {len(failed)} of {len(statuses)} task(s) failed: {failed[0].run_dir.name}: "
                      f"{failed[0].error} (log: {failed[0].log})", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def report_tasks(progress: Any, statuses: list[TaskStatus]) -> None:
    if progress is None:
        return
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    text = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
    progress.update(progress.task_ids[0], completed=sum(s.outcome != "active" for s in statuses), text=text)


STATUS_HEADER = ["run", "SLURM id", "state", "epoch", "last val acc / FID", "log"]


def print_status(sweep_dir: Path, statuses: list[TaskStatus]) -> None:
    rows = [[s.run_dir.name, s.job_id, s.state + (f": {s.error}" if s.error and s.error != s.state else ""),
             "–" if s.epoch is None else str(s.epoch), s.last_metric, s.log] for s in statuses]
    print_summary(f"{sweep_dir}: {len(statuses)} task(s)", rows, STATUS_HEADER)


# --- commands --------------------------------------------------------------------------------------


@app.command()
@with_slurm_options
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
    slurm: SlurmRequest | None = None,
) -> None:
    """Train one model on palindromes of one length."""
    cfg = build(PalindromeConfig, yaml_path=config,
                flags={"model": model, "length": length, "seed": seed, "epochs": epochs, "device": device},
                sets=set_)
    job = palindrome_job(cfg, out / (name or "palindrome"), tracking_config(wandb, wandb_project, wandb_entity),
                         force=force)
    preflight([job], out)
    if slurm:
        return run_on_slurm([job], job.run_dir.parent, slurm, quiet)
    with progress_display(quiet, 1) as progress:
        (outcome,) = run_inprocess([job], lambda i, j: epoch_reporter(progress, i, j))
    result = outcome.result or {}
    out_console.print(f"{job.label}: final val acc {100 * result['final_val_acc']:.1f} %, "
                      f"best {100 * result['best_val_acc']:.1f} % (epoch {result['best_epoch']}) → {job.run_dir}")


@app.command()
@with_slurm_options
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
    jobs_: JobsOpt = None,
    slurm: SlurmRequest | None = None,
) -> None:
    """RNN and LSTM at each length and seed; prints and writes the summary table and figures."""
    cfg = build(SweepConfig, yaml_path=config,
                flags={"lengths": lengths, "models": models, "seeds": seeds, "name": name, "epochs": epochs,
                       "device": device}, sets=set_)
    jobs = make_jobs(cfg, out, tracking_config(wandb, wandb_project, wandb_entity), force=force)
    preflight(jobs, out)
    sweep_dir = out / cfg.name
    title = f"Sweep {cfg.name}: {len(jobs)} runs, {cfg.run.epochs} epochs"
    if slurm:
        return run_on_slurm(jobs, sweep_dir, slurm, quiet, summary_title=title)
    with progress_display(quiet, len(jobs)) as progress:
        run_parallel(longest_first(jobs), local_workers(jobs_, cfg.run.device),
                     lambda i, j: epoch_reporter(progress, i, j))
    show_summary(sweep_dir, title)


@app.command()
@with_slurm_options
def gan(
    dataset: Annotated[str | None, typer.Option(help="mnist | fashion-mnist")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the IDX files (torchvision layout or flat).")]
    = None,
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
    slurm: SlurmRequest | None = None,
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
    if slurm:
        return run_on_slurm([job], job.run_dir.parent, slurm, quiet)
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


SweepDirArg = Annotated[Path, typer.Argument(help="A sweep folder, e.g. runs/palindrome.")]


def existing_sweep(sweep_dir: Path) -> Path:
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a folder; give a sweep folder such as runs/palindrome")
    return sweep_dir


@app.command()
def status(sweep_dir: SweepDirArg) -> None:
    """Per task: SLURM id, state, epoch reached, last val acc or FID, log file (local sweeps too)."""
    statuses = task_statuses(existing_sweep(sweep_dir))
    if not statuses:
        raise UserError(f"{sweep_dir} holds no runs and no SLURM submission")
    print_status(sweep_dir, statuses)


@app.command()
def collect(sweep_dir: SweepDirArg) -> None:
    """Summary table, summary.md/.csv and figures from the runs that finished so far."""
    if not load_runs(existing_sweep(sweep_dir)):
        raise UserError(f"{sweep_dir} holds no palindrome runs; `lstmgan status {sweep_dir}` shows what it holds")
    show_summary(sweep_dir, f"Sweep {sweep_dir.name} (collected)")


@app.command()
def sync(
    sweep_dir: SweepDirArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the offline runs, upload nothing.")] = False,
) -> None:
    """Upload the sweep's offline W&B runs (logged on compute nodes) with `wandb sync`."""
    runs = offline_runs(existing_sweep(sweep_dir))
    if not runs:
        raise UserError(f"no offline W&B runs under {sweep_dir} (looked for */wandb/offline-run-*)")
    for run in runs:
        out_console.print(str(run), markup=False, highlight=False)
    if not dry_run:
        code = subprocess.call(wandb_sync_command(runs))
        if code:
            raise UserError(f"wandb sync failed (exit {code}); log in with `wandb login` or set WANDB_API_KEY")


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
    jobs_: JobsOpt = None,
) -> None:
    """Run everything the report needs: the sweep, the ablation, one GAN run and its interpolation."""
    overrides: dict[str, Any] = {"gan.dataset": dataset, "gan.data_dir": str(data_dir) if data_dir else None,
                                 "gan.download": download or None}
    if device:
        overrides.update({"sweep.device": device, "ablation.device": device, "gan.device": device})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_study(config, preset, {**overrides, **parse_sets(set_)})
    jobs = study_jobs(cfg, out, tracking_config(wandb, wandb_project, wandb_entity), force=force)
    palindromes, gan_jobs = jobs[:-1], jobs[-1:]
    preflight(jobs, out)
    check_gan_inputs(jobs[-1].config)
    with progress_display(quiet, len(jobs)) as progress:
        report = lambda i, j: epoch_reporter(progress, i, j)  # noqa: E731
        run_parallel(longest_first(palindromes), local_workers(jobs_, cfg.sweep.run.device), report)
        run_inprocess(gan_jobs, lambda i, j: report(len(palindromes) + i, j))
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
        code = command.main(args, prog_name="lstmgan", standalone_mode=False)
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
    return code if isinstance(code, int) else 0  # typer.Exit(n) raised in a command comes back as n


def entrypoint() -> None:
    sys.exit(main())
