"""The ablation's ranking (results/ablation.py): which factor moves each model at the long lengths, per length,
on planted numbers."""

from __future__ import annotations

import pytest
from test_claims import finished

from lstmgan.results.ablation import AblationRun, ablation_runs, rank_factors


def ablation(model: str, length: int, accuracy: dict[tuple[str, str, float], float]) -> list[AblationRun]:
    """Two seeds per cell of encoding × init × forget_bias, planted at ±1 point around the cell's accuracy."""
    return [AblationRun(model, length, {"encoding": e, "init": i, "forget_bias": f}, acc + d)
            for (e, i, f), acc in accuracy.items() for d in (-0.01, 0.01)]


def grid(base: float, encoding: float, init: float, forget_bias: float) -> dict[tuple[str, str, float], float]:
    """A full grid where switching to scalar / normal / forget bias 1 adds the given amounts."""
    return {(e, i, f): base + encoding * (e == "scalar") + init * (i == "normal") + forget_bias * (f == 1.0)
            for e in ("onehot", "scalar") for i in ("pytorch", "normal") for f in (0.0, 1.0)}


def test_rank_factors_orders_the_main_effects_at_the_long_lengths():
    runs = [*ablation("lstm", 15, grid(0.3, encoding=0.2, init=0.0, forget_bias=0.5)),
            *ablation("lstm", 20, grid(0.2, encoding=0.1, init=0.05, forget_bias=0.6)),
            *ablation("lstm", 5, grid(0.0, encoding=0.9, init=0.0, forget_bias=0.0)),  # short: not counted
            *ablation("rnn", 15, grid(0.2, encoding=-0.15, init=0.05, forget_bias=0.0))]
    ranked = rank_factors(runs)
    lstm = ranked["lstm"]
    assert [e.factor for e in lstm] == ["forget_bias", "encoding", "init"]
    assert lstm[0].effect == pytest.approx(0.55) and lstm[0].lengths == (15, 20)
    assert lstm[0].best == 1.0 and lstm[0].worst == 0.0
    assert lstm[1].effect == pytest.approx(0.15) and lstm[2].effect == pytest.approx(0.025)
    assert lstm[0].text().startswith("forget_bias moves it by 55.0 points (L = 15: best 1.0: ")
    assert "; L = 20: best 1.0: " in lstm[0].text() and "changing with the length" not in lstm[0].text()
    rnn = ranked["rnn"]
    assert [e.factor for e in rnn] == ["encoding", "init", "forget_bias"] and rnn[0].best == "onehot"
    assert rnn[2].effect == pytest.approx(0.0)


def test_a_factor_that_helps_at_one_length_and_hurts_at_the_other_says_so():
    """Pooled over both lengths its values tie; per length each moves the accuracy by 10 points."""
    runs = [*ablation("lstm", 15, grid(0.5, encoding=0.0, init=0.0, forget_bias=0.1)),
            *ablation("lstm", 20, grid(0.6, encoding=0.0, init=0.0, forget_bias=-0.1))]
    (bias,) = [e for e in rank_factors(runs)["lstm"] if e.factor == "forget_bias"]
    assert bias.effect == pytest.approx(0.1) and bias.means[0.0] == pytest.approx(bias.means[1.0])
    assert "L = 15: best 1.0: 60 %, worst 0.0: 50 %; L = 20: best 0.0: 60 %, worst 1.0: 50 %" in bias.text()
    assert bias.text().endswith("its best value changing with the length")


def test_rank_factors_skips_a_factor_that_took_one_value():
    runs = [AblationRun("lstm", 15, {"encoding": e, "init": "normal"}, acc) for e, acc in (("onehot", 0.2),
                                                                                         ("scalar", 0.9))]
    (only,) = rank_factors(runs)["lstm"]
    assert only.factor == "encoding" and only.effect == pytest.approx(0.7) and only.best == "scalar"
    assert rank_factors([AblationRun("lstm", 5, {"encoding": "onehot"}, 0.5)]) == {}


def test_ablation_runs_read_the_factors_from_the_configs():
    runs = ablation_runs([finished("lstm", 15, 0, 0.7, None, encoding="scalar", init="normal", forget_bias=1.0),
                          finished("lstm", 15, 1, None, None)])
    assert runs == [AblationRun("lstm", 15, {"encoding": "scalar", "init": "normal", "forget_bias": 1.0}, 0.7)]
