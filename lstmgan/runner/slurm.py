"""SLURM through submitit: cluster profiles, submitting a sweep as one job array, and reading it back.

A submission writes nothing but `<sweep>/submitit/` (submitit's pickles, sbatch scripts and logs) and
`<sweep>/slurm.json` (job ids, the run folders of each task, the profile used), so `lstmgan status`,
`collect` and `--wait` work from any later shell. The jobs are the same `Job` objects a local run uses;
`RunJob` makes them checkpointable, so a timed-out or preempted task is requeued and resumes its run folders.

Runs share a task (`runs_per_task`): on a GPU node a tiny palindrome run is seconds of work next to the
container start, interpreter start and CUDA initialisation of a task of its own, so by default a GPU
profile packs all runs into at most `max_tasks` tasks, trained one after another (each still in its own
run folder, with its own checkpoint and W&B run). A CPU profile keeps one run per task: CPU tasks are cheap
to schedule, each run uses one core, and packing would only serialise them.

Nothing here unpickles: outcomes come from sacct and from `<run>/task.json`, which each task writes itself,
and error lines from the task's log (submitit's `*_result.pkl` in a shared folder could hold any code).

Every check (sbatch present, profile valid, request satisfiable via `sbatch --test-only`, no sweep still
queued in the folder) happens before anything is written or queued. Every SLURM client call has a time limit
(a hung controller or accounting daemon ends in one line naming the tool), and what it prints is parsed
defensively: odd output is one line or an unknown state, never a traceback.
"""

from __future__ import annotations

import logging
import math
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.slurm.slurm import SlurmExecutor

from lstmgan.config import apply, to_dict
from lstmgan.errors import StopRequested, UserError, first_line
from lstmgan.fs import write_json_atomic
from lstmgan.lock import slurm_task
from lstmgan.overrides import load_yaml
from lstmgan.rundir import TASK
from lstmgan.runner.job import Job, stop_on_signals
from lstmgan.runner.status import RECORD, SUBMITIT, refuse_if_active, slurm_tool
from lstmgan.runner.submitit_adapter import TimedSlurmExecutor, convert_parameters, requeue_signal, submission_script
from lstmgan.tracking.tracker import offline_tracking
from lstmgan.words import plural

log = logging.getLogger(__name__)

MAX_MEM_GB = 2**20  # 1 PB per task: beyond any node; also keeps `inf` out of submitit's unit conversion
MAX_TIME_MIN = 366 * 24 * 60
RUNTIMES = ("none", "apptainer", "singularity", "pyxis")


# --- the cluster profile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """Run each task inside the project's image instead of the submitting Python."""

    runtime: str = "none"  # none | apptainer | singularity | pyxis
    image: str = ""  # apptainer: a .sif file (or docker://…); pyxis: an image reference or a .sqsh file
    mounts: list[str] = field(default_factory=list)  # extra SRC[:DST] host paths; the submit folder is always mounted
    python: str = "python"  # the interpreter inside the image
    options: list[str] = field(default_factory=list)  # extra flags for `apptainer exec` (or srun, with pyxis)


@dataclass(frozen=True)
class ClusterProfile:
    """Resources and environment of every task of a submission. Defaults = the cluster's defaults, 1 h, CPU."""

    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    time: int = 60  # time limit per task, minutes; on timeout a task checkpoints and is requeued
    gpus: int = 0  # GPUs per node (one task per node)
    cpus: int = 1  # CPUs per task
    mem: float | None = None  # GB per node; None: the partition's default
    constraint: str | None = None  # node features, e.g. "a100|h100"
    array_parallelism: int = 32  # array tasks running at once
    max_requeues: int = 3  # requeues after a timeout (submitit's max_num_timeout); preemptions do not count
    runs_per_task: int = 0  # runs trained one after another in one task; 0 = auto (GPU: ≤ max_tasks tasks; CPU: 1)
    max_tasks: int = 8  # with runs_per_task 0 on a GPU profile: the runs are spread over at most this many tasks
    sbatch: list[str] = field(default_factory=list)  # extra #SBATCH options, e.g. "--mail-type=END", "--exclusive"
    setup: list[str] = field(default_factory=list)  # shell lines before the task, e.g. "module load cuda/12.4"
    container: Container = field(default_factory=Container)

    def validate(self) -> None:
        for key, low in (("time", 1), ("cpus", 1), ("gpus", 0), ("array_parallelism", 1), ("max_requeues", 0),
                         ("runs_per_task", 0), ("max_tasks", 1)):
            if getattr(self, key) < low:
                raise UserError(f"cluster profile: {key} must be at least {low}, got {getattr(self, key)}")
        if self.mem is not None and not 0 < self.mem <= MAX_MEM_GB:
            raise UserError(f"cluster profile: mem must be a positive number of GB up to {MAX_MEM_GB}, got {self.mem}")
        for key, high in (("time", MAX_TIME_MIN), ("cpus", 4096), ("gpus", 64), ("array_parallelism", 10**5),
                          ("max_requeues", 1000), ("runs_per_task", 10**5), ("max_tasks", 10**5)):
            if getattr(self, key) > high:  # beyond any cluster: a typo, refused before sbatch sees it
                raise UserError(f"cluster profile: {key} must be at most {high}, got {getattr(self, key)}")
        for line in self.sbatch:
            if not line.removeprefix("#SBATCH").strip().startswith("--"):
                raise UserError(f"cluster profile: sbatch line {line!r} must be a long option like --mail-type=END")
        c = self.container
        if c.runtime not in RUNTIMES:
            raise UserError(f"cluster profile: unknown container runtime {c.runtime!r}; choose one of: "
                            f"{', '.join(RUNTIMES)}")
        if c.runtime != "none" and not c.image:
            raise UserError(f"cluster profile: container runtime {c.runtime} needs an image "
                            f"(container.image or --image)")
        if c.runtime in ("apptainer", "singularity") and "://" not in c.image and not Path(c.image).is_file():
            raise UserError(f"container image {c.image} does not exist; build it with `make apptainer-build` "
                            f"or give its path with --image")


def load_profile(path: Path | None, flags: dict[str, Any]) -> ClusterProfile:
    """Built-in defaults < the YAML profile < command-line flags (None = not given), then validated."""
    profile = ClusterProfile()
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"cluster profile {path} does not exist; `lstmgan configs` lists the packaged ones")
        profile = apply(profile, load_yaml(path), str(path))
    profile = apply(profile, {k: v for k, v in flags.items() if v is not None}, "command line")
    profile.validate()
    return profile


# --- the executor --------------------------------------------------------------------------------------


class _PreviewExecutor(TimedSlurmExecutor):
    """The same executor without submitit's check for `srun`, so --dry-run also works off the cluster."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def container_launch(c: Container, gpus: int, mounts: Sequence[str]) -> tuple[str | None, list[str]]:
    """(submitit's `python`, extra srun args) that run the task inside the image. Mounts keep host paths."""
    binds = [m if ":" in m else f"{m}:{m}" for m in (*mounts, *c.mounts)]
    workdir = str(Path.cwd())
    if c.runtime in ("apptainer", "singularity"):
        argv = [c.runtime, "exec", *(["--nv"] if gpus else []), *[f"--bind={b}" for b in binds],
                f"--pwd={workdir}", *c.options, c.image, c.python]
        return shlex.join(argv), []
    if c.runtime == "pyxis":
        return shlex.quote(c.python), [f"--container-image={c.image}", f"--container-mounts={','.join(binds)}",
                                       f"--container-workdir={workdir}", *c.options]
    return None, []  # the submitting interpreter (submitit's default)


def sbatch_options(lines: Sequence[str]) -> dict[str, Any]:
    """["--mail-type=END", "--exclusive"] → submitit's additional_parameters {"mail-type": "END", "exclusive": True}."""
    out: dict[str, Any] = {}
    for line in lines:
        key, sep, value = line.removeprefix("#SBATCH").strip().removeprefix("--").partition("=")
        out[key] = value if sep else True
    return out


def make_executor(folder: Path, profile: ClusterProfile, name: str, *, preview: bool = False) -> SlurmExecutor:
    """A SlurmExecutor (what AutoExecutor(cluster="slurm") wraps, its sbatch call time-limited) configured
    from the profile."""
    # the --out folder (runs, shared GAN classifiers) unless it is under the submit folder, mounted anyway
    out = folder.parent.parent.resolve()
    mounts = [str(Path.cwd())] + ([] if out.is_relative_to(Path.cwd()) else [str(out)])
    python, srun_args = container_launch(profile.container, profile.gpus, mounts)
    cls = _PreviewExecutor if preview else TimedSlurmExecutor
    executor = cls(folder, max_num_timeout=profile.max_requeues, python=python)
    params = {"name": name, "timeout_min": profile.time, "cpus_per_task": profile.cpus, "mem_gb": profile.mem,
              "gpus_per_node": profile.gpus or None, "partition": profile.partition, "account": profile.account,
              "qos": profile.qos, "constraint": profile.constraint, "array_parallelism": profile.array_parallelism,
              "setup": list(profile.setup) or None, "srun_args": srun_args or None,
              "additional_parameters": sbatch_options(profile.sbatch) or None}
    # generic names (timeout_min, mem_gb, …) → sbatch's, with submitit's own unit conversion
    params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**convert_parameters(executor, params))
    return executor


def plan_tasks(jobs: Sequence[Job], profile: ClusterProfile) -> list[list[Job]]:
    """The runs of each array task. Round-robin over the jobs in their order (longest first, when the
    caller sorted them), so the tasks get similar work; each task trains its runs in sequence."""
    n = len(jobs)
    if n == 0:
        return []
    per = profile.runs_per_task or (math.ceil(n / profile.max_tasks) if profile.gpus else 1)
    tasks = math.ceil(n / per)
    return [list(jobs[i::tasks]) for i in range(tasks)]


def preview(jobs: Sequence[Job], sweep_dir: Path, profile: ClusterProfile, source: str) -> str:
    """What --dry-run prints: the tasks, the runs of each, and the sbatch script. Writes nothing."""
    executor = make_executor(sweep_dir / SUBMITIT, profile, f"lstmgan-{sweep_dir.name}", preview=True)
    tasks = plan_tasks(jobs, profile)
    lines = [f"# {plural(len(tasks), 'task')} for {plural(len(jobs), 'run')} from profile {source}; submitit folder "
             f"{executor.folder}; nothing was submitted"]
    for i, task in enumerate(tasks):
        lines.append(f"#   task {i}: " + ", ".join(str(job.run_dir) for job in task))
    return "\n".join(lines) + "\n" + submission_script(executor, len(tasks))


def gpu_warning(jobs: Sequence[Job], profile: ClusterProfile) -> str | None:
    """A GAN run on a CPU node takes hours: say so when the profile requests no GPU."""
    if profile.gpus or not any(hasattr(job.config, "latent_dim") for job in jobs):
        return None
    epochs = max(job.config.epochs for job in jobs)
    return (f"the SLURM profile requests no GPU: a {epochs}-epoch GAN run on a CPU node takes hours; add --gpus 1 "
            "or use a GPU profile such as --cluster example-gpu")


# --- submitting ------------------------------------------------------------------------------------------


def require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise UserError("--slurm needs SLURM's sbatch, which is not on PATH (not a SLURM login node?); "
                        "run without --slurm to train here")


def check_request(script: str, profile: ClusterProfile) -> None:
    """`sbatch --test-only`: SLURM judges the request (memory, CPUs, partition, …) and queues nothing."""
    proc = slurm_tool(["sbatch", "--test-only"], stdin=script)
    if proc.returncode != 0:
        raise UserError(f"SLURM rejects the request ({_sbatch_error(proc.stderr + proc.stdout)}; asked for "
                        f"{_resources(profile)}); lower --mem/--cpus/--gpus/--time or fix the cluster profile")


def _sbatch_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _submission_error(e: Exception) -> str:
    """One line for a failed `sbatch` of submitit's: its time limit, its error, or output without a job id."""
    cause = e.__cause__
    if isinstance(cause, subprocess.CalledProcessError) and cause.returncode == TimedSlurmExecutor.TIMED_OUT:
        return (f"sbatch did not answer within {TimedSlurmExecutor.SUBMIT_TIMEOUT_S} s (is the SLURM controller "
                f"reachable?); nothing was queued that lstmgan knows of: check `squeue --me`, then try again")
    if isinstance(e, FailedSubmissionError):  # sbatch succeeded but printed no "Submitted batch job <id>"
        return f"sbatch printed no job id: {first_line(e)}"
    return f"sbatch failed: {_sbatch_error(str(e))}"


def _resources(p: ClusterProfile) -> str:
    mem = f"{p.mem:g} GB" if p.mem is not None else "default memory"
    return (f"partition {p.partition or '(default)'}, {p.cpus} CPUs, {mem}, {p.gpus} GPUs, "
            f"{p.time} min per task")



def submit(jobs: Sequence[Job], sweep_dir: Path, profile: ClusterProfile, source: str) -> dict[str, Any]:
    """Submit the jobs as one array without waiting; record it in <sweep>/slurm.json and return the record."""
    require_sbatch()
    refuse_if_active(sweep_dir)
    folder = sweep_dir / SUBMITIT
    executor = make_executor(folder, profile, f"lstmgan-{sweep_dir.name}")
    jobs = [replace(job, tracking=offline_tracking(job.tracking)) for job in jobs]
    tasks = plan_tasks(jobs, profile)
    check_request(submission_script(executor, len(tasks)), profile)
    fresh = not folder.exists()
    try:
        # one Job per task when each task has one run (a requeue pickles exactly what it runs)
        submitted = executor.map_array(RunJob(), [t if len(t) > 1 else t[0] for t in tasks])
    except (FailedJobError, FailedSubmissionError) as e:
        if fresh:  # leave no pickles of a submission that never reached the queue
            shutil.rmtree(folder, ignore_errors=True)
        raise UserError(_submission_error(e)) from None
    record = {
        "job_id": submitted[0].job_id.split("_")[0],
        "tasks": [{"job_id": sj.job_id, "runs": [job.run_dir.name for job in task]}
                  for sj, task in zip(submitted, tasks)],
        "runs_per_task": max(len(task) for task in tasks),
        "submitit_folder": SUBMITIT,
        "profile": to_dict(profile),
        "profile_source": source,
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(sweep_dir / RECORD, record)
    return record


# --- reading a sweep back ------------------------------------------------------------------------------------


def write_task_note(job: Job, outcome: str, error: str = "") -> None:
    """<run>/task.json: what the SLURM task saw, in plain JSON, so `lstmgan status` never unpickles
    submitit's result files (anyone who can write the sweep folder could plant code in those)."""
    job_id, task = slurm_task()
    note = {"outcome": outcome, "error": error, "host": socket.gethostname(), "slurm_job_id": job_id,
            "slurm_array_task": task, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        write_json_atomic(job.run_dir / TASK, note)
    except OSError as e:  # the outcome still reaches sacct and the log
        log.warning("could not write %s: %s", job.run_dir / TASK, e)


class RunJob(submitit.helpers.Checkpointable):
    """What submitit runs for each array task: one Job or a list of Jobs trained one after another (runs
    sharing a GPU task). On timeout or preemption SLURM signals the task (USR2, 90 s ahead): the run under
    way checkpoints where it is and stops, then submitit's own handler pickles this same call and requeues
    it; every Job then resumes from disk and finished ones are skipped. A run that cannot reach a stop
    check within STOP_GRACE_S (e.g. while training its classifier) is requeued from its last checkpoint."""

    STOP_GRACE_S = 45

    def __call__(self, jobs: Job | list[Job]) -> list[dict[str, Any]] | dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        batch = jobs if isinstance(jobs, list) else [jobs]
        sig = requeue_signal()
        submitit_handler = signal.getsignal(sig)
        if not callable(submitit_handler):  # called outside submitit (tests, by hand): nothing to requeue
            return self._train(jobs, batch)

        def requeue_soon() -> None:
            log.warning("SLURM asked this task to stop: checkpointing the run under way, then requeueing")
            signal.signal(signal.SIGALRM, lambda *_: submitit_handler(sig, None))
            signal.alarm(self.STOP_GRACE_S)

        try:
            with stop_on_signals((sig,), first=requeue_soon, at_once=False):
                return self._train(jobs, batch)
        except StopRequested:  # the run checkpointed and stopped: submitit pickles this call, requeues, exits
            signal.alarm(0)
            submitit_handler(sig, None)
            raise

    def _train(self, jobs: Job | list[Job], batch: list[Job]) -> list[dict[str, Any]] | dict[str, Any]:
        results, failed = [], []
        for job in batch:
            try:
                results.append(job())
            except Exception as e:  # noqa: BLE001 - the other runs of this task still train
                log.exception("run %s failed", job.label)
                write_task_note(job, "failed", first_line(e))
                failed.append((job, e))
                continue
            write_task_note(job, "done")
        if failed:  # the task fails (sacct FAILED) once every run had its turn
            job, e = failed[0]
            raise RuntimeError(f"{len(failed)} of {plural(len(batch), 'run')} failed; first: {job.label}: "
                               f"{first_line(e)}") from e
        return results if isinstance(jobs, list) else results[0]
