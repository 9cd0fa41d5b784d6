"""However a run is stopped — killed outright, Ctrl-C, SIGTERM, a full disk, its writer killed while a second
writer was refused, or finished with fewer epochs than it is later asked for — rerunning the same command
resumes it from its checkpoint, and it ends exactly like a run that was never stopped: the same metrics rows
(times aside) and the same weights. One parametrised test, one uninterrupted reference per trainer.

Each stop is a function that starts the real CLI (in a subprocess; the finished run in this process), stops it
and checks what that kind of stop promises on its own (its exit code, its one line, a whole checkpoint); the
test then reruns and compares."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY
from helpers import fill, lstmgan, metrics_without_times, wait_for
from idx import make_tiny_mnist

from lstmgan.cli.main import main


@dataclass(frozen=True)
class Trainer:
    args: tuple[str, ...]  # the command, without --out
    run: str  # the run's folder under --out
    weights: tuple[str, ...]  # the checkpoint's state dicts
    epochs: int

    def rows(self, run: Path) -> list[dict[str, object]]:  # metrics rows without wall-clock fields
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in metrics_without_times(run)]


PALINDROME = Trainer(("palindrome", "--model", "lstm", "--length", "6", "--epochs", "8", *TINY,
                      "--set", "samples=1000", "--quiet"), "palindrome-runs/lstm-L6-s0", ("model",), 8)
# One run checkpointing only at its end (as on a GPU, every 10 epochs): a stop must still checkpoint where it is.
GAN = Trainer(("gan", "--epochs", "20", "--device", "cpu", "--wandb", "disabled", "--quiet", "--set", "batch_size=32",
               "--set", "log_every=4", "--set", "sample_every=1000", "--set", "eval_every=0",
               "--set", "eval_samples=64", "--set", "checkpoint_every=20"),
              "gan/mnist-s0", ("generator", "discriminator"), 20)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    make_tiny_mnist(folder, n_train=512, n_test=128)
    return folder


def command(trainer: Trainer, data: Path) -> list[str]:
    return [*trainer.args, *(["--data-dir", str(data)] if trainer is GAN else [])]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Callable[[Trainer], Path]:
    """The reference run of each trainer, trained once for the whole module, in this process."""
    done: dict[Trainer, Path] = {}

    def reference(trainer: Trainer) -> Path:
        if trainer not in done:
            out = tmp_path_factory.mktemp("whole")
            assert main([*command(trainer, data), "--out", str(out)]) == 0
            done[trainer] = out / trainer.run
        return done[trainer]

    return reference


# --- the stops: each starts `args` writing under `out`, stops it, and checks what its kind of stop promises ---

def killed_outright(args: list[str], out: Path, run: Path) -> None:
    proc = lstmgan(*args, "--out", out)
    wait_for(lambda: (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 2,
             "two epochs checkpointed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    assert not (run / "result.json").exists() and 1 <= epoch < 8, "the run finished before it could be killed"


def signalled(sig: signal.Signals, rows: int = 1) -> Callable[[list[str], Path, Path], None]:
    def stop(args: list[str], out: Path, run: Path) -> None:
        proc = lstmgan(*args, "--out", out)
        wait_for(lambda: (run / "metrics.jsonl").exists() and
                 len((run / "metrics.jsonl").read_text().splitlines()) >= rows, f"{rows} metrics row(s)")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert "stopping at the next checkpoint" in err and "rerun the same command" in err, err
        assert (run / "checkpoint.pt").exists() and not (run / "result.json").exists()
        assert not (run / ".lstmgan.lock").exists(), "the lock outlived its writer"

    return stop


def second_writer_refused_then_first_killed(args: list[str], out: Path, run: Path) -> None:
    first = lstmgan(*args, "--out", out)
    wait_for(lambda: (run / "checkpoint.pt").exists(), "the first writer's first checkpoint")
    first.send_signal(signal.SIGSTOP)  # alive and holding the lock for as long as the test needs
    r = subprocess.run([sys.executable, "-m", "lstmgan", *args, "--out", out], capture_output=True, text=True)
    assert r.returncode == 2 and f"PID {first.pid} on {socket.gethostname()}" in r.stderr, r.stderr
    assert "being written by" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    first.send_signal(signal.SIGKILL)  # dies holding the lock: the rerun takes it over
    first.wait()
    assert json.loads((run / ".lstmgan.lock").read_text())["pid"] == first.pid


def disk_full(args: list[str], out: Path, run: Path) -> None:
    proc = lstmgan(*args, "--out", out)
    wait_for(lambda: (run / "checkpoint.pt").exists(), "a first checkpoint")
    proc.send_signal(signal.SIGSTOP)
    filler = out / "filler"
    fill(filler)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    # one line naming the file and the problem, exit 3; the checkpoint stays whole, no temp file is left
    assert proc.returncode == 3 and len(err.strip().splitlines()) == 1, err
    assert "no space left" in err.lower() and str(run) in err, err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] < 8 and not (run / "result.json").exists()
    assert not list(out.rglob("*.tmp")) and not (run / ".lstmgan.lock").exists()
    filler.unlink()  # space again


def finished_with_fewer_epochs(args: list[str], out: Path, run: Path) -> None:
    at = args.index("--epochs") + 1  # the run finishes 5 epochs; the rerun asks for 8
    assert main([*args[:at], "5", *args[at + 1:], "--out", str(out)]) == 0
    assert json.loads((run / "result.json").read_text())["epochs"] == 5


STOPS = {
    "SIGKILL": (PALINDROME, killed_outright),
    "SIGINT": (PALINDROME, signalled(signal.SIGINT)),
    "SIGTERM": (PALINDROME, signalled(signal.SIGTERM)),
    "stale-lock": (PALINDROME, second_writer_refused_then_first_killed),
    "disk-full": (PALINDROME, disk_full),
    "more-epochs": (PALINDROME, finished_with_fewer_epochs),
    "gan-SIGINT": (GAN, signalled(signal.SIGINT, rows=3)),
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", list(STOPS))
def test_a_stopped_run_resumes_and_ends_like_an_uninterrupted_one(how, cli, tmp_path, tmpfs, data, uninterrupted):
    trainer, stop = STOPS[how]
    out = tmpfs(tmp_path / "small") if how == "disk-full" else tmp_path  # a 4 MB disk
    args, run = command(trainer, data), out / trainer.run
    stop(args, out, run)

    rerun = cli(*args, "--out", out)
    assert rerun.code == 0, rerun.err
    whole = uninterrupted(trainer)
    assert trainer.rows(run) == trainer.rows(whole)
    a, b = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (run, whole))
    assert all(torch.equal(a[part][k], b[part][k]) for part in trainer.weights for k in b[part])
    result = json.loads((run / "result.json").read_text())
    assert result["resumed"] is True and result.get("epochs", trainer.epochs) == trainer.epochs
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == trainer.epochs
    assert not (run / ".lstmgan.lock").exists()
