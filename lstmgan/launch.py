"""One launcher for every experiment: in-process, submitit's local executor, or SLURM.

A `Job` is a picklable callable: an experiment function, its config, its run directory and how to
track it. Calling it prepares the run directory (start, resume or skip), opens the tracker, runs the
experiment and writes result.json. The experiment never knows where it runs; a requeued SLURM job is the
same Job called again, and resumes from the run directory's checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import submitit
import torch

from lstmgan.config import TrackingConfig, run_config_dict
from lstmgan.environment import describe, usable_cpus
from lstmgan.errors import StopRequested, UserError, first_line
from lstmgan.rundir import TASK, RunDir, RunLock, State, load_checkpoint, prepare, with_path, write_json_atomic
from lstmgan.submitit_adapter import requeue_signal
from lstmgan.tracking import Tracker

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """A run stopped because Ctrl-C/SIGTERM asked it to (its last checkpoint is valid; a rerun resumes).
    A KeyboardInterrupt, so the CLI's handler prints one line and exits 130."""


class Progress(Protocol):
    def __call__(self, done: int, total: int, text: str) -> None: ...


def log_progress(label: str) -> Progress:
    """Default progress for batch jobs: a log line now and then, not per batch."""
    last = [0.0]

    def report(done: int, total: int, text: str) -> None:
        if done == total or time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            log.info("%s: %d/%d %s", label, done, total, text)

    return report


@dataclass
class Run:
    """What an experiment gets besides its config: where to write, where to report, what to resume."""

    dir: RunDir
    tracker: Tracker
    device: torch.device
    checkpoint: dict[str, Any] | None
    progress: Progress
    # True once Ctrl-C/SIGTERM asked this process to stop: trainers check it between epochs (or batches),
    # checkpoint and return; Job then raises Interrupted instead of writing result.json.
    stop_requested: Callable[[], bool] = field(default=lambda: False)


# --- stopping on request ---------------------------------------------------------------------------

_stop = threading.Event()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_requested() -> bool:
    return _stop.is_set()


def request_stop(*_: Any) -> None:
    """A signal handler: ask the runs of this process to checkpoint and stop (no KeyboardInterrupt, so no
    traceback mid-epoch and the last checkpoint stays the one written after a whole epoch)."""
    _stop.set()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While runs train in this process: the first Ctrl-C or SIGTERM asks them to checkpoint and stop
    (between batches or epochs: a GAN that checkpoints every 10 epochs loses nothing); a second Ctrl-C
    stops at once (the last checkpoint is still whole: writes are atomic). Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(_signum: int, _frame: Any) -> None:
        if _stop.is_set():
            raise KeyboardInterrupt
        _stop.set()
        os.write(2, b"lstmgan: stopping at the next checkpoint (Ctrl-C again to stop at once)\n")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop.clear()  # the next command in this process (tests, notebooks) starts afresh


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is visible; use --device auto or cpu")
    return torch.device(name)


@dataclass
class Job:
    experiment: Callable[[Any, Run], dict[str, Any]]
    config: Any
    run_dir: Path
    tracking: TrackingConfig
    step_key: str = "epoch"
    force: bool = False

    @property
    def label(self) -> str:
        return self.run_dir.name

    def __call__(self, progress: Progress | None = None) -> dict[str, Any]:
        if stop_requested():  # a queued run after Ctrl-C: leave no folder behind
            raise Interrupted()
        run_dir = RunDir(self.run_dir)
        try:
            with RunLock(self.run_dir):  # one writer per run folder, for the whole run
                return self._run(run_dir, progress)
        except OSError as e:  # a full disk mid-write names no file: name the run folder at least
            raise with_path(e, self.run_dir) from None

    def _run(self, run_dir: RunDir, progress: Progress | None) -> dict[str, Any]:
        config = run_config_dict(self.config)  # kind and format first, then the settings
        state = prepare(run_dir, config, force=self.force)
        self.force = False  # a requeued or repeated call must resume, never wipe
        if state is State.DONE:
            return run_dir.result() or {}
        device = resolve_device(self.config.device)
        checkpoint = load_checkpoint(run_dir.checkpoint_file) if state is State.RESUME else None
        resume_at = checkpoint[self.step_key] if checkpoint is not None else None
        started = time.time()
        with Tracker(run_dir, self.tracking, name=self.label, config=config, step_key=self.step_key,
                     resume_at=resume_at) as tracker:
            run = Run(run_dir, tracker, device, checkpoint, progress or log_progress(self.label),
                      stop_requested=stop_requested)
            try:
                result = self.experiment(self.config, run)
            except StopRequested:  # the trainer checkpointed and stopped as asked
                raise Interrupted() from None
            if stop_requested():  # a trainer that returned early at a checkpoint: not finished, a rerun resumes
                raise Interrupted()
            result = {**result, "device": str(device), "wall_time_s": time.time() - started,
                      "resumed": checkpoint is not None, "env": describe(device)}
            tracker.summary({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
        run_dir.write_result(result)
        return result


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

        def on_requeue_signal(signum: int, frame: Any) -> None:
            log.warning("SLURM asked this task to stop: checkpointing the run under way, then requeueing")
            request_stop()
            signal.signal(signal.SIGALRM, lambda *_: submitit_handler(signum, frame))
            signal.alarm(self.STOP_GRACE_S)

        signal.signal(sig, on_requeue_signal)
        try:
            return self._train(jobs, batch)
        except Interrupted:  # the run checkpointed and stopped: submitit pickles this call, requeues, exits
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


@dataclass
class Outcome:
    job: Job
    result: dict[str, Any] | None = None
    submitit_job: Any = field(default=None, repr=False)


def run_inprocess(jobs: Sequence[Job], progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
    """Run jobs one after another in this process (the default for local work). The first Ctrl-C or
    SIGTERM checkpoints the run under way and stops (Interrupted, a KeyboardInterrupt); queued runs never
    start; a second Ctrl-C stops at once."""
    outcomes = []
    with stop_on_signals():
        for i, job in enumerate(jobs):
            outcomes.append(Outcome(job, result=job(progress(i, job) if progress else None)))
    return outcomes


class _QueueProgress:
    """Progress from a worker process: (index, done, total, text) onto a queue the parent reads."""

    def __init__(self, queue: Any, index: int) -> None:
        self.queue, self.index = queue, index

    def __call__(self, done: int, total: int, text: str) -> None:
        self.queue.put((self.index, done, total, text))


def _init_worker(threads: int) -> None:
    """In each worker: Ctrl-C/SIGTERM only ask the runs to stop at their next checkpoint (the parent
    forwards them too); the signals were blocked since the worker started, so none is lost or raises."""
    torch.set_num_threads(threads)
    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _call(job: Job, progress: Progress) -> dict[str, Any] | None:
    try:
        return job(progress)
    except Interrupted:
        return None  # stopped on request: nothing to report, and no traceback to ship to the parent


def run_parallel(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
    """Run jobs in `workers` local processes, the CPUs shared between them. Worker processes are spawned
    (never forked), which is safe with CUDA; the first error is raised here (as run_inprocess would raise
    it) once the other running jobs stopped at their next checkpoint.

    Ctrl-C or SIGTERM (to this process or its whole process group): queued runs never start, running
    runs stop after their current epoch with a valid checkpoint, then KeyboardInterrupt is raised here. A
    second Ctrl-C stops the workers at once (their last checkpoint is still whole: writes are atomic)."""
    if workers <= 1 or len(jobs) <= 1:
        return run_inprocess(jobs, progress)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, usable_cpus() // workers)
    reporters = {i: progress(i, job) for i, job in enumerate(jobs)} if progress else {}
    signals: list[int] = []
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if in_main else {}
    # Children start with both signals blocked (the mask survives exec) until their handler is in place,
    # so a Ctrl-C while they import torch neither kills them with a traceback nor gets lost.
    if in_main:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        with ctx.Manager() as manager:
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                          initargs=(threads,))
            try:
                queue = manager.Queue()
                futures = {pool.submit(_call, job, _QueueProgress(queue, i)): i for i, job in enumerate(jobs)}
                if in_main:
                    def on_signal(signum: int, _frame: Any) -> None:
                        signals.append(signum)
                        if len(signals) == 1:  # pass it on at once, so no worker picks up a queued run
                            _signal_workers(pool, signal.SIGINT)

                    for sig in STOP_SIGNALS:
                        signal.signal(sig, on_signal)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                _follow(pool, futures, queue, reporters, signals)
            except BaseException:
                _stop_workers(pool, signals)
                raise
            pool.shutdown(wait=True)
            return [Outcome(job, result=f.result()) for f, job in zip(futures, jobs)]
    finally:
        if in_main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _follow(pool: concurrent.futures.ProcessPoolExecutor, futures: dict[Any, int], queue: Any,
            reporters: dict[int, Progress], signals: list[int]) -> None:
    pending = set(futures)
    forwarded = 0
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_EXCEPTION)
        while not queue.empty():
            index, step, total, text = queue.get()
            if index in reporters:
                reporters[index](step, total, text)
        if len(signals) > 1:  # a second Ctrl-C: stop now
            _signal_workers(pool, signal.SIGKILL)
            raise KeyboardInterrupt
        if signals and not forwarded:
            for f in pending:  # queued runs never start (the workers were told in the handler)
                f.cancel()
            forwarded = 1
            pending = {f for f in pending if not f.cancelled()}
        failed = [f for f in done if not f.cancelled() and f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
    if signals:
        raise KeyboardInterrupt


def _workers(pool: concurrent.futures.ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (a private attribute, but the only handle on them)."""
    try:
        return list((pool._processes or {}).values())
    except RuntimeError:  # changed size while read (a worker just exited): good enough to try again
        return list((pool._processes or {}).values())


def _signal_workers(pool: concurrent.futures.ProcessPoolExecutor, sig: int) -> None:
    for process in _workers(pool):
        if process.pid is not None and process.exitcode is None:
            try:
                os.kill(process.pid, sig)
            except ProcessLookupError:
                pass


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor, signals: list[int]) -> None:
    """On an error or a second Ctrl-C: cancel the queue, ask the running runs to stop, and wait for them
    (or kill them after a second signal) so no worker outlives this command."""
    processes = _workers(pool)  # before shutdown(), which forgets them
    _signal_workers(pool, signal.SIGINT)
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 60
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline and len(signals) < 2:
            process.join(0.2)
        if process.is_alive():
            process.kill()
            process.join(5)


def run_submitit(jobs: Sequence[Job] | Sequence[list[Job]], executor: submitit.Executor) -> list[Outcome]:
    """Submit the tasks as one array (map_array) without waiting: each task is a Job or a list of Jobs."""
    tasks = list(jobs)
    submitted = executor.map_array(RunJob(), tasks)
    outcomes = []
    for task, sj in zip(tasks, submitted):
        for job in task if isinstance(task, list) else [task]:
            outcomes.append(Outcome(job, submitit_job=sj))
    return outcomes
