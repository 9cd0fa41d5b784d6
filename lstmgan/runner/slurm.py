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

import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.slurm.slurm import SlurmExecutor, SlurmJob

from lstmgan.config import TrackingConfig, apply, load_yaml, to_dict
from lstmgan.errors import StopRequested, UserError, first_line
from lstmgan.fs import write_json_atomic
from lstmgan.rundir import TASK, RunDir
from lstmgan.runner import submitit_adapter
from lstmgan.runner.job import Job, Outcome, stop_on_signals
from lstmgan.runner.submitit_adapter import TimedSlurmExecutor, requeue_signal

log = logging.getLogger(__name__)

RECORD = "slurm.json"
SUBMITIT = "submitit"
MAX_MEM_GB = 2**20  # 1 PB per task: beyond any node; also keeps `inf` out of submitit's unit conversion
MAX_TIME_MIN = 366 * 24 * 60
RUNTIMES = ("none", "apptainer", "singularity", "pyxis")
SETTLE_S = 30.0  # --wait: how long to wait for sacct to catch up once every run is over
TOOL_TIMEOUT_S = 60  # sbatch, sacct, squeue: a healthy controller answers in well under a second
# sacct states after which a task will not run again (a requeued task goes back to PENDING).
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "REVOKED"}


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
    executor.update_parameters(**submitit_adapter.convert_parameters(executor, params))
    return executor


def sbatch_script(executor: SlurmExecutor, tasks: int) -> str:
    """The sbatch script submitit writes for `tasks` array tasks (a single job when tasks == 1)."""
    return submitit_adapter.submission_script(executor, tasks)


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
    lines = [f"# {len(tasks)} task(s) for {len(jobs)} run(s) from profile {source}; submitit folder "
             f"{executor.folder}; nothing was submitted"]
    for i, task in enumerate(tasks):
        lines.append(f"#   task {i}: " + ", ".join(str(job.run_dir) for job in task))
    return "\n".join(lines) + "\n" + sbatch_script(executor, len(tasks))


def gpu_warning(jobs: Sequence[Job], profile: ClusterProfile) -> str | None:
    """A GAN run on a CPU node takes hours: say so when the profile requests no GPU."""
    if profile.gpus or not any(hasattr(job.config, "latent_dim") for job in jobs):
        return None
    epochs = max(job.config.epochs for job in jobs)
    return (f"the SLURM profile requests no GPU: a {epochs}-epoch GAN run on a CPU node takes hours; add --gpus 1 "
            "or use a GPU profile such as --cluster example-gpu")


# --- submitting ------------------------------------------------------------------------------------------


def slurm_tool(argv: Sequence[str], *, stdin: str | None = None,
               timeout: float = TOOL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client (sbatch, sacct, squeue) within `timeout` seconds; a hung slurmctld or slurmdbd, or
    a tool that cannot start, is one line naming the tool."""
    try:
        return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"{argv[0]} did not answer within {timeout:g} s (is the SLURM controller reachable?); "
                        f"try again later") from None
    except OSError as e:
        raise UserError(f"{argv[0]} could not be run: {first_line(e)}") from None


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


def offline_tracking(tracking: TrackingConfig) -> TrackingConfig:
    """Compute nodes often have no internet: W&B `auto` means offline there (`lstmgan sync` uploads later)."""
    return replace(tracking, mode="offline") if tracking.mode == "auto" else tracking


def submit(jobs: Sequence[Job], sweep_dir: Path, profile: ClusterProfile, source: str) -> dict[str, Any]:
    """Submit the jobs as one array without waiting; record it in <sweep>/slurm.json and return the record."""
    require_sbatch()
    refuse_if_active(sweep_dir)
    folder = sweep_dir / SUBMITIT
    executor = make_executor(folder, profile, f"lstmgan-{sweep_dir.name}")
    jobs = [replace(job, tracking=offline_tracking(job.tracking)) for job in jobs]
    tasks = plan_tasks(jobs, profile)
    check_request(sbatch_script(executor, len(tasks)), profile)
    fresh = not folder.exists()
    try:
        # one Job per task when each task has one run (a requeue pickles exactly what it runs)
        outcomes = run_submitit([t if len(t) > 1 else t[0] for t in tasks], executor)
    except (FailedJobError, FailedSubmissionError) as e:
        if fresh:  # leave no pickles of a submission that never reached the queue
            shutil.rmtree(folder, ignore_errors=True)
        raise UserError(_submission_error(e)) from None
    job_ids: dict[str, list[str]] = {}
    for o in outcomes:
        job_ids.setdefault(o.submitit_job.job_id, []).append(o.job.run_dir.name)
    record = {
        "job_id": outcomes[0].submitit_job.job_id.split("_")[0],
        "tasks": [{"job_id": jid, "runs": runs} for jid, runs in job_ids.items()],
        "runs_per_task": max(len(runs) for runs in job_ids.values()),
        "submitit_folder": SUBMITIT,
        "profile": to_dict(profile),
        "profile_source": source,
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(sweep_dir / RECORD, record)
    return record


def load_record(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("job_id"), str) \
            or not isinstance(record.get("tasks"), list):
        raise UserError(f"{path} is corrupt; delete it (the runs stay) to submit into {sweep_dir} again")
    return record


def refuse_if_active(sweep_dir: Path) -> None:
    record = load_record(sweep_dir)
    if record is None:
        return
    if job_alive(record["job_id"], None):  # None (no squeue here, cannot tell) does not block a submission
        raise UserError(f"{sweep_dir} holds SLURM job {record['job_id']}, still queued or running; watch it with "
                        f"`lstmgan status {sweep_dir}`, or cancel it with `scancel {record['job_id']}` first")


# --- reading a sweep back ------------------------------------------------------------------------------------

SLURM_ID = re.compile(r"\d+")


def job_alive(job: str, task: str | None) -> bool | None:
    """Whether SLURM still has job `job` (its array task `task`, when given) queued or running; None when
    this host cannot tell (no squeue here, an id that is no SLURM id, squeue failing for another reason
    than an unknown id). What RunLock asks about a lock held from another host, and the check that a sweep
    folder's submission is over. squeue, not sacct: it asks slurmctld itself, so a job submitted a moment
    ago is already listed."""
    if not SLURM_ID.fullmatch(job) or (task is not None and not SLURM_ID.fullmatch(task)):
        return None
    if shutil.which("squeue") is None:
        return None
    proc = slurm_tool(["squeue", "-h", "-o", "%i", "-j", f"{job}_{task}" if task is not None else job])
    return squeue_alive(proc.returncode, proc.stdout, proc.stderr)


def squeue_alive(returncode: int, stdout: str, stderr: str) -> bool | None:
    """`squeue -h -o %i -j ID`'s answer: a listed id is alive; squeue errs (rc 1, "Invalid job id") on an id
    it no longer knows; any other error (controller unreachable, …) cannot tell."""
    if returncode == 0:
        return any(line.strip() for line in stdout.splitlines())
    return False if "invalid job id" in stderr.lower() else None


def parse_sacct(text: str, job_ids: Sequence[str]) -> dict[str, str]:
    """`sacct -o JobID,State --parsable2` output → {job id: state} for the ids asked about ("123" or "123_4"):
    "CANCELLED by 0" → "CANCELLED", an empty state → "unknown", step lines (123_4.batch) skipped. A pending
    array prints as one line with a range, "123_[5-9,12%4]": an asked id is looked up in it, the range is
    never expanded (it can be 123_[0-999999]). A later line wins (sacct lists a requeued task's latest
    record last). Output without the header is one line naming sacct; lines without a job id are skipped."""
    lines = text.splitlines()
    if not lines or [f.strip() for f in lines[0].split("|")[:2]] != ["JobID", "State"]:
        got = lines[0][:80] if lines else "nothing"
        raise UserError(f"sacct printed no JobID|State header (got {got!r}); `lstmgan status` needs SLURM's "
                        f"accounting (sacct) to work")
    wanted = set(job_ids)
    tasks: dict[str, dict[int, str]] = {}  # array job id → {task index: asked id}
    for jid in wanted:
        base, sep, index = jid.partition("_")
        if sep and SLURM_ID.fullmatch(index):
            tasks.setdefault(base, {})[int(index)] = jid
    states: dict[str, str] = {}
    for line in lines[1:]:
        jid, _, rest = line.partition("|")
        jid = jid.strip()
        state = (rest.split("|")[0].split() or ["unknown"])[0]
        if jid in wanted:
            states[jid] = state
            continue
        base, sep, spec = jid.partition("_[")
        if not sep or base not in tasks or not spec.endswith("]"):
            continue
        for index, asked in tasks[base].items():
            if _in_ranges(index, spec[:-1]):
                states[asked] = state
    return states


def _in_ranges(index: int, spec: str) -> bool:
    """Whether `index` is in an array range list such as "0-3,7,9-12%4" ("%4": at most 4 at once)."""
    for part in spec.partition("%")[0].split(","):
        low, _, high = part.partition("-")
        if SLURM_ID.fullmatch(low) and (not high or SLURM_ID.fullmatch(high)) \
                and int(low) <= index <= int(high or low):
            return True
    return False


@dataclass
class TaskStatus:
    run_dir: Path
    job_id: str = "–"
    state: str = "–"  # sacct's state, or for a local sweep: done | incomplete | not started
    outcome: str = "active"  # done | failed | active
    epoch: int | None = None
    last_metric: str = "–"  # last val acc (palindrome) or classifier-FID (GAN)
    log: str = "–"  # stderr of the task (tracebacks, logging), relative to the sweep folder; .out beside it
    error: str = ""


def task_runs(task: dict[str, Any]) -> list[str]:
    """The run folders of one task of slurm.json (records before runs_per_task had one "run_dir")."""
    runs = task.get("runs")
    if isinstance(runs, list):
        return [str(r) for r in runs]
    return [str(task["run_dir"])] if "run_dir" in task else []


def task_statuses(sweep_dir: Path, record: dict[str, Any] | None = None) -> list[TaskStatus]:
    """One status per run of the sweep's SLURM submission (with its task's SLURM id, state and log), or
    per run folder of a local sweep. Never unpickles anything: see the module's docstring."""
    record = record if record is not None else load_record(sweep_dir)
    if record is None:
        return [_local_status(p.parent) for p in sorted(sweep_dir.glob("*/config.yaml"))]
    folder = sweep_dir / str(record.get("submitit_folder", SUBMITIT))
    tasks = [t for t in record.get("tasks", []) if isinstance(t, dict) and "job_id" in t]
    states = _sacct_states([str(t["job_id"]) for t in tasks])
    out = []
    for task in tasks:
        job = SlurmJob(folder, str(task["job_id"]))  # only for its log paths; nothing is read from it
        for name in task_runs(task):
            status = _local_status(sweep_dir / name)
            status.job_id = job.job_id
            status.log = str(job.paths.stderr.relative_to(sweep_dir.absolute()))  # short: the table names the sweep
            status.state = states.get(job.job_id, status.state)  # not in sacct yet: what the run folder says
            finished = RunDir(status.run_dir).result() is not None
            # with several runs per task, a run is done as soon as its result is written
            status.outcome = "done" if finished else "failed" if status.state in FINAL_STATES else "active"
            if status.outcome == "failed":
                status.error = _task_error(status.run_dir, job.paths.stderr) or status.state
            out.append(status)
    return out


def _local_status(path: Path) -> TaskStatus:
    run = RunDir(path)
    rows = run.metrics()
    epochs = [r["epoch"] for r in rows if isinstance(r.get("epoch"), int)]
    status = TaskStatus(path, epoch=max(epochs, default=None))
    acc = [r["val_acc"] for r in rows if isinstance(r.get("val_acc"), (int, float))]
    fid = [r["fid"] for r in rows if isinstance(r.get("fid"), (int, float))]
    status.last_metric = f"val acc {100 * acc[-1]:.1f} %" if acc else f"FID {fid[-1]:.2f}" if fid else "–"
    result, why = run.result_or_reason()
    if result is not None:
        status.state, status.outcome = "done", "done"
    else:
        status.state = "incomplete" if rows or run.checkpoint_file.exists() else "not started"
        if why != "not finished":
            status.state, status.error = "damaged", why
    return status


def _sacct_states(job_ids: list[str]) -> dict[str, str]:
    """job id → state, one sacct call for the whole array. Without sacct (or accounting), or for ids it does
    not list yet, the caller falls back to what the run folders say."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    proc = slurm_tool(["sacct", "-o", "JobID,State", "--parsable2", "-j", job_ids[0].split("_")[0]])
    return parse_sacct(proc.stdout, job_ids) if proc.returncode == 0 else {}


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b:?")


def _task_error(run_dir: Path, log: Path) -> str:
    """Why a run of a failed task failed: the line its task wrote into <run>/task.json, else the last
    exception line of the task's log (plain text). Never submitit's result pickle."""
    try:
        note = json.loads((run_dir / TASK).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        note = None
    if isinstance(note, dict) and note.get("outcome") == "failed" and isinstance(note.get("error"), str):
        return note["error"]
    try:
        lines = log.read_bytes()[-65536:].decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if EXCEPTION_LINE.match(line.strip()):
            return first_line(Exception(line.strip()))
    return ""


def wait(sweep_dir: Path, record: dict[str, Any], report: Callable[[list[TaskStatus]], None],
         poll_s: float = 2.0) -> list[TaskStatus]:
    """Poll until every run finished or failed and sacct shows each task's final state; call `report` after
    each poll. Accounting lags (slurmdbd) or may be off: once every run is over, wait at most
    SETTLE_S for sacct before returning what the run folders say."""
    over_since = None
    while True:
        statuses = task_statuses(sweep_dir, record)
        report(statuses)
        if all(s.outcome != "active" for s in statuses):
            over_since = over_since or time.monotonic()
            if all(s.state in FINAL_STATES for s in statuses) or time.monotonic() - over_since > SETTLE_S:
                return statuses
        time.sleep(poll_s)


def write_task_note(job: Job, outcome: str, error: str = "") -> None:
    """<run>/task.json: what the SLURM task saw, in plain JSON, so `lstmgan status` never unpickles
    submitit's result files (anyone who can write the sweep folder could plant code in those)."""
    note = {"outcome": outcome, "error": error, "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"),
            "slurm_array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
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
            raise RuntimeError(f"{len(failed)} of {len(batch)} run(s) failed; first: {job.label}: "
                               f"{first_line(e)}") from e
        return results if isinstance(jobs, list) else results[0]


def run_submitit(jobs: Sequence[Job] | Sequence[list[Job]], executor: submitit.Executor) -> list[Outcome]:
    """Submit the tasks as one array (map_array) without waiting: each task is a Job or a list of Jobs."""
    tasks = list(jobs)
    submitted = executor.map_array(RunJob(), tasks)
    outcomes = []
    for task, sj in zip(tasks, submitted):
        for job in task if isinstance(task, list) else [task]:
            outcomes.append(Outcome(job, submitit_job=sj))
    return outcomes
