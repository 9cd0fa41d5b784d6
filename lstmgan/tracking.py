"""Tracking is a sink: training reports metrics and images to one `Tracker`, which appends them to the
run's metrics.jsonl and forwards them to W&B. W&B is optional and fallible; metrics.jsonl is not.
A W&B error is logged once as a warning and W&B is switched off for that run: it never stops training.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lstmgan.config import TrackingConfig
from lstmgan.rundir import RunDir, read_jsonl, write_text_atomic

log = logging.getLogger(__name__)


def resolve_mode(mode: str) -> str:
    """auto → online when the user is logged in (WANDB_API_KEY or ~/.netrc), else offline. No prompts."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    if os.environ.get("WANDB_API_KEY") or _netrc_has_key():
        return "online"
    return "offline"


def _netrc_has_key() -> bool:
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = os.environ.get("NETRC", os.path.expanduser("~/.netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    """W&B charts scalars: a list of numbers (a class histogram) becomes key/0, key/1, …"""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, (list, tuple)):
            out.update({f"{key}/{i}": v for i, v in enumerate(value)})
        else:
            out[key] = value
    return out


class Tracker:
    """metrics.jsonl + W&B for one run. Use as a context manager so W&B is always finished."""

    def __init__(self, run: RunDir, cfg: TrackingConfig, *, name: str, config: dict[str, Any],
                 step_key: str, resume_at: int | None = None, keep_metrics: bool = False) -> None:
        """resume_at: the step the checkpoint covers (None: a fresh run, metrics start empty).
        keep_metrics: attach to a finished run (e.g. to log an interpolation) without touching its metrics."""
        self.run = run
        self.step_key = step_key
        self.mode = resolve_mode(cfg.mode)
        if not keep_metrics:
            self._truncate(resume_at)
        self._wandb: Any = None
        if self.mode != "disabled":
            self._wandb = self._guard("init", lambda: self._init_wandb(cfg, name, config))

    def _truncate(self, resume_at: int | None) -> None:
        """On resume keep only rows the checkpoint covers; rows after it will be produced again."""
        if resume_at is None:
            self.run.metrics_file.unlink(missing_ok=True)
            return
        rows = [r for r in read_jsonl(self.run.metrics_file) if r.get(self.step_key, 0) <= resume_at]
        write_text_atomic(self.run.metrics_file, "".join(json.dumps(r) + "\n" for r in rows))

    def _init_wandb(self, cfg: TrackingConfig, name: str, config: dict[str, Any]) -> Any:
        import wandb  # imported lazily: W&B's import is slow, and runs with --wandb disabled never need it

        id_file = self.run.path / "wandb-id"
        if not id_file.exists():  # one W&B run per run directory, resumed across requeues
            write_text_atomic(id_file, uuid.uuid4().hex[:12])
        wb = wandb.init(
            project=cfg.project, entity=cfg.entity, group=cfg.group, job_type=cfg.job_type,
            tags=list(cfg.tags), name=name, config=config, dir=str(self.run.path),
            id=id_file.read_text().strip(), resume="allow", mode=self.mode,
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, init_timeout=60),
        )
        wb.define_metric(self.step_key)
        wb.define_metric("*", step_metric=self.step_key)
        return wb

    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any W&B failure must leave training running
            log.warning("W&B %s failed (%s: %s); continuing with metrics.jsonl only", what, type(e).__name__, e)
            self._finish_quietly()
            self._wandb = None
            return None

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (it must hold the step key, e.g. 'epoch') and forward it to W&B."""
        with open(self.run.metrics_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            self._guard("log", lambda: self._wandb.log(_scalars(row)))

    def log_image(self, key: str, path: Path, step: int, caption: str | None = None) -> None:
        if self._wandb is not None:
            import wandb

            self._guard("image", lambda: self._wandb.log(
                {key: wandb.Image(str(path), caption=caption), self.step_key: step}))

    def summary(self, values: dict[str, Any]) -> None:
        if self._wandb is not None:
            self._guard("summary", lambda: self._wandb.summary.update(values))

    def close(self, exit_code: int = 0) -> None:
        if self._wandb is not None:
            self._guard("finish", lambda: self._wandb.finish(exit_code=exit_code))
            self._wandb = None

    def _finish_quietly(self) -> None:
        try:
            if self._wandb is not None:
                self._wandb.finish(exit_code=1)
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(exit_code=0 if exc_type is None else 1)


def where_message(run_dirs: list[Path], mode: str) -> str:  # TEMP stub (the wandb helper writes the real one)
    mode = resolve_mode(mode)
    if mode == "disabled" or not run_dirs:
        return ""
    return f"W&B: {mode} runs under {run_dirs[0].parent}"
