"""The GAN step on a device, eager and graphed, and what that means for a whole run and the default sweep.

    python benchmarks/gpu.py                          # CUDA when present, else the CPU
    python benchmarks/gpu.py --device cpu --quick     # a few minutes on 2 cores (CI)
    python benchmarks/gpu.py --json bench-gpu.json    # also write the numbers as JSON

Like with like: both rows are `FastStep` as the trainer runs it (permutation, batch index and meters on
the device: no host copy per step), eager and replaying one captured CUDA graph per batch shape; on the CPU
there are no graphs and the one row is the eager body. Every batch shape (the short last one too) runs
once before any timing, so no capture falls in a timed window; a synchronize at the edges. The largest
relative difference compares eager and graphed after the same steps from the same state (0 on the CPU).
"one epoch, step only" x 200 is a lower bound for a run: it leaves out rows, grids, evaluations and
checkpoints; the measured whole epoch is a real `run_gan` epoch with all of them (an evaluation and a
checkpoint every epoch: more than the defaults, so 200 x it is an upper estimate).
Refuses to measure a CPU when an NVIDIA GPU is there but torch cannot use it, or with LSTMGAN_REQUIRE_CUDA=1.

On the CPU, "ms/step" and "one epoch, step only" are the same FastStep, measured twice. Issue 19's CPU table
("eager 96.9 ms" vs "fast (eager body) 54.7 ms") timed the same math too; what differed was OpenMP, not
code: with OMP_WAIT_POLICY unset, libgomp's threads spin after each parallel region, which on a shared
2-core machine made steps 5-10x slower and as noisy, and a torch op on a second thread (run_gan's writer
drawing a grid) switches the process to throttled spinning mid-benchmark. So the policy is fixed here
(PASSIVE unless set, inherited by the sweep's processes) and printed with the numbers.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp, which reads it once

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lstmgan.config import GanConfig, TrackingConfig  # noqa: E402
from lstmgan.environment import cuda_problem  # noqa: E402
from lstmgan.gan.classifier import SmallCNN, save_classifier  # noqa: E402
from lstmgan.gan.data import load_images  # noqa: E402
from lstmgan.gan.models import Discriminator, Generator  # noqa: E402
from lstmgan.gan.step import FastStep, make_optimizers  # noqa: E402
from lstmgan.gan.train import run_gan  # noqa: E402
from lstmgan.runner.job import Job  # noqa: E402

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


def whole_epoch(dataset: str, data_dir: Path, device: torch.device, limit: int, out: Path) -> float:
    """A real run_gan epoch (its second: rows, grids, an evaluation and a checkpoint), seconds. Its FID
    classifier is an untrained SmallCNN: the same work as a trained one, without CPU minutes of training."""
    classifier = out.parent / "untrained-classifier.pt"
    save_classifier(SmallCNN(), classifier, {"dataset": dataset, "untrained": True})
    cfg = GanConfig(dataset=dataset, data_dir=str(data_dir), classifier=str(classifier), limit=limit, epochs=3,
                    eval_every=1, checkpoint_every=1, device=device.type)
    done: list[float] = []
    Job(run_gan, cfg, out, TrackingConfig(mode="disabled"), step_key="step")(
        lambda step, total, text: done.append(time.perf_counter()) if text.endswith(" done") else None)
    return done[1] - done[0]


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
        raise SystemExit(f"--device cuda: {cuda_problem() or 'no CUDA device is visible'}")
    if device.type == "cpu" and os.environ.get("LSTMGAN_REQUIRE_CUDA") == "1":
        raise SystemExit(f"LSTMGAN_REQUIRE_CUDA=1: not measuring a CPU ({cuda_problem() or 'no CUDA device'})")
    if device.type == "cpu" and "--device" not in sys.argv and (problem := cuda_problem()):
        raise SystemExit(f"not measuring a CPU: {problem}")
    cuda = device.type == "cuda"
    steps = 2000 if cuda else (40 if args.quick else 300)

    with tempfile.TemporaryDirectory(prefix="lstmgan-bench-") as tmp:
        real = args.data_dir.exists()
        data_dir = args.data_dir if real else synthetic_idx(Path(tmp))
        dataset = "fashion-mnist" if data_dir == DEBIAN_FASHION else "mnist"
        images, _ = load_images(dataset, data_dir, train=True, device=device)

        batches = -(-len(images) // BATCH)
        every_shape = batches if cuda else 5  # CUDA: one whole epoch, the short last batch's shape too
        eager = FastStep(*models(device, capturable=False), images, 100, BATCH, capture=False)
        fast_steps(images, every_shape, eager)
        eager_s = timed(lambda: fast_steps(images, steps, eager), device)
        graph_s = capture_s = None
        if cuda:
            graphed = FastStep(*models(device, capturable=True), images, 100, BATCH, capture=True)
            capture_s = timed(lambda: fast_steps(images, every_shape, graphed), device)  # captures every shape
            graph_s = timed(lambda: fast_steps(images, steps, graphed), device)
        fast, fast_s = (graphed, graph_s) if cuda else (eager, eager_s)
        # one epoch of steps alone; --quick on the CPU times its first 100 steps and scales
        epoch_steps = 100 if args.quick and not cuda else batches
        epoch_s = timed(lambda: fast_steps(images, epoch_steps, fast), device) * batches / epoch_steps
        # a real whole epoch; --quick on the CPU runs one of 100 batches and scales
        limit = 100 * BATCH if args.quick and not cuda else 0
        real_epoch_s = whole_epoch(dataset, data_dir, device, limit, Path(tmp) / "gan") * batches / (
            100 if limit else batches)

        # the same steps from the same state, eager vs graphed (z from the same generator state)
        compare = 200 if cuda else 20
        a = FastStep(*models(device, capturable=False), images, 100, BATCH, capture=False)
        b = FastStep(*models(device, capturable=cuda), images, 100, BATCH, capture=cuda)
        for step in (a, b):
            torch.manual_seed(1)
            fast_steps(images, compare, step)
        sync(device)
        diff = max(max_rel_diff(a.G, b.G), max_rel_diff(a.D, b.D))

        sweep_s, sweep_label = sweep_wall(device, args.quick, Path(tmp) / "runs")

    numbers = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads, "
                  f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']})",
        "dataset": f"{dataset} from {args.data_dir}" if real else "synthetic IDX files of MNIST's size",
        "timed_steps": steps,
        "gan_ms_per_step_eager": 1000 * eager_s / steps,
        "gan_ms_per_step_graphed": 1000 * graph_s / steps if graph_s else None,
        "gan_first_epoch_with_capture_s": capture_s,
        "gan_epoch_step_only_s": epoch_s,
        "gan_epoch_steps_timed": epoch_steps,
        "gan_200_epochs_lower_bound_s": 200 * epoch_s,
        "gan_epoch_measured_s": real_epoch_s,
        "gan_200_epochs_from_measured_epoch_s": 200 * real_epoch_s,
        "fast_vs_eager_max_rel_diff": diff,
        "sweep_wall_s": sweep_s,
        "sweep": sweep_label,
        "torch": torch.__version__,
    }
    rows = [("device", numbers["device"]), ("data", numbers["dataset"]),
            ("GAN ms/step, eager", f"{numbers['gan_ms_per_step_eager']:.3f}  ({steps} steps; FastStep, no graphs"
             + ("; the same FastStep as the epoch below)" if not cuda else ")")),
            *([("GAN ms/step, CUDA graphs", f"{1000 * graph_s / steps:.3f}"),
               ("speed-up", f"{eager_s / graph_s:.2f}×"),
               ("first epoch, capturing every shape, s", f"{capture_s:.2f}")] if graph_s else
              [("GAN ms/step, CUDA graphs", "- (no graphs on a CPU)")]),
            ("one epoch, step only, s", f"{epoch_s:.2f}  ({batches} steps"
             + (f"; projected from {epoch_steps})" if epoch_steps < batches else ")")),
            ("200 epochs, lower bound, s", f"{200 * epoch_s:.0f}  (steps only)"),
            ("one real epoch, measured, s", f"{real_epoch_s:.2f}  (rows, grids, evaluation, checkpoint"
             + ("; projected from 100 batches)" if limit else ")")),
            ("200 epochs from it, s", f"{200 * real_epoch_s:.0f}  (evaluating every epoch: an upper estimate)"),
            ("eager vs graphed max rel. diff", f"{diff:.2e}  (after {compare} steps)"),
            (sweep_label + ", s", f"{sweep_s:.1f}")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
