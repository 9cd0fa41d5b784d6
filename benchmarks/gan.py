"""GAN training speed on this machine: the step's limit, FastStep, and a real run, in one process.

    limit    the step's matrix products alone: forward, input and weight gradients of both networks at the
             run's batch size (the 28 products of one generator + discriminator step), each shape timed
             separately with the run's thread count (median of many), summed; 1 / that sum in steps/s.
    FastStep `lstmgan.gan.train.FastStep` over the same images: whole epochs, meters read every 100 steps.
    real     `run_gan` as `lstmgan gan` runs it (metrics rows, sample grids, a checkpoint each epoch on the CPU,
             progress), timed over whole epochs between the "epoch k done" reports (the first epoch and the
             final evaluation left out).
Rounds alternate the three (median each), so the ratios hold on a shared, noisy machine; compare ratios
within one run. FID is not measured here: unless --classifier names one, the run's FID classifier is an
untrained SmallCNN (training one takes CPU minutes; it is used only after the timed epochs).
Targets on 2 CPU cores: real >= 0.9 x FastStep and real >= 0.6 x limit.

    python benchmarks/gan.py                                   # Fashion-MNIST from Debian's package
    python benchmarks/gan.py --data-dir DIR --dataset mnist    # any IDX folder
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from lstmgan.config import GanConfig, TrackingConfig
from lstmgan.gan.classifier import SmallCNN, save_classifier
from lstmgan.gan.data import load_images
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.step import FastStep, make_optimizers
from lstmgan.gan.train import run_gan
from lstmgan.runner.job import Job

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def linears(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def step_products(batch: int, latent_dim: int) -> list[tuple[str, int, int, int]]:
    """(what, m, k, n) of every matrix product of one step, as autograd runs them (bias adds left out).
    G step: G forward, D forward on the fakes, D input gradients (D's weights are frozen), G weight and
    input gradients (none into z). D step: one batch of 2 × batch (real and detached fakes), forward,
    weight gradients, input gradients but into the images."""
    g, d = linears(Generator(latent_dim)), linears(Discriminator())
    out: list[tuple[str, int, int, int]] = []
    for net, layers, rows, input_grad_from in (("G", g, batch, 1), ("D(fake)", d, batch, 0), ("D", d, 2 * batch, 1)):
        for i, (fan_in, fan_out) in enumerate(layers):
            out.append((f"{net} fwd", rows, fan_in, fan_out))
            if net != "D(fake)":
                out.append((f"{net} dW", fan_out, rows, fan_in))
            if i >= input_grad_from:
                out.append((f"{net} dX", rows, fan_out, fan_in))
    return out


def limit_ms(batch: int, latent_dim: int, reps: int = 30) -> float:
    """The step's products, each shape timed alone (median of reps), summed."""
    total = 0.0
    for _, m, k, n in step_products(batch, latent_dim):
        a, b = torch.randn(m, k), torch.randn(k, n)
        times = []
        for _ in range(reps + 3):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        total += statistics.median(times[3:])
    return 1000 * total


def fast_rate(images: torch.Tensor, batch: int, epochs: int) -> float:
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()
    fast = FastStep(G, D, *make_optimizers(G, D, GanConfig(), capturable=False), images, 100, batch, capture=False)
    shuffle, n, steps = torch.Generator().manual_seed(0), len(images), 0
    fast.set_order(torch.randperm(n, generator=shuffle))
    fast.step(0, batch)  # warm-up (lazy Adam state)
    start = time.perf_counter()
    for _ in range(epochs):
        fast.set_order(torch.randperm(n, generator=shuffle))
        for first in range(0, n - n % batch, batch):
            fast.step(first, batch)
            steps += 1
            if steps % 100 == 0:
                fast.take_meters()
    fast.take_meters()
    return steps / (time.perf_counter() - start)


def real_rate(cfg: GanConfig, folder: Path, batches_per_epoch: int) -> float:
    """run_gan through a Job (as the CLI runs it); steps/s between the first and the last "epoch k done"."""
    done: list[float] = []

    def progress(step: int, total: int, text: str) -> None:
        if text.endswith(" done"):
            done.append(time.perf_counter())

    Job(run_gan, cfg, folder, TrackingConfig(mode="disabled"), step_key="step")(progress)
    measured = done[1:-1] if len(done) > 3 else done  # not the first epoch, not the final evaluation's
    return (len(measured) - 1) * batches_per_epoch / (measured[-1] - measured[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_FASHION)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8000, help="the run's --limit (125 batches of 64)")
    parser.add_argument("--epochs", type=int, default=6, help="of the real run (the middle ones are timed)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--classifier", type=Path, help="FID classifier (default: an untrained one)")
    args = parser.parse_args()
    if not args.data_dir.exists():
        raise SystemExit(f"{args.data_dir} not found: apt-get install dataset-fashion-mnist, or pass --data-dir")
    images, _ = load_images(args.dataset, args.data_dir, train=True)
    images = images[: args.images]
    batches = len(images) // args.batch_size
    cfg = GanConfig(dataset=args.dataset, data_dir=str(args.data_dir), limit=args.images, epochs=args.epochs,
                    batch_size=args.batch_size, eval_every=0, eval_samples=500, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dataset}: {len(images)} images, "
          f"batch {args.batch_size}, {batches} batches per epoch, {args.rounds} rounds (median)")
    limits, fasts, reals = [], [], []
    with tempfile.TemporaryDirectory(prefix="lstmgan-bench-") as scratch:
        classifier = args.classifier or Path(scratch) / "untrained-classifier.pt"
        if not classifier.exists():
            save_classifier(SmallCNN(), classifier, {"dataset": args.dataset, "untrained": True})
        cfg = replace(cfg, classifier=str(classifier))
        for r in range(args.rounds):
            limits.append(1000 / limit_ms(args.batch_size, cfg.latent_dim))
            fasts.append(fast_rate(images, args.batch_size, epochs=2))
            reals.append(real_rate(cfg, Path(scratch) / f"run{r}", batches))
    limit, fast, real = (statistics.median(x) for x in (limits, fasts, reals))
    products = step_products(args.batch_size, cfg.latent_dim)
    print(f"{'limit (' + str(len(products)) + ' matmuls alone)':<28} {limit:7.1f} steps/s  "
          f"({1000 / limit:.2f} ms per step)")
    print(f"{'FastStep':<28} {fast:7.1f} steps/s")
    print(f"{'real run (whole epochs)':<28} {real:7.1f} steps/s")
    print(f"{'real / FastStep':<28} {real / fast:7.2f}   (target >= 0.9)")
    print(f"{'real / limit':<28} {real / limit:7.2f}   (target >= 0.6)")


if __name__ == "__main__":
    main()
