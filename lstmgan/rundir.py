"""Run directories: the unit of truth for one run, written atomically so a killed job can resume.

    <run>/config.yaml     the fully resolved config
    <run>/metrics.jsonl   one JSON object per line (epoch or step), appended as training goes
    <run>/checkpoint.pt   latest training state (weights, optimizer, RNG, position); torch.save + os.replace
    <run>/result.json     written last: its presence means the run finished
    <run>/wandb/          W&B's own files (offline runs can be uploaded with `wandb sync`)

`inspect` only reads and decides what running the config here would do (start, resume, nothing) or
refuses with a UserError; `prepare` then makes it so. Commands call `inspect` for every run before
they touch anything, so bad input never leaves a half-changed folder behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import yaml

from lstmgan.errors import UserError

# Keys that may differ between the stored and the requested config without making it another run.
# `kind` and `format` describe the file, not the run: folders written before they were recorded still match.
NOT_IDENTITY = frozenset({"device", "data_dir", "download", "classifier", "checkpoint_every", "cuda_graphs",
                          "kind", "format"})


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


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch_atomic(obj: Any, path: Path) -> None:
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`torch.load(weights_only=True)`: a checkpoint can hold tensors and plain data, never code."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist; check the run folder") from None
    except Exception as e:  # truncated zip, pickle with code in it, not a torch file at all
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a lstmgan checkpoint ({first}); "
                        f"delete it to start this run over, or rerun with --force") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "epoch" not in ckpt:
        raise UserError(f"checkpoint {path} is not a lstmgan checkpoint (no config/epoch); "
                        f"delete it or rerun with --force")
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
        except (OSError, yaml.YAMLError):
            raise UserError(f"{self.config_file} is unreadable; delete the run folder or rerun with --force") \
                from None
        if not isinstance(data, dict):
            raise UserError(f"{self.config_file} is not a config mapping; rerun with --force to replace the run")
        return data

    def result(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.result_file.read_text())
        except (OSError, ValueError):
            return None

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_file)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch_atomic(state, self.checkpoint_file)

    def write_result(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.result_file, result)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSONL file; a torn last line (killed mid-write) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def config_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted((set(stored) | set(wanted)) - NOT_IDENTITY)
    return [f"{k}: {stored.get(k)!r} → {wanted.get(k)!r}" for k in keys if stored.get(k) != wanted.get(k)]


def inspect(run: RunDir, config: dict[str, Any], *, force: bool) -> State:
    """What running `config` in `run` would do. Reads only; refuses with a UserError."""
    if run.path.exists() and not run.path.is_dir():
        raise UserError(f"{run.path} exists and is not a folder; choose another --out or --name")
    if force:
        return State.FRESH
    stored = run.stored_config()
    if stored is None:
        if run.path.exists() and any(run.path.iterdir()):
            raise UserError(f"{run.path} is not empty but holds no config.yaml; "
                            f"choose another --name/--out, or rerun with --force to replace it")
        return State.FRESH
    diff = config_diff(stored, config)
    if diff:
        raise UserError(f"{run.path} holds a run with another config ({'; '.join(diff[:3])}); "
                        f"rerun with --force to replace it, or choose another --name/--out")
    if run.result() is not None:
        return State.DONE
    if run.checkpoint_file.exists():
        ckpt = load_checkpoint(run.checkpoint_file)
        if config_diff(ckpt["config"], config):
            raise UserError(f"{run.checkpoint_file} belongs to another config; delete it or rerun with --force")
        return State.RESUME
    return State.FRESH


def prepare(run: RunDir, config: dict[str, Any], *, force: bool) -> State:
    """Make the folder ready for `config` and say whether to start, resume or skip."""
    state = inspect(run, config, force=force)
    if force and run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    if state is State.FRESH:
        for stale in (run.metrics_file, run.checkpoint_file, run.result_file):
            stale.unlink(missing_ok=True)
        write_text_atomic(run.config_file, yaml.safe_dump(config, sort_keys=False))
    return state


def check_writable(folder: Path) -> None:
    """Fail early, with the fix, when runs cannot be written under `folder`."""
    probe_dir = folder
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise UserError(f"output path {folder} is under a file ({probe_dir}); choose another --out")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"output folder {probe_dir} is not writable; choose another --out or fix its permissions")
