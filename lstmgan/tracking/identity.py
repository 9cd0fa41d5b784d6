"""Who a run is in W&B: its run id and identity (kept in the run folder), its group (kept in the sweep or
study folder), and the record of what W&B holds of the folder."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

from lstmgan.config import TrackingConfig
from lstmgan.fs import read_json_object, read_text, write_bytes_once, write_text_atomic

ID_FILE = "wandb-id"  # in a run folder: its W&B run id
IDENTITY_FILE = "wandb-run.json"  # in a run folder: identity_record()
SYNC_FILE = "wandb-sync.json"  # in a run folder: sync_record()
GROUP_FILE = "wandb-group"  # in a sweep or study folder: group_id()

_GROUPS: dict[Path, str] = {}


def run_id(run_path: Path, *, create: bool = True) -> str | None:
    """The folder's W&B id (made on first use): resumes, requeues and syncs all address this one run."""
    id_file = run_path / ID_FILE
    if not id_file.exists():
        if not create:
            return None
        write_text_atomic(id_file, uuid.uuid4().hex[:12])
    return read_text(id_file, "id").strip()


def group_id(folder: Path) -> str:
    """The W&B group of a sweep or study folder: `<folder name>-<6 random hex>`, one per folder, stable.

    Stored in <folder>/wandb-group. Jobs are made before their folder is checked (a refused command must
    write nothing), so this only reads: a folder without the file gets an id remembered in this process, and
    the first Tracker writes the file (see Tracker._pin_group); a rerun finds it there, or in its runs'
    wandb-run.json. A SLURM requeue reuses the pickled job, group included."""
    path = folder / GROUP_FILE
    if path.exists():
        return read_text(path, "id").strip()
    key = folder.resolve()
    group = _GROUPS.get(key) or _group_of_runs(folder) or f"{folder.name}-{secrets.token_hex(3)}"
    _GROUPS[key] = group
    return group


def _group_of_runs(folder: Path) -> str | None:
    """A group recorded by runs under `folder` that was made for it (its name is `<folder name>-…`)."""
    if not folder.is_dir():
        return None
    for pattern in (f"*/{IDENTITY_FILE}", f"*/*/{IDENTITY_FILE}"):
        for path in sorted(folder.glob(pattern)):
            group = (read_json_object(path) or {}).get("group")
            if isinstance(group, str) and group.startswith(folder.name + "-"):
                return group
    return None


def write_once(path: Path, text: str) -> None:
    """Create `path` holding `text` unless it exists (parallel workers race to pin one group: first wins)."""
    write_bytes_once(path, (text + "\n").encode())


def identity_record(wandb_id: str, tracking: TrackingConfig, *, name: str, step_key: str, config: dict[str, Any],
                    url: str | None = None) -> dict[str, Any]:
    """What <run>/wandb-run.json holds: all `lstmgan sync` needs to replay the folder into the same W&B run
    (W&B's own settings come from `tracking`; `url` once W&B has been reached online)."""
    return {"id": wandb_id, "project": tracking.project, "entity": tracking.entity, "group": tracking.group,
            "job_type": tracking.job_type, "tags": list(tracking.tags), "name": name, "step_key": step_key,
            "artifacts": tracking.artifacts, "url": url, "config": config}


def identity(run_path: Path) -> dict[str, Any]:
    """The folder's recorded identity ({} for a folder trained before it recorded one)."""
    return read_json_object(run_path / IDENTITY_FILE) or {}


def sync_record(run_path: Path) -> dict[str, Any]:
    """What W&B holds of this folder: {"id", "last_step", "files": {relative path: hash}}."""
    record = read_json_object(run_path / SYNC_FILE) or {}
    record.setdefault("last_step", None)
    record.setdefault("files", {})
    return record
