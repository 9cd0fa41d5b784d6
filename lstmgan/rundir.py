"""Run directories: the unit of truth for one run, written atomically so a killed job can resume.

    <run>/config.yaml     the fully resolved config
    <run>/metrics.jsonl   one JSON object per line (epoch or step), appended as training goes
    <run>/checkpoint.pt   latest training state (weights, optimizer, RNG, position); torch.save + os.replace
    <run>/result.json     written last: its presence means the run finished
    <run>/wandb/          W&B's own files while training (`lstmgan sync` uploads the folder itself, once)
    <run>/.lstmgan.lock   held while a command writes the run (see RunLock)
    <run>/task.json       a SLURM task's own account of this run (done/failed + the error's first line)

`decide` only reads and decides what running the config here would do (start, resume, nothing) or
refuses with a UserError; `prepare` then makes it so. Commands call `decide` for every run before
they touch anything, so bad input (a foreign checkpoint, a FIFO, a link, a file where a folder belongs)
never leaves a half-changed folder behind.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from lstmgan.bounded_yaml import parse_yaml
from lstmgan.errors import UserError, first_line
from lstmgan.fs import (
    LIMITS,
    NotRegular,
    check_real_folder,
    is_temp,
    make_folder,
    open_regular,
    read_jsonl,
    read_text,
    save_torch_atomic,
    write_json_atomic,
    write_text_atomic,
)
from lstmgan.lock import LOCK, JobAlive, RunLock

# Keys that may differ between the stored and the requested config without making it another run.
# `kind` and `format` describe the file, not the run: folders written before they were recorded still match.
# `epochs` is not identity either: asking a run for more epochs continues it from its checkpoint.
NOT_IDENTITY = frozenset({"device", "data_dir", "download", "classifier", "checkpoint_every", "cuda_graphs",
                          "matmul_precision", "kind", "format", "epochs"})
TASK = "task.json"
# Files that do not make a folder "a run": our lock, a task's note, temp files of our atomic writes.
BOOKKEEPING = frozenset({LOCK, TASK})
# What a run folder holds, by kind (for LIMITS): each must be a regular file, never a link, FIFO or device.
RUN_FILES = {"config.yaml": "config", "result.json": "result", "metrics.jsonl": "metrics",
             "checkpoint.pt": "checkpoint", TASK: "result", "wandb-id": "id", "wandb-run.json": "result"}
# Folders a run writes into: each must be a real folder (a link would send the writes elsewhere).
RUN_FOLDERS = ("samples", "interpolation", "wandb")
# A study's folders under its --out, beside its sweep's (named by the sweep): the ablation's runs, the GAN runs.
ABLATION, GAN = "ablation", "gan"
# A check that a loaded checkpoint fits the run's model (its tensors' shapes): raises on a misfit.
CheckpointCheck = Callable[[dict[str, Any]], None]


class State(str, Enum):
    FRESH = "fresh"  # nothing here yet (or --force): start from scratch
    RESUME = "resume"  # a checkpoint of this config exists: continue from it
    DONE = "done"  # result.json exists: nothing to do unless --force


# --- checkpoints -----------------------------------------------------------------------------------


# What to tell the user about a bad checkpoint depends on the command: training can start over, a
# post-hoc command (sample, interpolate) can only point at retraining the run.
TRAIN_FIX = "delete it to start this run over, or rerun with --force"


def load_checkpoint(path: Path, *, fix: str = TRAIN_FIX) -> dict[str, Any]:
    """`torch.load(weights_only=True)` onto the CPU (trainers move weights to their device; RNG states must
    stay CPU tensors): a checkpoint can hold tensors and plain data, never code."""
    import torch  # here, not at the top: status, collect and report read run folders without loading torch

    try:
        with open_regular(path, "checkpoint") as f:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist; check the run folder") from None
    except UserError:
        raise
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
        try:
            data = parse_yaml(read_text(self.config_file, "config"))  # bounded: a planted alias bomb is refused
        except FileNotFoundError:
            return None
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
            data = json.loads(read_text(self.result_file, "result"))
        except FileNotFoundError:
            return None, "not finished"
        except NotRegular as e:
            return None, str(e).split(";")[0]
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

    def metrics_damage(self) -> str:
        """"" or what is wrong inside metrics.jsonl (a garbage line in the middle): readers name the run."""
        bad: list[int] = []
        read_jsonl(self.metrics_file, bad)
        if not bad:
            return ""
        where = f"line {bad[0]}" if len(bad) == 1 else f"lines {', '.join(map(str, bad[:3]))}" + \
            (", …" if len(bad) > 3 else "")
        return f"metrics.jsonl {where} unreadable; its curves miss those rows"

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch_atomic(state, self.checkpoint_file)

    def write_result(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.result_file, result)

    def check_entries(self) -> None:
        """Refuse (UserError) a run folder whose files are not regular files of bounded size, or whose
        subfolders are links or files: reading them could hang, writing into them could change files
        elsewhere. Reads metadata only (lstat), so a FIFO is never opened."""
        for name, kind in RUN_FILES.items():
            path = self.path / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size > LIMITS[kind]:
                with open_regular(path, kind):  # raises the one-line NotRegular naming what it is
                    pass
        for name in RUN_FOLDERS:
            check_real_folder(self.path / name)

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


def _defaults_for(config: dict[str, Any]) -> dict[str, Any]:
    """The defaults of the run config `config` was made from (by its `kind`, or its keys for a folder
    written before `kind` was recorded), or {}."""
    from lstmgan.config import RUN_KINDS, absent_defaults

    for cls, kind in RUN_KINDS.items():
        defaults = absent_defaults(cls)  # a key the folder lacks means what such a folder ran with
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


def _misfit(e: Exception) -> str:
    """What does not fit: load_state_dict's first line is only a heading ("Error(s) in loading …:")."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return first_line(Exception(lines[1]) if len(lines) > 1 and lines[0].endswith(":") else e, 160)


def decide(run: RunDir, config: dict[str, Any], *, force: bool, check_checkpoint: CheckpointCheck | None = None,
           job_alive: JobAlive | None = None) -> State:
    """What running `config` in `run` would do. Reads only; refuses with a UserError. `check_checkpoint`
    (the trainer's own fit check, e.g. loading the weights into a model built from `config`) is run on the
    checkpoint a resume would start from: a misfit is bad input here, before anything is written. `job_alive`
    tells whether a SLURM job holding the run's lock from another host still runs (see RunLock)."""
    check_real_folder(run.path)  # a link is refused, --force included: it would delete or write elsewhere
    RunLock(run.path, job_alive=job_alive).check()
    if force:
        return State.FRESH
    if run.path.is_dir():
        run.check_entries()
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
    both = isinstance(wanted_epochs, int) and isinstance(stored_epochs, int)
    more = both and wanted_epochs > stored_epochs
    result = run.result()
    if result is not None and both and wanted_epochs < stored_epochs:
        raise UserError(f"{run.path} finished {stored_epochs} epochs, more than the {wanted_epochs} asked for; "
                        f"ask for {stored_epochs} (or more, to continue it), or rerun with --force")
    if result is not None and not more:
        return State.DONE
    if run.checkpoint_file.exists():
        ckpt = load_checkpoint(run.checkpoint_file)
        if config_diff(ckpt["config"], config):
            raise UserError(f"{run.checkpoint_file} belongs to another config; delete it or rerun with --force")
        if check_checkpoint is not None:
            try:
                check_checkpoint(ckpt)
            except UserError:
                raise
            except Exception as e:  # load_state_dict's size mismatch, a missing key, a wrong type
                raise UserError(f"{run.checkpoint_file} does not fit this run's model ({_misfit(e)}); "
                                f"delete it or rerun with --force") from None
        if isinstance(wanted_epochs, int) and ckpt["epoch"] > wanted_epochs:
            raise UserError(f"{run.path} was trained for {ckpt['epoch']} epochs, more than the {wanted_epochs} "
                            f"asked for; ask for at least {ckpt['epoch']} epochs, or rerun with --force")
        check_metrics(run, ckpt)
        return State.RESUME
    if result is not None:  # finished, asked for more, but its checkpoint is gone
        raise UserError(f"{run.path} finished {stored_epochs} epochs and has no checkpoint to continue from; "
                        f"rerun with --force to retrain it for {wanted_epochs} epochs")
    return State.FRESH


def prepare(run: RunDir, config: dict[str, Any], *, force: bool,
            check_checkpoint: CheckpointCheck | None = None) -> State:
    """Make the folder ready for `config` and say whether to start, resume or skip. Call it holding the
    run's lock (Job does): it removes temp files a killed writer left behind. Everything is checked
    (`decide`) before the first change."""
    state = decide(run, config, force=force, check_checkpoint=check_checkpoint)
    if force and run.path.exists():
        for child in run.path.iterdir():  # everything but the lock this writer holds; links themselves only
            if child.name == LOCK:
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    make_folder(run.path)
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


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rows_with(rows: list[dict[str, Any]], numbers: tuple[str, ...]) -> list[dict[str, Any]]:
    """The metrics rows that hold a number under every key in `numbers` (readers plot only those)."""
    return [r for r in rows if all(is_number(r.get(k)) for k in numbers)]
