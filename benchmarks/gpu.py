"""The GAN step on a device, eager and fast, and what that means for a whole run and the default sweep.

    python benchmarks/gpu.py                          # CUDA when present, else the CPU
    python benchmarks/gpu.py --device cpu --quick     # a few minutes on 2 cores (CI)
    python benchmarks/gpu.py --json bench-gpu.json    # also write the numbers as JSON

eager: the plain loop (CPU batch indices moved to the device each step, z drawn per step, meters read
per batch's dict) - the trainer before FastStep. fast: `FastStep` as the trainer runs it (permutation and
meters on the device; one captured CUDA graph per batch shape on CUDA, the same body eagerly on the CPU).
Both time at least 1000 steps on CUDA after a warm-up, with a synchronize at the edges. The largest relative
difference compares the two after the same steps from the same state (0 on the CPU: bit for bit).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmgan.config import GanConfig
from lstmgan.gan.data import load_images
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.train import FastStep, gan_step, make_optimizers

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent
BATCH = 64


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_idx(folder: Path, n_train: int = 60_000, n_test: int = 10_000) -> Path:
    """Random IDX files of MNIST's size (for timing, the pixels do not matter)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(
            (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes(),
            compresslevel=1))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
            (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes(), compresslevel=1))
    return folder


def models(device: torch.device, *, capturable: bool) -> tuple[Any, ...]:
    torch.manual_seed(0)
    G, D = Generator().to(device), Discriminator().to(device)
    return (G, D, *make_optimizers(G, D, GanConfig(), capturable=capturable))


def eager_steps(images: torch.Tensor, steps: int, parts: tuple[Any, ...]) -> None:
    """The plain loop: host-side indices moved per step, z per step, the stats read back every step."""
    G, D, opt_g, opt_d = parts
    device = images.device
    shuffle = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        for idx in torch.randperm(len(images), generator=shuffle).split(BATCH):
            real = images[idx.to(device)]
            stats = gan_step(G, D, opt_g, opt_d, real, torch.randn(len(real), 100, device=device))
            _ = {k: v.detach() for k, v in stats.items()}
            done += 1
            if done == steps:
                return


def fast_steps(images: torch.Tensor, steps: int, fast: FastStep, log_every: int = 100) -> None:
    shuffle = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        fast.set_order(torch.randperm(len(images), generator=shuffle))
        for start in range(0, len(images), BATCH):
            fast.step(start, min(BATCH, len(images) - start))
            done += 1
            if done % log_every == 0:
                fast.take_meters()
            if done == steps:
                return


def timed(fn: Any, device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def max_rel_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    worst = 0.0
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        if x.is_floating_point():
            x, y = x.double(), y.double()
            worst = max(worst, float((x - y).abs().max() / y.abs().max().clamp(min=1e-12)))
    return worst


def sweep_wall(device: torch.device, quick: bool, out: Path) -> tuple[float, str]:
    """The default sweep (`make run`), timed through the CLI; --quick on the CPU runs a reduced one."""
    packaged = ROOT / "jobs" / "palindrome-sweep.yaml"
    config = str(packaged) if packaged.exists() else "palindrome-sweep"
    args = [sys.executable, "-m", "lstmgan", "sweep", "--config", config, "--out", str(out), "--wandb", "disabled",
            "--device", device.type, "--quiet"]
    label = "default sweep (8 runs, 100 epochs)"
    if quick and device.type == "cpu":
        args += ["--lengths", "5", "10", "--epochs", "5"]
        label = "REDUCED sweep (lengths 5 10, 5 epochs)"
    started = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps (CPU CI)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_FASHION)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    cuda = device.type == "cuda"
    steps = 2000 if cuda else (40 if args.quick else 300)
    warmup = 50 if cuda else 5

    with tempfile.TemporaryDirectory(prefix="lstmgan-bench-") as tmp:
        real = args.data_dir.exists()
        data_dir = args.data_dir if real else synthetic_idx(Path(tmp))
        dataset = "fashion-mnist" if data_dir == DEBIAN_FASHION else "mnist"
        images, _ = load_images(dataset, data_dir, train=True, device=device)

        parts = models(device, capturable=False)
        eager_steps(images, warmup, parts)
        eager_s = timed(lambda: eager_steps(images, steps, parts), device)

        parts = models(device, capturable=cuda)
        fast = FastStep(*parts, images, 100, BATCH, capture=cuda)
        capture_s = timed(lambda: fast_steps(images, warmup, fast), device)  # captures the graph(s) on CUDA
        fast_s = timed(lambda: fast_steps(images, steps, fast), device)
        # one real epoch; --quick on the CPU times its first 100 steps and scales (a 2-core epoch takes minutes)
        batches = -(-len(images) // BATCH)
        epoch_steps = 100 if args.quick and not cuda else batches
        epoch_s = timed(lambda: fast_steps(images, epoch_steps, fast), device) * batches / epoch_steps

        # the same steps from the same state: plain loop vs FastStep (z from the same generator state)
        compare = 200 if cuda else 20
        a, b = models(device, capturable=False), models(device, capturable=cuda)
        torch.manual_seed(1)
        eager_steps(images, compare, a)
        torch.manual_seed(1)
        fast_steps(images, compare, FastStep(*b, images, 100, BATCH, capture=cuda))
        sync(device)
        diff = max(max_rel_diff(a[0], b[0]), max_rel_diff(a[1], b[1]))

        sweep_s, sweep_label = sweep_wall(device, args.quick, Path(tmp) / "runs")

    numbers = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "dataset": f"{dataset} from {args.data_dir}" if real else "synthetic IDX files of MNIST's size",
        "timed_steps": steps,
        "gan_ms_per_step_eager": 1000 * eager_s / steps,
        "gan_ms_per_step_fast": 1000 * fast_s / steps,
        "gan_first_steps_with_capture_s": capture_s,
        "gan_epoch_s": epoch_s,
        "gan_epoch_steps_timed": epoch_steps,
        "gan_200_epochs_projected_s": 200 * epoch_s,
        "fast_vs_eager_max_rel_diff": diff,
        "sweep_wall_s": sweep_s,
        "sweep": sweep_label,
        "torch": torch.__version__,
    }
    rows = [("device", numbers["device"]), ("data", numbers["dataset"]),
            ("GAN ms/step, eager", f"{numbers['gan_ms_per_step_eager']:.3f}  ({steps} steps)"),
            ("GAN ms/step, fast", f"{numbers['gan_ms_per_step_fast']:.3f}  ({'CUDA graph' if cuda else 'eager body'})"),
            ("speed-up", f"{eager_s / fast_s:.2f}×"),
            ("one epoch (fast), s", f"{epoch_s:.2f}  ({batches} steps"
             + (f"; projected from {epoch_steps})" if epoch_steps < batches else ")")),
            ("200 epochs projected, s", f"{200 * epoch_s:.0f}"),
            ("fast vs eager max rel. diff", f"{diff:.2e}  (after {compare} steps)"),
            (sweep_label + ", s", f"{sweep_s:.1f}")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
