"""The job every runner runs (in this process, in local worker processes, as a SLURM task), and the one way
a run is asked to stop.

A `Job` is a picklable callable: an experiment function, its config, its run directory and how to
track it. Calling it prepares the run directory (start, resume or skip), opens the tracker, runs the
experiment and writes result.json. The experiment never knows where it runs; a requeued SLURM job is the
same Job called again, and resumes from the run directory's checkpoint.

Stopping: a signal (Ctrl-C, SIGTERM, SLURM's requeue signal) sets one flag, set up by `handle_stop_signals`
on every path; trainers check `Run.stop_requested` and raise `errors.StopRequested` after a checkpoint.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lstmgan.config import TrackingConfig, run_config_dict
from lstmgan.environment import cuda_problem, describe
from lstmgan.errors import StopRequested, UserError
from lstmgan.fs import with_path
from lstmgan.lock import RunLock
from lstmgan.rundir import RunDir, State, load_checkpoint, prepare
from lstmgan.runner.status import job_alive
from lstmgan.tracking.tracker import Tracker

log = logging.getLogger(__name__)


Progress = Callable[[int, int, str], None]  # (done, total, text)


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
    # True once a signal asked this process to stop: trainers check it between epochs (or batches),
    # checkpoint and raise StopRequested (a trainer that returns instead gets it raised by Job).
    stop_requested: Callable[[], bool] = field(default=lambda: False)


# --- stopping on request: the one signal set-up of every path ----------------------------------------------

_stop = threading.Event()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPING = b"lstmgan: stopping at the next checkpoint (Ctrl-C again to stop at once)\n"


def stop_requested() -> bool:
    return _stop.is_set()


def say_stopping() -> None:
    os.write(2, STOPPING)  # async-signal-safe, unlike print()


def handle_stop_signals(signals: Sequence[int] = STOP_SIGNALS, *, first: Callable[[], None] | None = None,
                        at_once: bool = True) -> dict[int, Any]:
    """Make `signals` ask this process's runs to stop; return the handlers they replace. The first one sets
    the stop flag (trainers check it between batches or epochs, checkpoint and raise StopRequested: no
    KeyboardInterrupt mid-epoch, so no traceback and no torn state) and calls `first`; with `at_once`, a
    later one raises KeyboardInterrupt (stop now: the last checkpoint is still whole, writes are atomic).
    Without `at_once` every signal only asks to stop: for a worker whose parent forwards the signal that
    the worker may also have had from the terminal, and for a SLURM task whose requeue has its own timer.
    Signals blocked by the caller (see run_parallel) are unblocked once the handler is in place."""

    def on_signal(_signum: int, _frame: Any) -> None:
        if _stop.is_set():
            if at_once:
                raise KeyboardInterrupt
            return
        _stop.set()
        if first is not None:
            first()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    return previous


@contextmanager
def stop_on_signals(signals: Sequence[int] = STOP_SIGNALS, *, first: Callable[[], None] | None = say_stopping,
                    at_once: bool = True) -> Iterator[None]:
    """handle_stop_signals while runs train in this process, then the previous handlers and a clear stop
    flag (the next command in this process, e.g. in tests, starts afresh). Only the main thread can
    handle signals: elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = handle_stop_signals(signals, first=first, at_once=at_once)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop.clear()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if (problem := cuda_problem()) is not None:  # a GPU torch cannot use: never a quiet CPU run for hours
            raise UserError(f"--device auto: {problem}")
        return torch.device("cpu")
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
    # the trainer's check that a checkpoint fits the model `config` builds (raises on a misfit), run by
    # rundir.decide before a resume changes anything; a module-level function, so the Job stays picklable
    fits: Callable[[Any, dict[str, Any]], None] | None = None

    def checkpoint_check(self) -> Callable[[dict[str, Any]], None] | None:
        return None if self.fits is None else functools.partial(self.fits, self.config)

    @property
    def label(self) -> str:
        return self.run_dir.name

    def __call__(self, progress: Progress | None = None) -> dict[str, Any]:
        if stop_requested():  # a queued run after Ctrl-C: leave no folder behind
            raise StopRequested(f"{self.label} did not start")

        run_dir = RunDir(self.run_dir)
        try:
            # one writer per run folder, for the whole run; squeue tells whether a SLURM holder is gone
            with RunLock(self.run_dir, job_alive=job_alive):
                return self._run(run_dir, progress)
        except OSError as e:  # a full disk mid-write names no file: name the run folder at least
            raise with_path(e, self.run_dir) from None

    def _run(self, run_dir: RunDir, progress: Progress | None) -> dict[str, Any]:
        config = run_config_dict(self.config)  # kind and format first, then the settings
        state = prepare(run_dir, config, force=self.force, check_checkpoint=self.checkpoint_check())
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
            result = self.experiment(self.config, run)
            if stop_requested():  # a trainer that returned early at a checkpoint: not finished, a rerun resumes
                raise StopRequested(f"{self.label} stopped at its last checkpoint")
            result = {**result, "device": str(device), "wall_time_s": time.time() - started,
                      "resumed": checkpoint is not None, "env": describe(device)}
            tracker.summary({k: v for k, v in result.items() if isinstance(v, (int, float, str))})
        run_dir.write_result(result)
        return result


