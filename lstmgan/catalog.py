"""TEMP stub of the configs helper's catalog (dropped at merge): packaged job files and cluster profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmgan.errors import UserError

_ROOT = Path(__file__).resolve().parent.parent / "jobs"
_DIRS = {"job": _ROOT, "cluster": _ROOT / "clusters"}


def find(name_or_path: str | Path, kind: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = _DIRS[kind] / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    flag = "--config" if kind == "job" else "--cluster"
    raise UserError(f"{flag} {name_or_path}: no such file or packaged {kind}; `lstmgan configs` lists them")


def listing() -> list[dict[str, Any]]:
    out = []
    for kind, folder in _DIRS.items():
        for path in sorted(folder.glob("*.yaml")):
            first = path.read_text().splitlines()[0] if path.read_text() else ""
            out.append({"kind": kind, "name": path.stem, "path": path, "description": first.lstrip("# ")})
    return out
