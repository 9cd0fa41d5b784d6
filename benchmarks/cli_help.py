"""How fast the CLI answers `--help`: wall time of fresh processes, against a bare `python -c pass`.

`lstmgan --help` must not import torch, torchvision, submitit or wandb (lstmgan/cli imports them inside the
commands). Each command line runs as a new process, interleaved with the others, and the median of several
rounds is reported, so the ratio to the baseline is fair on a shared, noisy machine.

    python benchmarks/cli_help.py             # 5 rounds
    python benchmarks/cli_help.py --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "lstmgan --help": [sys.executable, "-m", "lstmgan", "--help"],
    "lstmgan sweep --help": [sys.executable, "-m", "lstmgan", "sweep", "--help"],
    "lstmgan gan --help": [sys.executable, "-m", "lstmgan", "gan", "--help"],
}


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, argv in CASES.items():
            times[name].append(wall_time(argv))
    base = statistics.median(times["python -c pass (baseline)"])
    print(f"| command | median wall time of {args.rounds} (s) | × baseline |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
