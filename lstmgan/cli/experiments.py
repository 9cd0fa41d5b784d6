"""The training commands: palindrome, sweep, gan, study. Each builds its config and jobs, hands them to the
pipeline (checks, plan, a run here or on SLURM, summary) and prints its result; it returns the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lstmgan.choices import SWEEP_AXES
from lstmgan.cli import display
from lstmgan.cli.options import (
    TRAINING,
    DataDirOpt,
    DatasetOpt,
    DownloadOpt,
    Model,
    Options,
    SlurmOptions,
    epochs_opt,
    value,
    with_options,
)
from lstmgan.pipeline import (
    check_gan_inputs,
    execute,
    in_order,
    result_of,
    show_summary,
    side_by_side,
    study_runner,
    study_summary,
)
from lstmgan.words import plural

if TYPE_CHECKING:
    from lstmgan.config import SweepConfig
    from lstmgan.runner.job import Job

app = typer.Typer()
PANEL = "Experiments"

# One-off palindrome runs go to OUT/palindrome-runs/, never into a sweep's folder (a sweep's default name is
# palindrome): like `gan`'s OUT/gan/, one folder per command of one-off runs, so a sweep's summary holds the
# sweep. `--name palindrome` still reaches (and resumes) a run made there before.
PALINDROME_RUNS = "palindrome-runs"

# Keys a command sets with flags of its own; refuse_owned_sets matches dotted forms (run.model) too.
SWEEP_OWNS = {key: flag for single, flag in SWEEP_AXES.items() for key in (single, single + "s")}
STUDY_OWNS = {"dataset": "--dataset", "data_dir": "--data-dir"}


@app.command(rich_help_panel=PANEL)
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("jobs", "wandb_artifacts"),
              helps={"name": "Runs go to OUT/NAME/<model>-L<length>-s<seed>/ (default: palindrome-runs)."})
def palindrome(
    opts: Options, slurm: SlurmOptions,
    model: Annotated[Model | None, typer.Option(help="Default: the config's, lstm.",
                                                rich_help_panel=TRAINING)] = None,
    length: Annotated[int | None, typer.Option(help="Digits the network reads (palindrome has length + 1; "
                                               "default: the config's, 10).", rich_help_panel=TRAINING)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data, initialisation and shuffling (default: the "
                                             "config's, 0).", rich_help_panel=TRAINING)] = None,
    epochs: epochs_opt(100) = None,
) -> int:
    """Train one model on palindromes of one length."""
    from lstmgan.config import PalindromeConfig
    from lstmgan.experiments import palindrome_job
    from lstmgan.overrides import build

    cfg = build(PalindromeConfig, yaml_path=opts.config_file(), sets=opts.sets({}), flags={
        "model": value(model), "length": length, "seed": seed, "epochs": epochs, "device": value(opts.device)})
    job = palindrome_job(cfg, opts.out / opts.folder(PALINDROME_RUNS), opts.tracking(), force=opts.force)
    return execute(display, opts.flow(slurm), [job], cfg, folder=job.run_dir.parent, run=in_order,
                   done=lambda: display.say(palindrome_line(job)))


@app.command(rich_help_panel=PANEL)
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("wandb_artifacts",))
def sweep(
    opts: Options, slurm: SlurmOptions,
    lengths: Annotated[list[int] | None, typer.Option(help="Lengths: --lengths 5 10 (or 5,10); default: the config's, "
                                                      "5 10 15 20.",
                                                      rich_help_panel=TRAINING)] = None,
    models: Annotated[list[Model] | None, typer.Option(help="Models: --models lstm; default: the config's, rnn lstm.",
                                                       rich_help_panel=TRAINING)] = None,
    seeds: Annotated[list[int] | None, typer.Option(help="Seeds: --seeds 0 1 2; default: the config's, 0.",
                                                  rich_help_panel=TRAINING)] = None,
    grid: Annotated[list[str] | None, typer.Option(help="key=v1,v2: also sweep a setting, repeatable "
                                                   "(--grid hidden=64,128 --grid lr=1e-3,3e-3).",
                                                   rich_help_panel=TRAINING)] = None,
    epochs: epochs_opt(100) = None,
) -> int:
    """RNN and LSTM at each length and seed (× any --grid); prints and writes the summary table and figures."""
    from lstmgan.config import SweepConfig
    from lstmgan.experiments import make_jobs
    from lstmgan.overrides import build, parse_grid

    cfg = build(SweepConfig, yaml_path=opts.config_file(), sets=opts.sets(SWEEP_OWNS, "sweep"), flags={
        "lengths": lengths, "models": [value(m) for m in models] if models else None, "seeds": seeds,
        "grid": parse_grid(grid) or None, "name": opts.name, "epochs": epochs, "device": value(opts.device)})
    jobs = make_jobs(cfg, opts.out, opts.tracking(), force=opts.force)
    sweep_dir = opts.out / cfg.name
    title = f"Sweep {cfg.name}: {plural(len(jobs), 'run')}, {plural(cfg.run.epochs, 'epoch')}"
    run = side_by_side(opts.jobs, cfg.run.device)
    return execute(display, opts.flow(slurm), jobs, sweep_plan(cfg, len(jobs)), folder=sweep_dir, title=title, run=run,
                   done=lambda: show_summary(display, sweep_dir, title, opts.tracking(),
                                             runs=[job.run_dir for job in jobs]))


@app.command(rich_help_panel=PANEL)
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("jobs",), defaults={"name": "gan"},
              helps={"name": "Runs go to OUT/NAME/<dataset>-s<seed>/ (default: gan)."})
def gan(
    opts: Options, slurm: SlurmOptions,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
    seed: Annotated[int | None, typer.Option(help="Seed for initialisation, batches, z and evaluation (default: "
                                             "the config's, 0).", rich_help_panel=TRAINING)] = None,
    seeds: Annotated[list[int] | None, typer.Option(help="Several seeds, a run each: --seeds 0 1 2.",
                                                    rich_help_panel=TRAINING)] = None,
    grid: Annotated[list[str] | None, typer.Option(help="key=v1,v2: a run per value, repeatable "
                                                   "(--grid lr=1e-4,2e-4).", rich_help_panel=TRAINING)] = None,
    epochs: epochs_opt(200) = None,
) -> int:
    """Train the MLP GAN: sample grids, losses, classifier-FID; checkpoints every checkpoint_every epochs."""
    from lstmgan.config import GanSweepConfig
    from lstmgan.experiments import gan_jobs
    from lstmgan.overrides import build, parse_grid

    cfg = build(GanSweepConfig, yaml_path=opts.config_file(), sets=opts.sets({}), flags={
        "dataset": value(dataset), "data_dir": str(data_dir) if data_dir else None, "download": download or None,
        "seed": seed, "seeds": seeds, "grid": parse_grid(grid) or None, "epochs": epochs,
        "device": value(opts.device)})
    jobs = gan_jobs(cfg, opts.out / opts.folder("gan"), opts.tracking(), force=opts.force)
    # one run: its own config, as `lstmgan gan` always printed; several: the seeds and grid too
    resolved = jobs[0].config if len(jobs) == 1 else cfg
    return execute(display, opts.flow(slurm), jobs, resolved, folder=jobs[0].run_dir.parent, run=in_order,
                   done=lambda: display.say("\n".join(map(gan_line, jobs))),
                   checks=[lambda: check_gan_inputs(jobs[0].config, given_classifier=bool(cfg.run.classifier))])


@app.command(rich_help_panel=PANEL)
@with_options(SlurmOptions, "slurm")
@with_options(Options, "opts", omit=("name",), defaults={"config": "study", "out": Path("runs/study")},
              helps={"config": "The study file: a packaged name (`lstmgan configs`) or a YAML file.",
                     "out": "The study folder.",
                     "dry_run": "List the runs that would train, resume or be skipped (with --slurm: the tasks "
                     "and the sbatch script); run and write nothing."})
def study(
    opts: Options, slurm: SlurmOptions,
    preset: Annotated[str | None, typer.Option(help="A preset of the study file, e.g. quick or full.",
                                               rich_help_panel=TRAINING)] = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = False,
) -> int:
    """Run everything the report needs: the sweep, the ablation, the GAN runs and their interpolation strips
    (with --slurm: as one job array; then `lstmgan report` the folder)."""
    from lstmgan.experiments import load_study, study_jobs
    from lstmgan.overrides import parse_sets

    flags = {"gan.dataset": value(dataset), "gan.data_dir": str(data_dir) if data_dir else None,
             "gan.download": download or None, **dict.fromkeys(("sweep.device", "ablation.device", "gan.device"),
                                                               value(opts.device))}
    given = {k: v for k, v in flags.items() if v is not None}
    cfg = load_study(opts.config_file() or Path(), preset, {**given, **parse_sets(opts.sets(STUDY_OWNS, "study"))})
    jobs = study_jobs(cfg, opts.out, opts.tracking(), force=opts.force)
    run = study_runner(opts.jobs, cfg.sweep.run.device)
    return execute(display, opts.flow(slurm), jobs, cfg, folder=opts.out, run=run, checks=[
        lambda: check_gan_inputs(jobs[-1].config)], done=lambda: study_summary(display, cfg, opts.out, opts.tracking()))


def sweep_plan(cfg: SweepConfig, runs: int) -> dict[str, Any]:
    """What --print-config shows for a sweep: what will run, i.e. its axes (and grid) and the settings each run
    trains with; the `run` block's own model, length and seed are not trained (the axes replace them)."""
    from lstmgan.config import to_dict

    data = to_dict(cfg)
    varied = set(SWEEP_AXES) | {key.removeprefix("run.") for key in cfg.grid}
    per_run = {k: v for k, v in data.pop("run").items() if k not in varied}
    return {**data, "runs": runs, "per_run": per_run}


def palindrome_line(job: Job) -> str:
    result = result_of(job)
    return (f"{job.label}: final val acc {100 * result['final_val_acc']:.1f} %, best "
            f"{100 * result['best_val_acc']:.1f} % (epoch {result['best_epoch']}) → {job.run_dir}")


def gan_line(job: Job) -> str:
    result = result_of(job)
    fid = "–" if result.get("fid") is None else f"{result['fid']:.2f}"
    return (f"{job.label}: {plural(result.get('epochs') or 0, 'epoch')}, classifier-FID {fid} (real-vs-real floor "
            f"{result.get('fid_floor') or 0:.2f}), mean max-prob {result.get('mean_max_prob') or 0:.3f} "
            f"→ {job.run_dir}")
