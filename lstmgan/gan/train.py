"""Train the MNIST GAN: `run_gan(cfg, run) -> result`, made of `train_one_epoch` and `evaluate`.

Non-saturating GAN loss with BCEWithLogitsLoss: the generator step pushes D(G(z)) towards "real" with D
held fixed; the discriminator step sees real images and *detached* fakes. The whole training set lives
in one tensor on the training device and is batched by index: no DataLoader, no per-item transforms.

One step, two ways to run it: `gan_step` is the math; `FastStep` runs it over static buffers with the
epoch's permutation and the meters on the device, eagerly (the CPU, `cuda_graphs: off`) or replayed as a
captured CUDA graph (one per batch shape). Eagerly it equals the plain loop bit for bit (tests/test_gan_train.py).
What the step need not wait for (metrics rows, sample grids' PNGs and W&B images, checkpoint files) is written
by one background thread, in order, drained before a run returns or stops.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from lstmgan.config import GanConfig, to_dict
from lstmgan.environment import deterministic, matmul_precision, no_tf32, numerics
from lstmgan.errors import StopRequested
from lstmgan.gan.background import Background
from lstmgan.gan.classifier import SmallCNN, cached_classifier, train_and_save
from lstmgan.gan.data import load_images
from lstmgan.gan.metrics import class_histogram, classifier_features, frechet_distance, mean_max_prob
from lstmgan.gan.models import Discriminator, Generator, eval_mode
from lstmgan.gan.step import METERS, FastStep, make_optimizers

if TYPE_CHECKING:
    from lstmgan.runner.job import Run

log = logging.getLogger(__name__)
RNG_KEYS = ("shuffle_rng", "eval_rng", "torch_rng", "cuda_rng")  # CPU uint8 tensors in every checkpoint
CHECKPOINT_EVERY = {"cpu": 1, "cuda": 10}  # epochs, for checkpoint_every: 0 (a GPU epoch takes about a second)


@torch.no_grad()
def generate(G: nn.Module, z: Tensor, batch_size: int = 1000) -> Tensor:
    """Images for z in eval mode (BatchNorm running statistics: an image does not depend on its batch)."""
    with eval_mode(G):
        return torch.cat([G(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])


def save_grid(images: Tensor, nrow: int, path: Path) -> Path:
    """The grid as a PNG, atomically (a temp file renamed over `path`) but not fsync'd: a grid lost to a power
    cut is redrawn by the resume from the checkpoint before it (whose own file is fsync'd)."""
    buf = io.BytesIO()
    save_image(make_grid(images.cpu(), nrow=nrow, normalize=True, value_range=(-1, 1)), buf, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class Judge:
    """The classifier-based quality numbers: classifier-FID against real test images, with the
    real-vs-real floor (train vs test images) beside it, class histogram and mean max-probability."""

    def __init__(self, classifier: SmallCNN, train_images: Tensor, test_images: Tensor, n: int,
                 rng: torch.Generator) -> None:
        self.classifier, self.n = classifier, min(n, len(test_images), len(train_images))
        pick = lambda images: images[torch.randperm(len(images), generator=rng)[: self.n].to(images.device)]
        self.test_features, _ = classifier_features(classifier, pick(test_images))
        train_features, _ = classifier_features(classifier, pick(train_images))
        self.floor = frechet_distance(train_features, self.test_features)

    def __call__(self, G: nn.Module, latent_dim: int, rng: torch.Generator, device: torch.device) -> dict[str, Any]:
        z = torch.randn(self.n, latent_dim, generator=rng).to(device)
        with no_tf32():  # the samples too, not only the classifier: FID must not depend on the GPU's defaults
            features, probs = classifier_features(self.classifier, generate(G, z))
        return {"fid": frechet_distance(features, self.test_features), "fid_floor": self.floor,
                "class_histogram": class_histogram(probs), "mean_max_prob": mean_max_prob(probs)}


def get_classifier(cfg: GanConfig, path: Path, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                   device: torch.device, progress: Callable[[int, int, str], None] | None = None) -> SmallCNN:
    """Load the cached classifier if it was trained on exactly this data (its digest), or train and cache one
    (a few CPU minutes on MNIST)."""
    if found := cached_classifier(path, cfg.dataset, train, test, device, warn=log.warning):
        return found[0]
    log.info("training the %s classifier for classifier-FID → %s", cfg.dataset, path)
    model, _ = train_and_save(cfg.dataset, train, test, path, device=device, progress=progress)
    return model


@dataclass
class GanState:
    """Where a run stands; a checkpoint stores it as a plain dict (`asdict`: weights_only loading)."""

    epoch: int = 0  # completed epochs
    step: int = 0
    batch: int = 0  # batches done in the epoch under way: > 0 only after a stop
    train_time: float = 0.0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    grids: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GanRun:
    """Everything one GAN run is made of; `gan_state` / `load_gan_state` write and read it as a checkpoint."""

    cfg: GanConfig
    run: Run
    images: Tensor
    judge: Judge
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    fast: FastStep
    shuffle: torch.Generator
    eval_rng: torch.Generator
    fixed_z: Tensor
    background: Background
    state: GanState = field(default_factory=GanState)
    epoch_rng: Tensor | None = None  # the shuffle generator's state before the epoch under way drew its order
    row_count: int = 0  # batches and images in the metrics row being summed
    row_images: int = 0
    row_started: float = field(default_factory=time.perf_counter)

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def drop_last(self) -> bool:  # a batch of one would break BatchNorm in training mode
        return len(self.images) % self.cfg.batch_size == 1

    @property
    def batches_per_epoch(self) -> int:
        n, bs = len(self.images), self.cfg.batch_size
        return n // bs if self.drop_last else -(-n // bs)


def gan_state(g: GanRun) -> dict[str, Any]:
    """The checkpoint: everything `load_gan_state` needs to continue bit for bit (on the CPU). Its tensors
    are copies, so the training may go on while the background writer saves it."""
    mid_epoch = g.state.batch > 0
    ckpt = {
        "config": to_dict(g.cfg), "epoch": g.state.epoch, "step": g.state.step, "state": asdict(g.state),
        "generator": _copy(g.G.state_dict()), "discriminator": _copy(g.D.state_dict()),
        "opt_g": _copy(g.opt_g.state_dict()), "opt_d": _copy(g.opt_d.state_dict()),
        "shuffle_rng": g.epoch_rng if mid_epoch and g.epoch_rng is not None else g.shuffle.get_state(),
        "eval_rng": g.eval_rng.get_state(), "torch_rng": torch.get_rng_state(),
        "meter": {"sums": g.fast.meters.detach().cpu().clone(), "count": g.row_count, "images": g.row_images},
    }
    if g.device.type == "cuda":
        ckpt["cuda_rng"] = torch.cuda.get_rng_state(g.device)
    return ckpt


def _copy(value: Any) -> Any:
    """`value` with every tensor replaced by a detached CPU copy (containers rebuilt, the rest shared)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def save_checkpoint(g: GanRun) -> None:
    """Queue the checkpoint behind the rows and grids before it (the writer keeps the order), so a resume
    finds everything it promises; the file itself is fsync'd and atomic (RunDir.save_checkpoint)."""
    ckpt = gan_state(g)
    g.background.submit(lambda: g.run.dir.save_checkpoint(ckpt))


def load_gan_state(g: GanRun, ckpt: dict[str, Any]) -> None:
    """Continue from a checkpoint loaded on the CPU: weights and optimizer state go to the run's device
    through load_state_dict; RNG states stay CPU byte tensors (the only kind set_state accepts)."""
    g.G.load_state_dict(ckpt["generator"])
    g.D.load_state_dict(ckpt["discriminator"])
    g.opt_g.load_state_dict(ckpt["opt_g"])
    g.opt_d.load_state_dict(ckpt["opt_d"])
    g.shuffle.set_state(ckpt["shuffle_rng"].cpu())
    g.eval_rng.set_state(ckpt["eval_rng"].cpu())
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    if g.device.type == "cuda" and "cuda_rng" in ckpt:
        torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), g.device)
    g.state = GanState(**ckpt["state"])
    meter = ckpt.get("meter")
    if meter is not None:
        g.fast.meters.copy_(meter["sums"])
        g.row_count, g.row_images = meter["count"], meter["images"]


def _log_row(g: GanRun, epoch: int) -> float:
    """Write the metrics row summed since the last one; returns its images/s. Rows' time windows tile the
    run (each starts where the last ended), so a wait on the writer or a checkpoint is counted, in the next row."""
    sums = g.fast.take_meters()
    now = time.perf_counter()
    row = {key: value / g.row_count for key, value in zip(METERS, sums)}
    row["images_per_s"] = g.row_images / max(now - g.row_started, 1e-9)
    row = {"step": g.state.step, "epoch": epoch, **row}
    g.background.submit(lambda: g.run.tracker.log(row))
    g.row_count = g.row_images = 0
    g.row_started = now
    return row["images_per_s"]


def train_one_epoch(g: GanRun, epoch: int, stop: Callable[[], bool], total_steps: int) -> bool:
    """Train epoch `epoch` (from batch state.batch on, after a stop). Returns False when a stop was
    requested before the epoch ended (the state then says where to continue)."""
    cfg, state = g.cfg, g.state
    started = time.perf_counter()
    g.epoch_rng = g.shuffle.get_state()
    n, bs = len(g.images), cfg.batch_size
    g.fast.set_order(torch.randperm(n, generator=g.shuffle))
    end = n - n % bs if g.drop_last else n
    session_start = state.step
    for start in range(state.batch * bs, end, bs):
        size = min(bs, end - start)
        g.fast.step(start, size)
        g.row_count, g.row_images = g.row_count + 1, g.row_images + size
        state.step += 1
        state.batch += 1
        if state.step % cfg.log_every == 0:
            rate = _log_row(g, epoch)
            if start + size < end:  # the epoch's end reports on its own, after its checkpoint
                done = state.step - session_start
                eta = (total_steps - state.step) * (time.perf_counter() - started) / max(done, 1)
                g.run.progress(state.step, total_steps,
                               f"epoch {epoch}/{cfg.epochs}, {rate:.0f} images/s, ETA {_duration(eta)}")
        if state.step % cfg.sample_every == 0:
            state.grids.append(sample_grid(g, state.step))
        if stop():
            state.train_time += time.perf_counter() - started
            return False
    if g.row_count:
        _log_row(g, epoch)
    state.epoch, state.batch = epoch, 0
    state.train_time += time.perf_counter() - started
    return True


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def evaluate(g: GanRun, epoch: int) -> dict[str, Any]:
    """Classifier-FID and class statistics of the generator now; logged and kept in the state."""
    quality = g.judge(g.G, g.cfg.latent_dim, g.eval_rng, g.device)
    g.state.evaluations.append({"epoch": epoch, "step": g.state.step, **quality})
    row = {"step": g.state.step, "epoch": epoch, **quality}
    g.background.submit(lambda: g.run.tracker.log(row))
    return quality


def check_checkpoint(cfg: GanConfig, ckpt: dict[str, Any]) -> None:
    """Raise unless `ckpt`'s weights load into the generator and discriminator `cfg` builds (on the CPU):
    rundir.decide runs it before a resume changes the run folder."""
    Generator(cfg.latent_dim).load_state_dict(ckpt["generator"])
    Discriminator().load_state_dict(ckpt["discriminator"])


def run_gan(cfg: GanConfig, run: Run) -> dict[str, Any]:
    """Train the GAN; checkpoint every `checkpoint_every` epochs, at the end, and when asked to stop
    (then raise StopRequested: a later call resumes from that checkpoint). On CUDA the training step's
    float32 matmuls follow cfg.matmul_precision (deterministic runs and FID stay exact)."""
    precision = cfg.matmul_precision if run.device.type == "cuda" and not cfg.deterministic else "highest"
    with deterministic(cfg.deterministic), matmul_precision(precision), Background() as background:
        return _train(cfg, run, background)


def build(cfg: GanConfig, run: Run, background: Background) -> GanRun:
    device = run.device
    images, labels = load_images(cfg.dataset, Path(cfg.data_dir), train=True, download=cfg.download, device=device)
    test = load_images(cfg.dataset, Path(cfg.data_dir), train=False, download=cfg.download, device=device)
    total = cfg.epochs * -(-len(images[: cfg.limit or None]) // cfg.batch_size)
    classifier = get_classifier(cfg, Path(cfg.classifier), (images, labels), test, device,  # the full split
                                lambda done, of, text: run.progress(0, total, text))
    judge = Judge(classifier, images, test[0], cfg.eval_samples, torch.Generator().manual_seed(cfg.seed))
    if cfg.limit:
        images = images[: cfg.limit]

    torch.manual_seed(cfg.seed)
    G, D = Generator(cfg.latent_dim).to(device), Discriminator().to(device)
    capture = cfg.cuda_graphs == "auto" and device.type == "cuda"
    opt_g, opt_d = make_optimizers(G, D, cfg, capturable=capture)
    return GanRun(
        cfg=cfg, run=run, images=images, judge=judge, G=G, D=D, opt_g=opt_g, opt_d=opt_d,
        fast=FastStep(G, D, opt_g, opt_d, images, cfg.latent_dim, cfg.batch_size, capture=capture),
        shuffle=torch.Generator().manual_seed(cfg.seed),
        fixed_z=torch.randn(cfg.grid ** 2, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)),
        eval_rng=torch.Generator().manual_seed(cfg.seed + 2), background=background,
    )


def _train(cfg: GanConfig, run: Run, background: Background) -> dict[str, Any]:
    g = build(cfg, run, background)
    if run.checkpoint is not None:
        load_gan_state(g, run.checkpoint)  # before the first step (a load would drop captured graphs)
    else:
        g.state.grids.append(sample_grid(g, 0))
    stop = run.stop_requested  # Ctrl-C, SIGTERM or SLURM: checked between batches
    every = cfg.checkpoint_every or CHECKPOINT_EVERY.get(g.device.type, 1)
    total_steps = cfg.epochs * g.batches_per_epoch

    for epoch in range(g.state.epoch + 1, cfg.epochs + 1):
        if stop() or not train_one_epoch(g, epoch, stop, total_steps):
            save_checkpoint(g)
            background.drain()
            raise StopRequested(f"stopped at step {g.state.step}; the checkpoint there resumes the run")
        if epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0):
            evaluate(g, epoch)
        if epoch == cfg.epochs and g.state.grids[-1]["step"] != g.state.step:
            g.state.grids.append(sample_grid(g, g.state.step))
        if epoch % every == 0 or epoch == cfg.epochs:
            save_checkpoint(g)
        run.progress(g.state.step, total_steps, f"epoch {epoch}/{cfg.epochs} done")
    background.drain()  # the rows, grids and last checkpoint are on disk before the result is written
    return _result(g)


def _result(g: GanRun) -> dict[str, Any]:
    from lstmgan.results.plots import gan_losses  # matplotlib only when drawing

    cfg, state, run = g.cfg, g.state, g.run
    metrics = run.dir.metrics()
    gan_losses(metrics, run.dir.path / "losses.png")
    final = state.evaluations[-1] if state.evaluations else {}
    last = next((m for m in reversed(metrics) if "d_loss" in m), {})
    return {
        "dataset": cfg.dataset, "seed": cfg.seed, "epochs": state.epoch, "steps": state.step,
        "train_images": len(g.images), "batches_per_epoch": g.batches_per_epoch,
        "fid": final.get("fid"), "fid_floor": g.judge.floor, "class_histogram": final.get("class_histogram"),
        "mean_max_prob": final.get("mean_max_prob"), "evaluations": state.evaluations,
        "d_loss": last.get("d_loss"), "g_loss": last.get("g_loss"),
        "images_per_s": len(g.images) * state.epoch / max(state.train_time, 1e-9) if state.epoch else None,
        "train_time_s": state.train_time, "grids": state.grids,
        "cuda_graphs": g.fast.capture, "matmul_precision": cfg.matmul_precision, "numerics": numerics(),
    }


def sample_grid(g: GanRun, step: int) -> dict[str, Any]:
    """A grid from the run's fixed z, so grids are comparable over time: drawn here, then its PNG and W&B
    image in the background."""
    images = generate(g.G, g.fixed_z.to(g.device)).to("cpu", non_blocking=False)
    path, run = g.run.dir.path / "samples" / f"step{step:07d}.png", g.run

    def write() -> None:
        save_grid(images, g.cfg.grid, path)
        run.tracker.log_image("samples", path, step, caption=f"step {step}")

    g.background.submit(write)
    return {"step": step, "path": str(path.relative_to(run.dir.path))}
