"""Shared fixtures: run the real CLI in-process and snapshot folders to prove nothing changed."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before torch loads OpenMP: spinning OpenMP threads made CPU steps 5-10x slower on a busy 2-core machine, and
# tests train in this process beside the CLI subprocesses they start (benchmarks/ set the same).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from lstmgan.cli.main import main
from lstmgan.environment import cuda_problem

# Tiny but real settings: every test run trains for real, on small data, in about a second.
TINY = ["--set", "hidden=16", "--set", "samples=200", "--wandb", "disabled", "--device", "cpu"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


NO_CUDA = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked cuda run where a CUDA device is visible and skip elsewhere; with LSTMGAN_REQUIRE_CUDA=1
    (a GPU node) they fail instead, so a torch build that cannot use the GPU is never a quiet pass.
    The Docker and SLURM tests come first: under pytest-xdist their files (an image build, a cluster's queue)
    start at once on their own workers while the rest share the others."""
    items.sort(key=lambda item: 0 if "docker" in item.keywords else 1 if "slurm" in item.keywords else 2)
    if torch.cuda.is_available():
        return
    why = cuda_problem() or "needs a CUDA device"
    required = os.environ.get("LSTMGAN_REQUIRE_CUDA") == "1"
    for item in items:
        if "cuda" in item.keywords:
            if required:
                item.stash[NO_CUDA] = why
            else:
                item.add_marker(pytest.mark.skip(reason=why))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if NO_CUDA in item.stash:
        pytest.fail(f"LSTMGAN_REQUIRE_CUDA=1 but no usable CUDA device: {item.stash[NO_CUDA]}", pytrace=False)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def snapshot(folder: Path) -> dict[str, str]:
    """Path → content hash of every file under folder (to assert a command changed nothing)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _isolated_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never talk to a real W&B account from tests, whatever the developer's machine has."""
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def tmpfs() -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs at a path (`tmpfs(path, "size=64k,ro")`), unmounted after the test: a disk that
    fills up or is read-only. Needs root and a kernel that lets us mount (CI has both); skipped elsewhere."""
    mounts: list[Path] = []

    def mount(path: Path, options: str = "size=4m") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in reversed(mounts):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, ...]:
    """Train and test images and labels of tiny synthetic IDX digits, read through torchvision."""
    from idx import make_tiny_mnist

    from lstmgan.gan.data import load_images

    folder = tmp_path_factory.mktemp("tiny-mnist")
    make_tiny_mnist(folder, n_train=300, n_test=100)
    return (*load_images("mnist", folder, train=True), *load_images("mnist", folder, train=False))


@pytest.fixture(scope="session")
def tiny_classifier(tiny_digits: tuple[torch.Tensor, ...]) -> tuple[torch.nn.Module, float]:
    """The judging CNN trained once on tiny_digits, and its test accuracy (classifier, metrics, interpolation)."""
    from lstmgan.gan.classifier import train_classifier

    return train_classifier(*tiny_digits, epochs=2, batch_size=32, lr=3e-3, seed=0, device="cpu")


@pytest.fixture(scope="session")
def tiny_gan(tmp_path_factory: pytest.TempPathFactory):
    """A GanConfig that trains on the CPU in seconds: tiny IDX digits (torchvision reads them), 100 images,
    5 epochs of batches of 32 (a short last one), rows, grids, evaluation and checkpoints every few steps."""
    from idx import make_tiny_mnist

    from lstmgan.config import GanConfig

    folder = tmp_path_factory.mktemp("mnist")
    make_tiny_mnist(folder, n_train=256, n_test=128, layout="flat", noise=10)
    return GanConfig(data_dir=str(folder), classifier=str(folder / "classifier.pt"), limit=100, epochs=5,
                     batch_size=32, log_every=3, sample_every=7, eval_every=2, eval_samples=64, device="cpu",
                     checkpoint_every=3)
