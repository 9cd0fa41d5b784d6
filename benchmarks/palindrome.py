"""Speed of the from-equations RNN/LSTM vs torch's fused nn.RNN/nn.LSTM, and the full default sweep.

Prints a table of ms per training step (forward, backward, clip, RMSprop step) at batch 128, hidden 128,
one-hot inputs, for L = 5, 10, 15, 20. Both sides are timed in this one process, interleaved, and the
median of several rounds is reported, so the ratio is fair on a shared, noisy machine.

    python benchmarks/palindrome.py               # step times + the full default sweep (a few minutes)
    python benchmarks/palindrome.py --skip-sweep  # step times only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time

import torch
from torch import nn

from lstmgan.palindrome.models import build_model


class TorchReference(nn.Module):
    """The same task with torch's fused recurrent layer and a linear head on the last step."""

    def __init__(self, kind: str, hidden: int) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.RNN)(10, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def step_time_ms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def bench_steps(rounds: int, steps: int) -> list[list[str]]:
    rows = []
    for length in (5, 10, 15, 20):
        x = nn.functional.one_hot(torch.randint(0, 10, (128, length)), 10).float()
        y = torch.randint(0, 10, (128,))
        for kind in ("rnn", "lstm"):
            ours, ref = build_model(kind, 10, 128, 10, "pytorch", 0.01), TorchReference(kind, 128)
            step_time_ms(ours, x, y, 3), step_time_ms(ref, x, y, 3)  # warm-up
            a, b = [], []
            for _ in range(rounds):  # interleaved, so load changes hit both sides alike
                a.append(step_time_ms(ours, x, y, steps))
                b.append(step_time_ms(ref, x, y, steps))
            ma, mb = statistics.median(a), statistics.median(b)
            rows.append([str(length), kind, f"{ma:.2f}", f"{mb:.2f}", f"{ma / mb:.2f}×"])
    return rows


def bench_sweep() -> float:
    from lstmgan.cli.main import main

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its summary and "sync <temp folder>" would outlive the folder
            code = main(["sweep", "--config", "jobs/palindrome-sweep.yaml", "--out", out, "--wandb", "offline",
                         "--quiet"])
        if code:
            raise SystemExit(f"sweep failed with exit code {code}")
        return time.perf_counter() - start


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, batch 128, hidden 128\n")
    print_table(["L", "model", "ours ms/step", "torch ms/step", "ours/torch"], bench_steps(args.rounds, args.steps))
    if not args.skip_sweep:
        seconds = bench_sweep()
        print(f"\nfull default sweep (4 lengths × RNN, LSTM × 1 seed, 100 epochs, W&B offline): {seconds:.0f} s")


if __name__ == "__main__":
    main()
