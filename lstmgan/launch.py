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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import submitit
import torch

from lstmgan.config import TrackingConfig, run_config_dict
from lstmgan.environment import describe
from lstmgan.errors import UserError
from lstmgan.rundir import RunDir, State, load_checkpoint, prepare
from lstmgan.tracking import Tracker

log = logging.getLogger(__name__)


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
        run_dir = RunDir(self.run_dir)
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
            run = Run(run_dir, tracker, device, checkpoint, progress or log_progress(self.label))
            result = self.experiment(self.config, run)
            result = {**result, "device": str(device), "wall_time_s": time.time() - started,
                      "resumed": checkpoint is not None, "env": describe(device)}
            tracker.summary({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
        run_dir.write_result(result)
        return result


class RunJob(submitit.helpers.Checkpointable):
    """What submitit runs for each array task. On timeout or preemption submitit calls `checkpoint`,
    which (by Checkpointable's default) requeues this same call; the Job then resumes from disk."""

    def __call__(self, job: Job) -> dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        return job()


@dataclass
class Outcome:
    job: Job
    result: dict[str, Any] | None = None
    error: str | None = None
    submitit_job: Any = field(default=None, repr=False)


def run_inprocess(jobs: Sequence[Job], progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
    """Run jobs one after another in this process (the default for local work)."""
    outcomes = []
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
    torch.set_num_threads(threads)


def _call(job: Job, progress: Progress) -> dict[str, Any]:
    return job(progress)


def run_parallel(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int, Job], Progress] | None = None) -> list[Outcome]:
    """Run jobs in `workers` local processes, the machine's cores shared between them. Worker processes
    are spawned (never forked), which is safe with CUDA; the first error is raised here after the
    running jobs finish, as run_inprocess would raise it."""
    if workers <= 1 or len(jobs) <= 1:
        return run_inprocess(jobs, progress)
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    reporters = {i: progress(i, job) for i, job in enumerate(jobs)} if progress else {}
    with ctx.Manager() as manager, concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        queue = manager.Queue()
        futures = {pool.submit(_call, job, _QueueProgress(queue, i)): i for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=0.2,
                                                    return_when=concurrent.futures.FIRST_EXCEPTION)
            while not queue.empty():
                index, step, total, text = queue.get()
                if index in reporters:
                    reporters[index](step, total, text)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                raise failed[0].exception()  # type: ignore[misc]
        return [Outcome(job, result=f.result()) for f, job in zip(futures, jobs)]


def run_submitit(jobs: Sequence[Job], executor: submitit.Executor, *, wait: bool = True) -> list[Outcome]:
    """Submit all jobs as one array (map_array); optionally wait and collect results or errors."""
    submitted = executor.map_array(RunJob(), list(jobs))
    outcomes = [Outcome(job, submitit_job=sj) for job, sj in zip(jobs, submitted)]
    if wait:
        for outcome in outcomes:
            try:
                outcome.result = outcome.submitit_job.result()
            except Exception as e:  # noqa: BLE001 - a failed task is reported, not raised
                outcome.error = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return outcomes


def local_executor(folder: Path, timeout_min: int = 24 * 60) -> submitit.Executor:
    """submitit's local executor: each job in its own process, as on a cluster, without one."""
    executor = submitit.LocalExecutor(folder=str(folder))
    executor.update_parameters(timeout_min=timeout_min)
    return executor
