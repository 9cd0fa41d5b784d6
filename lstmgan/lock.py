"""One writer per run folder: a lock file created with O_CREAT|O_EXCL, and how a stale holder is told apart.
Whether a SLURM job still runs is asked of an injected `job_alive` (the runner's squeue): no subprocess here."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from lstmgan.errors import UserError
from lstmgan.fs import NOFOLLOW, open_folder, read_text, with_path

# Whether SLURM still runs a job (job id, array task): True/False, or None when this host cannot tell.
JobAlive = Callable[[str, str | None], bool | None]

LOCK = ".lstmgan.lock"


def slurm_task() -> tuple[str | None, str | None]:
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


class RunLock:
    """One writer per run folder: `<run>/.lstmgan.lock`, a small JSON file {host, pid, slurm_job_id,
    slurm_array_task, started, token} created with O_CREAT|O_EXCL.

    What it relies on: O_EXCL creation is atomic on local filesystems, on NFS v3 and later (Linux ≥ 2.6.5
    clients) and on Lustre; rename() is atomic on all of them. No fcntl/flock (unreliable over NFS, and
    lost silently when a client reboots). A lock is stale, and taken over, when
    - it names this host and its PID is not alive (a killed or crashed command), or this very process;
    - it names the SLURM task this process runs as (a requeued task after preemption or timeout);
    - it names another host and a SLURM job that `job_alive` says is gone (the runner passes squeue's
      answer; without it, or when it cannot tell, such a lock is respected). A lock from another host
      without a SLURM job is never taken over: we cannot see that host's processes (delete it by hand).
    PID reuse on the same host could keep a dead holder looking alive; the message then names the file.
    The lock file and the folder are opened without following links; a lock that is no regular file (a
    FIFO, say) is refused in one line, never read.
    """

    def __init__(self, folder: Path, *, job_alive: JobAlive | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.job_alive = job_alive
        self.token: str | None = None

    def holder(self) -> dict[str, Any] | None:
        """The lock's content; {} for an unreadable or torn one; None when there is no lock. A lock that is
        no regular file of a lock's size raises the one-line UserError naming it."""
        try:
            data = json.loads(read_text(self.path, "lock"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_stale(self, holder: dict[str, Any]) -> bool:
        if not holder or not isinstance(holder.get("pid"), int):
            return True  # a creator killed between create and write, or garbage: nobody holds it
        job, task = slurm_task()
        if job is not None and holder.get("slurm_job_id") == job and holder.get("slurm_array_task") == task:
            return True  # our own SLURM task, requeued: its earlier attempt is gone
        if holder.get("host") == socket.gethostname():
            return holder["pid"] == os.getpid() or not _pid_alive(holder["pid"])
        if holder.get("slurm_job_id") and self.job_alive is not None:
            task = holder.get("slurm_array_task")
            return self.job_alive(str(holder["slurm_job_id"]), None if task is None else str(task)) is False
        return False

    def _refuse(self, holder: dict[str, Any]) -> UserError:
        who = f"PID {holder.get('pid')} on {holder.get('host')}"
        if holder.get("slurm_job_id"):
            task = holder.get("slurm_array_task")
            who += f", SLURM job {holder['slurm_job_id']}" + (f"_{task}" if task is not None else "")
        who += f", since {holder['started']}" if holder.get("started") else ""
        return UserError(f"{self.folder} is being written by another command ({who}); wait for it to end (or "
                         f"stop it), then rerun; if it is gone, delete {self.path}")

    def check(self) -> None:
        """Refuse (read-only) if a live writer holds the folder."""
        holder = self.holder()
        if holder is not None and not self.is_stale(holder):
            raise self._refuse(holder)

    def acquire(self) -> None:
        token = secrets.token_hex(8)
        job, task = slurm_task()
        data = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": job,
                           "slurm_array_task": task, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "token": token}).encode()
        with open_folder(self.folder) as dir_fd:  # created if missing; a link is refused
            for _ in range(20):
                try:
                    fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o644, dir_fd=dir_fd)
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
                    os.unlink(LOCK, dir_fd=dir_fd)
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
            moved = json.loads(read_text(aside, "lock"))
        except (OSError, ValueError, UnicodeDecodeError, UserError):
            moved = {}
        if moved != judged and isinstance(moved, dict) and moved.get("token") != judged.get("token"):
            with suppress(OSError):
                os.link(aside, self.path)  # fails if a new lock exists already: then that one rules
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        if self.token is None:
            return
        try:
            holder = self.holder()
        except UserError:  # replaced by something that is no lock: not ours to delete
            holder = None
        if holder and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.token = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
