"""GAN training speed on this machine: the step's limit, FastStep, and a real `lstmgan gan` run, in one run.

    limit    the step's matrix products alone: forward, input and weight gradients of both networks at the
             run's batch size (the 28 products of one generator + discriminator step), each shape timed
             separately in the layouts autograd uses, with the run's thread count (median of many),
             summed; 1 / that sum in steps/s.
    FastStep `lstmgan.gan.step.FastStep` over the same images: whole epochs, meters read every 100 steps.
    real     `python -m lstmgan gan` in a child process under a pseudo-terminal (so its live progress display
             runs), W&B disabled, the FID classifier given: its default rows, grids and a checkpoint each
             epoch. Timed from its metrics rows, whose time windows tile the run: every epoch but the first
             (start-up, warm-up), each with one epoch end (checkpoint, progress); the final evaluation
             and result come after the last row and are not counted.
Rounds alternate the three (median each), so the ratios hold on a shared, noisy machine; compare ratios
within one run. Targets on 2 CPU cores: real >= 0.9 x FastStep and real >= 0.6 x limit.

OpenMP: all three run with the same OMP_WAIT_POLICY (PASSIVE unless set: this script and the child inherit
it). Left unset, libgomp's threads spin after every parallel region, and which regime a process gets is an
accident: a second thread that runs a torch op (the run's background writer drawing a grid) makes libgomp
throttle spinning for the whole process. On a busy 2-core machine spinning made the step 5-10x slower, so
an unset policy compared a spinning FastStep with a throttled real run: "real 8x faster than FastStep".

    python benchmarks/gan.py                                   # Fashion-MNIST from Debian's package
    python benchmarks/gan.py --data-dir DIR --dataset mnist    # any IDX folder
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp, which reads it once

import argparse  # noqa: E402
import json  # noqa: E402
import pty  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from lstmgan.config import GanConfig  # noqa: E402
from lstmgan.gan.classifier import SmallCNN, save_classifier  # noqa: E402
from lstmgan.gan.data import load_images  # noqa: E402
from lstmgan.gan.models import Discriminator, Generator  # noqa: E402
from lstmgan.gan.step import FastStep, make_optimizers  # noqa: E402

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parent.parent


def linears(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def step_products(batch: int, latent_dim: int) -> list[tuple[str, Tensor, Tensor]]:
    """(what, a, b) of every matrix product a @ b of one step, in autograd's layouts (bias adds left out):
    forward x @ W.T, input gradient g @ W, weight gradient g.T @ x (W is out x in, as nn.Linear keeps it).
    G step: G forward, D forward on the fakes, D input gradients (D's weights are frozen), G weight and
    input gradients (none into z). D step: one batch of 2 x batch (real and detached fakes), forward,
    weight gradients, input gradients but into the images."""
    g, d = linears(Generator(latent_dim)), linears(Discriminator())
    out: list[tuple[str, Tensor, Tensor]] = []
    for net, layers, rows, input_grad_from in (("G", g, batch, 1), ("D(fake)", d, batch, 0), ("D", d, 2 * batch, 1)):
        for i, (fan_in, fan_out) in enumerate(layers):
            x, w, grad = torch.randn(rows, fan_in), torch.randn(fan_out, fan_in), torch.randn(rows, fan_out)
            out.append((f"{net} fwd", x, w.T))
            if net != "D(fake)":
                out.append((f"{net} dW", grad.T, x))
            if i >= input_grad_from:
                out.append((f"{net} dX", grad, w))
    return out


def limit_ms(batch: int, latent_dim: int, reps: int = 30) -> float:
    """The step's products, each shape timed alone (median of reps), summed."""
    total = 0.0
    for _, a, b in step_products(batch, latent_dim):
        times = []
        for _ in range(reps + 3):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        total += statistics.median(times[3:])
    return 1000 * total


def fast_rate(images: Tensor, batch: int, epochs: int) -> float:
    """FastStep alone over whole epochs (after one warm-up step), steps/s."""
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


def real_rate(args: argparse.Namespace, classifier: Path, out: Path) -> float:
    """`lstmgan gan` as a user runs it, in a terminal; steps/s over every epoch but the first, from its rows."""
    cmd = [sys.executable, "-m", "lstmgan", "gan", "--dataset", args.dataset, "--data-dir", str(args.data_dir),
           "--epochs", str(args.epochs), "--device", "cpu", "--wandb", "disabled", "--out", str(out), "--name", "gan",
           "--set", f"limit={args.images}", "--set", f"batch_size={args.batch_size}",
           "--set", f"classifier={classifier}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the limit's and FastStep's count
    master, terminal = pty.openpty()
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    os.close(terminal)
    shown = bytearray()

    def read() -> None:  # the display must not block on a full terminal buffer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            shown[:] = (shown + data)[-4000:]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = child.wait()
    reader.join(timeout=5)
    os.close(master)
    if code != 0:
        raise SystemExit(f"lstmgan gan exited {code}:\n{shown.decode(errors='replace')}")
    (metrics,) = out.glob("gan/*/metrics.jsonl")
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "images_per_s" in r]
    seconds, steps, last_step = 0.0, 0, 0
    for row in rows:
        row_steps = row["step"] - last_step
        last_step = row["step"]
        if row["epoch"] >= 2:  # full batches only (images is a multiple of the batch): images = steps x batch
            seconds += row_steps * args.batch_size / row["images_per_s"]
            steps += row_steps
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_FASHION)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8000, help="the run's --limit (125 batches of 64)")
    parser.add_argument("--epochs", type=int, default=5, help="of the real run (all but the first are timed)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--classifier", type=Path, help="FID classifier (default: an untrained one)")
    args = parser.parse_args()
    if not args.data_dir.exists():
        raise SystemExit(f"{args.data_dir} not found: apt-get install dataset-fashion-mnist, or pass --data-dir")
    if args.images % args.batch_size or args.epochs < 2:
        raise SystemExit("--images must be a multiple of --batch-size, and --epochs at least 2")
    images, _ = load_images(args.dataset, args.data_dir, train=True)
    images = images[: args.images]
    batches = len(images) // args.batch_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ['OMP_WAIT_POLICY']}, {args.dataset}: {len(images)} images, batch {args.batch_size}, "
          f"{batches} batches per epoch, real run {args.epochs} epochs ({args.epochs - 1} timed), "
          f"{args.rounds} rounds (median)")
    limits, fasts, reals = [], [], []
    with tempfile.TemporaryDirectory(prefix="lstmgan-bench-") as scratch:
        classifier = args.classifier or Path(scratch) / "untrained-classifier.pt"
        if not classifier.exists():  # FID is not timed: the same work as a trained one, without CPU minutes
            save_classifier(SmallCNN(), classifier, {"dataset": args.dataset, "untrained": True})
        for r in range(args.rounds):
            limits.append(1000 / limit_ms(args.batch_size, 100))
            fasts.append(fast_rate(images, args.batch_size, epochs=2))
            reals.append(real_rate(args, classifier.resolve(), Path(scratch) / f"run{r}"))
            print(f"  round {r + 1}: limit {limits[-1]:.1f}, FastStep {fasts[-1]:.1f}, real {reals[-1]:.1f} steps/s",
                  flush=True)
    limit, fast, real = (statistics.median(x) for x in (limits, fasts, reals))
    products = len(step_products(args.batch_size, 100))
    print(f"{'limit (' + str(products) + ' matmuls alone)':<28} {limit:7.1f} steps/s  ({1000 / limit:.2f} ms per step)")
    print(f"{'FastStep':<28} {fast:7.1f} steps/s  ({1000 / fast:.2f} ms per step)")
    print(f"{'real run (whole epochs)':<28} {real:7.1f} steps/s  ({1000 / real:.2f} ms per step)")
    print(f"{'real / FastStep':<28} {real / fast:7.2f}   (target >= 0.9)")
    print(f"{'real / limit':<28} {real / limit:7.2f}   (target >= 0.6)")


if __name__ == "__main__":
    main()
