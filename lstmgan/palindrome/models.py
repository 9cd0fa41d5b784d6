"""A vanilla RNN and an LSTM written from their equations, with one explicit parameter per symbol.

    RNN:   h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h)
    LSTM:  g_t = tanh(W_gx x_t + W_gh h_{t-1} + b_g)
           i_t = σ(W_ix x_t + W_ih h_{t-1} + b_i)
           f_t = σ(W_fx x_t + W_fh h_{t-1} + b_f)
           o_t = σ(W_ox x_t + W_oh h_{t-1} + b_o)
           c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t
           h_t = tanh(c_t) ⊙ o_t
    both:  p = W_ph h_T + b_p        (logits; the loss applies the softmax)

h_0 = c_0 = 0. Weights are stored as (in, out) so that `x @ W` reads like the equations' W x for a
batch of row vectors. Both models expose the same pieces — `input_terms` (every W_·x x_t + b_·), `recur`
(the recurrence, xw → h_T), `input_weight` and `recurrent_weight` (the W_·x and W_·h a gradient flows back
through) — so that `palindrome.train.memory_horizon` reads ∂L/∂x_1 and ∂L/∂h_1 off one fast backward pass.

`forward_reference` is the equations, step by step, differentiated by autograd: the readable definition.
`forward` computes the same numbers faster (the tests hold the two equal, values and gradients):
the input terms W_·x x_t of all time steps are one matrix product before the loop, the LSTM's four gates
are one product against the gate matrices laid side by side, and the recurrence is a custom autograd
Function whose backward pass is the hand-derived BPTT — one small matmul per step, and the gradient of
W_·h summed over all steps in a single matmul at the end — instead of autograd's per-op graph.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


class VanillaRNN(nn.Module):
    def __init__(self, input_dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.W_hx, self.W_hh, self.b_h = _param(input_dim, hidden), _param(hidden, hidden), _param(hidden)
        self.W_ph, self.b_p = _param(hidden, num_classes), _param(num_classes)

    def input_terms(self, x: torch.Tensor) -> torch.Tensor:
        """W_hx x_t + b_h for every t at once: N × T × H."""
        return torch.addmm(self.b_h, x.flatten(0, 1), self.W_hx).view(x.shape[0], x.shape[1], -1)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """x: N × T × input_dim → logits N × num_classes."""
        xw = self.input_terms(x)
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(xw[:, t] + h @ self.W_hh)
        return h @ self.W_ph + self.b_p

    def input_weight(self) -> torch.Tensor:
        return self.W_hx

    def recurrent_weight(self) -> torch.Tensor:
        return self.W_hh

    def recur(self, xw: torch.Tensor) -> torch.Tensor:
        """The fast recurrence over input terms xw (N × T × H) → h_T (N × H)."""
        return RNNRecurrence.apply(xw, self.W_hh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b_p, self.recur(self.input_terms(x)), self.W_ph)


class LSTM(nn.Module):
    GATES = ("g", "i", "f", "o")

    def __init__(self, input_dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = hidden
        for gate in self.GATES:
            setattr(self, f"W_{gate}x", _param(input_dim, hidden))
            setattr(self, f"W_{gate}h", _param(hidden, hidden))
            setattr(self, f"b_{gate}", _param(hidden))
        self.W_ph, self.b_p = _param(hidden, num_classes), _param(num_classes)

    def _stacked(self, kind: str) -> torch.Tensor:
        return torch.cat([getattr(self, f"{kind[0]}_{g}{kind[1:]}") for g in self.GATES], dim=-1)

    def input_terms(self, x: torch.Tensor) -> torch.Tensor:
        """W_·x x_t + b_· for the four gates (g, i, f, o side by side) and every t at once: N × T × 4H."""
        return torch.addmm(self._stacked("b"), x.flatten(0, 1), self._stacked("Wx")).view(x.shape[0], x.shape[1], -1)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """x: N × T × input_dim → logits N × num_classes."""
        H = self.hidden
        xw = self.input_terms(x)
        h = c = x.new_zeros(x.shape[0], H)
        for t in range(x.shape[1]):
            pre = xw[:, t] + h @ self._stacked("Wh")
            g = torch.tanh(pre[:, :H])
            i, f, o = torch.sigmoid(pre[:, H:]).split(H, dim=1)
            c = g * i + c * f
            h = torch.tanh(c) * o
        return h @ self.W_ph + self.b_p

    def input_weight(self) -> torch.Tensor:
        return self._stacked("Wx")

    def recurrent_weight(self) -> torch.Tensor:
        return self._stacked("Wh")

    def recur(self, xw: torch.Tensor) -> torch.Tensor:
        """The fast recurrence over input terms xw (N × T × 4H) → h_T (N × H)."""
        return LSTMRecurrence.apply(xw, self._stacked("Wh"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b_p, self.recur(self.input_terms(x)), self.W_ph)


class RNNRecurrence(torch.autograd.Function):
    """h_t = tanh(xw_t + h_{t-1} W_hh), h_0 = 0; returns h_T. Inputs: xw (N × T × H), W_hh (H × H).
    Buffers are time-major (T × N × ·) so that each step works on contiguous memory."""

    @staticmethod
    def forward(ctx: Any, xw: torch.Tensor, W_hh: torch.Tensor) -> torch.Tensor:
        n, steps, H = xw.shape
        xw_t = xw.transpose(0, 1)
        hs = xw.new_zeros(steps + 1, n, H)  # hs[t + 1] = h_t
        for t in range(steps):
            torch.tanh(torch.addmm(xw_t[t], hs[t], W_hh), out=hs[t + 1])
        ctx.save_for_backward(W_hh, hs)
        return hs[-1].clone()

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        W_hh, hs = ctx.saved_tensors
        steps, _, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dpre = 1 - hs[1:] * hs[1:]  # tanh' = 1 − tanh², for all steps at once; × dh_t below
        W_t = W_hh.T.contiguous()
        for t in reversed(range(steps)):
            dpre[t].mul_(dh)
            dh = dpre[t] @ W_t
        return dpre.transpose(0, 1), hs[:-1].reshape(-1, H).T @ dpre.reshape(-1, H)


class LSTMRecurrence(torch.autograd.Function):
    """The LSTM cell over all steps; returns h_T. Inputs: xw (N × T × 4H, gates g, i, f, o), W_h (H × 4H).
    Buffers are time-major (T × N × ·) so that each step works on contiguous memory."""

    @staticmethod
    def forward(ctx: Any, xw: torch.Tensor, W_h: torch.Tensor) -> torch.Tensor:
        n, steps, four_h = xw.shape
        H = four_h // 4
        xw_t = xw.transpose(0, 1)
        gates = xw.new_empty(steps, n, four_h)  # g, i, f, o after their nonlinearities
        cs = xw.new_zeros(steps + 1, n, H)  # cs[t + 1] = c_t
        tanh_cs = xw.new_empty(steps, n, H)
        hs = xw.new_zeros(steps + 1, n, H)
        for t in range(steps):
            gate = gates[t]
            torch.addmm(xw_t[t], hs[t], W_h, out=gate)
            torch.tanh(gate[:, :H], out=gate[:, :H])
            torch.sigmoid(gate[:, H:], out=gate[:, H:])
            g, i, f, o = gate.split(H, dim=1)
            torch.addcmul(g * i, cs[t], f, out=cs[t + 1])  # c_t = g ⊙ i + c_{t−1} ⊙ f
            torch.tanh(cs[t + 1], out=tanh_cs[t])
            torch.mul(tanh_cs[t], o, out=hs[t + 1])  # h_t = tanh(c_t) ⊙ o
        ctx.save_for_backward(W_h, gates, cs, tanh_cs, hs)
        return hs[-1].clone()

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        W_h, gates, cs, tanh_cs, hs = ctx.saved_tensors
        steps, n, four_h = gates.shape
        H = four_h // 4
        g, i, f, o = gates.split(H, dim=2)
        # Local derivatives for all steps at once: ∂c_t/∂pre_{g,i,f} and ∂h_t/∂pre_o, and ∂h_t/∂c_t.
        local = torch.cat([i * (1 - g * g), g * i * (1 - i), cs[:-1] * f * (1 - f), tanh_cs * o * (1 - o)], dim=2)
        dh_dc = o * (1 - tanh_cs * tanh_cs)
        dpre = local.view(steps, n, 4, H)
        dc = torch.zeros_like(dh)
        W_t = W_h.T.contiguous()
        for t in reversed(range(steps)):
            dc = torch.addcmul(dc, dh, dh_dc[t])  # c_t reaches the loss directly and through h_t
            dpre[t].mul_(torch.stack([dc, dc, dc, dh], dim=1))  # gates g, i, f through c_t; o through h_t
            dc = dc * f[t]  # into c_{t−1}
            dh = dpre[t].view(n, four_h) @ W_t  # into h_{t−1}
        dpre = dpre.view(steps, n, four_h)
        return dpre.transpose(0, 1), hs[:-1].reshape(-1, H).T @ dpre.reshape(-1, four_h)


def init_parameters(model: nn.Module, scheme: str, std: float, forget_bias: float = 0.0) -> None:
    """pytorch: every parameter ~ U(−1/√H, 1/√H), as nn.RNN/nn.LSTM do.
    normal: weights ~ N(0, std²) and biases = 0, the small-normal scheme of many course templates.

    forget_bias (LSTM only) is then added to b_f: with the normal scheme b_f = forget_bias exactly (1 is the
    remedy of Gers et al. 2000 and Jozefowicz et al. 2015: f_t ≈ σ(1) ≈ 0.73 keeps c_{t−1} from the first
    update on); with the pytorch scheme the uniform draw is shifted by it. Adding, not overwriting, keeps 0
    the scheme itself, draws and all, and consumes no random numbers, so other parameters do not move."""
    bound = 1 / math.sqrt(model.hidden)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if scheme == "pytorch":
                p.uniform_(-bound, bound)
            elif name.startswith("b_"):
                p.zero_()
            else:
                p.normal_(0.0, std)
        if isinstance(model, LSTM):
            model.b_f.add_(forget_bias)


def build_model(kind: str, input_dim: int, hidden: int, num_classes: int, init: str, init_std: float,
                forget_bias: float = 0.0) -> nn.Module:
    model = {"rnn": VanillaRNN, "lstm": LSTM}[kind](input_dim, hidden, num_classes)
    init_parameters(model, init, init_std, forget_bias)
    return model
