"""Local execution: jobs one after another in this process, or side by side in spawned worker processes."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lstmgan.environment import usable_cpus
from lstmgan.errors import StopRequested
from lstmgan.runner.job import (
    STOP_SIGNALS,
    Job,
    Outcome,
    Progress,
    handle_stop_signals,
    stop_on_signals,
    stop_requested,
)


def run_inprocess(jobs: Sequence[Job], progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
    """Run jobs one after another in this process (the default for local work). The first Ctrl-C or
    SIGTERM checkpoints the run under way and stops (StopRequested, a KeyboardInterrupt); queued runs never
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
    """In each worker: Ctrl-C/SIGTERM only ask the runs to stop at their next checkpoint, however many
    arrive (a terminal's Ctrl-C reaches the worker and the parent forwards it too; a second one from the user
    makes the parent kill the workers). The signals were blocked since the worker started, so none is lost."""
    torch.set_num_threads(threads)
    handle_stop_signals(at_once=False)


def _call(job: Job, progress: Progress) -> dict[str, Any] | None:
    try:
        return job(progress)
    except StopRequested:
        return None  # stopped on request: nothing to report, and no traceback to ship to the parent


def run_parallel(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
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
    try:
        with ctx.Manager() as manager:
            queue = manager.Queue()
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                          initargs=(threads,))
            futures = {pool.submit(_call, job, _QueueProgress(queue, i)): i for i, job in enumerate(jobs)}
            # the first signal goes on to the workers at once, so none picks up a queued run
            with stop_on_signals(first=lambda: _signal_workers(pool, signal.SIGINT)):
                try:
                    _follow(pool, futures, queue, reporters)
                except BaseException as e:
                    # a second signal is a plain KeyboardInterrupt: no waiting for checkpoints then
                    _stop_workers(pool, at_once=type(e) is KeyboardInterrupt)
                    raise
            pool.shutdown(wait=True)
            return [Outcome(job, result=f.result()) for f, job in zip(futures, jobs)]
    finally:
        if in_main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _follow(pool: concurrent.futures.ProcessPoolExecutor, futures: dict[Any, int], queue: Any,
            reporters: dict[int, Progress]) -> None:
    pending = set(futures)
    cancelled = False
    while pending:
        done, pending = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_EXCEPTION)
        while not queue.empty():
            index, step, total, text = queue.get()
            if index in reporters:
                reporters[index](step, total, text)
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
            try:
                os.kill(process.pid, sig)
            except ProcessLookupError:
                pass


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor, at_once: bool) -> None:
    """On an error or a signal: cancel the queue, ask the running runs to stop and wait for them to
    checkpoint (`at_once`, or a second signal meanwhile: kill them), so no worker outlives this command."""
    processes = _workers(pool)  # before shutdown(), which forgets them
    _signal_workers(pool, signal.SIGINT)
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 60
    try:
        for process in processes:
            while not at_once and process.is_alive() and time.monotonic() < deadline:
                process.join(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
