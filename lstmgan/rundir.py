"""Run directories: the unit of truth for one run, written atomically so a killed job can resume.

    <run>/config.yaml     the fully resolved config
    <run>/metrics.jsonl   one JSON object per line (epoch or step), appended as training goes
    <run>/checkpoint.pt   latest training state (weights, optimizer, RNG, position); torch.save + os.replace
    <run>/result.json     written last: its presence means the run finished
    <run>/wandb/          W&B's own files while training (`lstmgan sync` uploads the folder itself, once)
    <run>/.lstmgan.lock   held while a command writes the run (see RunLock)
    <run>/task.json       a SLURM task's own account of this run (done/failed + the error's first line)

`inspect` only reads and decides what running the config here would do (start, resume, nothing) or
refuses with a UserError; `prepare` then makes it so. Commands call `inspect` for every run before
they touch anything, so bad input never leaves a half-changed folder behind.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import yaml

from lstmgan.errors import UserError, first_line

# Keys that may differ between the stored and the requested config without making it another run.
# `kind` and `format` describe the file, not the run: folders written before they were recorded still match.
# `epochs` is not identity either: asking a run for more epochs continues it from its checkpoint.
NOT_IDENTITY = frozenset({"device", "data_dir", "download", "classifier", "checkpoint_every", "cuda_graphs",
                          "kind", "format", "epochs"})
LOCK = ".lstmgan.lock"
TASK = "task.json"
# Files that do not make a folder "a run": our lock, a task's note, temp files of our atomic writes.
BOOKKEEPING = frozenset({LOCK, TASK})


class State(str, Enum):
    FRESH = "fresh"  # nothing here yet (or --force): start from scratch
    RESUME = "resume"  # a checkpoint of this config exists: continue from it
    DONE = "done"  # result.json exists: nothing to do unless --force


# --- atomic files ----------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temp file next to `path`, with the permissions a plain open() would give (mkstemp's are 0600,
    which would hide results from the other users of a shared cluster folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def with_path(e: OSError, path: Path) -> OSError:
    """The same OSError, naming `path` when it names no file (a write's ENOSPC/EDQUOT names none), so the
    CLI's one line says which file could not be written."""
    if e.filename is not None:
        return e
    named = type(e)(e.errno, e.strerror or str(e), str(path))
    named.__cause__ = e
    return named


def is_temp(path: Path) -> bool:
    """A temp file of our atomic writes (`.<name>.<random>.tmp`)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.name.count(".") >= 3


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX). On any
    failure (a full disk included) the temp file is removed and `path` keeps its old content."""
    try:
        fd, tmp = _temp_beside(path)
    except OSError as e:
        raise with_path(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise with_path(e, path) from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch_atomic(obj: Any, path: Path) -> None:
    """torch.save into memory, then one atomic write: a full disk then surfaces as an OSError naming `path`
    (torch would wrap it in a RuntimeError), and the previous file stays whole."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getbuffer())


# What to tell the user about a bad checkpoint depends on the command: training can start over, a
# post-hoc command (sample, interpolate) can only point at retraining the run.
TRAIN_FIX = "delete it to start this run over, or rerun with --force"


def load_checkpoint(path: Path, *, fix: str = TRAIN_FIX) -> dict[str, Any]:
    """`torch.load(weights_only=True)` onto the CPU (trainers move weights to their device; RNG states must
    stay CPU tensors): a checkpoint can hold tensors and plain data, never code."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist; check the run folder") from None
    except Exception as e:  # truncated zip, pickle with code in it, not a torch file at all
        raise UserError(f"checkpoint {path} is corrupt or not a lstmgan checkpoint ({first_line(e, 120)}); "
                        f"{fix}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "epoch" not in ckpt:
        raise UserError(f"checkpoint {path} is not a lstmgan checkpoint (no config/epoch); {fix}")
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["epoch"], int) or ckpt["epoch"] < 0:
        raise UserError(f"checkpoint {path} has a config or epoch of the wrong type; {fix}")
    return ckpt


# --- the run directory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def result_file(self) -> Path:
        return self.path / "result.json"

    def stored_config(self) -> dict[str, Any] | None:
        if not self.config_file.exists():
            return None
        try:
            data = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            raise UserError(f"{self.config_file} is unreadable; delete the run folder or rerun with --force") \
                from None
        if not isinstance(data, dict):
            raise UserError(f"{self.config_file} is not a config mapping; rerun with --force to replace the run")
        return data

    def result(self) -> dict[str, Any] | None:
        """The finished run's result (a non-empty JSON object), or None: not finished, or damaged ({}, null,
        a string, torn). Readers check the keys they use (`result_or_reason(numbers)`, `is_number`)."""
        return self.result_or_reason()[0]

    def result_or_reason(self, numbers: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, str]:
        """(result, "") for a finished run; (None, why) otherwise: "not finished", or what is damaged. A
        result.json that is not a JSON object ({}, null, a string, torn), or whose keys in `numbers` are not
        numbers, counts as damaged, never as finished. Readers list such a run as skipped, with the reason."""
        try:
            data = json.loads(self.result_file.read_text())
        except FileNotFoundError:
            return None, "not finished"
        except (OSError, ValueError, UnicodeDecodeError) as e:
            return None, f"result.json unreadable ({first_line(e, 80)})"
        if not isinstance(data, dict) or not data:
            return None, "result.json is empty or not an object"
        bad = [k for k in numbers if not is_number(data.get(k))]
        if bad:
            return None, f"result.json has no number for {', '.join(bad)}"
        return data, ""

    def config_or_reason(self) -> tuple[dict[str, Any] | None, str]:
        """(stored config, "") or (None, why) — never raises, for readers."""
        try:
            stored = self.stored_config()
        except UserError as e:
            return None, str(e).split(";")[0]
        return (stored, "") if stored is not None else (None, "no config.yaml")

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_file)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch_atomic(state, self.checkpoint_file)

    def write_result(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.result_file, result)

    def remove_stale_temps(self) -> list[Path]:
        """Temp files of our atomic writes left by a killed writer (one as large as a checkpoint per
        preemption). Call only while holding the run's lock: then no live writer owns any of them."""
        removed = []
        for path in self.path.rglob(".*.tmp"):
            if "wandb" in path.relative_to(self.path).parts or not is_temp(path):
                continue  # W&B's folder has its own files
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rows_with(rows: list[dict[str, Any]], numbers: tuple[str, ...]) -> list[dict[str, Any]]:
    """The metrics rows that hold a number under every key in `numbers` (readers plot only those)."""
    return [r for r in rows if all(is_number(r.get(k)) for k in numbers)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a torn last line (killed mid-write), a line that is not an object
    and undecodable bytes are skipped, so readers never crash on a damaged file."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _defaults_for(config: dict[str, Any]) -> dict[str, Any]:
    """The defaults of the run config `config` was made from (by its `kind`, or its keys for a folder
    written before `kind` was recorded), or {}."""
    from lstmgan.config import RUN_KINDS, run_config_dict

    for cls, kind in RUN_KINDS.items():
        defaults = run_config_dict(cls())
        if config.get("kind") == kind or set(config) == set(defaults) - {"kind", "format"}:
            return defaults
    return {}


def config_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Differences that make `wanted` another run than `stored`. A key that only one side has (a folder
    written before the key existed) differs only if the other side's value is not the key's default."""
    defaults = _defaults_for(wanted)
    diff = []
    for k in sorted((set(stored) | set(wanted)) - NOT_IDENTITY):
        if k in stored and k in wanted:
            if stored[k] != wanted[k]:
                diff.append(f"{k}: {stored[k]!r} → {wanted[k]!r}")
        elif k in wanted and k in defaults and wanted[k] == defaults[k]:
            continue  # an older folder without this key ran with its default
        else:
            diff.append(f"{k}: {stored.get(k)!r} → {wanted.get(k)!r}")
    return diff


def check_metrics(run: RunDir, ckpt: dict[str, Any]) -> None:
    """Resume only with a metrics.jsonl that holds every epoch the checkpoint covers (palindrome rows are
    per epoch; GAN rows carry their epoch). The curves, W&B and the summary are built from these rows, and
    rows lost to a damaged file cannot be recomputed without retraining."""
    epoch = ckpt["epoch"]
    seen = {r["epoch"] for r in run.metrics() if isinstance(r.get("epoch"), int)}
    missing = [e for e in range(1, epoch + 1) if e not in seen]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
        raise UserError(f"{run.metrics_file} lacks the rows of epoch(s) {shown} that {run.checkpoint_file.name} "
                        f"covers; rerun with --force to retrain this run from scratch")


def inspect(run: RunDir, config: dict[str, Any], *, force: bool) -> State:
    """What running `config` in `run` would do. Reads only; refuses with a UserError."""
    if run.path.exists() and not run.path.is_dir():
        raise UserError(f"{run.path} exists and is not a folder; choose another --out or --name")
    RunLock(run.path).check()
    if force:
        return State.FRESH
    stored = run.stored_config()
    if stored is None:
        if run.path.exists() and any(not (p.name in BOOKKEEPING or is_temp(p)) for p in run.path.iterdir()):
            raise UserError(f"{run.path} is not empty but holds no config.yaml; "
                            f"choose another --name/--out, or rerun with --force to replace it")
        return State.FRESH
    diff = config_diff(stored, config)
    if diff:
        raise UserError(f"{run.path} holds a run with another config ({'; '.join(diff[:3])}); "
                        f"rerun with --force to replace it, or choose another --name/--out")
    wanted_epochs, stored_epochs = config.get("epochs"), stored.get("epochs")
    more = isinstance(wanted_epochs, int) and isinstance(stored_epochs, int) and wanted_epochs > stored_epochs
    result, _ = run.result_or_reason()
    if result is not None and isinstance(wanted_epochs, int) and isinstance(stored_epochs, int) \
            and wanted_epochs < stored_epochs:
        raise UserError(f"{run.path} finished {stored_epochs} epochs, more than the {wanted_epochs} asked for; "
                        f"ask for {stored_epochs} (or more, to continue it), or rerun with --force")
    if result is not None and not more:
        return State.DONE
    if run.checkpoint_file.exists():
        ckpt = load_checkpoint(run.checkpoint_file)
        if config_diff(ckpt["config"], config):
            raise UserError(f"{run.checkpoint_file} belongs to another config; delete it or rerun with --force")
        if isinstance(wanted_epochs, int) and ckpt["epoch"] > wanted_epochs:
            raise UserError(f"{run.path} was trained for {ckpt['epoch']} epochs, more than the {wanted_epochs} "
                            f"asked for; ask for at least {ckpt['epoch']} epochs, or rerun with --force")
        check_metrics(run, ckpt)
        return State.RESUME
    if result is not None:  # finished, asked for more, but its checkpoint is gone
        raise UserError(f"{run.path} finished {stored_epochs} epochs and has no checkpoint to continue from; "
                        f"rerun with --force to retrain it for {wanted_epochs} epochs")
    return State.FRESH


def prepare(run: RunDir, config: dict[str, Any], *, force: bool) -> State:
    """Make the folder ready for `config` and say whether to start, resume or skip. Call it holding the
    run's lock (Job does): it removes temp files a killed writer left behind."""
    state = inspect(run, config, force=force)
    if force and run.path.exists():
        for child in run.path.iterdir():  # everything but the lock this writer holds
            if child.name == LOCK:
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    run.path.mkdir(parents=True, exist_ok=True)
    run.remove_stale_temps()
    if state is State.FRESH:
        for stale in (run.metrics_file, run.checkpoint_file, run.result_file):
            stale.unlink(missing_ok=True)
        write_text_atomic(run.config_file, yaml.safe_dump(config, sort_keys=False))
    elif state is State.RESUME and (run.stored_config() or {}).get("epochs") != config.get("epochs"):
        # more epochs for a run: it is no longer finished, and its config says how far it now goes
        run.result_file.unlink(missing_ok=True)
        write_text_atomic(run.config_file, yaml.safe_dump(config, sort_keys=False))
    return state


# --- one writer per run folder ---------------------------------------------------------------------------


def _slurm_task() -> tuple[str | None, str | None]:
    """(job id, array task id) of the SLURM task this process runs in; a requeued task keeps both."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return env["SLURM_ARRAY_JOB_ID"], env.get("SLURM_ARRAY_TASK_ID")
    return env.get("SLURM_JOB_ID"), None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _slurm_job_running(job: str, task: str | None) -> bool | None:
    """Whether squeue still lists the job (None: cannot tell, e.g. no squeue on this host)."""
    if shutil.which("squeue") is None:
        return None
    ident = f"{job}_{task}" if task is not None else job
    try:
        proc = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ident], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:  # squeue errs on ids it no longer knows
        return False
    return bool(proc.stdout.strip())


class RunLock:
    """One writer per run folder: `<run>/.lstmgan.lock`, a small JSON file {host, pid, slurm_job_id,
    slurm_array_task, started, token} created with O_CREAT|O_EXCL.

    What it relies on: O_EXCL creation is atomic on local filesystems, on NFS v3 and later (Linux ≥ 2.6.5
    clients) and on Lustre; rename() is atomic on all of them. No fcntl/flock (unreliable over NFS, and
    lost silently when a client reboots). A lock is stale, and taken over, when
    - it names this host and its PID is not alive (a killed or crashed command), or this very process;
    - it names the SLURM task this process runs as (a requeued task after preemption or timeout);
    - it names another host and a SLURM job that squeue no longer lists. A lock from another host without
      a SLURM job is never taken over: we cannot see that host's processes (delete the file by hand).
    PID reuse on the same host could keep a dead holder looking alive; the message then names the file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.token: str | None = None

    @staticmethod
    def _me(token: str) -> dict[str, Any]:
        job, task = _slurm_task()
        return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": job, "slurm_array_task": task,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token": token}

    def holder(self) -> dict[str, Any] | None:
        """The lock's content; {} for an unreadable or torn one; None when there is no lock."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def is_stale(holder: dict[str, Any]) -> bool:
        if not holder or not isinstance(holder.get("pid"), int):
            return True  # a creator killed between create and write, or garbage: nobody holds it
        job, task = _slurm_task()
        if job is not None and holder.get("slurm_job_id") == job and holder.get("slurm_array_task") == task:
            return True  # our own SLURM task, requeued: its earlier attempt is gone
        if holder.get("host") == socket.gethostname():
            return holder["pid"] == os.getpid() or not _pid_alive(holder["pid"])
        if holder.get("slurm_job_id"):
            return _slurm_job_running(str(holder["slurm_job_id"]), holder.get("slurm_array_task")) is False
        return False

    def describe(self, holder: dict[str, Any]) -> str:
        who = f"PID {holder.get('pid')} on {holder.get('host')}"
        if holder.get("slurm_job_id"):
            task = holder.get("slurm_array_task")
            who += f", SLURM job {holder['slurm_job_id']}" + (f"_{task}" if task is not None else "")
        return who + (f", since {holder['started']}" if holder.get("started") else "")

    def _refuse(self, holder: dict[str, Any]) -> UserError:
        return UserError(f"{self.folder} is being written by another command ({self.describe(holder)}); wait "
                         f"for it to end (or stop it), then rerun; if it is gone, delete {self.path}")

    def check(self) -> None:
        """Refuse (read-only) if a live writer holds the folder."""
        holder = self.holder()
        if holder is not None and not self.is_stale(holder):
            raise self._refuse(holder)

    def acquire(self) -> None:
        token = secrets.token_hex(8)
        data = json.dumps(self._me(token)).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile: try again
                if not self.is_stale(holder):
                    raise self._refuse(holder) from None
                self._break(holder)
                continue
            except OSError as e:
                raise with_path(e, self.path) from None
            try:
                os.write(fd, data)
                os.fsync(fd)
            except OSError as e:
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise with_path(e, self.path) from None
            os.close(fd)
            self.token = token
            return
        raise UserError(f"could not take the lock {self.path} (other commands keep taking it); rerun")

    def _break(self, judged: dict[str, Any]) -> None:
        """Move a stale lock aside by an atomic rename (only one of two racing writers succeeds), and put it
        back if what was moved is not the lock judged stale (someone took it over in between)."""
        aside = self.folder / f"{LOCK}.{secrets.token_hex(4)}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            moved = {}
        if moved != judged and isinstance(moved, dict) and moved.get("token") != judged.get("token"):
            try:
                os.link(aside, self.path)  # fails if a new lock exists already: then that one rules
            except OSError:
                pass
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        if self.token is None:
            return
        holder = self.holder()
        if holder and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.token = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()


def check_writable(folder: Path) -> None:
    """Fail early, with the fix, when runs cannot be written under `folder`."""
    probe_dir = folder
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise UserError(f"output path {folder} is under a file ({probe_dir}); choose another --out")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"output folder {probe_dir} is not writable; choose another --out or fix its permissions")
