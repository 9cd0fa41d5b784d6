"""The fast GAN step and the trainer around it: bit for bit the plain loop on the CPU; checkpoints every
few epochs, on a stop, and resumes that continue exactly where the run left off."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lstmgan.config import GanConfig, TrackingConfig
from lstmgan.errors import StopRequested
from lstmgan.gan.background import Background
from lstmgan.gan.data import iterate_batches, load_images
from lstmgan.gan.models import Discriminator, Generator
from lstmgan.gan.step import FastStep, gan_step, make_optimizers
from lstmgan.gan.train import RNG_KEYS, run_gan
from lstmgan.rundir import RunDir
from lstmgan.runner.job import Job, Run

OFF = TrackingConfig(mode="disabled")


def plain_loop(cfg: GanConfig) -> tuple[Generator, Discriminator, list[dict[str, Any]]]:
    """The trainer's loop before FastStep (a reference copy): batches of CPU indices moved per step, z from
    the global RNG, meters summed per row in a dict."""
    images, _ = load_images(cfg.dataset, Path(cfg.data_dir), train=True)
    images = images[: cfg.limit]
    torch.manual_seed(cfg.seed)
    G, D = Generator(cfg.latent_dim), Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        sums: dict[str, Any] = {}
        count = 0
        for idx in iterate_batches(len(images), cfg.batch_size, shuffle,
                                   drop_last=len(images) % cfg.batch_size == 1):
            real = images[idx]
            z = torch.randn(len(real), cfg.latent_dim)
            for key, value in gan_step(G, D, opt_g, opt_d, real, z).items():
                sums[key] = sums.get(key, 0) + value.detach()
            count += 1
            step += 1
            if step % cfg.log_every == 0:
                rows.append({"step": step, "epoch": epoch, **{k: float(v) / count for k, v in sums.items()}})
                sums, count = {}, 0
        if count:
            rows.append({"step": step, "epoch": epoch, **{k: float(v) / count for k, v in sums.items()}})
    return G, D, rows


def batch_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]


def weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return {"generator": ckpt["generator"], "discriminator": ckpt["discriminator"]}


def same_weights(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> bool:
    return all(torch.equal(a[part][k], b[part][k]) for part in b for k in b[part])


@pytest.fixture(scope="module")
def whole(tiny_gan: GanConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run, the reference for the resume tests."""
    folder = tmp_path_factory.mktemp("whole") / "run"
    Job(run_gan, tiny_gan, folder, OFF, step_key="step")()
    return folder


# a short last batch of 4; and of 1, which is dropped (and deterministic kernels, scoped to the run)
@pytest.mark.parametrize("limit, strict", [(100, False), (97, True)])
def test_the_trainer_on_the_cpu_equals_the_plain_loop_bit_for_bit(tiny_gan, tmp_path, limit, strict):
    cfg = replace(tiny_gan, limit=limit, epochs=3, checkpoint_every=0, deterministic=strict)
    result = Job(run_gan, cfg, tmp_path / "run", OFF, step_key="step")()
    assert result["numerics"]["deterministic_algorithms"] is strict and result["cuda_graphs"] is False
    assert not torch.are_deterministic_algorithms_enabled()
    G, D, rows = plain_loop(cfg)
    assert same_weights(weights(tmp_path / "run"), {"generator": G.state_dict(), "discriminator": D.state_dict()})
    assert [r for r in batch_rows(tmp_path / "run") if "d_loss" in r] == rows


def stopping_after(calls: int, seen: list[dict[str, Any]]):
    """run_gan whose run is asked to stop at its `calls`-th look (as a SLURM signal would ask); it looks
    before each epoch and after each batch. Records the checkpoint a resume is handed."""
    def experiment(cfg: GanConfig, run: Run) -> dict[str, Any]:
        if run.checkpoint is not None:
            seen.append(run.checkpoint)
        looks = [0]

        def stop_requested() -> bool:
            looks[0] += 1
            return looks[0] >= calls

        run.stop_requested = stop_requested  # type: ignore[attr-defined]
        return run_gan(cfg, run)
    return experiment


def test_a_stop_between_checkpoints_checkpoints_there_and_resumes_bit_for_bit(tiny_gan, whole, tmp_path):
    run_dir, seen = tmp_path / "run", []
    # 4 batches per epoch: looks 1-5 are epoch 1, 6-10 epoch 2, 11 starts epoch 3, 13 comes after step 10:
    # mid-epoch, mid metrics row (log_every=3), and before the first scheduled checkpoint (epoch 3).
    with pytest.raises(StopRequested):  # the trainer's stop: a KeyboardInterrupt, exit 130 at the CLI
        Job(stopping_after(13, seen), tiny_gan, run_dir, OFF, step_key="step")()
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert (ckpt["step"], ckpt["epoch"], ckpt["state"]["batch"], ckpt["meter"]["count"]) == (10, 2, 2, 1)
    assert not (run_dir / "result.json").exists()

    resumed = Job(run_gan, tiny_gan, run_dir, OFF, step_key="step")()
    assert resumed["resumed"] and resumed["steps"] == 20
    assert same_weights(weights(run_dir), weights(whole))
    assert batch_rows(run_dir) == batch_rows(whole)
    assert resumed["fid"] == json.loads((whole / "result.json").read_text())["fid"]


def test_a_crash_between_checkpoints_resumes_from_the_last_one_and_drops_later_rows(tiny_gan, whole, tmp_path):
    run_dir = tmp_path / "run"

    def crash_after_epoch_4(done: int, total: int, text: str) -> None:
        if text.startswith("epoch 4/5 done"):  # epoch 3 was checkpointed, epoch 4 was not
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Job(run_gan, tiny_gan, run_dir, OFF, step_key="step")(crash_after_epoch_4)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 3
    assert max(r["step"] for r in batch_rows(run_dir)) == 16  # rows of epoch 4 were written...

    seen: list[dict[str, Any]] = []
    Job(stopping_after(10**9, seen), tiny_gan, run_dir, OFF, step_key="step")()
    assert batch_rows(run_dir) == batch_rows(whole)  # ...and dropped on resume, then written again
    assert same_weights(weights(run_dir), weights(whole))
    # What a resume is handed: RNG states as CPU byte tensors (the only kind set_state accepts), whatever
    # the device; weights and optimizer state move to the device through load_state_dict.
    (ckpt,) = seen
    rngs = [ckpt[k] for k in RNG_KEYS if k in ckpt]
    assert len(rngs) >= 3 and all(t.device.type == "cpu" and t.dtype == torch.uint8 for t in rngs)


def test_progress_counts_batches_of_the_whole_run_and_reaches_the_total_once(tiny_gan, tmp_path):
    calls: list[tuple[int, int, str]] = []
    Job(run_gan, replace(tiny_gan, epochs=2), tmp_path / "run", OFF, step_key="step")(
        lambda done, total, text: calls.append((done, total, text)))
    assert {total for _, total, _ in calls} == {8}
    assert [done for done, _, _ in calls if done == 8] == [8] and calls[-1][0] == 8
    assert any("images/s" in text and "ETA" in text for _, _, text in calls)
    done = [d for d, _, _ in calls]
    assert done == sorted(done)


def test_checkpoints_come_every_checkpoint_every_epochs_and_at_the_end(tiny_gan, tmp_path, monkeypatch):
    saved: list[int] = []
    write = RunDir.save_checkpoint  # called by the background writer: watched where the file is written

    def recording(self: RunDir, ckpt: dict[str, Any]) -> None:
        saved.append(ckpt["epoch"])
        write(self, ckpt)

    monkeypatch.setattr(RunDir, "save_checkpoint", recording)
    Job(run_gan, tiny_gan, tmp_path / "run", OFF, step_key="step")()
    assert saved == [3, 5]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 5


def _fast_step(capturable: bool) -> FastStep:
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()
    opt_g, opt_d = make_optimizers(G, D, GanConfig(), capturable=capturable)
    return FastStep(G, D, opt_g, opt_d, torch.rand(40, 1, 28, 28) * 2 - 1, 100, 16, capture=False)


def test_a_checkpoint_without_capturable_adam_keeps_the_loading_optimizers_flags() -> None:
    # A CPU (or cuda_graphs: off) checkpoint resumed where the step is captured: load_state_dict would set
    # capturable=False again and the capture would raise.
    written = _fast_step(capturable=False)
    written.set_order(torch.randperm(40, generator=torch.Generator().manual_seed(0)))
    written.step(0, 16)
    loading = _fast_step(capturable=True)
    for opt, saved in ((loading.opt_g, written.opt_g), (loading.opt_d, written.opt_d)):
        opt.load_state_dict(saved.state_dict())
        assert all(group["capturable"] and group["fused"] for group in opt.param_groups)
        assert all(torch.equal(opt.state[p]["exp_avg"], saved.state[q]["exp_avg"])
                   for p, q in zip(opt.param_groups[0]["params"], saved.param_groups[0]["params"]))


def test_loading_weights_or_optimizer_state_drops_captured_graphs() -> None:
    # A graph keeps updating the tensors it was captured with; a load may replace them. (The graphs
    # themselves need CUDA: tests/test_cuda.py resumes a graphed run.)
    fast = _fast_step(capturable=False)
    state = {"G": fast.G.state_dict(), "opt_d": fast.opt_d.state_dict()}
    for load in (lambda: fast.G.load_state_dict(state["G"]), lambda: fast.opt_d.load_state_dict(state["opt_d"])):
        fast.graphs[16] = "a graph captured before the load"  # type: ignore[assignment]
        load()
        assert fast.graphs == {}


def test_the_background_writer_keeps_order_drains_and_hands_failures_back() -> None:
    done: list[int] = []
    with Background(depth=2) as background:
        for i in range(20):
            background.submit(lambda i=i: (time.sleep(0.001), done.append(i)))
        background.drain()
        assert done == list(range(20))
        background.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            background.drain()
    with pytest.raises(OSError), Background() as background:  # leaving the block drains and re-raises
        background.submit(lambda: open("/nonexistent/folder/file", "w"))
    with pytest.raises(KeyboardInterrupt), Background() as background:  # a Ctrl-C still writes what was queued
        background.submit(lambda: (time.sleep(0.05), done.append(99)))
        raise KeyboardInterrupt
    assert done[-1] == 99


def test_sample_grids_are_written_and_the_result_says_what_precision_trained(tiny_gan, tmp_path):
    result = Job(run_gan, replace(tiny_gan, epochs=2), tmp_path / "run", OFF, step_key="step")()
    assert [g["step"] for g in result["grids"]] == [0, 7, 8]
    assert all((tmp_path / "run" / g["path"]).stat().st_size > 0 for g in result["grids"])
    assert not list((tmp_path / "run" / "samples").glob(".*.tmp"))
    assert result["matmul_precision"] == "highest" and result["numerics"]["matmul_precision"] == "highest"
