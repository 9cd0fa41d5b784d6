"""The memory horizon: ∂ℓ/∂x_1 and ∂ℓ/∂h_1 as training records them, against autograd on the equations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lstmgan.palindrome.train as train
from lstmgan.config import PalindromeConfig, TrackingConfig
from lstmgan.palindrome.models import build_model
from lstmgan.palindrome.train import memory_horizon, run_palindrome
from lstmgan.runner.job import Job

OFF = TrackingConfig(mode="disabled")
HORIZON = ("grad_x1", "grad_h1", "grad_hT")


def plain_horizon(model: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The cell equations step by step, x_1 a leaf and h_1, h_T kept: the mean per-sequence gradient norms."""
    m = model
    x1 = x[:, 0].clone().requires_grad_()
    h = c = torch.zeros(len(y), m.hidden, dtype=x.dtype)
    kept = []
    for t in range(x.shape[1]):
        x_t = x1 if t == 0 else x[:, t]
        if kind == "rnn":
            h = torch.tanh(x_t @ m.W_hx + h @ m.W_hh + m.b_h)
        else:
            g = torch.tanh(x_t @ m.W_gx + h @ m.W_gh + m.b_g)
            i = torch.sigmoid(x_t @ m.W_ix + h @ m.W_ih + m.b_i)
            f = torch.sigmoid(x_t @ m.W_fx + h @ m.W_fh + m.b_f)
            o = torch.sigmoid(x_t @ m.W_ox + h @ m.W_oh + m.b_o)
            c = g * i + c * f
            h = torch.tanh(c) * o
        kept.append(h)
    losses = F.cross_entropy(h @ m.W_ph + m.b_p, y, reduction="none")
    grads = [torch.autograd.grad(loss, (x1, kept[0], kept[-1]), retain_graph=True) for loss in losses]
    return {key: float(torch.stack([g[k][n].norm() for n, g in enumerate(grads)]).mean())
            for k, key in enumerate(HORIZON)}


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("length, input_dim", [(6, 10), (1, 1)])
def test_horizon_norms_equal_autograd_on_the_equations(kind, length, input_dim):
    torch.manual_seed(3)
    model = build_model(kind, input_dim, 5, 10, "pytorch", 0.01, forget_bias=1.0).double()
    for p in model.parameters():  # larger weights than the init's, so that no gradient is nearly zero
        p.data.mul_(3)
    x, y = torch.randn(7, length, input_dim, dtype=torch.double), torch.randint(0, 10, (7,))
    ours = memory_horizon(model, x, y, batch_size=3)  # batches of 3, 3 and 1: per-sequence means all the same
    ref = plain_horizon(model, kind, x, y)
    assert ours.keys() == ref.keys()
    for key in HORIZON:
        assert ours[key] == pytest.approx(ref[key], rel=1e-10), key
    assert all(p.grad is None for p in model.parameters())  # measuring leaves the parameters' gradients alone


def test_horizon_decays_with_length_for_a_small_weight_rnn():
    # The vanishing gradient the original blames: with ‖W_hh‖ < 1 every step shrinks ∂ℓ/∂h_t further back.
    torch.manual_seed(0)
    model = build_model("rnn", 1, 16, 10, "normal", 0.05)
    y = torch.randint(0, 10, (64,))
    short, long = (memory_horizon(model, torch.randn(64, n, 1), y) for n in (3, 15))
    assert long["grad_h1"] < 1e-3 * short["grad_h1"]
    assert long["grad_hT"] == pytest.approx(short["grad_hT"], rel=0.5)  # the loss's own scale stays


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_measuring_the_horizon_leaves_training_bit_identical(tmp_path: Path, monkeypatch, model):
    cfg = PalindromeConfig(model=model, length=6, samples=300, hidden=8, epochs=3, device="cpu")
    Job(run_palindrome, cfg, tmp_path / "measured", OFF)()
    monkeypatch.setattr(train, "memory_horizon", lambda *args, **kwargs: {})
    Job(run_palindrome, cfg, tmp_path / "unmeasured", OFF)()

    def rows(name: str) -> list[dict[str, float]]:
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "epoch_time"} for line in lines]

    measured, unmeasured = rows("measured"), rows("unmeasured")
    assert len(measured) == 3 and all(set(HORIZON) <= row.keys() for row in measured)
    assert all(row[key] > 0 for row in measured for key in HORIZON)
    assert [{k: v for k, v in row.items() if k not in HORIZON} for row in measured] == unmeasured
