"""The study: everything the report needs, as jobs. `lstmgan study` runs them; `lstmgan report` reads them.

    <study>/palindrome/   the sweep: lengths × RNN, LSTM × seeds
    <study>/ablation/     lengths × models × initialisation × encoding × seeds
    <study>/gan/<run>/    one GAN run, with its interpolation strips
    <study>/classifiers/  the classifier that scores GAN samples
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lstmgan.catalog import find
from lstmgan.config import GanConfig, PalindromeConfig, StudyConfig, SweepConfig, TrackingConfig, apply
from lstmgan.errors import UserError
from lstmgan.gan.posthoc import load_trained, make_strips
from lstmgan.gan.train import check_checkpoint as gan_fits
from lstmgan.gan.train import run_gan
from lstmgan.overrides import load_yaml
from lstmgan.palindrome.train import check_checkpoint as palindrome_fits
from lstmgan.palindrome.train import run_palindrome
from lstmgan.runner.job import Job, resolve_device
from lstmgan.tracking.identity import group_id

ABLATION = "ablation"
GAN = "gan"


def load_study(path: str | Path, preset: str | None, sets: dict[str, Any]) -> StudyConfig:
    """The study file's top level (a path or a packaged name such as `study`), then the preset's overrides,
    then --set; validated."""
    path = find(path, "job")
    data = load_yaml(path)
    presets = data.pop("presets", None) or {}  # `presets:` with nothing under it is none
    if not isinstance(presets, dict):
        raise UserError(f"{path}: presets must be a mapping of name: settings")
    cfg = apply(StudyConfig(), data, str(path))
    if preset is not None:
        if preset not in presets:
            raise UserError(f"{path} has no preset {preset!r}; choose one of: {', '.join(presets) or '(none)'}")
        cfg = apply(cfg, presets[preset] or {}, f"{path} (preset {preset})")  # `full: {}` may be written `full:`
    cfg = apply(cfg, sets, "--set")
    cfg.validate()
    return cfg


def ablation_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    ab = cfg.ablation
    runs = [replace(ab.run, model=m, length=n, seed=s, init=i, encoding=e)
            for n in ab.lengths for m in ab.models for i in ab.inits for e in ab.encodings for s in ab.seeds]
    return [palindrome_job(run, out / ABLATION, tracking, force=force, variant=True) for run in runs]


def gan_job(cfg: GanConfig, folder: Path, tracking: TrackingConfig, *, force: bool) -> Job:
    """One GAN run in folder/<dataset>-s<seed>/, for `lstmgan gan` (folder = OUT/NAME) and the study
    (folder = <study>/gan). Without a classifier path, the classifier is cached beside the folder, in
    folder/../classifiers/<dataset>.pt, shared by every run under the same --out. W&B: group = the
    tracking's group if set, else the folder's W&B group id."""
    if not cfg.classifier:
        cfg = replace(cfg, classifier=str(folder.parent / "classifiers" / f"{cfg.dataset}.pt"))
    tracking = replace(tracking, group=tracking.group or group_id(folder), job_type="gan",
                       tags=("gan", cfg.dataset, *tracking.tags))
    return Job(run_gan, cfg, folder / f"{cfg.dataset}-s{cfg.seed}", tracking, step_key="step", force=force,
               fits=gan_fits)


def study_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """Palindrome sweep, ablation, then the GAN (longest last, so the palindrome part reports early)."""
    tracking = replace(tracking, group=tracking.group or group_id(out))  # one W&B group for the whole study
    sweep = replace(tracking, tags=(*tracking.tags, "study"))
    return [*make_jobs(cfg.sweep, out, sweep, force=force), *ablation_jobs(cfg, out, sweep, force=force),
            gan_job(cfg.gan, out / GAN, tracking, force=force)]


def interpolation_strips(cfg: StudyConfig, gan_run: Path) -> list[dict[str, Any]]:
    """The study's interpolation strips for its GAN run, with the study's settings (steps, pairs, the
    classifier confidence both ends need). A UserError when no confident pair exists: the caller reports
    it as a result (a weak GAN), not as a failed study."""
    if not cfg.interpolation_pairs:
        return []
    device = resolve_device(cfg.gan.device)
    return make_strips(load_trained(gan_run, device), steps=cfg.interpolation_steps, method="lerp",
                       pairs=cfg.interpolation_pairs, seed=0, min_confidence=cfg.interpolation_min_confidence,
                       device=device)


def run_name(cfg: PalindromeConfig, *, variant: bool = False, keys: Sequence[str] = ()) -> str:
    """rnn-L5-s0; with variant=True also the initialisation and encoding: rnn-L5-normal-scalar-s0; with grid
    keys their values: lstm-L10-hidden64-lr0.003-s0 (only characters safe in any file name)."""
    middle = f"-{cfg.init}-{cfg.encoding}" if variant else ""
    middle += "".join(f"-{key}{value_text(getattr(cfg, key))}" for key in keys)
    return f"{cfg.model}-L{cfg.length}{middle}-s{cfg.seed}"


def value_text(value: Any) -> str:
    """A setting's value as it appears in run names: 64, 0.003, 1e-05, true, scalar (unsafe characters → _)."""
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def expand(sweep: SweepConfig) -> list[PalindromeConfig]:
    """lengths × models × grid points × seeds: one validated per-run config each."""
    return sweep.runs()


def palindrome_job(cfg: PalindromeConfig, sweep_dir: Path, tracking: TrackingConfig, *, force: bool,
                   variant: bool = False, keys: Sequence[str] = ()) -> Job:
    """One run, tracked so that W&B groups a sweep's runs: group = the sweep folder's (or --group),
    job_type = palindrome; the grid's values become tags (hidden=64)."""
    tags = (cfg.model, f"L{cfg.length}", *((cfg.init, cfg.encoding) if variant else ()),
            *(f"{key}={value_text(getattr(cfg, key))}" for key in keys), *tracking.tags)
    tracking = replace(tracking, group=tracking.group or group_id(sweep_dir), job_type="palindrome", tags=tags)
    return Job(run_palindrome, cfg, sweep_dir / run_name(cfg, variant=variant, keys=keys), tracking, force=force,
               fits=palindrome_fits)


def make_jobs(sweep: SweepConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    keys = list(sweep.grid_points()[0])
    jobs = [palindrome_job(cfg, out / sweep.name, tracking, force=force, keys=keys) for cfg in expand(sweep)]
    names = [job.run_dir.name for job in jobs]
    if len(set(names)) < len(names):  # e.g. grid values that differ only in characters a name cannot hold
        clash = next(name for name in names if names.count(name) > 1)
        raise UserError(f"two runs of the sweep would share the folder {clash}; give grid values that differ "
                        f"in letters or digits")
    return jobs


def longest_first(jobs: list[Job]) -> list[Job]:
    """Order palindrome jobs by expected cost, so runs side by side end together (longest first)."""
    def cost(job: Job) -> float:
        cfg = job.config
        return cfg.length * cfg.epochs * cfg.samples * cfg.hidden * (4 if cfg.model == "lstm" else 1)

    return sorted(jobs, key=cost, reverse=True)
