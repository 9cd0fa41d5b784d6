"""Reading SLURM back: its query tools (bounded, timed), the record a submission leaves, each task's state,
and whether a job still runs (the run lock's liveness check)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from submitit.slurm.slurm import SlurmJob

from lstmgan.errors import UserError, first_line
from lstmgan.fs import NotRegular, read_tail, read_text
from lstmgan.rundir import TASK, RunDir

RECORD = "slurm.json"
SUBMITIT = "submitit"  # submitit's folder in a sweep folder
SETTLE_S = 30.0  # --wait: how long to wait for sacct to catch up once every run is over
TOOL_TIMEOUT_S = 60  # sbatch, sacct, squeue: a healthy controller answers in well under a second

# sacct states after which a task will not run again (a requeued task goes back to PENDING).
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "REVOKED"}


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


def load_record(sweep_dir: Path) -> dict[str, Any] | None:
    """The submission's record (slurm.json), None when there is none; a FIFO, a link or an oversized file
    there is refused in one line (fs.NotRegular), never waited on."""
    path = sweep_dir / RECORD
    try:
        record = json.loads(read_text(path, "result"))
    except FileNotFoundError:
        return None
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


def job_alive(job: str, task: str | None) -> bool | None:
    """Whether SLURM still has job `job` (its array task `task`, when given) queued or running; None when
    this host cannot tell (no squeue here, an id that is no SLURM id, squeue failing for another reason
    than an unknown id). What RunLock asks about a lock held from another host, and the check that a sweep
    folder's submission is over. squeue, not sacct: it asks slurmctld itself, so a job submitted a moment
    ago is already listed."""
    if not job.isdecimal() or (task is not None and not task.isdecimal()):
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
        if sep and index.isdecimal():
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
        if low.isdecimal() and (not high or high.isdecimal()) and int(low) <= index <= int(high or low):
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
        if damage := run.metrics_damage():  # a finished run whose metrics are damaged is named as such
            status.state, status.error = "damaged", damage
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
        note = json.loads(read_text(run_dir / TASK, "result"))
    except NotRegular as e:
        return str(e).split(";")[0]
    except (OSError, ValueError, UnicodeDecodeError):
        note = None
    if isinstance(note, dict) and note.get("outcome") == "failed" and isinstance(note.get("error"), str):
        return note["error"]
    try:  # the log's tail only: a log of any length (or a planted /dev/zero link) costs 64 KiB
        lines = read_tail(log, "log", 65536).decode("utf-8", errors="replace").splitlines()
    except NotRegular as e:
        return str(e).split(";")[0]
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
