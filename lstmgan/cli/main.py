"""The `lstmgan` command line. Each command parses flags into a config and hands it to `execute`.

Exit codes: 0 ok; 1 a run failed or an internal error (one line + a file with the traceback); 2 bad input
(UserError, bad flags: one line, nothing written); 3 a disk or permission problem; 130 interrupted.

Only typer, rich, the standard library and light lstmgan modules are imported here: torch, submitit, wandb
and the experiments are imported inside the commands, so `lstmgan --help` answers at once.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import errno
import functools
import inspect as pyinspect
import logging
import os
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lstmgan import __version__, catalog
from lstmgan.cli.display import (
    Reporter,
    print_status,
    print_table,
    progress_display,
    run_reporter,
    say,
    task_counts,
    warn,
)
from lstmgan.config import (
    DATASETS,
    DEVICES,
    MAX_SEED,
    MODELS,
    SWEEP_AXES,
    WANDB_MODES,
    GanConfig,
    PalindromeConfig,
    SweepConfig,
    TrackingConfig,
    build,
    check_name,
    parse_grid,
    parse_sets,
    refuse_owned_sets,
    to_dict,
)
from lstmgan.errors import UserError, first_line

if TYPE_CHECKING:
    from lstmgan.runner.job import Job
    from lstmgan.runner.slurm import ClusterProfile

app = typer.Typer(add_completion=True, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Palindromes (LSTM vs vanilla RNN) and an MNIST GAN, locally or on SLURM, tracked in W&B.")

TRAINING, OUTPUT, WANDB, SLURM = "Training", "Output", "W&B", "SLURM"


def _choices(name: str, values: Sequence[str]) -> Any:
    """A str Enum of `values` (typer shows and checks them); the values stay the config's one source."""
    return enum.Enum(name, [(v, v) for v in values], type=str)


Model = _choices("Model", MODELS)
Device = _choices("Device", DEVICES)
WandbMode = _choices("WandbMode", WANDB_MODES)
Dataset = _choices("Dataset", DATASETS)
Method = _choices("Method", ("lerp", "slerp"))
Runtime = _choices("Runtime", ("none", "apptainer", "singularity", "pyxis"))  # slurm.RUNTIMES (imports submitit)
NOUNS = {Model: "model", Device: "device", WandbMode: "W&B mode", Dataset: "dataset", Method: "interpolation method",
         Runtime: "container runtime"}


def value(choice: Any) -> Any:
    """An enum member's value (None stays None: the flag was not given)."""
    return None if choice is None else choice.value


# --- options shared by the training commands ----------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The options of palindrome, sweep, gan and study, received by each as one `opts` argument."""

    config: Annotated[str | None, typer.Option(
        "--config", help="A packaged job (see `lstmgan configs`) or a YAML file.", rich_help_panel=TRAINING)] = None
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="key=value override, repeatable; wins over all.", rich_help_panel=TRAINING)] = None
    device: Annotated[Device | None, typer.Option(
        "--device", help="auto = CUDA when present (default: the config's, auto).", rich_help_panel=TRAINING)] = None
    jobs: Annotated[int | None, typer.Option(
        "--jobs", help="Runs trained side by side in local processes (default: one per CPU core; 1 on a GPU).",
        rich_help_panel=TRAINING)] = None
    out: Annotated[Path, typer.Option(
        "--out", help="Folder that holds sweep/run folders.", show_default=True, rich_help_panel=OUTPUT)] = Path("runs")
    name: Annotated[str | None, typer.Option(
        "--name", help="Sweep name: runs go to OUT/NAME/.", rich_help_panel=OUTPUT)] = None
    force: Annotated[bool, typer.Option(
        "--force", help="Start over even if the run folder holds a run.", rich_help_panel=OUTPUT)] = False
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.", rich_help_panel=OUTPUT)] = False
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config as YAML; run and write nothing.",
        rich_help_panel=OUTPUT)] = False
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs that would train, resume or be skipped (with --slurm: print the sbatch "
        "script); run and write nothing.", rich_help_panel=OUTPUT)] = False
    wandb: Annotated[WandbMode, typer.Option(
        "--wandb", help="auto: online if logged in, else offline.", show_default=True,
        rich_help_panel=WANDB)] = WandbMode.auto
    wandb_project: Annotated[str, typer.Option(
        "--wandb-project", help="W&B project.", show_default=True, rich_help_panel=WANDB)] = "lstmgan"
    wandb_entity: Annotated[str | None, typer.Option(
        "--wandb-entity", help="W&B entity (team or user).", rich_help_panel=WANDB)] = None
    group: Annotated[str | None, typer.Option(
        "--group", help="W&B group (default: one per sweep/study folder, kept in its wandb-group file).",
        rich_help_panel=WANDB)] = None
    wandb_system_metrics: Annotated[bool, typer.Option(
        "--wandb-system-metrics/--no-wandb-system-metrics", help="Log GPU/CPU utilisation and memory to W&B.",
        show_default=True, rich_help_panel=WANDB)] = True
    wandb_artifacts: Annotated[bool, typer.Option(
        "--wandb-artifacts", help="Log GAN checkpoints as W&B artifacts (at the end of a run, or at sync).",
        rich_help_panel=WANDB)] = False

    def folder(self, default: str) -> str:
        """--name, checked like a sweep's name: one plain folder under --out."""
        name = default if self.name is None else self.name
        check_name("--name", name)
        return name

    def config_file(self) -> Path | None:
        return catalog.find(self.config, "job") if self.config else None

    def sets(self, owned: dict[str, str], command: str = "") -> list[str] | None:
        """--set items, refused where the command sets that key through a flag of its own."""
        refuse_owned_sets(parse_sets(self.set_), owned, command)
        return self.set_

    def tracking(self) -> TrackingConfig:
        tracking = TrackingConfig(mode=value(self.wandb), project=self.wandb_project, entity=self.wandb_entity,
                                  group=self.group, system_metrics=self.wandb_system_metrics,
                                  artifacts=self.wandb_artifacts)
        tracking.validate()
        return tracking


@dataclass(frozen=True)
class SlurmRequest:
    profile: ClusterProfile
    source: str  # the profile file, or "built-in defaults"
    wait: bool
    dry_run: bool


@dataclass(frozen=True)
class SlurmOptions:
    """The thirteen flags of a SLURM submission, received as one `slurm` argument."""

    slurm: Annotated[bool, typer.Option(
        "--slurm", help="Submit to SLURM (one job array) instead of training here.", rich_help_panel=SLURM)] = False
    cluster: Annotated[str | None, typer.Option(
        "--cluster", help="Cluster profile: a packaged name (`lstmgan configs`) or a YAML file; default: built-in "
        "(default partition, 1 CPU, 60 min).", rich_help_panel=SLURM)] = None
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.", rich_help_panel=SLURM)] = None
    account: Annotated[str | None, typer.Option("--account", help="SLURM account.", rich_help_panel=SLURM)] = None
    qos: Annotated[str | None, typer.Option("--qos", help="SLURM QOS.", rich_help_panel=SLURM)] = None
    time: Annotated[int | None, typer.Option("--time", help="Time limit per task, minutes.",
                                             rich_help_panel=SLURM)] = None
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs per task.", rich_help_panel=SLURM)] = None
    cpus: Annotated[int | None, typer.Option("--cpus", help="CPUs per task.", rich_help_panel=SLURM)] = None
    mem: Annotated[float | None, typer.Option("--mem", help="Memory per task, GB.", rich_help_panel=SLURM)] = None
    constraint: Annotated[str | None, typer.Option(
        "--constraint", help="Node features (sbatch --constraint).", rich_help_panel=SLURM)] = None
    container: Annotated[Runtime | None, typer.Option(
        "--container", help="Run each task in a container.", rich_help_panel=SLURM)] = None
    image: Annotated[str | None, typer.Option(
        "--image", help="Container image (.sif file or image reference).", rich_help_panel=SLURM)] = None
    wait: Annotated[bool, typer.Option(
        "--wait", help="Block until all tasks end; exit 1 if any failed.", rich_help_panel=SLURM)] = False

    def request(self, dry_run: bool) -> SlurmRequest | None:
        """The submission asked for (profile < flags, validated), or None to train here."""
        flags = {"partition": self.partition, "account": self.account, "qos": self.qos, "time": self.time,
                 "gpus": self.gpus, "cpus": self.cpus, "mem": self.mem, "constraint": self.constraint,
                 "container.runtime": value(self.container), "container.image": self.image}
        if not self.slurm:
            given = [f"--{k.split('.')[-1].replace('runtime', 'container')}" for k, v in flags.items() if v is not None]
            given += [flag for flag, on in (("--cluster", self.cluster), ("--wait", self.wait)) if on]
            if given:
                raise UserError(f"{', '.join(given)} only apply to SLURM submissions; add --slurm")
            return None
        from lstmgan.runner.slurm import load_profile

        path = catalog.find(self.cluster, "cluster") if self.cluster else None
        profile = load_profile(path, flags)
        if self.image and profile.container.runtime == "none":
            raise UserError("--image needs a container runtime: add --container apptainer (or singularity, pyxis) "
                            "or set container.runtime in the cluster profile")
        return SlurmRequest(profile, str(path) if path else "built-in defaults", self.wait, dry_run)


def with_options(cls: type, arg: str, *, omit: Sequence[str] = (), defaults: dict[str, Any] | None = None,
                 helps: dict[str, str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the fields of dataclass `cls` as options; it receives them as one `arg` (a `cls`).

    `omit` leaves fields out (they keep the dataclass default), `defaults` and `helps` change a field's
    default or help text for this command."""
    defaults, helps = defaults or {}, helps or {}
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.name not in omit]
    params = [pyinspect.Parameter(f.name, pyinspect.Parameter.KEYWORD_ONLY, default=defaults.get(f.name, f.default),
                                  annotation=_with_help(hints[f.name], helps.get(f.name))) for f in fields]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = pyinspect.signature(command, eval_str=True)

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            options = cls(**{f.name: kwargs.pop(f.name) for f in fields})
            return command(**kwargs, **{arg: options})

        keep = [p.replace(kind=pyinspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != arg]
        wrapper.__signature__ = own.replace(parameters=keep + params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in keep + params}
        return wrapper

    return decorate


def _with_help(hint: Any, text: str | None) -> Any:
    if text is None:
        return hint
    base, info, *_ = typing.get_args(hint)
    info = copy.copy(info)
    info.help = text
    return Annotated[base, info]


EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Training epochs.", rich_help_panel=TRAINING)]


# --- the shared tail: checks, then print-config, dry-run, SLURM or a local run ----------------------------------

RunJobs = Callable[["Sequence[Job]", "Callable[[int, Job], Reporter]"], Any]


def execute(opts: Options, slurm: SlurmOptions | None, jobs: Sequence[Job], resolved: Any, *, folder: Path,
            run: RunJobs, done: Callable[[], None], title: str | None = None,
            checks: Sequence[Callable[[], Any]] = ()) -> None:
    """What every training command does once its config and jobs are built.

    Every check comes before anything is written: the SLURM request, each run folder (`rundir.inspect`), and
    the command's own `checks`. Then: --print-config prints `resolved`; --dry-run lists what would happen;
    --slurm submits (or prints the sbatch script); otherwise `run` trains here and `done` prints the results,
    followed by where the W&B runs went."""
    request = slurm.request(opts.dry_run) if slurm else None
    if opts.print_config:
        import yaml

        return say(yaml.safe_dump(to_dict(resolved), sort_keys=False).rstrip())
    states = preflight(jobs, opts.out)
    for check in checks:
        check()
    if request is None and opts.dry_run:
        return show_plan(jobs, states)
    if request is not None:
        from lstmgan.runner.slurm import gpu_warning

        if warning := gpu_warning(jobs, request.profile):
            warn(f"warning: {warning}")
        return run_on_slurm(jobs, folder, request, opts.quiet, title)
    with progress_display(opts.quiet, len(jobs)) as progress:
        run(jobs, lambda i, job: run_reporter(progress, i, job.label))
    done()
    wandb_line([job.run_dir for job in jobs], value(opts.wandb))


def preflight(jobs: Sequence[Job], out: Path) -> list[Any]:
    """Check every run folder, reading only: a bad input changes nothing. Returns what each run would do."""
    from lstmgan.fs import check_writable
    from lstmgan.rundir import RunDir, inspect

    check_writable(out)
    return [inspect(RunDir(job.run_dir), to_dict(job.config), force=job.force) for job in jobs]


def show_plan(jobs: Sequence[Job], states: Sequence[Any]) -> None:
    """--dry-run without --slurm: per run, whether it would train, resume or be skipped."""
    actions = {"fresh": "train", "resume": "resume from its checkpoint", "done": "skip (finished; --force retrains)"}
    print_table(f"{len(jobs)} run(s); nothing was run or written",
                [[job.label, actions[state.value], str(job.run_dir)] for job, state in zip(jobs, states)],
                ["run", "would", "folder"])


def wandb_line(run_dirs: list[Path], mode: str) -> None:
    from lstmgan.tracking.tracker import where_message

    message = where_message(run_dirs, mode)
    if message:
        say(message)


def in_order(jobs: Sequence[Job], reporter: Callable[[int, Job], Reporter]) -> Any:
    from lstmgan.runner.local import run_inprocess

    return run_inprocess(jobs, reporter)


def side_by_side(workers: int | None, device: str) -> RunJobs:
    """Palindrome runs in local processes, longest first, so the runs side by side end together."""
    count = local_workers(workers, device)  # checked now, with the other inputs

    def run(jobs: Sequence[Job], reporter: Callable[[int, Job], Reporter]) -> Any:
        from lstmgan.experiments import longest_first
        from lstmgan.runner.local import run_parallel

        return run_parallel(longest_first(list(jobs)), count, reporter)

    return run


def local_workers(requested: int | None, device: str) -> int:
    """How many runs to train side by side: one per core on the CPU (each run uses one thread), one on a GPU."""
    import torch

    from lstmgan.environment import usable_cpus

    if requested is not None:
        if requested < 1:
            raise UserError(f"--jobs must be at least 1, got {requested}")
        return requested
    # Whether the device exists is each run's check (on SLURM, the node's): only count here.
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return 1 if on_gpu else usable_cpus()


def run_on_slurm(jobs: Sequence[Job], sweep_dir: Path, request: SlurmRequest, quiet: bool,
                 summary_title: str | None = None) -> None:
    """Submit the jobs as one array (or only print its sbatch script); with --wait, follow it to the end."""
    from lstmgan.runner.slurm import preview, submit, wait

    if request.dry_run:
        return say(preview(jobs, sweep_dir, request.profile, request.source))
    record = submit(jobs, sweep_dir, request.profile, request.source)
    say(f"Submitted SLURM job {record['job_id']} ({len(record['tasks'])} task(s), {len(jobs)} run(s)) → {sweep_dir}; "
        f"follow it with `lstmgan status {sweep_dir}`")
    if not request.wait:
        return
    with progress_display(quiet, len(jobs)) as progress:
        statuses = wait(sweep_dir, record, lambda s: task_counts(progress, s))
    print_status(sweep_dir, statuses)
    if summary_title:
        show_summary(sweep_dir, summary_title, replace(jobs[0].tracking, tags=()))  # the sweep's, not a run's tags
    mode = jobs[0].tracking.mode
    wandb_line([job.run_dir for job in jobs], "offline" if mode == "auto" else mode)  # as slurm.offline_tracking
    failed = [s for s in statuses if s.outcome == "failed"]
    if failed:
        warn(f"{len(failed)} of {len(statuses)} task(s) failed: {failed[0].run_dir.name}: {failed[0].error} "
             f"(log: {failed[0].log})")
        raise typer.Exit(1)


def show_summary(sweep_dir: Path, title: str, tracking: TrackingConfig | None = None) -> None:
    """Write summary.md/.csv and figures from the run folders on disk, and print the table; with `tracking`,
    the table and figures also go to the sweep's W&B report run (job_type report, in the sweep's group)."""
    from lstmgan.results.summary import load_runs, table_header, table_rows, write_summary

    rows = write_summary(sweep_dir, load_runs(sweep_dir))
    print_table(title, table_rows(rows), table_header(rows))
    if tracking is not None:
        from lstmgan.tracking.sync import log_report

        log_report(sweep_dir, {"summary": (table_header(rows), table_rows(rows))},
                   sorted((sweep_dir / "figures").glob("*.png")), tracking)
    say(f"Summary: {sweep_dir / 'summary.md'}, figures: {sweep_dir / 'figures'}")


# --- training commands ------------------------------------------------------------------------------------------

# Keys a command sets with flags of its own; refuse_owned_sets matches dotted forms (run.model) too.
SWEEP_OWNS = {key: flag for single, flag in SWEEP_AXES.items() for key in (single, single + "s")}
STUDY_OWNS = {"dataset": "--dataset", "data_dir": "--data-dir"}


@app.command(rich_help_panel="Experiments")
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("jobs", "wandb_artifacts"))
def palindrome(
    opts: Options, slurm: SlurmOptions,
    model: Annotated[Model | None, typer.Option(help="Default: the config's, lstm.",
                                                rich_help_panel=TRAINING)] = None,
    length: Annotated[int | None, typer.Option(help="Digits the network reads (palindrome has length + 1).",
                                               rich_help_panel=TRAINING)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data, initialisation and shuffling.",
                                             rich_help_panel=TRAINING)] = None,
    epochs: EpochsOpt = None,
) -> None:
    """Train one model on palindromes of one length."""
    from lstmgan.experiments import palindrome_job

    cfg = build(PalindromeConfig, yaml_path=opts.config_file(), sets=opts.sets({}), flags={
        "model": value(model), "length": length, "seed": seed, "epochs": epochs, "device": value(opts.device)})
    job = palindrome_job(cfg, opts.out / opts.folder("palindrome"), opts.tracking(), force=opts.force)

    def done() -> None:
        result = job_result(job)
        say(f"{job.label}: final val acc {100 * result['final_val_acc']:.1f} %, best "
            f"{100 * result['best_val_acc']:.1f} % (epoch {result['best_epoch']}) → {job.run_dir}")

    execute(opts, slurm, [job], cfg, folder=job.run_dir.parent, run=in_order, done=done)


@app.command(rich_help_panel="Experiments")
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("wandb_artifacts",))
def sweep(
    opts: Options, slurm: SlurmOptions,
    lengths: Annotated[list[int] | None, typer.Option(help="Lengths: --lengths 5 10 15 20 (or 5,10,15,20).",
                                                      rich_help_panel=TRAINING)] = None,
    models: Annotated[list[Model] | None, typer.Option(help="Models: --models rnn lstm.",
                                                       rich_help_panel=TRAINING)] = None,
    seeds: Annotated[list[int] | None, typer.Option(help="Seeds: --seeds 0 1 2.", rich_help_panel=TRAINING)] = None,
    grid: Annotated[list[str] | None, typer.Option(help="key=v1,v2: also sweep a setting, repeatable "
                                                   "(--grid hidden=64,128 --grid lr=1e-3,3e-3).",
                                                   rich_help_panel=TRAINING)] = None,
    epochs: EpochsOpt = None,
) -> None:
    """RNN and LSTM at each length and seed (× any --grid); prints and writes the summary table and figures."""
    from lstmgan.experiments import make_jobs

    cfg = build(SweepConfig, yaml_path=opts.config_file(), sets=opts.sets(SWEEP_OWNS, "sweep"), flags={
        "lengths": lengths, "models": [value(m) for m in models] if models else None, "seeds": seeds,
        "grid": parse_grid(grid) or None, "name": opts.name, "epochs": epochs, "device": value(opts.device)})
    jobs = make_jobs(cfg, opts.out, opts.tracking(), force=opts.force)
    sweep_dir, title = opts.out / cfg.name, f"Sweep {cfg.name}: {len(jobs)} runs, {cfg.run.epochs} epochs"
    execute(opts, slurm, jobs, cfg, folder=sweep_dir, title=title, run=side_by_side(opts.jobs, cfg.run.device),
            done=lambda: show_summary(sweep_dir, title, opts.tracking()))


DataDirOpt = Annotated[Path | None, typer.Option(help="Folder with the IDX files (torchvision layout or flat); "
                                                 "default: the config's, data.", rich_help_panel=TRAINING)]
DownloadOpt = Annotated[bool, typer.Option("--download", help="Let torchvision download the data.",
                                           rich_help_panel=TRAINING)]
DatasetOpt = Annotated[Dataset | None, typer.Option(help="Default: the config's, mnist.",
                                                    rich_help_panel=TRAINING)]


@app.command(rich_help_panel="Experiments")
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("jobs",), defaults={"name": "gan"},
              helps={"name": "Runs go to OUT/NAME/<dataset>-s<seed>/."})
def gan(
    opts: Options, slurm: SlurmOptions,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    seed: Annotated[int | None, typer.Option(help="Seed for initialisation, batches, z and evaluation.",
                                             rich_help_panel=TRAINING)] = None,
    epochs: EpochsOpt = None,
) -> None:
    """Train the MLP GAN: sample grids, losses, classifier-FID; checkpoints every checkpoint_every epochs."""
    cfg = build(GanConfig, yaml_path=opts.config_file(), sets=opts.sets({}), flags={
        "dataset": value(dataset), "data_dir": str(data_dir) if data_dir else None, "download": download or None,
        "seed": seed, "epochs": epochs, "device": value(opts.device)})
    from lstmgan.experiments import gan_job

    job = gan_job(cfg, opts.out / opts.folder("gan"), opts.tracking(), force=opts.force)

    def done() -> None:
        result = job_result(job)
        fid = "–" if result.get("fid") is None else f"{result['fid']:.2f}"
        say(f"{job.label}: {result.get('epochs')} epochs, classifier-FID {fid} (real-vs-real floor "
            f"{result.get('fid_floor') or 0:.2f}), mean max-prob {result.get('mean_max_prob') or 0:.3f} "
            f"→ {job.run_dir}")

    execute(opts, slurm, [job], job.config, folder=job.run_dir.parent, run=in_order, done=done,
            checks=[lambda: check_gan_inputs(job.config)])


def job_result(job: Job) -> dict[str, Any]:
    from lstmgan.rundir import RunDir

    return RunDir(job.run_dir).result() or {}


def check_gan_inputs(cfg: GanConfig) -> None:
    """Data files and a cached classifier are read before anything is written."""
    from lstmgan.gan.classifier import load_classifier
    from lstmgan.gan.data import load_images

    for train in (True, False):
        load_images(cfg.dataset, Path(cfg.data_dir), train=train, download=cfg.download)
    if Path(cfg.classifier).exists():
        load_classifier(cfg.classifier)


@app.command(rich_help_panel="Experiments")
@with_options(Options, "opts", omit=("name",), defaults={"config": "study", "out": Path("runs/study")},
              helps={"config": "The study file: a packaged name (`lstmgan configs`) or a YAML file.",
                     "out": "The study folder.",
                     "dry_run": "List the runs that would train, resume or be skipped; run and write nothing."})
def study(
    opts: Options,
    preset: Annotated[str | None, typer.Option(help="A preset of the study file, e.g. quick or full.",
                                               rich_help_panel=TRAINING)] = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
) -> None:
    """Run everything the report needs: the sweep, the ablation, one GAN run and its interpolation."""
    from lstmgan.experiments import load_study, study_jobs

    flags = {"gan.dataset": value(dataset), "gan.data_dir": str(data_dir) if data_dir else None,
             "gan.download": download or None, **dict.fromkeys(("sweep.device", "ablation.device", "gan.device"),
                                                               value(opts.device))}
    given = {k: v for k, v in flags.items() if v is not None}
    cfg = load_study(opts.config_file() or Path(), preset, {**given, **parse_sets(opts.sets(STUDY_OWNS, "study"))})
    jobs = study_jobs(cfg, opts.out, opts.tracking(), force=opts.force)
    execute(opts, None, jobs, cfg, folder=opts.out, run=study_runner(cfg, opts), done=lambda: study_done(cfg, opts),
            checks=[lambda: check_gan_inputs(jobs[-1].config)])


def study_runner(cfg: Any, opts: Options) -> RunJobs:
    """The palindrome runs side by side, then the GAN, then its interpolation strips."""
    run_palindromes = side_by_side(opts.jobs, cfg.sweep.run.device)

    def run(jobs: Sequence[Job], reporter: Callable[[int, Job], Reporter]) -> None:
        from lstmgan.experiments import interpolation_strips

        palindromes, gan = list(jobs[:-1]), list(jobs[-1:])
        run_palindromes(palindromes, reporter)
        in_order(gan, lambda i, job: reporter(len(palindromes) + i, job))
        try:
            interpolation_strips(cfg, gan[0].run_dir, opts.tracking())
        except UserError as e:  # a weak GAN is a result to report, not a failed study
            warn(f"interpolation skipped: {e}")

    return run


def study_done(cfg: Any, opts: Options) -> None:
    from lstmgan.results.summary import load_runs, table_header, table_rows, write_summary

    sweep_dir = opts.out / cfg.sweep.name
    rows = write_summary(sweep_dir, load_runs(sweep_dir))
    print_table(f"Study {opts.out.name}: palindrome sweep", table_rows(rows), table_header(rows))
    from lstmgan.tracking.sync import log_report  # the study's W&B report run; `lstmgan report --wandb` adds the rest

    log_report(opts.out, {"palindrome": (table_header(rows), table_rows(rows))},
               sorted((sweep_dir / "figures").glob("*.png")), opts.tracking())
    say(f"Study complete: runs under {opts.out}. Next: lstmgan report {opts.out}")


# --- GAN tools --------------------------------------------------------------------------------------------------

DeviceOpt = Annotated[Device, typer.Option(help="auto = CUDA when present.", show_default=True)]
RunDirArg = Annotated[Path, typer.Argument(help="A GAN run folder, e.g. runs/gan/mnist-s0.")]


@app.command(rich_help_panel="GAN tools")
def classifier(
    dataset: Annotated[Dataset, typer.Option(show_default=True)] = Dataset.mnist,
    data_dir: Annotated[Path, typer.Option(help="Folder with the IDX files.", show_default=True)] = Path("data"),
    download: Annotated[bool, typer.Option("--download", help="Let torchvision download the data.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: as `gan` trains it).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Saved as OUT/classifiers/<dataset>.pt.",
                                      show_default=True)] = Path("runs"),
    device: DeviceOpt = Device.auto,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if a classifier is cached.")] = False,
) -> None:
    """Train (or show) the small CNN that scores GAN samples: classifier-FID, class histograms."""
    from lstmgan.fs import check_writable
    from lstmgan.gan.classifier import load_classifier, train_and_save
    from lstmgan.gan.data import load_images
    from lstmgan.gan.train import CLASSIFIER_EPOCHS
    from lstmgan.runner.job import resolve_device

    epochs = CLASSIFIER_EPOCHS if epochs is None else epochs
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    name, path = value(dataset), out / "classifiers" / f"{value(dataset)}.pt"
    if path.exists() and not force:
        _, meta = load_classifier(path)
        return say(f"{path}: {name} test accuracy {100 * meta['test_accuracy']:.2f} % (cached; --force retrains)")
    check_writable(out)
    dev = resolve_device(value(device))
    train = load_images(name, data_dir, train=True, download=download, device=dev)
    test = load_images(name, data_dir, train=False, download=download, device=dev)
    with progress_display(False, 1) as progress:
        _, accuracy = train_and_save(name, train, test, path, epochs=epochs, device=dev,
                                     progress=run_reporter(progress, 0, f"{name} classifier"))
    say(f"{path}: {name} test accuracy {100 * accuracy:.2f} %")


@app.command("interpolate", rich_help_panel="GAN tools")
def interpolate_cmd(
    run_dir: RunDirArg,
    steps: Annotated[int, typer.Option(help="Intermediate points (the strip has steps + 2 images).")] = 7,
    method: Annotated[Method, typer.Option(show_default=True)] = Method.lerp,
    pairs: Annotated[int, typer.Option(help="Number of strips.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for drawing latent candidates.")] = 0,
    min_confidence: Annotated[float, typer.Option(help="Classifier confidence both ends need.")] = 0.9,
    wandb: Annotated[WandbMode, typer.Option(help="Log the strips to the run's W&B run.",
                                             rich_help_panel=WANDB)] = WandbMode.auto,
    wandb_project: Annotated[str, typer.Option(help="W&B project.", rich_help_panel=WANDB)] = "lstmgan",
    wandb_entity: Annotated[str | None, typer.Option(help="W&B entity.", rich_help_panel=WANDB)] = None,
    device: DeviceOpt = Device.auto,
) -> None:
    """Interpolate in latent space between two samples of different classes; a strip per pair."""
    from lstmgan.gan.posthoc import load_trained, make_strips
    from lstmgan.runner.job import resolve_device

    for flag, number, ok, rule in (("--steps", steps, steps >= 1, "at least 1"), ("--pairs", pairs, pairs >= 1,
                                   "at least 1"), ("--min-confidence", min_confidence, 0 < min_confidence <= 1,
                                                   "in (0, 1]")):
        if not ok:
            raise UserError(f"{flag} must be {rule}, got {number}")
    check_seed(seed)
    tracking = TrackingConfig(mode=value(wandb), project=wandb_project, entity=wandb_entity)
    dev = resolve_device(value(device))
    strips = make_strips(load_trained(run_dir, dev), steps=steps, method=value(method), pairs=pairs, seed=seed,
                         min_confidence=min_confidence, tracking=tracking, device=dev)
    for strip in strips:
        say(f"{strip['png']}: {' → '.join(str(c) for c in strip['classes'])}")


MAX_DRAW = 100_000  # 28×28 float32: about 300 MB in memory at this bound


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")


@app.command(rich_help_panel="GAN tools")
def sample(
    run_dir: RunDirArg,
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    out: Annotated[Path, typer.Option("--out", help="samples.npy (N×28×28 float32 in [-1, 1]) or a .png grid.",
                                      show_default=True)] = Path("samples.npy"),
    seed: Annotated[int, typer.Option(help="Seed for z.")] = 0,
    device: DeviceOpt = Device.auto,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Draw N samples from a trained GAN run into a .npy array or a .png grid."""
    from lstmgan.fs import check_writable
    from lstmgan.gan.posthoc import load_trained, write_samples
    from lstmgan.runner.job import resolve_device

    if not 1 <= n <= MAX_DRAW:
        raise UserError(f"--n must be between 1 and {MAX_DRAW}, got {n}; draw larger sets in several files")
    check_seed(seed)
    if out.suffix not in (".npy", ".png"):
        raise UserError(f"--out {out} must end in .npy (array) or .png (grid)")
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another --out or pass --force to overwrite it")
    check_writable(out.parent)
    dev = resolve_device(value(device))
    say(f"{n} samples → {write_samples(load_trained(run_dir, dev), n, seed, out, dev)}")


# --- reading results --------------------------------------------------------------------------------------------

SweepDirArg = Annotated[Path, typer.Argument(help="A sweep folder, e.g. runs/palindrome.")]


def existing_sweep(sweep_dir: Path) -> Path:
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a folder; give a sweep folder such as runs/palindrome")
    return sweep_dir


@app.command(rich_help_panel="Results")
def status(sweep_dir: SweepDirArg) -> None:
    """Per task: SLURM id, state, epoch reached, last val acc or FID, log file (local sweeps too)."""
    from lstmgan.runner.slurm import task_statuses

    statuses = task_statuses(existing_sweep(sweep_dir))
    if not statuses:
        raise UserError(f"{sweep_dir} holds no runs and no SLURM submission")
    print_status(sweep_dir, statuses)


@app.command(rich_help_panel="Results")
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
    show_summary(sweep_dir, f"Sweep {sweep_dir.name} (collected)", tracking)


@app.command(rich_help_panel="Results")
def sync(
    folder: Annotated[Path, typer.Argument(help="A sweep, study or run folder, e.g. runs/palindrome.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded, to which run id, in "
                                          "which order; upload nothing.")] = False,
) -> None:
    """Upload what W&B lacks of each run folder (one W&B run per folder; twice uploads nothing twice)."""
    from lstmgan.tracking.sync import sync as sync_folder

    for line in sync_folder(folder, dry_run):
        say(line)


@app.command(rich_help_panel="Results")
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
    md, page = build_report(folder, value(wandb))
    say(f"Report: {md} and {page}")


@app.command(rich_help_panel="Results")
def configs() -> None:
    """The job files and cluster profiles that ship with lstmgan (use the name with --config or --cluster)."""
    rows = [[item["kind"], item["name"], item["description"], str(item["path"])] for item in catalog.listing()]
    print_table("Packaged configs", rows, ["kind", "name", "description", "path"])


def show_version(on: bool) -> None:
    if on:
        say(f"lstmgan {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an unexpected error (also: "
                                        "LSTMGAN_DEBUG=1).")] = False,
) -> None:
    """Palindromes (LSTM vs vanilla RNN) and an MNIST GAN, locally or on SLURM, tracked in W&B."""


# --- entry point: argv in, exit code out -----------------------------------------------------------------------

# Options that take several values: `--lengths 5 10 15 20` and `--lengths 5,10` both work (Typer alone
# only accepts the flag repeated), so argv is rewritten to the repeated form before parsing.
MULTI_VALUE = {"--lengths", "--models", "--seeds"}


def is_flag(arg: str) -> bool:
    """`-h`, `--quiet`: not a value; `-1` (a negative seed, refused later with its rule) is one."""
    return arg.startswith("-") and not arg[1:2].isdigit()


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
            while not eq and i < len(argv) and not is_flag(argv[i]):
                values.append(argv[i])
                i += 1
            pieces = [p for v in values for p in v.split(",") if p != ""]
            if not pieces:
                out.append(flag)  # let typer report the missing value
            for piece in pieces:
                out += [flag, piece]
            continue
        out.append(arg)
        i += 1
    return out


def usage_message(e: typer.TyperException, args: Sequence[str]) -> str:
    """One line for a usage error; a choice that is not one names the choices."""
    param = getattr(e, "param", None)
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if annotation in NOUNS:
        allowed = [m.value for m in annotation]
        given = [v for flag, v in option_values(args, param.opts) if v not in allowed]
        if given:
            return (f"unknown {NOUNS[annotation]} {given[0]!r} for {param.opts[0]}; "
                    f"choose one of: {', '.join(allowed)}")
    ctx = getattr(e, "ctx", None)
    where = f" (see `lstmgan {ctx.info_name} --help`)" if ctx and ctx.parent else " (see `lstmgan --help`)"
    text = first_line(e.format_message()).removesuffix(".").replace(": Value error, ", ": ")
    return text + where


def option_values(args: Sequence[str], flags: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) for each use of one of `flags` in args (`--flag value` or `--flag=value`)."""
    out = []
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in flags:
            if eq:
                out.append((flag, inline))
            elif i + 1 < len(args):
                out.append((flag, args[i + 1]))
    return out


# errno → (the problem, the fix) for OSErrors that reach main: the environment, not the input, is wrong.
OS_PROBLEMS = {
    errno.ENOSPC: ("no space left on the device", "free space, or choose another --out"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, or choose another --out"),
    errno.EROFS: ("read-only file system", "choose another --out"),
    errno.EACCES: ("permission denied", "fix its permissions, or choose another --out"),
    errno.EPERM: ("operation not permitted", "fix its permissions, or choose another --out"),
    errno.ENOENT: ("no such file or folder", "check the path, or choose another --out"),
    errno.ENOTDIR: ("a part of the path is not a folder", "choose another --out"),
    errno.EISDIR: ("is a folder, not a file", "choose another path"),
    errno.EIO: ("input/output error", "check the disk, then rerun the same command"),
}


def os_error(exc: BaseException) -> OSError | None:
    """The OSError behind exc (itself, or its cause: torch and others wrap ENOSPC), if it is one we explain.
    Others (a refused connection is an OSError too) are internal errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in OS_PROBLEMS:
            return current
        current = current.__cause__ or current.__context__
    return None


def os_message(e: OSError, args: Sequence[str]) -> str:
    """`<path>: <problem>; <fix>`. A failed write() names no file: then the --out it wrote under stands in."""
    problem, fix = OS_PROBLEMS[e.errno or 0]
    where = next((str(f) for f in (e.filename, e.filename2) if f is not None), "")
    if not where and option_values(args, ["--out"]):
        where = f"writing under {option_values(args, ['--out'])[-1][1]}"
    return f"{where}: {problem}; {fix}" if where else f"{problem} ({first_line(e)}); {fix}"


def crash_file(exc: BaseException, argv: Sequence[str]) -> Path | None:
    """Write the full traceback to $XDG_STATE_HOME/lstmgan/ (else ~/.local/state/lstmgan/, else the temp dir)."""
    text = (f"lstmgan {__version__}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"argv: {' '.join(argv)}\n\n" + "".join(traceback.format_exception(exc)))
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (state / "lstmgan", Path(tempfile.gettempdir()) / "lstmgan"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return None


INTERRUPTED = "interrupted; rerun the same command to resume from the last checkpoints"



def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. One line on stderr for every error, whatever raised it."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raw = list(sys.argv[1:] if argv is None else argv)
    end = raw.index("--") if "--" in raw else len(raw)
    debug = "--debug" in raw[:end] or os.environ.get("LSTMGAN_DEBUG", "") not in ("", "0")
    args = expand_multi_value([a for i, a in enumerate(raw) if not (a == "--debug" and i < end)])
    try:
        code = typer.main.get_command(app).main(args, prog_name="lstmgan", standalone_mode=False)
    except UserError as e:
        warn(f"error: {e}")
        return 2
    except typer.TyperException as e:  # usage errors: unknown option, value of the wrong type, …
        if type(e).__name__ != "NoArgsIsHelpError":  # no arguments: the help was printed (typer checks the name too)
            warn(f"error: {usage_message(e, args)}")
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        warn(INTERRUPTED)
        return 130
    except Exception as e:  # the last line of defence: one line, never a traceback by accident
        if debug:
            traceback.print_exception(e)
        cause = os_error(e)
        if cause is not None:
            warn(f"error: {os_message(cause, args)}")
            return 3
        if not debug:
            path = crash_file(e, raw)
            where = f"full traceback in {path}" if path else "rerun with --debug for the traceback"
            warn(f"internal error: {type(e).__name__}: {first_line(e)}; {where}")
        return 1
    if code == 130:  # typer turns Ctrl-C into Exit(130), which comes back as the code
        warn(INTERRUPTED)
    return code if isinstance(code, int) else 0  # typer.Exit(n) raised in a command comes back as n


def entrypoint() -> None:
    sys.exit(main())
