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
batch of row vectors. Two things make these fast without changing the math: the input terms W_·x x_t of
all time steps are computed in one matrix product before the loop, and the LSTM's four gates are
evaluated as one product against the gate matrices laid side by side.
"""

from __future__ import annotations

import math

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N × T × input_dim → logits N × num_classes."""
        xw = torch.addmm(self.b_h, x.flatten(0, 1), self.W_hx).view(x.shape[0], x.shape[1], -1)
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(torch.addmm(xw[:, t], h, self.W_hh))
        return torch.addmm(self.b_p, h, self.W_ph)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N × T × input_dim → logits N × num_classes."""
        n, steps, _ = x.shape
        W_x, W_h, b = self._stacked("Wx"), self._stacked("Wh"), self._stacked("b")
        xw = torch.addmm(b, x.flatten(0, 1), W_x).view(n, steps, -1)
        h = c = x.new_zeros(n, self.hidden)
        for t in range(steps):
            pre = torch.addmm(xw[:, t], h, W_h)
            g, (i, f, o) = torch.tanh(pre[:, : self.hidden]), torch.sigmoid(pre[:, self.hidden:]).chunk(3, dim=1)
            c = g * i + c * f
            h = torch.tanh(c) * o
        return torch.addmm(self.b_p, h, self.W_ph)


def init_parameters(model: nn.Module, scheme: str, std: float) -> None:
    """pytorch: every parameter ~ U(−1/√H, 1/√H), as nn.RNN/nn.LSTM do.
    normal: weights ~ N(0, std²) and biases = 0, the small-normal scheme of many course templates."""
    bound = 1 / math.sqrt(model.hidden)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if scheme == "pytorch":
                p.uniform_(-bound, bound)
            elif name.startswith("b_"):
                p.zero_()
            else:
                p.normal_(0.0, std)


def build_model(kind: str, input_dim: int, hidden: int, num_classes: int, init: str, init_std: float) -> nn.Module:
    model = {"rnn": VanillaRNN, "lstm": LSTM}[kind](input_dim, hidden, num_classes)
    init_parameters(model, init, init_std)
    return model
