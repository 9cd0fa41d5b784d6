"""Train the MNIST GAN: `run_gan(cfg, run) -> result`, made of `train_one_epoch` and `evaluate`.

Non-saturating GAN loss with BCEWithLogitsLoss: the generator step pushes D(G(z)) towards "real" with D
held fixed; the discriminator step sees real images and *detached* fakes. The whole training set lives
in one tensor on the training device and is batched by index: no DataLoader, no per-item transforms.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from lstmgan.config import GanConfig, to_dict
from lstmgan.gan.classifier import SmallCNN, load_classifier, save_classifier, train_classifier
from lstmgan.gan.data import iterate_batches, load_images
from lstmgan.gan.metrics import class_histogram, classifier_features, frechet_distance, mean_max_prob
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.rundir import write_bytes_atomic

if TYPE_CHECKING:
    from lstmgan.launch import Run

log = logging.getLogger(__name__)
CLASSIFIER_EPOCHS = 3


class Meter:
    """Running sums of per-batch statistics, kept on the device so a batch never waits on a .item()."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, stats: dict[str, Tensor], images: int) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0) + value.detach()
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        out = {key: float(value) / self.count for key, value in self.sums.items()}
        out["images_per_s"] = self.images / max(time.perf_counter() - self.started, 1e-9)
        return out


def gan_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             real: Tensor, z: Tensor) -> dict[str, Tensor]:
    """One generator step then one discriminator step; returns losses and mean D outputs."""
    n = len(real)
    targets = torch.cat([torch.ones(n, 1, device=real.device), torch.zeros(n, 1, device=real.device)])

    # Generator: D is fixed (no gradients into D's weights, which the D step would discard anyway).
    D.requires_grad_(False)
    fake = G(z)
    g_loss = F.binary_cross_entropy_with_logits(D(fake), targets[:n])
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    D.requires_grad_(True)

    # Discriminator: real vs detached fakes, as one batch (larger matmuls); with equal halves the mean
    # over both is exactly (loss on real + loss on fake) / 2.
    logits = D(torch.cat([real, fake.detach()]))
    d_loss = F.binary_cross_entropy_with_logits(logits, targets)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    probs = torch.sigmoid(logits.detach())
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": probs[:n].mean(), "d_fake": probs[n:].mean()}


@torch.no_grad()
def generate(G: nn.Module, z: Tensor, batch_size: int = 1000) -> Tensor:
    """Images for z in eval mode (BatchNorm running statistics: an image does not depend on its batch)."""
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])
    finally:
        G.train(was_training)


def save_grid(images: Tensor, nrow: int, path: Path) -> Path:
    buf = io.BytesIO()
    save_image(make_grid(images.cpu(), nrow=nrow, normalize=True, value_range=(-1, 1)), buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
    return path


class Judge:
    """The classifier-based quality numbers: classifier-FID against real test images, with the
    real-vs-real floor (train vs test images) beside it, class histogram and mean max-probability."""

    def __init__(self, classifier: SmallCNN, train_images: Tensor, test_images: Tensor, n: int,
                 rng: torch.Generator) -> None:
        self.classifier, self.n = classifier, min(n, len(test_images), len(train_images))
        pick = lambda images: images[torch.randperm(len(images), generator=rng)[: self.n].to(images.device)]  # noqa: E731
        self.test_features, _ = classifier_features(classifier, pick(test_images))
        train_features, _ = classifier_features(classifier, pick(train_images))
        self.floor = frechet_distance(train_features, self.test_features)

    def __call__(self, G: nn.Module, latent_dim: int, rng: torch.Generator, device: torch.device) -> dict[str, Any]:
        z = torch.randn(self.n, latent_dim, generator=rng).to(device)
        features, probs = classifier_features(self.classifier, generate(G, z))
        return {"fid": frechet_distance(features, self.test_features), "fid_floor": self.floor,
                "class_histogram": class_histogram(probs), "mean_max_prob": mean_max_prob(probs)}


def get_classifier(cfg: GanConfig, path: Path, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                   device: torch.device) -> SmallCNN:
    """Load the cached classifier for this dataset, or train and cache it (a few CPU minutes on MNIST)."""
    if path.exists():
        model, meta = load_classifier(path, device)
        if meta.get("dataset") == cfg.dataset:
            return model
        log.warning("%s was trained on %s, not %s: training a new one", path, meta.get("dataset"), cfg.dataset)
    log.info("training the %s classifier for classifier-FID → %s", cfg.dataset, path)
    model, accuracy = train_classifier(*train, *test, epochs=CLASSIFIER_EPOCHS, seed=0, device=device)
    save_classifier(model, path, {"dataset": cfg.dataset, "test_accuracy": accuracy,
                                  "train_images": len(train[0])})
    return model


def run_gan(cfg: GanConfig, run: Run) -> dict[str, Any]:
    device = run.device
    images, labels = load_images(cfg.dataset, Path(cfg.data_dir), train=True, download=cfg.download, device=device)
    test = load_images(cfg.dataset, Path(cfg.data_dir), train=False, download=cfg.download, device=device)
    classifier = get_classifier(cfg, Path(cfg.classifier), (images, labels), test, device)  # the full split
    judge = Judge(classifier, images, test[0], cfg.eval_samples, torch.Generator().manual_seed(cfg.seed))
    if cfg.limit:
        images = images[: cfg.limit]

    torch.manual_seed(cfg.seed)
    G, D = Generator(cfg.latent_dim).to(device), Discriminator().to(device)
    # fused Adam: one kernel per step for all parameters, on the CPU as on CUDA (about 1.2× per batch here)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    fixed_z = torch.randn(cfg.grid ** 2, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    eval_rng = torch.Generator().manual_seed(cfg.seed + 2)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "train_time": 0.0, "evaluations": [], "grids": []}

    if run.checkpoint is not None:
        ckpt = run.checkpoint
        G.load_state_dict(ckpt["generator"])
        D.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        shuffle.set_state(ckpt["shuffle_rng"])
        eval_rng.set_state(ckpt["eval_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        state = dict(ckpt["state"])
    else:
        state["grids"].append(sample_grid(G, fixed_z, cfg.grid, run, 0))

    batches_per_epoch = -(-len(images) // cfg.batch_size)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        started = time.perf_counter()
        meter = Meter()
        for idx in iterate_batches(len(images), cfg.batch_size, shuffle, drop_last=len(images) % cfg.batch_size == 1):
            real = images[idx.to(device)]
            z = torch.randn(len(real), cfg.latent_dim, device=device)
            meter.add(gan_step(G, D, opt_g, opt_d, real, z), len(real))
            state["step"] += 1
            if state["step"] % cfg.log_every == 0:
                run.tracker.log({"step": state["step"], "epoch": epoch, **meter.means()})
                meter = Meter()
            if state["step"] % cfg.sample_every == 0:
                state["grids"].append(sample_grid(G, fixed_z, cfg.grid, run, state["step"]))
        if meter.count:
            run.tracker.log({"step": state["step"], "epoch": epoch, **meter.means()})
        state["epoch"], state["train_time"] = epoch, state["train_time"] + time.perf_counter() - started
        if epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0):
            quality = judge(G, cfg.latent_dim, eval_rng, device)
            state["evaluations"].append({"epoch": epoch, "step": state["step"], **quality})
            run.tracker.log({"step": state["step"], "epoch": epoch, **quality})
        if epoch == cfg.epochs and state["grids"][-1]["step"] != state["step"]:
            state["grids"].append(sample_grid(G, fixed_z, cfg.grid, run, state["step"]))
        run.dir.save_checkpoint({
            "config": to_dict(cfg), "epoch": epoch, "step": state["step"], "state": state,
            "generator": G.state_dict(), "discriminator": D.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "shuffle_rng": shuffle.get_state(),
            "eval_rng": eval_rng.get_state(), "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
        })
        run.progress(epoch, cfg.epochs, f"step {state['step']}")

    from lstmgan.plots import gan_losses  # matplotlib only when drawing

    metrics = run.dir.metrics()
    gan_losses(metrics, run.dir.path / "losses.png")
    final = state["evaluations"][-1] if state["evaluations"] else {}
    last = next((m for m in reversed(metrics) if "d_loss" in m), {})
    return {
        "dataset": cfg.dataset, "seed": cfg.seed, "epochs": state["epoch"], "steps": state["step"],
        "train_images": len(images), "batches_per_epoch": batches_per_epoch,
        "fid": final.get("fid"), "fid_floor": judge.floor, "class_histogram": final.get("class_histogram"),
        "mean_max_prob": final.get("mean_max_prob"), "evaluations": state["evaluations"],
        "d_loss": last.get("d_loss"), "g_loss": last.get("g_loss"),
        "images_per_s": len(images) * state["epoch"] / max(state["train_time"], 1e-9) if state["epoch"] else None,
        "train_time_s": state["train_time"], "grids": state["grids"],
    }


def sample_grid(G: nn.Module, fixed_z: Tensor, nrow: int, run: Run, step: int) -> dict[str, Any]:
    """A grid from the run's fixed z, so grids are comparable over time; PNG + W&B image."""
    device = next(G.parameters()).device
    path = save_grid(generate(G, fixed_z.to(device)), nrow, run.dir.path / "samples" / f"step{step:07d}.png")
    run.tracker.log_image("samples", path, step, caption=f"step {step}")
    return {"step": step, "path": str(path.relative_to(run.dir.path))}
