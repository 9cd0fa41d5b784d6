"""One training command's flow, once the CLI has built its config and jobs: preflight (every check, nothing
written) → --print-config | --dry-run plan | SLURM (submit, or print the sbatch script; --wait follows it) |
a local run → the summary; it returns the exit code.

No typer or rich here: what is shown goes through the `Display` the CLI passes in (lstmgan.cli.display), and
torch, submitit and wandb are imported where they are used, so importing the CLI stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lstmgan.errors import UserError
from lstmgan.words import plural

if TYPE_CHECKING:
    from lstmgan.config import GanConfig, StudyConfig, TrackingConfig
    from lstmgan.runner.job import Job, Progress
    from lstmgan.runner.slurm import ClusterProfile
    from lstmgan.runner.status import TaskStatus


class Display(Protocol):
    """What the pipeline shows; the module lstmgan.cli.display is one (results on stdout, the rest on stderr)."""

    def say(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def print_table(self, title: str, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None: ...

    def print_status(self, sweep_dir: Path, statuses: Sequence[TaskStatus]) -> None: ...

    def progress_display(self, quiet: bool, total: int) -> AbstractContextManager[Any]: ...

    def run_reporter(self, progress: Any, index: int, label: str) -> Progress: ...

    def task_counts(self, progress: Any, statuses: Sequence[TaskStatus]) -> None: ...


Reporters = Callable[[int, "Job"], "Progress"]  # run i's line of the progress display
RunJobs = Callable[[Sequence["Job"], Reporters], Any]  # trains the jobs here


@dataclass(frozen=True)
class SlurmRequest:
    profile: ClusterProfile  # the cluster profile < the SLURM flags, validated
    source: str  # the profile file, or "built-in defaults"
    wait: bool


@dataclass(frozen=True)
class Flow:
    """What a training command asked for besides its jobs."""

    out: Path
    print_config: bool = False
    dry_run: bool = False
    quiet: bool = False
    slurm: SlurmRequest | None = None  # None: train here


def execute(show: Display, flow: Flow, jobs: Sequence[Job], resolved: Any, *, folder: Path, run: RunJobs,
            done: Callable[[], None], title: str | None = None, checks: Sequence[Callable[[], Any]] = ()) -> int:
    """What every training command does once its config and jobs are built; returns the exit code.

    Every check comes before anything is written: each run folder (`rundir.decide`) and the command's own
    `checks`. Then: --print-config prints `resolved`; --dry-run lists what would happen; SLURM submits (or
    prints the sbatch script); otherwise `run` trains here and `done` prints the results, followed by where
    the W&B runs went."""
    from lstmgan.config import to_dict

    if flow.print_config:
        import yaml

        data = resolved if isinstance(resolved, dict) else to_dict(resolved)  # a dict: the command's own view
        show.say(yaml.safe_dump(data, sort_keys=False).rstrip())
        return 0
    states = preflight(jobs, flow.out, folder)
    for check in checks:
        check()
    if flow.slurm is not None:
        return run_on_slurm(show, jobs, folder, flow.slurm, dry_run=flow.dry_run, quiet=flow.quiet,
                            summary_title=title)
    check_devices(jobs)  # here, not on SLURM: there the node's devices count
    if flow.dry_run:
        show_plan(show, jobs, states)
        return 0
    with show.progress_display(flow.quiet, len(jobs)) as progress:
        run(jobs, lambda i, job: show.run_reporter(progress, i, job.label))
    done()
    wandb_line(show, jobs, jobs[0].tracking.mode)
    return 0


# --- preflight: reading only, so a bad input changes nothing --------------------------------------------------------


def preflight(jobs: Sequence[Job], out: Path, folder: Path) -> list[Any]:
    """Check the output folders and every run folder. Returns what each run would do (a rundir.State)."""
    from lstmgan.config import to_dict
    from lstmgan.fs import check_real_folder, check_real_folders, check_writable
    from lstmgan.rundir import RunDir, decide
    from lstmgan.runner.status import job_alive

    check_writable(out)
    probe_writable(out)
    # Links found only when writing would refuse after training: the sweep folders above the runs, and the
    # summaries' figures/ in them, are checked here.
    for sweep in dict.fromkeys([folder, *(job.run_dir.parent for job in jobs)]):
        check_real_folders(out, sweep)
        check_real_folder(sweep / "figures")
    # And the folders under --out where GAN runs keep their classifier (gan.classifier.cache_path), written once
    # the data is read.
    for cache in dict.fromkeys(Path(job.config.classifier).parent for job in jobs
                               if getattr(job.config, "classifier", None)):
        if cache.is_relative_to(out):
            check_real_folders(out, cache)
    return [decide(RunDir(job.run_dir), to_dict(job.config), force=job.force, check_checkpoint=job.checkpoint_check(),
                   job_alive=job_alive) for job in jobs]


def probe_writable(out: Path) -> None:
    """Create and remove a folder where `out` would be made: permissions alone do not tell (`/proc/x` for
    root, a read-only mount), and a refusal must come before anything starts (exit 2, nothing written)."""
    import errno
    import tempfile

    from lstmgan.fs import with_path

    base = out
    while not base.exists():
        base = base.parent
    try:
        Path(tempfile.mkdtemp(prefix=".lstmgan-probe-", dir=base)).rmdir()
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):  # the disk, not the path: exit 3 as before
            raise with_path(e, base) from None
        raise UserError(f"--out {out} cannot be written ({e.strerror or e} at {base}); choose another --out") \
            from None


def check_devices(jobs: Sequence[Job]) -> None:
    """A device this machine lacks (--device cuda without CUDA) is refused before any run folder is made."""
    from lstmgan.runner.job import resolve_device

    for device in dict.fromkeys(str(getattr(job.config, "device", "auto")) for job in jobs):
        resolve_device(device)


def check_gan_inputs(cfg: GanConfig, given_classifier: bool = False) -> None:
    """Data files and a cached classifier are read before anything is written. A classifier the user pointed
    to (`--set classifier=PATH`) that was trained on other data is refused: training would overwrite it."""
    from lstmgan.gan.classifier import data_digest, load_classifier, mismatch
    from lstmgan.gan.data import load_images

    data = [load_images(cfg.dataset, Path(cfg.data_dir), train=train, download=cfg.download) for train in (True, False)]
    if Path(cfg.classifier).exists():
        _, meta = load_classifier(cfg.classifier)
        if given_classifier and (why := mismatch(meta, cfg.dataset, data_digest(*data))):
            raise UserError(f"classifier {cfg.classifier}: {why}; point --set classifier at one trained on this "
                            "data, or leave it out to use (or train) the cached one")


def show_plan(show: Display, jobs: Sequence[Job], states: Sequence[Any]) -> None:
    """--dry-run without --slurm: per run, whether it would train, resume or be skipped."""
    actions = {"fresh": "train", "resume": "resume from its checkpoint", "done": "skip (finished; --force retrains)"}
    show.print_table(f"{plural(len(jobs), 'run')}; nothing was run or written",
                     [[job.label, actions[state.value], str(job.run_dir)] for job, state in zip(jobs, states)],
                     ["run", "would", "folder"])


# --- training here ------------------------------------------------------------------------------------------------


def in_order(jobs: Sequence[Job], reporter: Reporters) -> Any:
    from lstmgan.runner.local import run_inprocess

    return run_inprocess(jobs, reporter)


def side_by_side(workers: int | None, device: str) -> RunJobs:
    """Palindrome runs in local processes, longest first, so the runs side by side end together."""
    count = local_workers(workers, device)  # checked now, with the other inputs

    def run(jobs: Sequence[Job], reporter: Reporters) -> Any:
        from lstmgan.experiments import longest_first
        from lstmgan.runner.local import run_parallel

        return run_parallel(longest_first(list(jobs)), count, reporter)

    return run


def local_workers(requested: int | None, device: str) -> int:
    """How many runs to train side by side: one per core on the CPU (each run uses one thread), one on a GPU."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--jobs must be at least 1, got {requested}")
        return requested
    import torch

    from lstmgan.environment import usable_cpus

    # Whether the device exists is each run's check (on SLURM, the node's): only count here.
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return 1 if on_gpu else usable_cpus()


def study_runner(workers: int | None, device: str) -> RunJobs:
    """The study's palindrome runs side by side, then its GAN runs one after another (each GAN job makes its
    own interpolation strips: experiments.StripsJob)."""
    run_palindromes = side_by_side(workers, device)

    def run(jobs: Sequence[Job], reporter: Reporters) -> None:
        palindromes = [job for job in jobs if job.step_key == "epoch"]
        gans = [job for job in jobs if job.step_key != "epoch"]
        run_palindromes(palindromes, reporter)
        in_order(gans, lambda i, job: reporter(len(palindromes) + i, job))

    return run


def result_of(job: Job) -> dict[str, Any]:
    """The finished run's result.json ({} if it holds none)."""
    from lstmgan.rundir import RunDir

    return RunDir(job.run_dir).result() or {}


# --- SLURM --------------------------------------------------------------------------------------------------------


def run_on_slurm(show: Display, jobs: Sequence[Job], sweep_dir: Path, request: SlurmRequest, *, dry_run: bool,
                 quiet: bool, summary_title: str | None) -> int:
    """Submit the jobs as one array (or only print its sbatch script); with --wait, follow it to the end:
    exit code 1 if a task failed."""
    from lstmgan.runner.slurm import gpu_warning, preview, submit
    from lstmgan.runner.status import wait
    from lstmgan.tracking.tracker import offline_tracking

    if warning := gpu_warning(jobs, request.profile):
        show.warn(f"warning: {warning}")
    if dry_run:
        show.say(preview(jobs, sweep_dir, request.profile, request.source))
        return 0
    record = submit(jobs, sweep_dir, request.profile, request.source)
    show.say(f"Submitted SLURM job {record['job_id']} ({plural(len(record['tasks']), 'task')}, "
             f"{plural(len(jobs), 'run')}) → {sweep_dir}; follow it with `lstmgan status {sweep_dir}`")
    if not request.wait:
        return 0
    with show.progress_display(quiet, len(jobs)) as progress:
        statuses = wait(sweep_dir, record, lambda s: show.task_counts(progress, s))
    show.print_status(sweep_dir, statuses)
    if summary_title:
        show_summary(show, sweep_dir, summary_title, replace(jobs[0].tracking, tags=()),  # the sweep's, not a run's
                     runs=[job.run_dir for job in jobs])
    wandb_line(show, jobs, offline_tracking(jobs[0].tracking).mode)  # W&B `auto` is offline on compute nodes
    failed = [s for s in statuses if s.outcome == "failed"]
    if not failed:
        return 0
    show.warn(f"{len(failed)} of {plural(len(statuses), 'task')} failed: {failed[0].run_dir.name}: "
              f"{failed[0].error} (log: {failed[0].log})")
    return 1


# --- summaries ----------------------------------------------------------------------------------------------------


def summary_table(show: Display, sweep_dir: Path, title: str,
                  runs: Sequence[Path] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Write summary.md/.csv and the figures from the run folders on disk (only `runs`, when given: the sweep
    that was asked for); print the table and return it."""
    from lstmgan.results.summary import load_runs, run_folders, table_header, table_rows, write_summary

    records = load_runs(sweep_dir)
    if runs is not None:
        wanted = {Path(p).absolute() for p in runs}
        records = [r for r in records if r.path.absolute() in wanted]
        if others := len([p for p in run_folders(sweep_dir) if p.absolute() not in wanted]):
            show.warn(f"{sweep_dir} also holds {plural(others, 'other run')}, left out of this summary; "
                      f"`lstmgan collect {sweep_dir}` summarises them all")
    rows = write_summary(sweep_dir, records)
    header, cells = table_header(rows), table_rows(rows)
    show.print_table(title, cells, header)
    return header, cells


def show_summary(show: Display, sweep_dir: Path, title: str, tracking: TrackingConfig | None = None,
                 runs: Sequence[Path] | None = None) -> Path | None:
    """The sweep's summary (of `runs` only, when given); with `tracking`, the table and figures also go to
    the sweep's W&B report run (job_type report, in the sweep's group), whose folder is returned."""
    table = summary_table(show, sweep_dir, title, runs)
    report = None
    if tracking is not None:
        from lstmgan.tracking.publish import publish_report

        report = publish_report(sweep_dir, {"summary": table}, figures(sweep_dir), tracking)
    show.say(f"Summary: {sweep_dir / 'summary.md'}, figures: {sweep_dir / 'figures'}")
    return report


def study_summary(show: Display, cfg: StudyConfig, out: Path, tracking: TrackingConfig) -> None:
    """The study's palindrome sweep, printed and sent to the study's W&B report run (`lstmgan report --wandb`
    adds the rest)."""
    from lstmgan.tracking.publish import publish_report

    sweep_dir = out / cfg.sweep.name
    table = summary_table(show, sweep_dir, f"Study {out.name}: palindrome sweep")
    publish_report(out, {"palindrome": table}, figures(sweep_dir), tracking)
    show.say(f"Study complete: runs under {out}. Next: lstmgan report {out}")


def figures(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "figures").glob("*.png"))


def wandb_line(show: Display, jobs: Sequence[Job], mode: str) -> None:
    """Where the W&B runs went (a URL, or the `wandb sync` to run), if anywhere."""
    wandb_where(show, [job.run_dir for job in jobs], mode)


def wandb_where(show: Display, run_dirs: Sequence[Path], mode: str) -> None:
    """The last line of every command that can log to W&B: where its W&B runs (run folders) are."""
    from lstmgan.tracking.tracker import where_message

    if message := where_message(list(run_dirs), mode):
        show.say(message)
