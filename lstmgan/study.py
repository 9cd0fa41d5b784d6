"""The study: everything the report needs, as jobs. `lstmgan study` runs them; `lstmgan report` reads them.

    <study>/palindrome/   the sweep: lengths × RNN, LSTM × seeds
    <study>/ablation/     lengths × models × initialisation × encoding × seeds
    <study>/gan/<run>/    one GAN run, with its interpolation strips
    <study>/classifiers/  the classifier that scores GAN samples
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from lstmgan.catalog import find
from lstmgan.config import GanConfig, StudyConfig, TrackingConfig, apply, load_yaml
from lstmgan.errors import UserError
from lstmgan.gan.posthoc import load_trained, make_strips
from lstmgan.gan.train import run_gan
from lstmgan.launch import Job, resolve_device
from lstmgan.sweep import make_jobs, palindrome_job
from lstmgan.tracking import group_id

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
    return Job(run_gan, cfg, folder / f"{cfg.dataset}-s{cfg.seed}", tracking, step_key="step", force=force)


def study_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """Palindrome sweep, ablation, then the GAN (longest last, so the palindrome part reports early)."""
    tracking = replace(tracking, group=tracking.group or group_id(out))  # one W&B group for the whole study
    sweep = replace(tracking, tags=(*tracking.tags, "study"))
    return [*make_jobs(cfg.sweep, out, sweep, force=force), *ablation_jobs(cfg, out, sweep, force=force),
            gan_job(cfg.gan, out / GAN, tracking, force=force)]


def interpolation_strips(cfg: StudyConfig, gan_run: Path, tracking: TrackingConfig) -> list[dict[str, Any]]:
    """The study's interpolation strips for its GAN run, with the study's settings (steps, pairs, the
    classifier confidence both ends need). A UserError when no confident pair exists: the caller reports
    it as a result (a weak GAN), not as a failed study."""
    if not cfg.interpolation_pairs:
        return []
    device = resolve_device(cfg.gan.device)
    return make_strips(load_trained(gan_run, device), steps=cfg.interpolation_steps, method="lerp",
                       pairs=cfg.interpolation_pairs, seed=0, min_confidence=cfg.interpolation_min_confidence,
                       tracking=tracking, device=device)
