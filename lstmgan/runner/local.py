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
from lstmgan.runner.job import STOP_SIGNALS, Interrupted, Job, Outcome, Progress, request_stop, stop_on_signals


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
