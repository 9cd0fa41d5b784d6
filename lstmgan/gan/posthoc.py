"""Work on a trained GAN run directory: draw samples, make interpolation strips. Nothing here trains, and
nothing here calls W&B: each step writes files and returns them with its numbers; the caller publishes them
(lstmgan.tracking.publish)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmgan.config import GanConfig, from_dict
from lstmgan.errors import UserError
from lstmgan.fs import write_bytes_atomic, write_json_atomic
from lstmgan.gan.classifier import load_classifier
from lstmgan.gan.data import class_names
from lstmgan.gan.interpolate import find_pair, interpolate, render_strip
from lstmgan.gan.models import Generator
from lstmgan.gan.train import generate, save_grid
from lstmgan.lock import RunLock
from lstmgan.rundir import RunDir, load_checkpoint


@dataclass
class TrainedGan:
    run: RunDir
    config: GanConfig
    generator: Generator
    epoch: int


def load_trained(path: Path, device: torch.device) -> TrainedGan:
    run = RunDir(Path(path))
    stored = run.stored_config()
    if stored is None or not run.checkpoint_file.exists():
        raise UserError(f"{path} is not a GAN run folder (needs config.yaml and checkpoint.pt); "
                        f"give a folder made by `lstmgan gan`, e.g. runs/gan/mnist-s0")
    try:
        cfg = from_dict(GanConfig, stored, str(run.config_file))
    except UserError:
        raise UserError(f"{path} holds a run of another experiment, not a GAN run; give a folder made by "
                        f"`lstmgan gan`") from None
    retrain = f"train the run again with `lstmgan gan` (its folder: {run.path})"
    ckpt = load_checkpoint(run.checkpoint_file, fix=retrain)
    G = Generator(cfg.latent_dim)
    weights = ckpt.get("generator")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserError(f"{run.checkpoint_file} holds no generator weights; {retrain}")
    try:
        G.load_state_dict(weights)
    except (KeyError, RuntimeError, TypeError, ValueError):
        raise UserError(f"{run.checkpoint_file} does not hold this run's generator; {retrain}") from None
    return TrainedGan(run, cfg, G.to(device).eval(), ckpt["epoch"])


def write_samples(gan: TrainedGan, n: int, seed: int, out: Path, device: torch.device) -> Path:
    """n images from z ~ N(0, I): .npy (N×28×28 float32 in [-1, 1]) or .png (a square-ish grid)."""
    z = torch.randn(n, gan.config.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    images = generate(gan.generator, z).cpu()
    if out.suffix == ".png":
        return save_grid(images, nrow=int(np.ceil(np.sqrt(n))), path=out)
    import io

    buf = io.BytesIO()
    np.save(buf, images.squeeze(1).numpy().astype(np.float32))
    write_bytes_atomic(out, buf.getvalue())
    return out


def make_strips(gan: TrainedGan, *, steps: int, method: str, pairs: int, seed: int, min_confidence: float,
                device: torch.device) -> list[dict[str, Any]]:
    """`pairs` strips, each between two samples the classifier reads as different classes with
    confidence ≥ min_confidence: <run>/interpolation/<method>-<i>.png and <method>.json. Returns each
    strip's PNG path, its pair and its predicted classes and confidences."""
    with RunLock(gan.run.path):  # never while `lstmgan gan` (or another interpolate) writes this run
        classifier, _ = load_classifier(gan.config.classifier, device)
        rng = torch.Generator().manual_seed(seed)
        folder = gan.run.path / "interpolation"
        names = class_names(gan.config.dataset)
        strips = []
        for i in range(pairs):
            pair = find_pair(gan.generator, classifier, latent_dim=gan.config.latent_dim,
                             min_confidence=min_confidence, generator_rng=rng, device=device)
            if pair is None:
                raise UserError(f"no two samples of different classes with confidence ≥ {min_confidence} were "
                                f"found; train the GAN longer or pass a lower --min-confidence")
            strip = interpolate(gan.generator, classifier, pair, steps=steps, method=method, device=device)
            png = folder / f"{method}-{i}.png"
            render_strip(strip.images, [names[c] for c in strip.classes], strip.confidences, png)
            strips.append({"png": str(png), "pair": pair.to_dict(), **strip.to_dict()})
        write_json_atomic(folder / f"{method}.json", {"epoch": gan.epoch, "seed": seed, "steps": steps,
                                                      "min_confidence": min_confidence, "strips": strips})
        return strips
