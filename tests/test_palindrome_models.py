"""The models follow their equations: checked against torch's own fused nn.RNN / nn.LSTM."""

import math

import pytest
import torch
from torch import nn

from lstmgan.palindrome.models import LSTM, VanillaRNN, build_model


def test_no_library_recurrent_modules_are_used():
    for kind in ("rnn", "lstm"):
        model = build_model(kind, 10, 8, 10, "pytorch", 0.01)
        assert not any(isinstance(m, (nn.RNNBase, nn.RNNCellBase)) for m in model.modules())


def test_vanilla_rnn_matches_nn_rnn_with_the_same_weights():
    torch.manual_seed(0)
    ours = build_model("rnn", 10, 12, 10, "pytorch", 0.01)
    ref = nn.RNN(10, 12, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.W_hx.T)
        ref.weight_hh_l0.copy_(ours.W_hh.T)
        ref.bias_ih_l0.copy_(ours.b_h)
        ref.bias_hh_l0.zero_()
    x = torch.randn(5, 7, 10)
    h_T = ref(x)[0][:, -1]
    assert torch.allclose(ours(x), h_T @ ours.W_ph + ours.b_p, atol=1e-5)
    assert torch.allclose(ours.forward_reference(x), ours(x), atol=1e-5)


@pytest.mark.parametrize("init", ["pytorch", "normal"])
@pytest.mark.parametrize("forget_bias", [0.0, 1.0, -2.5])
def test_lstm_matches_nn_lstm_with_the_same_weights(forget_bias, init):
    torch.manual_seed(0)
    ours: LSTM = build_model("lstm", 10, 12, 10, init, 0.3, forget_bias=forget_bias).double()
    ref = nn.LSTM(10, 12, batch_first=True).double()
    with torch.no_grad():  # torch stacks the gates as i, f, g, o; the cell equations are the same
        order = ("i", "f", "g", "o")
        ref.weight_ih_l0.copy_(torch.cat([getattr(ours, f"W_{g}x").T for g in order]))
        ref.weight_hh_l0.copy_(torch.cat([getattr(ours, f"W_{g}h").T for g in order]))
        ref.bias_ih_l0.copy_(torch.cat([getattr(ours, f"b_{g}") for g in order]))
        ref.bias_hh_l0.zero_()
    assert ref.bias_ih_l0[12:24].mean().item() == pytest.approx(forget_bias, abs=1 / math.sqrt(12))
    x = torch.randn(5, 9, 10, dtype=torch.double, requires_grad=True)
    ref_out = ref(x)[0][:, -1] @ ours.W_ph + ours.b_p
    # the same gradients too: w.r.t. the input, and w.r.t. the forget-gate bias (torch holds it in bias_ih)
    r_x, r_bias = torch.autograd.grad(ref_out.square().sum(), (x, ref.bias_ih_l0))
    for out in (ours(x), ours.forward_reference(x)):
        assert torch.allclose(out, ref_out, atol=1e-12)
        g_x, g_bf = torch.autograd.grad(out.square().sum(), (x, ours.b_f))
        assert torch.allclose(g_x, r_x, atol=1e-12) and torch.allclose(g_bf, r_bias[12:24], atol=1e-12)


def test_forget_bias_sets_only_the_forget_gate_bias_and_leaves_the_draws_alone():
    torch.manual_seed(0)
    plain = dict(build_model("lstm", 1, 8, 10, "normal", 0.01).named_parameters())
    torch.manual_seed(0)
    shifted = dict(build_model("lstm", 1, 8, 10, "normal", 0.01, forget_bias=1.0).named_parameters())
    assert torch.equal(shifted["b_f"], torch.ones(8))  # the normal scheme's zero bias becomes exactly 1
    assert all(torch.equal(p, shifted[name]) for name, p in plain.items() if name != "b_f")
    torch.manual_seed(0)
    rnn = dict(build_model("rnn", 1, 8, 10, "pytorch", 0.01, forget_bias=1.0).named_parameters())
    torch.manual_seed(0)
    assert all(torch.equal(p, rnn[n]) for n, p in build_model("rnn", 1, 8, 10, "pytorch", 0.01).named_parameters())


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_initialisation_schemes(kind):
    torch.manual_seed(0)
    uniform = build_model(kind, 10, 64, 10, "pytorch", 0.01)
    bound = 1 / math.sqrt(64)
    assert all(p.abs().max() <= bound for p in uniform.parameters())
    normal = build_model(kind, 10, 64, 10, "normal", 0.05)
    weights = torch.cat([p.flatten() for n, p in normal.named_parameters() if n.startswith("W_")])
    assert abs(weights.std().item() - 0.05) < 0.005
    assert all((p == 0).all() for n, p in normal.named_parameters() if n.startswith("b_"))


def test_output_is_logits_of_the_last_step_only():
    model = VanillaRNN(1, 8, 10)
    for p in (model.W_hx, model.W_hh, model.b_h, model.W_ph, model.b_p):
        torch.nn.init.normal_(p)
    x = torch.randn(3, 6, 1)
    # the readout applied to every hidden state of the whole sequence, written out from the equations
    h, readouts = torch.zeros(3, 8), []
    for t in range(6):
        h = torch.tanh(x[:, t] @ model.W_hx + model.b_h + h @ model.W_hh)
        readouts.append(h @ model.W_ph + model.b_p)
    out = model(x)
    assert torch.allclose(out, readouts[-1], atol=1e-5)  # the last step's logits...
    assert all(not torch.allclose(out, r, atol=1e-3) for r in readouts[:-1])  # ...and no earlier step's


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("forget_bias", [0.0, 1.0])
def test_fast_forward_equals_the_step_by_step_equations_in_values_and_gradients(kind, forget_bias):
    torch.manual_seed(1)
    model = build_model(kind, 10, 16, 10, "pytorch", 0.01, forget_bias=forget_bias).double()
    x = torch.randn(6, 9, 10, dtype=torch.double)
    fast, ref = model(x), model.forward_reference(x)
    assert torch.allclose(fast, ref, atol=1e-12)
    g_fast = torch.autograd.grad(fast.square().sum(), list(model.parameters()))
    g_ref = torch.autograd.grad(ref.square().sum(), list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g_fast, g_ref))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_hand_written_backward_passes_gradcheck(kind):
    from lstmgan.palindrome.models import LSTMRecurrence, RNNRecurrence

    torch.manual_seed(2)
    H = 3
    width = 4 * H if kind == "lstm" else H
    xw = torch.randn(2, 4, width, dtype=torch.double, requires_grad=True)
    W = (0.5 * torch.randn(H, width, dtype=torch.double)).requires_grad_()
    fn = LSTMRecurrence if kind == "lstm" else RNNRecurrence
    assert torch.autograd.gradcheck(fn.apply, (xw, W))
