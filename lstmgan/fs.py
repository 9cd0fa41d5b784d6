"""Files written so that a reader never sees half of one: atomic writes (temp file, fsync, rename) and
forgiving readers of what other writers may have torn."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from lstmgan.errors import UserError


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


def with_path(e: OSError, path: Path) -> OSError:
    """The same OSError, naming `path` when it names no file (a write's ENOSPC/EDQUOT names none), so the
    CLI's one line says which file could not be written."""
    if e.filename is not None:
        return e
    named = type(e)(e.errno, e.strerror or str(e), str(path))
    named.__cause__ = e
    return named


def is_temp(path: Path) -> bool:
    """A temp file of our atomic writes (`.<name>.<random>.tmp`)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.name.count(".") >= 3


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX). On any
    failure (a full disk included) the temp file is removed and `path` keeps its old content."""
    try:
        fd, tmp = _temp_beside(path)
    except OSError as e:
        raise with_path(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise with_path(e, path) from None
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch_atomic(obj: Any, path: Path) -> None:
    """torch.save into memory, then one atomic write: a full disk then surfaces as an OSError naming `path`
    (torch would wrap it in a RuntimeError), and the previous file stays whole."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getbuffer())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rows_with(rows: list[dict[str, Any]], numbers: tuple[str, ...]) -> list[dict[str, Any]]:
    """The metrics rows that hold a number under every key in `numbers` (readers plot only those)."""
    return [r for r in rows if all(is_number(r.get(k)) for k in numbers)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a torn last line (killed mid-write), a line that is not an object
    and undecodable bytes are skipped, so readers never crash on a damaged file."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def check_writable(folder: Path) -> None:
    """Fail early, with the fix, when runs cannot be written under `folder`."""
    probe_dir = folder
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise UserError(f"output path {folder} is under a file ({probe_dir}); choose another --out")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"output folder {probe_dir} is not writable; choose another --out or fix its permissions")
