"""Local execution: jobs one after another in this process, or side by side in spawned worker processes."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any

import torch

from lstmgan.environment import usable_cpus
from lstmgan.errors import StopRequested
from lstmgan.runner.job import (
    STOP_SIGNALS,
    Job,
    Progress,
    handle_stop_signals,
    stop_on_signals,
    stop_requested,
)


def run_inprocess(jobs: Sequence[Job], progress: Callable[[int, Job], Progress] | None = None) -> list[dict[str, Any]]:
    """Run jobs one after another in this process (the default for local work). The first Ctrl-C or
    SIGTERM checkpoints the run under way and stops (StopRequested, a KeyboardInterrupt); queued runs never
    start; a second Ctrl-C stops at once."""
    with stop_on_signals():
        return [job(progress(i, job) if progress else None) for i, job in enumerate(jobs)]


class RunDied(Exception):
    """A worker process ended while its run was under way (killed, out of memory): that run failed; the CLI
    names it in one line (exit 1) and a rerun resumes it from its last checkpoint."""


# The worker's end of the parent's event queue: ("start", index, pid), ("progress", index, (done, total, text)),
# ("end", index, None). A plain multiprocessing queue handed over at start-up, not a Manager's proxy: no
# extra process whose death would break every worker's progress report with a traceback.
_EVENTS: Any = None


def _init_worker(threads: int, events: Any) -> None:
    """In each worker: Ctrl-C/SIGTERM only ask the runs to stop at their next checkpoint, however many
    arrive (a terminal's Ctrl-C reaches the worker and the parent forwards it too; a second one from the user
    makes the parent kill the workers). The signals were blocked since the worker started, so none is lost."""
    global _EVENTS
    _EVENTS = events
    torch.set_num_threads(threads)
    handle_stop_signals(at_once=False)


def _call(job: Job, index: int) -> dict[str, Any] | None:
    def progress(done: int, total: int, text: str) -> None:  # onto the event queue the parent reads
        _EVENTS.put(("progress", index, (done, total, text)))

    _EVENTS.put(("start", index, os.getpid()))
    try:
        return job(progress)
    except StopRequested:
        return None  # stopped on request: nothing to report, and no traceback to ship to the parent
    finally:
        _EVENTS.put(("end", index, None))


class _Runs:
    """What the parent knows of the runs in the workers: which process runs which, which have ended."""

    def __init__(self, events: Any, reporters: dict[int, Progress]) -> None:
        self.events, self.reporters = events, reporters
        self.pids: dict[int, int] = {}  # run index → worker pid
        self.ended: set[int] = set()
        self.processes: dict[int, Any] = {}  # pid → multiprocessing.Process, kept after the pool forgets them

    def read(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        self.processes.update({p.pid: p for p in _workers(pool) if p.pid is not None})
        while True:
            try:
                kind, index, data = self.events.get_nowait()
            except (queue.Empty, OSError, EOFError, ValueError):
                return
            if kind == "start":
                self.pids[index] = data
            elif kind == "end":
                self.ended.add(index)
            elif index in self.reporters:
                self.reporters[index](*data)

    def running(self) -> list[tuple[int, Any]]:
        """(run index, worker process) of the runs under way in a known process."""
        return [(i, self.processes[pid]) for i, pid in self.pids.items()
                if i not in self.ended and pid in self.processes]

    def dead(self) -> list[tuple[int, int | None]]:
        """(run index, exit code) of the runs whose worker ended before the run did."""
        return [(i, process.exitcode) for i, process in self.running() if process.exitcode is not None]


def _died(jobs: Sequence[Job], dead: list[tuple[int, int | None]]) -> RunDied:
    def how(code: int | None) -> str:
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    names = "; ".join(f"{jobs[i].label} (its worker process was {how(code)})" for i, code in dead) or \
        "a run (a worker process ended abruptly)"
    return RunDied(f"run failed: {names}; the other runs stopped at their last checkpoint or finished; rerun "
                   "the same command to resume")


def run_parallel(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int, Job], Progress] | None = None) -> list[dict[str, Any] | None]:
    """Run jobs in `workers` local processes, the CPUs shared between them. Worker processes are spawned
    (never forked), which is safe with CUDA; the first error is raised here (as run_inprocess would raise
    it) once the other running jobs stopped at their next checkpoint.

    Ctrl-C or SIGTERM (to this process or its whole process group): queued runs never start, running
    runs stop after their current epoch with a valid checkpoint, then StopRequested is raised here. A
    second Ctrl-C stops the workers at once (their last checkpoint is still whole: writes are atomic).

    A pool of long-lived workers, not submitit's LocalExecutor (tried, submitit 1.5.4): that executor starts
    two interpreters per run (a controller and the task, which imports torch again), starts every submitted
    job at once (no `workers` limit: the caller has to hold jobs back) and has no channel for live progress;
    its controller answers Ctrl-C by SIGKILLing the task one second after forwarding SIGINT, so a run could
    not finish its epoch and checkpoint. Its DebugExecutor runs jobs one after another in this process
    (what run_inprocess does). On the 8-run sweep `lstmgan sweep --lengths 5 10 --seeds 0 1 --set epochs=5
    --jobs 2` (2 shared cores, the same tree): this pool 33 s, LocalExecutor kept to 2 jobs at a time 94 s
    (under heavy load from other work: 119 s and 342 s)."""
    if workers <= 1 or len(jobs) <= 1:
        return run_inprocess(jobs, progress)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, usable_cpus() // workers)
    reporters = {i: progress(i, job) for i, job in enumerate(jobs)} if progress else {}
    # Children start with both signals blocked (the mask survives exec) until their handler is in place,
    # so a Ctrl-C while they import torch neither kills them with a traceback nor gets lost.
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    events = ctx.Queue()
    runs = _Runs(events, reporters)
    try:
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                      initargs=(threads, events))
        futures = {pool.submit(_call, job, i): i for i, job in enumerate(jobs)}
        # the first signal goes on to the workers at once, so none picks up a queued run
        with stop_on_signals(first=lambda: _signal_workers(pool, signal.SIGINT)):
            try:
                _follow(pool, futures, runs)
            except BrokenProcessPool:
                _stop_workers(pool, runs, at_once=False)
                raise _died(jobs, runs.dead()) from None
            except BaseException as e:
                # a second signal is a plain KeyboardInterrupt: no waiting for checkpoints then
                _stop_workers(pool, runs, at_once=type(e) is KeyboardInterrupt)
                raise
        pool.shutdown(wait=True)
        runs.read(pool)
        return [f.result() for f in futures]
    finally:
        events.close()
        events.cancel_join_thread()  # nothing left to send that anyone reads
        if in_main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _follow(pool: concurrent.futures.ProcessPoolExecutor, futures: dict[Any, int], runs: _Runs) -> None:
    pending = set(futures)
    cancelled = False
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_EXCEPTION)
        runs.read(pool)
        if stop_requested() and not cancelled:
            for f in pending:  # queued runs never start (the workers were told in the signal handler)
                f.cancel()
            cancelled = True
            pending = {f for f in pending if not f.cancelled()}
        failed = [f for f in done if not f.cancelled() and f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
    if stop_requested():
        raise StopRequested("the sweep stopped at its runs' last checkpoints")


def _workers(pool: concurrent.futures.ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (a private attribute, but the only handle on them)."""
    try:
        return list((pool._processes or {}).values())
    except RuntimeError:  # changed size while read (a worker just exited): good enough to try again
        return list((pool._processes or {}).values())


def _signal_workers(pool: concurrent.futures.ProcessPoolExecutor, sig: int) -> None:
    for process in _workers(pool):
        if process.pid is not None and process.exitcode is None:
            with suppress(ProcessLookupError):
                os.kill(process.pid, sig)


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor, runs: _Runs, at_once: bool) -> None:
    """On an error, a dead worker or a signal: cancel the queue, ask the running runs to stop and wait until
    each has checkpointed and ended (`at_once`, or a second signal meanwhile: kill them); then no worker,
    busy or idle, outlives this command."""
    runs.read(pool)
    processes = list(runs.processes.values())  # before shutdown(), which forgets them
    _signal_workers(pool, signal.SIGINT)
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 60

    def busy() -> bool:
        runs.read(pool)
        return any(process.is_alive() for _, process in runs.running())

    try:
        while not at_once and busy() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(5)
