"""Tracking is a sink: training reports metrics and images to one `Tracker`, which appends them to the
run's metrics.jsonl and forwards them to W&B. W&B is optional and fallible; metrics.jsonl is not.
A W&B error is logged once as a warning and W&B is switched off for that run: it never stops training.

One W&B run per run folder. The folder is the truth; W&B is a view of it:
    <run>/wandb-id         the W&B run id, made once per folder (kept across resumes and requeues)
    <run>/wandb-run.json   the W&B identity: project, entity, group, job_type, tags, name, step key
    <run>/wandb-sync.json  what W&B already holds of this folder: the last step and the files (by hash)
Online, the tracker logs live and records what it sent; offline, it writes W&B's local files (for `wandb
leet`), which are never uploaded as such: `lstmgan sync` replays the folder into one offline run holding
only what W&B lacks and uploads that (lstmgan/tracking/sync.py). So a resumed or requeued run, or a strip made
later by `lstmgan interpolate`, never makes a second record with the same id, and no step is sent twice.
What the live tracker and that replay share (W&B's metric names, run start, checkpoint artifact) is here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import netrc
import os
import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lstmgan.config import TrackingConfig
from lstmgan.fs import append_bytes, open_regular, read_jsonl, write_json_atomic, write_text_atomic
from lstmgan.rundir import RunDir
from lstmgan.tracking.identity import (
    GROUP_FILE,
    ID_FILE,
    IDENTITY_FILE,
    SYNC_FILE,
    identity,
    identity_record,
    run_id,
    sync_record,
    write_once,
)

log = logging.getLogger(__name__)


# metrics.jsonl keys stay flat (the report and status read them); W&B gets sections.
METRIC_NAMES = {
    "train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
    "grad_norm": "train/grad_norm", "grad_norm_max": "train/grad_norm_max", "epoch_time": "perf/epoch_time_s",
    "d_loss": "gan/d_loss", "g_loss": "gan/g_loss", "d_real": "gan/d_real", "d_fake": "gan/d_fake",
    "images_per_s": "perf/images_per_s", "fid": "quality/classifier_fid", "fid_floor": "quality/fid_floor",
    "mean_max_prob": "quality/mean_max_prob", "class_histogram": "quality/class_histogram",
    "grad_x1": "horizon/grad_x1", "grad_h1": "horizon/grad_h1", "grad_hT": "horizon/grad_hT",
}
# Summaries keep the final value and the best one (W&B shows them as e.g. val/acc.last, val/acc.max).
BEST = {"val/acc": "max", "train/acc": "max", "val/loss": "min", "train/loss": "min",
        "quality/classifier_fid": "min", "quality/mean_max_prob": "max"}
IMAGE_KEYS = {"samples": "samples/grid"}
RECORD_EVERY_S = 30.0  # how often a live online run notes what W&B holds (wandb-sync.json)
STEP_KEYS = ("epoch", "step")


def resolve_mode(mode: str) -> str:
    """auto → online when the user is logged in (WANDB_API_KEY or ~/.netrc), else offline. No prompts."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_credentials() else "offline"


def offline_tracking(tracking: TrackingConfig) -> TrackingConfig:
    """Compute nodes often have no internet: W&B `auto` means offline there (`lstmgan sync` uploads later)."""
    return replace(tracking, mode="offline") if tracking.mode == "auto" else tracking


def has_credentials() -> bool:
    """WANDB_API_KEY, or a ~/.netrc (or $NETRC) entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = os.environ.get("NETRC", os.path.expanduser("~/.netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_row(row: dict[str, Any]) -> dict[str, Any]:
    """A flat metrics.jsonl row as W&B sees it: namespaced keys; a list (a class histogram) becomes
    key/0, key/1, … so each class is a chart. The step keys (epoch, step) keep their names."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = key if key in STEP_KEYS else METRIC_NAMES.get(key, key)
        if isinstance(value, (list, tuple)):
            out.update({f"{name}/{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


def summary_values(result: dict[str, Any]) -> dict[str, Any]:
    """result.json's scalars under result/ (final numbers, times, device) for the runs table."""
    return {f"result/{k}": v for k, v in result.items() if isinstance(v, (int, float, str)) and v is not None}


def summary_digest(result: dict[str, Any]) -> str:
    """Identifies the summary sent for a result (the live tracker and sync agree on it)."""
    return json_hash(summary_values(result))


def json_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    with open_regular(path, "checkpoint") as f:  # no link followed, no wait on a FIFO
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def wandb_settings(*, system_metrics: bool, replay: bool = False) -> Any:
    """No prompts, no console capture; a replay records neither its own process's stats nor the git state
    of wherever `lstmgan sync` runs."""
    import wandb

    return wandb.Settings(silent=True, console="off", x_disable_stats=not system_metrics, init_timeout=60,
                          disable_git=replay)


def init_run(ident: dict[str, Any], folder: Path, *, mode: str, resume: str | None, settings: Any) -> Any:
    """The W&B run of a recorded identity (identity_record()), its W&B files under `folder`, every metric
    against the identity's step key (epoch or step), best and last values in the summary."""
    import wandb  # imported lazily: W&B's import is slow, and runs with --wandb disabled never need it

    wb = wandb.init(project=ident.get("project"), entity=ident.get("entity"), group=ident.get("group"),
                    job_type=ident.get("job_type"), tags=list(ident.get("tags") or ()), name=ident.get("name"),
                    config=ident.get("config") or {}, dir=str(folder), id=ident["id"], resume=resume, mode=mode,
                    settings=settings)
    step_key = ident["step_key"]
    wb.define_metric(step_key)
    wb.define_metric("*", step_metric=step_key)
    for name, goal in BEST.items():
        wb.define_metric(name, step_metric=step_key, summary=f"last,{goal}")
    return wb


def log_checkpoint(wb: Any, wandb_id: str, checkpoint: Path, folder_name: str) -> None:
    """A GAN checkpoint as the model artifact `checkpoint-<W&B id>` of the run (live, or at sync)."""
    import wandb

    artifact = wandb.Artifact(f"checkpoint-{wandb_id}", type="model", metadata={"run_folder": folder_name})
    artifact.add_file(str(checkpoint), name="checkpoint.pt")
    wb.log_artifact(artifact)


# --- the tracker -------------------------------------------------------------------------------------


class Tracker:
    """metrics.jsonl + W&B for one run. Use as a context manager so W&B is always finished."""

    def __init__(self, run: RunDir, cfg: TrackingConfig, *, name: str, config: dict[str, Any],
                 step_key: str, resume_at: int | None = None) -> None:
        """resume_at: the step the checkpoint covers (None: a fresh run, metrics start empty)."""
        self.run = run
        self.cfg = cfg
        self.step_key = step_key
        self.mode = resolve_mode(cfg.mode)
        self._truncate(resume_at)
        uploaded = (run.path / SYNC_FILE).exists() or identity(run.path).get("url")
        if resume_at is None and uploaded:
            # A fresh start in a folder W&B already holds steps of: a new W&B run, not a second history.
            for name in (SYNC_FILE, ID_FILE, IDENTITY_FILE):
                (run.path / name).unlink(missing_ok=True)
        self._wandb: Any = None
        self._skip_until: float = float("-inf")  # online resume: steps W&B already holds
        self._sent_step: int | None = None
        self._sent_files: dict[str, str] = {}
        self._recorded_at = time.monotonic()
        self._record_identity(name, config)
        if self.mode != "disabled":
            self._wandb = self._guard("init", lambda: self._init_wandb(cfg.system_metrics))

    def _truncate(self, resume_at: int | None) -> None:
        """On resume keep only rows the checkpoint covers; rows after it will be produced again."""
        if resume_at is None:
            self.run.metrics_file.unlink(missing_ok=True)
            return
        rows = [r for r in read_jsonl(self.run.metrics_file) if r.get(self.step_key, 0) <= resume_at]
        write_text_atomic(self.run.metrics_file, "".join(json.dumps(r) + "\n" for r in rows))

    def _record_identity(self, name: str, config: dict[str, Any]) -> None:
        """What `lstmgan sync` needs to replay this folder into the same W&B run (whatever the mode now)."""
        cfg = self.cfg
        self.run.path.mkdir(parents=True, exist_ok=True)
        self.id = run_id(self.run.path)
        old = identity(self.run.path)
        self.identity = identity_record(self.id, cfg, name=name, step_key=self.step_key, url=old.get("url"),
                                        config={**config, "kind": config.get("kind", cfg.job_type)})
        if self.identity != old:
            write_json_atomic(self.run.path / IDENTITY_FILE, self.identity)
        self._pin_group()

    def _pin_group(self) -> None:
        """Write the group that group_id() made for the sweep or study folder above this run (the run's
        parent, or its grandparent in a study) into that folder, now that it exists. A worker process
        does not share group_id's memory, hence the name test."""
        group = self.cfg.group
        if not group:
            return
        for parent in list(self.run.path.parents)[:2]:
            if group.startswith(parent.name + "-"):
                if not (parent / GROUP_FILE).exists():
                    try:
                        write_once(parent / GROUP_FILE, group)
                    except OSError:
                        log.warning("cannot write %s; a rerun may get another W&B group", parent / GROUP_FILE)
                return

    def _init_wandb(self, system_metrics: bool) -> Any:
        wb = init_run(self.identity, self.run.path, mode=self.mode, resume="allow",
                      settings=wandb_settings(system_metrics=system_metrics))
        if self.mode == "online":
            if wb.resumed:  # W&B already holds the steps up to its summary's; never send them twice
                last = wb.summary.get(self.step_key)
                if isinstance(last, (int, float)):
                    self._skip_until = last
            self._sent_files = dict(sync_record(self.run.path)["files"])
            self._record_sent(force=True)  # W&B holds this run now: later syncs continue it
            url = getattr(wb, "url", None)
            if url and url != self.identity.get("url"):
                self.identity["url"] = url
                write_json_atomic(self.run.path / IDENTITY_FILE, self.identity)
        return wb

    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any W&B failure must leave training running
            log.warning("W&B %s failed (%s: %s); continuing with metrics.jsonl only", what, type(e).__name__, e)
            with contextlib.suppress(Exception):  # the run is broken already: finishing it is best effort
                if self._wandb is not None:
                    self._wandb.finish(exit_code=1)
            self._record_sent()
            self._wandb = None
            return None

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (it must hold the step key, e.g. 'epoch') and forward it to W&B."""
        append_bytes(self.run.metrics_file, (json.dumps(row) + "\n").encode())  # never through a link or a FIFO
        step = row.get(self.step_key)
        if self._wandb is not None and (step is None or step > self._skip_until):
            self._guard("log", lambda: self._wandb.log(wandb_row(row)))
            if isinstance(step, int) and self._wandb is not None:
                self._sent_step = max(step, self._sent_step or step)
                if time.monotonic() - self._recorded_at > RECORD_EVERY_S:
                    self._record_sent()

    def log_image(self, key: str, path: Path, step: int, caption: str | None = None) -> None:
        if self._wandb is None or step <= self._skip_until:
            return
        import wandb

        def send() -> None:
            self._wandb.log({IMAGE_KEYS.get(key, key): wandb.Image(str(path), caption=caption), self.step_key: step})
            self._sent_files[str(path.relative_to(self.run.path))] = file_hash(path)

        self._guard("image", send)

    def summary(self, values: dict[str, Any]) -> None:
        if self._wandb is not None:
            self._guard("summary", lambda: self._wandb.summary.update(summary_values(values)))
            if self._wandb is not None:
                self._sent_files["result.json"] = summary_digest(values)

    def close(self, exit_code: int = 0) -> None:
        if self._wandb is None:
            return
        if exit_code == 0 and self.cfg.artifacts and self.cfg.job_type == "gan" and self.mode == "online" and \
                self.run.checkpoint_file.exists():
            self._guard("artifact", self._log_checkpoint)
        if self._wandb is not None:
            self._guard("finish", lambda: self._wandb.finish(exit_code=exit_code))
        self._record_sent()
        self._wandb = None

    def _log_checkpoint(self) -> None:
        log_checkpoint(self._wandb, self.id, self.run.checkpoint_file, self.run.path.name)
        self._sent_files["checkpoint.pt"] = file_hash(self.run.checkpoint_file)

    def _record_sent(self, force: bool = False) -> None:
        """Online: note what W&B now holds, so `lstmgan sync` adds only the rest (at the end, and every
        RECORD_EVERY_S meanwhile, so a killed job leaves a recent record). Offline W&B files are local
        only: the record stays as the last sync left it."""
        self._recorded_at = time.monotonic()
        if self.mode != "online" or (self._sent_step is None and not self._sent_files and not force):
            return
        record = sync_record(self.run.path)
        last = record["last_step"]
        if self._sent_step is not None:
            record["last_step"] = self._sent_step if last is None else max(last, self._sent_step)
        record["files"] = {**record["files"], **self._sent_files}
        record["id"] = self.id
        try:
            write_json_atomic(self.run.path / SYNC_FILE, record)
        except OSError as e:  # bookkeeping for a later sync: never a reason to stop training
            log.warning("cannot write %s (%s); a later `lstmgan sync` may send some steps again",
                        self.run.path / SYNC_FILE, e)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(exit_code=0 if exc_type is None else 1)


# --- telling the user where the runs are -------------------------------------------------------------


def where_message(run_dirs: list[Path], mode: str) -> str:
    """One or two lines for the end of a command: the W&B mode and where its runs are."""
    mode = resolve_mode(mode)
    if mode == "disabled":
        return "W&B: disabled (metrics are in each run folder's metrics.jsonl)"
    if not run_dirs:
        return f"W&B ({mode}): no runs"
    ids = [identity(p) for p in run_dirs]
    folder = Path(os.path.commonpath(run_dirs))  # one run: its own folder
    if mode == "online":
        urls = [i["url"] for i in ids if i.get("url")]
        groups = sorted({i["group"] for i in ids if i.get("group")})
        if len(urls) == 1:
            return f"W&B (online): {urls[0]}"
        if urls:
            base = urls[0].split("/runs/")[0]
            where = ", ".join(f"{base}/groups/{g}" for g in groups) if groups else base
            return f"W&B (online): {len(urls)} runs in {where}"
        return f"W&B (online): runs not reached (see the warnings above); upload them later with " \
               f"`lstmgan sync {shlex.quote(str(folder))}`"
    what = f"run in {run_dirs[0]}" if len(run_dirs) == 1 else f"{len(run_dirs)} runs under {folder}"
    return f"W&B (offline): {what}; upload with `lstmgan sync {shlex.quote(str(folder))}`"
