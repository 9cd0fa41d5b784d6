"""The device side: CPU counts, numeric settings, and (marked cuda, skipped without a GPU) a resume on
CUDA and the graphed GAN step against the eager one."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from idx import make_tiny_mnist

from lstmgan.config import GanConfig, PalindromeConfig, TrackingConfig
from lstmgan.environment import describe, deterministic, no_tf32, usable_cpus
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.train import RNG_KEYS, FastStep, make_optimizers, run_gan
from lstmgan.palindrome.train import run_palindrome
from lstmgan.runner.job import Interrupted, Job, Run

OFF = TrackingConfig(mode="disabled")


def test_cpu_count_is_the_affinity_mask_not_the_node() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert describe(torch.device("cpu"))["cpu_count"] == usable_cpus()


def test_result_env_records_the_numeric_settings() -> None:
    env = describe(torch.device("cpu"))
    assert env["matmul_precision"] == torch.get_float32_matmul_precision()
    assert env["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert {"tf32_matmul", "tf32_cudnn", "cudnn_benchmark", "cudnn_deterministic"} <= set(env)


def test_deterministic_and_no_tf32_are_scoped_and_restored() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with deterministic(True):
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cuda.matmul.allow_tf32
        with no_tf32():
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


def test_a_deterministic_palindrome_run_says_so_and_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    cfg = PalindromeConfig(length=5, samples=200, hidden=8, epochs=2, device="cpu", deterministic=True)
    result = Job(run_palindrome, cfg, tmp_path / "run", OFF)()
    assert result["numerics"]["deterministic_algorithms"] is True
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_palindrome_run_asked_to_stop_stops_at_an_epoch_and_resumes(tmp_path: Path) -> None:
    cfg = PalindromeConfig(length=5, samples=200, hidden=8, epochs=3, device="cpu")

    def stop_after_one_epoch(cfg: PalindromeConfig, run: Run) -> dict[str, Any]:
        looks = [0]
        run.stop_requested = lambda: (looks.__setitem__(0, looks[0] + 1), looks[0] > 1)[1]  # type: ignore[attr-defined]
        return run_palindrome(cfg, run)

    with pytest.raises(Interrupted):  # the trainer's StopRequested, as the CLI sees it (exit 130)
        Job(stop_after_one_epoch, cfg, tmp_path / "a", OFF)()
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "a" / "result.json").exists()
    resumed = Job(run_palindrome, cfg, tmp_path / "a", OFF)()
    whole = Job(run_palindrome, cfg, tmp_path / "b", OFF)()
    assert resumed["resumed"] and resumed["final_val_loss"] == whole["final_val_loss"]


# --- on a GPU --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory: pytest.TempPathFactory) -> GanConfig:
    folder = tmp_path_factory.mktemp("mnist")
    make_tiny_mnist(folder, n_train=256, n_test=128, layout="flat", noise=10)
    return GanConfig(data_dir=str(folder), classifier=str(folder / "classifier.pt"), limit=100, epochs=3,
                     batch_size=32, log_every=3, sample_every=7, eval_every=0, eval_samples=64, device="cuda",
                     checkpoint_every=2)


@pytest.mark.cuda
def test_a_stopped_cuda_run_resumes_on_cuda(tiny_cfg: GanConfig, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def experiment(cfg: GanConfig, run: Run) -> dict[str, Any]:
        if run.checkpoint is not None:
            seen.append(run.checkpoint)
        else:
            looks = [0]
            run.stop_requested = lambda: (looks.__setitem__(0, looks[0] + 1), looks[0] >= 7)[1]  # type: ignore[attr-defined]
        return run_gan(cfg, run)

    with pytest.raises(Interrupted):
        Job(experiment, tiny_cfg, tmp_path / "run", OFF, step_key="step")()
    result = Job(experiment, tiny_cfg, tmp_path / "run", OFF, step_key="step")()
    assert result["resumed"] and result["steps"] == 12 and result["cuda_graphs"] is True
    (ckpt,) = seen
    assert "cuda_rng" in ckpt
    assert all(ckpt[k].device.type == "cpu" and ckpt[k].dtype == torch.uint8 for k in RNG_KEYS)
    # and eagerly (cuda_graphs: off), from the same checkpoint schema
    eager = replace(tiny_cfg, cuda_graphs="off")
    assert Job(run_gan, eager, tmp_path / "eager", OFF, step_key="step")()["cuda_graphs"] is False


def _steps(capture: bool, steps: int, images: torch.Tensor) -> tuple[list[torch.Tensor], list[float]]:
    cfg = GanConfig()
    torch.manual_seed(0)
    G, D = Generator().cuda(), Discriminator().cuda()
    opt_g, opt_d = make_optimizers(G, D, cfg, capturable=capture)
    fast = FastStep(G, D, opt_g, opt_d, images, cfg.latent_dim, 64, capture=capture)
    torch.cuda.manual_seed(1)
    fast.set_order(torch.randperm(len(images), generator=torch.Generator().manual_seed(0)))
    for i in range(steps):
        start = (i * 64) % len(images)
        fast.step(start, min(64, len(images) - start))  # 200 images: batches of 64, 64, 64 and 8
    meters = fast.take_meters()
    return [t.detach().clone() for m in (G, D) for t in m.state_dict().values()], meters


@pytest.mark.cuda
def test_the_graphed_step_stays_close_to_the_eager_step() -> None:
    images = torch.rand(200, 1, 28, 28, device="cuda") * 2 - 1
    eager, eager_meters = _steps(False, 40, images)
    graphed, graphed_meters = _steps(True, 40, images)
    worst = max(float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-12))
                for a, b in zip(graphed, eager) if b.is_floating_point())
    assert worst < 1e-3
    assert graphed_meters == pytest.approx(eager_meters, rel=1e-3)
