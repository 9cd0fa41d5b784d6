"""Where settings come from besides the defaults: YAML job files, `--set key=value` and `--grid key=v1,v2`.
Precedence is defaults < YAML < CLI flags < `--set`; every layer is checked by `config.apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lstmgan.config import C, PalindromeConfig, _grid_values, _text, apply
from lstmgan.errors import UserError
from lstmgan.bounded_yaml import YamlTooLarge, parse_yaml
from lstmgan.fs import LIMITS, MiB, open_regular


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable, binary, huge or malformed file is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"config {path} is a folder; give a YAML file")
    try:
        with open_regular(path, "data", follow=True) as f:  # a FIFO or device: one line, never a hang
            raw = f.read(LIMITS["config"] + 1)  # job files are a few KB; a bigger one is the wrong file (or a log)
    except OSError as e:
        raise UserError(f"cannot read config {path}: {e.strerror}; check the path given to --config") from None
    if len(raw) > LIMITS["config"]:
        raise UserError(f"config {path} is larger than {LIMITS['config'] // MiB} MB; give a YAML file of settings")
    try:
        text = raw.decode("utf-8")
        if "\0" in text:  # NUL is valid UTF-8 but never text
            raise UnicodeError
    except UnicodeError:
        raise UserError(f"config {path} is not a UTF-8 text file; give a YAML file") from None
    try:
        data = parse_yaml(text)
    except YamlTooLarge as e:
        raise UserError(f"{path} is refused: {e.problem}; write each value out") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}{where} is not valid YAML: {problem}; fix the file") from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a config; fix the file") from None
    if not isinstance(data, (dict, type(None))):
        raise UserError(f"{path} must hold a mapping of key: value lines, not a {type(data).__name__}")
    return data or {}


def _value(raw: str, flag: str, item: str) -> Any:
    """A flag's value as YAML (30 → int, [1,2] → list), else the text itself; an alias bomb is refused."""
    try:
        return parse_yaml(raw)
    except YamlTooLarge as e:
        raise UserError(f"{flag} {item.partition('=')[0]}=… is refused: {e.problem}; write the value out") from None
    except yaml.YAMLError:
        return raw.strip() if flag == "--grid" else raw


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` items into a dict; values are parsed as YAML scalars (30 → int, [1,2] → list)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} needs the form key=value, e.g. --set epochs=30")
        out[key.strip()] = _value(raw, "--set", item) if raw.strip() else raw
    return out


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` items into {key: [v1, v2]} for a sweep's grid. Values are read as YAML scalars,
    as with `--set`, then checked and converted as that per-run setting (`lr=1e-3` → 0.001). Keys must be
    per-run settings other than the sweep's own axes (model, length, seed)."""
    out: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--grid {item!r} needs the form key=value,value, e.g. --grid hidden=64,128")
        if key.removeprefix("run.") in out:
            raise UserError(f"--grid {key} is given twice; list its values once: --grid {key}=a,b")
        values = []
        for piece in raw.split(","):
            if not piece.strip():
                raise UserError(f"--grid {item!r} has an empty value; separate values by single commas, "
                                f"e.g. --grid {key}=64,128")
            values.append(_value(piece, "--grid", item))
        out[key.removeprefix("run.")] = _grid_values(PalindromeConfig(), key, values, "--grid")
    return out


def refuse_owned_sets(sets: dict[str, Any], owned: dict[str, str], command: str = "") -> None:
    """Refuse `--set` keys that a command sets through its own flags (owned maps key → flag), which would
    otherwise be silently overridden: `--set model=lstm` under `sweep`, whose runs' model comes from
    --models. Dotted forms (`run.model`) are refused as well."""
    for key, value in sets.items():
        bare = key.rpartition(".")[2]
        if bare in owned:
            where = f" under {command}" if command else ""
            raise UserError(f"--set {key}={_text(value)} is refused{where}: {bare} is set with {owned[bare]}; "
                            f"use {owned[bare]} instead")


def build(cls: type[C], *, yaml_path: Path | None, flags: dict[str, Any], sets: list[str] | None) -> C:
    """defaults < YAML < CLI flags (None = not given) < --set, each layer validated."""
    cfg = cls()
    if yaml_path is not None:
        from lstmgan.catalog import find  # a packaged name (`palindrome-sweep`) or a path

        yaml_path = find(yaml_path, "job")
        cfg = apply(cfg, load_yaml(yaml_path), str(yaml_path))
    cfg = apply(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")
    return apply(cfg, parse_sets(sets), "--set")
