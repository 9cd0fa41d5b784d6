"""The device side: CPU counts, numeric settings, and (marked cuda, skipped without a GPU) a resume on
CUDA and the graphed GAN step against the eager one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lstmgan.config import GanConfig, PalindromeConfig, TrackingConfig
from lstmgan.environment import GpuProbe, cuda_problem, describe, deterministic, no_tf32, usable_cpus
from lstmgan.errors import StopRequested
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.step import FastStep, make_optimizers
from lstmgan.gan.train import RNG_KEYS, run_gan
from lstmgan.palindrome.train import run_palindrome
from lstmgan.runner.job import Job, Run

OFF = TrackingConfig(mode="disabled")


def test_cpu_count_is_the_affinity_mask_not_the_node() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert describe(torch.device("cpu"))["cpu_count"] == usable_cpus()


def probe(**kw: Any) -> Callable[[], GpuProbe]:
    seen = {"nvidia": True, "driver_cuda": "12.4", "torch_cuda": "13.0", "usable": False, **kw}
    return lambda: GpuProbe(**seen)


def test_a_gpu_torch_cannot_use_is_named_with_both_cuda_versions_and_the_fix() -> None:
    problem = cuda_problem(probe())
    assert problem is not None and "\n" not in problem
    assert "CUDA 12.4" in problem and "CUDA 13.0" in problem
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cu12" in problem
    cpu_build = cuda_problem(probe(torch_cuda=None))
    assert cpu_build is not None and "CPU-only" in cpu_build and "TORCH_INDEX=" in cpu_build
    unknown = cuda_problem(probe(driver_cuda=None, torch_cuda="12.6"))  # /proc/driver/nvidia but no nvidia-smi
    assert unknown is not None and "no usable device" in unknown


def test_no_problem_without_an_nvidia_gpu_when_torch_uses_it_or_when_it_is_hidden_on_purpose() -> None:
    assert cuda_problem(probe(nvidia=False, driver_cuda=None)) is None
    assert cuda_problem(probe(usable=True, driver_cuda="13.0")) is None
    assert cuda_problem(probe(hidden=True)) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what happens without a CUDA device")
def test_lstmgan_require_cuda_turns_the_cuda_tests_skips_into_failures() -> None:
    env = {**os.environ, "LSTMGAN_REQUIRE_CUDA": "1"}
    test = f"{__file__}::test_the_graphed_step_stays_close_to_the_eager_step"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "LSTMGAN_REQUIRE_CUDA=1 but no usable CUDA device" in done.stdout
    env.pop("LSTMGAN_REQUIRE_CUDA")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 skipped" in done.stdout


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

    with pytest.raises(StopRequested):  # the trainer's stop: a KeyboardInterrupt, exit 130 at the CLI
        Job(stop_after_one_epoch, cfg, tmp_path / "a", OFF)()
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "a" / "result.json").exists()
    resumed = Job(run_palindrome, cfg, tmp_path / "a", OFF)()
    whole = Job(run_palindrome, cfg, tmp_path / "b", OFF)()
    assert resumed["resumed"] and resumed["final_val_loss"] == whole["final_val_loss"]


# --- on a GPU --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cfg(tiny_gan: GanConfig) -> GanConfig:
    return replace(tiny_gan, epochs=3, eval_every=0, device="cuda", checkpoint_every=2)


def stopping_at(looks_before_stop: int, seen: list[dict[str, Any]]) -> Callable[[GanConfig, Run], dict[str, Any]]:
    """run_gan asked to stop at its n-th look (before each epoch and after each batch); a resume records
    the checkpoint it is handed."""
    def experiment(cfg: GanConfig, run: Run) -> dict[str, Any]:
        if run.checkpoint is not None:
            seen.append(run.checkpoint)
        else:
            looks = [0]
            run.stop_requested = lambda: (looks.__setitem__(0, looks[0] + 1), looks[0] >= looks_before_stop)[1]  # type: ignore[attr-defined]
        return run_gan(cfg, run)
    return experiment


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "images_per_s"}
            for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def weights(run_dir: Path) -> list[torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return [t for part in ("generator", "discriminator") for t in ckpt[part].values()]


@pytest.mark.cuda
def test_a_stopped_cuda_run_resumes_exactly_as_an_uninterrupted_one(tiny_cfg: GanConfig, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(StopRequested):
        Job(stopping_at(7, seen), tiny_cfg, tmp_path / "run", OFF, step_key="step")()
    result = Job(stopping_at(10**9, seen), tiny_cfg, tmp_path / "run", OFF, step_key="step")()
    whole = Job(run_gan, tiny_cfg, tmp_path / "whole", OFF, step_key="step")()
    assert result["resumed"] and result["steps"] == whole["steps"] == 12 and result["cuda_graphs"] is True
    (ckpt,) = seen
    assert "cuda_rng" in ckpt
    assert all(ckpt[k].device.type == "cpu" and ckpt[k].dtype == torch.uint8 for k in RNG_KEYS)
    assert all(torch.equal(a, b) for a, b in zip(weights(tmp_path / "run"), weights(tmp_path / "whole")))
    assert rows(tmp_path / "run") == rows(tmp_path / "whole") and result["fid"] == whole["fid"]


@pytest.mark.cuda
def test_a_cpu_checkpoint_resumes_on_a_gpu_with_graphs(tiny_cfg: GanConfig, tmp_path: Path) -> None:
    # load_state_dict brings back the checkpoint's capturable=False; the capture needs it True again
    on_cpu = replace(tiny_cfg, device="cpu")
    with pytest.raises(StopRequested):
        Job(stopping_at(7, []), on_cpu, tmp_path / "run", OFF, step_key="step")()
    result = Job(run_gan, tiny_cfg, tmp_path / "run", OFF, step_key="step")()
    assert result["resumed"] and result["steps"] == 12 and result["cuda_graphs"] is True
    eager = replace(tiny_cfg, cuda_graphs="off")  # and the other way: a graphed checkpoint, resumed eagerly
    with pytest.raises(StopRequested):
        Job(stopping_at(7, []), tiny_cfg, tmp_path / "back", OFF, step_key="step")()
    assert Job(run_gan, eager, tmp_path / "back", OFF, step_key="step")()["cuda_graphs"] is False


@pytest.mark.cuda
def test_a_deterministic_cuda_run_repeats_bit_for_bit(tiny_cfg: GanConfig, tmp_path: Path) -> None:
    cfg = replace(tiny_cfg, deterministic=True, matmul_precision="high")  # deterministic wins: exact
    first = Job(run_gan, cfg, tmp_path / "a", OFF, step_key="step")()
    second = Job(run_gan, cfg, tmp_path / "b", OFF, step_key="step")()
    assert first["numerics"]["deterministic_algorithms"] is True and not torch.are_deterministic_algorithms_enabled()
    assert first["numerics"]["matmul_precision"] == "highest" and not first["numerics"]["tf32_matmul"]
    assert all(torch.equal(a, b) for a, b in zip(weights(tmp_path / "a"), weights(tmp_path / "b")))
    assert rows(tmp_path / "a") == rows(tmp_path / "b") and first["fid"] == second["fid"]


def _steps(capture: bool, steps: int, images: torch.Tensor, zs: list[torch.Tensor] | None = None
           ) -> tuple[list[torch.Tensor], list[float]]:
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
        if zs is not None:
            zs.append(fast.z.clone())
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


@pytest.mark.cuda
def test_the_graphed_step_draws_the_same_z_as_the_eager_step() -> None:
    # Graph-safe Philox replays advance the CUDA generator as eager calls do: expected equal, measured here.
    images = torch.rand(200, 1, 28, 28, device="cuda") * 2 - 1
    eager: list[torch.Tensor] = []
    graphed: list[torch.Tensor] = []
    _steps(False, 5, images, eager)
    _steps(True, 5, images, graphed)
    assert all(torch.equal(a, b) for a, b in zip(eager, graphed)) and len(eager) == 5
