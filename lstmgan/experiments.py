"""The study: everything the report needs, as jobs. `lstmgan study` runs them; `lstmgan report` reads them.

    <study>/palindrome/   the sweep: lengths × RNN, LSTM × seeds
    <study>/ablation/     lengths × models × initialisation × encoding (× forget-gate bias, LSTM) × seeds
    <study>/gan/<run>/    the GAN runs (one per seed and grid point), each with its interpolation strips
    <study>/classifiers/  the classifier that scores GAN samples

The strips are made by each GAN run's own job, right after it trains (`StripsJob`): the same path here and
in a SLURM task, so `lstmgan report` only reads folders.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lstmgan.catalog import find
from lstmgan.config import (
    GanConfig,
    GanSweepConfig,
    PalindromeConfig,
    StudyConfig,
    SweepConfig,
    TrackingConfig,
    apply,
)
from lstmgan.errors import UserError
from lstmgan.gan.classifier import cache_path
from lstmgan.gan.posthoc import load_trained, make_strips
from lstmgan.gan.train import check_checkpoint as gan_fits
from lstmgan.gan.train import run_gan
from lstmgan.overrides import load_yaml
from lstmgan.palindrome.train import check_checkpoint as palindrome_fits
from lstmgan.palindrome.train import run_palindrome
from lstmgan.rundir import ABLATION, GAN
from lstmgan.runner.job import Job, Progress, resolve_device
from lstmgan.tracking.identity import group_id

STRIPS = "lerp"  # the study's interpolation method: <run>/interpolation/lerp.json


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
    return cfg


def ablation_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """lengths × models × inits × encodings (× forget biases for the LSTM: an RNN has no forget gate) × seeds.
    Run names carry the forget bias only when more than one is tried (older ablation folders keep theirs)."""
    ab = cfg.ablation
    keys = ["forget_bias"] if len(ab.forget_biases) > 1 else []
    jobs = []
    for n, m, i, e in itertools.product(ab.lengths, ab.models, ab.inits, ab.encodings):
        for b in ab.forget_biases if m == "lstm" else [ab.run.forget_bias]:
            jobs += [palindrome_job(replace(ab.run, model=m, length=n, seed=s, init=i, encoding=e, forget_bias=b),
                                    out / ABLATION, tracking, force=force, variant=True,
                                    keys=keys if m == "lstm" else ()) for s in ab.seeds]
    return jobs


def gan_job(cfg: GanConfig, folder: Path, tracking: TrackingConfig, *, force: bool, keys: Sequence[str] = ()) -> Job:
    """One GAN run in folder/<dataset>-s<seed>/ (with grid keys: folder/<dataset>-lr0.0001-s<seed>/), for
    `lstmgan gan` (folder = OUT/NAME) and the study (folder = <study>/gan). Without a classifier path, the
    classifier is cached beside the folder, in folder/../classifiers/<dataset>.pt, shared by every run under
    the same --out. W&B: group = the tracking's group if set, else the folder's W&B group id; the grid's
    values become tags."""
    if not cfg.classifier:
        cfg = replace(cfg, classifier=str(cache_path(folder.parent, cfg.dataset)))
    values = [f"{key}{value_text(getattr(cfg, key))}" for key in keys]
    tracking = replace(tracking, group=tracking.group or group_id(folder), job_type="gan",
                       tags=("gan", cfg.dataset, *(f"{key}={value_text(getattr(cfg, key))}" for key in keys),
                             *tracking.tags))
    name = "-".join([cfg.dataset, *values, f"s{cfg.seed}"])
    return Job(run_gan, cfg, folder / name, tracking, step_key="step", force=force, fits=gan_fits)


def gan_jobs(gan: GanSweepConfig, folder: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """One GAN job per grid point × seed (`lstmgan gan --seeds 0 1 2 --grid lr=1e-4,2e-4`)."""
    keys = list(gan.grid_points()[0])
    return unique_folders([gan_job(cfg, folder, tracking, force=force, keys=keys) for cfg in gan.runs()])


@dataclass
class StripsJob(Job):
    """A study's GAN run, then its interpolation strips with the study's settings (steps, pairs, the classifier
    confidence both ends need), published to the run's W&B run: here and in a SLURM task alike. Strips that
    exist for this epoch and these settings are kept. No confident pair is a result (a weak GAN), said on
    stderr, not a failed run."""

    steps: int = 7
    pairs: int = 0
    min_confidence: float = 0.9

    def __call__(self, progress: Progress | None = None) -> dict[str, Any]:
        result = super().__call__(progress)
        if self.pairs and not self.strips_done(result):
            try:
                self.make_strips()
            except UserError as e:  # its fix names `interpolate`'s flags: the study's own follow
                # stderr: the terminal here, the task's log on SLURM
                print(f"{self.label}: interpolation skipped: {str(e).split(';')[0]}; train the GAN longer (--set "
                      f"gan.epochs=…) or lower --set interpolation_min_confidence=…, or run `lstmgan interpolate "
                      f"{self.run_dir} --min-confidence 0.5`", file=sys.stderr, flush=True)
                return result
            from lstmgan.tracking.publish import publish

            publish(self.run_dir, self.tracking)
        return result

    def make_strips(self) -> list[dict[str, Any]]:
        """The strips of this job's trained run (a UserError when no confident pair exists)."""
        device = resolve_device(self.config.device)
        return make_strips(load_trained(self.run_dir, device), steps=self.steps, method=STRIPS, pairs=self.pairs,
                           seed=0, min_confidence=self.min_confidence, device=device)

    def strips_done(self, result: dict[str, Any]) -> bool:
        try:
            done = json.loads((self.run_dir / "interpolation" / f"{STRIPS}.json").read_text())
        except (OSError, ValueError):
            return False
        wanted = {"epoch": result.get("epochs"), "steps": self.steps, "min_confidence": self.min_confidence}
        return isinstance(done, dict) and all(done.get(k) == v for k, v in wanted.items()) and \
            len(done.get("strips") or []) == self.pairs


def study_jobs(cfg: StudyConfig, out: Path, tracking: TrackingConfig, *, force: bool) -> list[Job]:
    """Palindrome sweep, ablation, then the GAN runs (longest last, so the palindrome part reports early),
    each GAN run making its interpolation strips."""
    tracking = replace(tracking, group=tracking.group or group_id(out))  # one W&B group for the whole study
    sweep = replace(tracking, tags=(*tracking.tags, "study"))
    gans = [StripsJob(**{f: getattr(job, f) for f in job.__dataclass_fields__}, steps=cfg.interpolation_steps,
                      pairs=cfg.interpolation_pairs, min_confidence=cfg.interpolation_min_confidence)
            for job in gan_jobs(cfg.gan, out / GAN, tracking, force=force)]
    return [*make_jobs(cfg.sweep, out, sweep, force=force), *ablation_jobs(cfg, out, sweep, force=force), *gans]


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
    """lengths × models × grid points × seeds: a job each."""
    keys = list(sweep.grid_points()[0])
    return unique_folders([palindrome_job(cfg, out / sweep.name, tracking, force=force, keys=keys)
                           for cfg in sweep.runs()])


def unique_folders(jobs: list[Job]) -> list[Job]:
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
