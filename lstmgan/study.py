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

from lstmgan.config import StudyConfig, TrackingConfig, apply, load_yaml
from lstmgan.errors import UserError
from lstmgan.gan.train import run_gan
from lstmgan.launch import Job
from lstmgan.sweep import make_jobs, palindrome_job
from lstmgan.tracking import group_id

ABLATION = "ablation"
GAN = "gan"


def load_study(path: Path, preset: str | None, sets: dict[str, Any]) -> StudyConfig:
    """The study YAML's top level, then the preset's overrides, then --set; validated."""
    data = load_yaml(path)
    presets = data.pop("presets", {}) or {}
    cfg = apply(StudyConfig(), data, str(path))
    if preset is not None:
        if preset not in presets:
            raise UserError(f"{path} has no preset {preset!r}; choose one of: {', '.join(presets) or '(none)'}")
        cfg = apply(cfg, presets[preset] or {}, f"{path} (preset {preset})")
    cfg = apply(cfg, sets, "--set")
    cfg.validate()
    return cfg


def ablation_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    ab = cfg.ablation
    runs = [replace(ab.run, model=m, length=n, seed=s, init=i, encoding=e)
            for n in ab.lengths for m in ab.models for i in ab.inits for e in ab.encodings for s in ab.seeds]
    return [palindrome_job(run, out / ABLATION, tracking, force=force, variant=True) for run in runs]


def gan_job(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> Job:
    default_classifier = str(out / "classifiers" / f"{cfg.gan.dataset}.pt")
    gan = cfg.gan if cfg.gan.classifier else replace(cfg.gan, classifier=default_classifier)
    tracking = replace(tracking, group=tracking.group or group_id(out), job_type="gan",
                       tags=("gan", gan.dataset, *tracking.tags))
    return Job(run_gan, gan, out / GAN / f"{gan.dataset}-s{gan.seed}", tracking, step_key="step", force=force)


def study_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """Palindrome sweep, ablation, then the GAN (longest last, so the palindrome part reports early)."""
    tracking = replace(tracking, group=tracking.group or group_id(out))  # one W&B group for the whole study
    sweep = replace(tracking, tags=(*tracking.tags, "study"))
    return [*make_jobs(cfg.sweep, out, sweep, force=force), *ablation_jobs(cfg, out, sweep, force=force),
            gan_job(cfg, out, tracking, force=force)]
