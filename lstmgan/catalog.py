"""The job files and cluster profiles that ship inside the package, found by name or by path.

    lstmgan/jobs/*.yaml            job files: `--config study`, `--config palindrome-sweep`, …
    lstmgan/jobs/clusters/*.yaml   cluster profiles: `--cluster local`, `--cluster example-gpu`, …

They are package data (importlib.resources), so a name works from a wheel, the Docker image or any
directory; in a checkout, ./jobs is a symlink to lstmgan/jobs, so `jobs/study.yaml` works there too.
An existing path always wins over a packaged name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from lstmgan.errors import UserError

# kind → (folder inside the package, what the message calls it, the flag that takes it)
KINDS = {"job": (("jobs",), "config", "--config"), "cluster": (("jobs", "clusters"), "cluster profile", "--cluster")}


def folder(kind: str) -> Path:
    """The packaged folder of one kind. Installed packages are plain folders (no zip import), so this is a Path."""
    parts, _, _ = _kind(kind)
    return Path(str(resources.files("lstmgan").joinpath(*parts)))


def packaged(kind: str) -> dict[str, Path]:
    """name (file name without .yaml) → path, for every packaged file of one kind."""
    return {p.stem: p for p in sorted(folder(kind).glob("*.yaml"))}


def find(name_or_path: str | Path, kind: str) -> Path:
    """An existing file, else the packaged file of that name (`study` or `study.yaml`); else a UserError
    listing the packaged names."""
    _, noun, flag = _kind(kind)
    path = Path(name_or_path).expanduser()
    if path.is_file() or (path.exists() and ("/" in str(name_or_path) or path.suffix)):
        return path  # a file; or a path that is clearly one (load_yaml then says what is wrong with it)
    text = str(name_or_path)
    names = packaged(kind)
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if "/" not in text and stem in names:
        return names[stem]
    listed = ", ".join(names) or "(none)"
    if "/" in text or path.suffix in (".yaml", ".yml"):  # meant as a file
        fix = f"for the packaged one, give {flag} {path.stem}" if path.stem in names else f"packaged ones: {listed}"
        raise UserError(f"cannot read {noun} {text}: no such file; {fix}")
    raise UserError(f"unknown {noun} {text!r}; packaged ones: {listed}; or give the path of a YAML file")


def listing() -> list[dict[str, Any]]:
    """Every packaged file: kind, name, path and description (the file's first comment line)."""
    return [{"kind": kind, "name": name, "path": path, "description": _first_comment(path)}
            for kind in KINDS for name, path in packaged(kind).items()]


def _kind(kind: str) -> tuple[tuple[str, ...], str, str]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return KINDS[kind]


def _first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""
