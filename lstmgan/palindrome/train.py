"""Train one palindrome model: `run_palindrome(cfg, run) -> result`, plus the two loops it is made of."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from lstmgan.config import PalindromeConfig, to_dict
from lstmgan.environment import deterministic, numerics
from lstmgan.errors import StopRequested
from lstmgan.palindrome.data import NUM_DIGITS, encode, input_dim, make_data
from lstmgan.palindrome.models import build_model

if TYPE_CHECKING:
    from lstmgan.runner.job import Run

TARGET_ACC = 0.99  # "converged": the epoch at which val accuracy first reaches this is reported
# The memory horizon is measured on the first this-many validation sequences (a random sample: the split keeps
# the draw order), the same ones every epoch so that a curve compares like with like. The whole validation
# set (410 sequences by default) would add ~20 % to an epoch's time; 256 add ~12 %, and a mean of 256
# per-sequence norms is precise far beyond the orders of magnitude the curves span.
HORIZON_SAMPLES = 256


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, shuffle: torch.Generator, max_grad_norm: float) -> dict[str, float]:
    """One pass over (x, y) in shuffled batches. Returns mean loss, accuracy and pre-clip grad norms."""
    model.train()
    total_loss = correct = 0.0
    norms = []
    for idx in torch.randperm(len(y), generator=shuffle).to(y.device).split(batch_size):
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx])  # on the last time step only: the model returns only that
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
        optimizer.step()
        total_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == y[idx]).sum()
    norms_t = torch.stack(norms)
    return {"train_loss": float(total_loss) / len(y), "train_acc": float(correct) / len(y),
            "grad_norm": float(norms_t.mean()), "grad_norm_max": float(norms_t.max())}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    model.eval()
    total_loss = correct = 0.0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        total_loss += F.cross_entropy(logits, y[start:start + batch_size], reduction="sum")
        correct += (logits.argmax(1) == y[start:start + batch_size]).sum()
    return {"val_loss": float(total_loss) / len(y), "val_acc": float(correct) / len(y)}


@torch.no_grad()
def memory_horizon(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """How much the loss still feels the start of the sequence: the mean over sequences of ‖∂ℓ/∂x_1‖ and
    ‖∂ℓ/∂h_1‖ (h_1: the hidden state after step 1), and ‖∂ℓ/∂h_T‖ as the scale they decay from, where ℓ is
    one sequence's cross-entropy. Per sequence, so the numbers do not depend on how many there are.

    One backward pass of the fast recurrence with the input terms xw = x W_x + b as the leaf: x_1 reaches
    the loss only through xw_1, and h_1 only through step 2's pre-activations xw_2 + h_1 W_h, so
    ∂ℓ/∂x_1 = ∂ℓ/∂xw_1 W_xᵀ and ∂ℓ/∂h_1 = ∂ℓ/∂xw_2 W_hᵀ (for T = 1, h_1 is h_T). Parameters' .grad and the
    RNGs are left alone: training does not change by being measured."""
    model.eval()
    sums = dict.fromkeys(("grad_x1", "grad_h1", "grad_hT"), 0.0)
    W_x, W_h = model.input_weight(), model.recurrent_weight()
    for start in range(0, len(y), batch_size):
        xw = model.input_terms(x[start:start + batch_size]).requires_grad_()
        with torch.enable_grad():  # autograd.grad returns the asked-for gradients only: no .grad is touched
            h_T = model.recur(xw)
            loss = F.cross_entropy(torch.addmm(model.b_p, h_T, model.W_ph), y[start:start + batch_size],
                                   reduction="sum")  # summed: row n of each gradient is ∂ℓ_n/∂·
            d_xw, d_hT = torch.autograd.grad(loss, (xw, h_T))
        d_h1 = d_xw[:, 1] @ W_h.T if xw.shape[1] > 1 else d_hT
        for key, grad in (("grad_x1", d_xw[:, 0] @ W_x.T), ("grad_h1", d_h1), ("grad_hT", d_hT)):
            sums[key] += grad.norm(dim=1).sum()
    return {key: float(total) / len(y) for key, total in sums.items()}


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_checkpoint(cfg: PalindromeConfig, ckpt: dict[str, Any]) -> None:
    """Raise unless `ckpt` loads into the model and optimizer `cfg` builds (on the CPU): rundir.decide runs
    it before a resume changes the run folder."""
    model = build_model(cfg.model, input_dim(cfg.encoding), cfg.hidden, NUM_DIGITS, cfg.init, cfg.init_std)
    model.load_state_dict(ckpt["model"])
    torch.optim.RMSprop(model.parameters(), lr=cfg.lr).load_state_dict(ckpt["optimizer"])


def run_palindrome(cfg: PalindromeConfig, run: Run) -> dict[str, Any]:
    """Train cfg.model on palindromes of cfg.length; checkpoint every epoch; return the result.

    On the CPU it uses one thread: these matrices are too small for more to pay off (parallelism comes
    from running several runs side by side), and results then do not depend on the machine's core count."""
    with deterministic(cfg.deterministic), cpu_threads(1) if run.device.type == "cpu" else nullcontext():
        return _train(cfg, run)


def _train(cfg: PalindromeConfig, run: Run) -> dict[str, Any]:
    device = run.device
    data = make_data(cfg.length, cfg.samples, cfg.val_fraction, cfg.seed)
    train_x, val_x = (encode(d, cfg.encoding).to(device) for d in (data.train_x, data.val_x))
    train_y, val_y = data.train_y.to(device), data.val_y.to(device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, input_dim(cfg.encoding), cfg.hidden, NUM_DIGITS, cfg.init, cfg.init_std,
                        cfg.forget_bias)
    model.to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    history = {"epoch": 0, "best_val_acc": 0.0, "best_epoch": 0, "epoch_to_99": None, "train_time": 0.0}

    # A checkpoint is loaded on the CPU: load_state_dict moves weights and optimizer state to the model's
    # device, the shuffle RNG state stays a CPU byte tensor.
    if (ckpt := run.checkpoint) is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        shuffle.set_state(ckpt["shuffle_rng"].cpu())
        history = dict(ckpt["history"])

    row: dict[str, Any] = {}
    stop = run.stop_requested  # Ctrl-C, SIGTERM or SLURM: checked between epochs
    for epoch in range(history["epoch"] + 1, cfg.epochs + 1):
        if stop():  # every epoch is checkpointed: the last one is on disk
            raise StopRequested(f"stopped after epoch {epoch - 1}; its checkpoint resumes the run")
        start = time.perf_counter()
        row = {"epoch": epoch, **train_one_epoch(model, optimizer, train_x, train_y, cfg.batch_size, shuffle,
                                                 cfg.max_grad_norm)}
        row.update(evaluate(model, val_x, val_y))
        row["epoch_time"] = time.perf_counter() - start  # training and evaluation, as before the horizon
        row.update(memory_horizon(model, val_x[:HORIZON_SAMPLES], val_y[:HORIZON_SAMPLES]))
        history["epoch"], history["train_time"] = epoch, history["train_time"] + row["epoch_time"]
        if row["val_acc"] > history["best_val_acc"]:
            history["best_val_acc"], history["best_epoch"] = row["val_acc"], epoch
        if history["epoch_to_99"] is None and row["val_acc"] >= TARGET_ACC:
            history["epoch_to_99"] = epoch
        run.tracker.log(row)
        run.dir.save_checkpoint({"config": to_dict(cfg), "epoch": history["epoch"], "model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "shuffle_rng": shuffle.get_state(),
                                 "history": dict(history)})
        run.progress(epoch, cfg.epochs, f"val_acc {row['val_acc']:.3f}")

    final = row or next(iter(run.dir.metrics()[-1:]), {})  # resumed after the last epoch: its logged row
    return {
        "model": cfg.model, "length": cfg.length, "seed": cfg.seed, "epochs": history["epoch"],
        "final_val_acc": final.get("val_acc"), "final_train_acc": final.get("train_acc"),
        "final_val_loss": final.get("val_loss"),
        "best_val_acc": history["best_val_acc"], "best_epoch": history["best_epoch"],
        "epoch_to_99": history["epoch_to_99"], "train_time_s": history["train_time"],
        **data.counts(), "numerics": numerics(),
    }
