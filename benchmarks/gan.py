"""GAN training speed: this trainer vs the classic script's way, same model, same process.

Baseline: a torchvision `FashionMNIST`/`MNIST` dataset with per-item `ToTensor` + `Normalize` through a
`DataLoader`, a discriminator ending in `Sigmoid` with `BCELoss`, and gradients into D during the G step.
Ours: `lstmgan.gan.train.FastStep` (gan_step over one normalised tensor on the device, batched by index).
Both are timed alternately (several rounds, median), so the ratio holds on a shared, noisy machine.

    python benchmarks/gan.py                                   # Fashion-MNIST from Debian's package if present
    python benchmarks/gan.py --data-dir DIR --dataset mnist    # any IDX folder
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torchvision import datasets, transforms

from lstmgan.config import GanConfig
from lstmgan.gan.data import load_images
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.train import FastStep, make_optimizers

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def baseline_batches(folder: Path, dataset: str, batch_size: int, steps: int, device: torch.device) -> float:
    """The one-file script: DataLoader + per-item transforms, Sigmoid + BCELoss."""
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    cls = datasets.FashionMNIST if dataset == "fashion-mnist" else datasets.MNIST
    data = cls(str(folder), train=True, transform=tf)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True)
    G, D = Generator().to(device), nn.Sequential(Discriminator(), nn.Sigmoid()).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        real, _ = next(it)
        real = real.to(device)
        ones, zeros = torch.ones(len(real), 1, device=device), torch.zeros(len(real), 1, device=device)
        z = torch.randn(len(real), 100, device=device)
        opt_g.zero_grad()
        fake = G(z)
        g_loss = bce(D(fake), ones)
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        d_loss = (bce(D(real), ones) + bce(D(fake.detach()), zeros)) / 2
        d_loss.backward()
        opt_d.step()
    _sync(device)
    return steps / (time.perf_counter() - start)


def our_batches(images: torch.Tensor, batch_size: int, steps: int, device: torch.device) -> float:
    """The trainer's step: FastStep (eager here, on CUDA as well: benchmarks/gpu.py times the CUDA graph)."""
    G, D = Generator().to(device), Discriminator().to(device)
    fast = FastStep(G, D, *make_optimizers(G, D, GanConfig(), capturable=False), images, 100, batch_size,
                    capture=False)
    fast.set_order(torch.randperm(len(images), generator=torch.Generator().manual_seed(0)))
    start = time.perf_counter()
    for i in range(steps):
        fast.step(i * batch_size, batch_size)
    fast.take_meters()
    _sync(device)
    return steps / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torchvision_folder(data_dir: Path, dataset: str, scratch: Path) -> Path:
    """torchvision's datasets want uncompressed <root>/<Class>/raw/<files>: copy a flat folder there."""
    raw = scratch / ("FashionMNIST" if dataset == "fashion-mnist" else "MNIST") / "raw"
    raw.mkdir(parents=True)
    for f in data_dir.iterdir():
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rb") as src:
            (raw / f.name.removesuffix(".gz")).write_bytes(src.read())
    return scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_FASHION)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.data_dir.exists():
        raise SystemExit(f"{args.data_dir} not found: apt-get install dataset-fashion-mnist, or pass --data-dir")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.dataset}, "
          f"batch {args.batch_size}\n")
    print(f"{'device':>6}  {'ours batches/s':>14}  {'baseline batches/s':>18}  {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = torchvision_folder(args.data_dir, args.dataset, Path(scratch))
        for device in devices:
            images, _ = load_images(args.dataset, args.data_dir, train=True, device=device)
            ours, base = [], []
            for _ in range(args.rounds):
                ours.append(our_batches(images, args.batch_size, args.steps, device))
                base.append(baseline_batches(folder, args.dataset, args.batch_size, args.steps, device))
            o, b = statistics.median(ours), statistics.median(base)
            print(f"{device.type:>6}  {o:>14.1f}  {b:>18.1f}  {o / b:>5.2f}×")


if __name__ == "__main__":
    main()
