"""The original's claims get verdicts from a stated numeric rule: every verdict of every kind, on planted numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lstmgan.config import PalindromeConfig
from lstmgan.results.claims import (
    CLAIMS,
    FAILS,
    HEADERS,
    HOLDS,
    PARTLY,
    UNMEASURED,
    GanMeasured,
    Measured,
    StripReading,
    gan_measured,
    measurements,
    verdicts,
)
from lstmgan.results.summary import RunRecord

NEVER = None


def seeds(model: str, length: int, accs: list[float], epochs_to_99: list[int | None], epochs: int = 100) -> Measured:
    return Measured(model, length, accs, epochs_to_99, epochs)


def verdict(key: str, *measured: Measured, gan: GanMeasured | None = None) -> str:
    return next(row.verdict for row in verdicts(measured, gan) if row.claim.key == key)


def test_the_original_table_is_in_the_data():
    palindrome = {(c.model, c.length) for c in CLAIMS if c.length is not None}
    assert palindrome == {(m, n) for m in ("rnn", "lstm") for n in (5, 10, 15, 20)}
    assert len({c.key for c in CLAIMS}) == len(CLAIMS)
    assert [c.kind for c in CLAIMS if c.model == "gan"] == ["gan_digits", "gan_strip"]
    by_key = {c.key: c for c in CLAIMS}
    assert by_key["rnn-L15"].value == 0.12 and by_key["lstm-L10"].value == 50 and by_key["lstm-L15"].value == 60


CASES = [
    # "100 %": ≥ 80 % of the seeds reach 99 %
    ("rnn-L5", [1.0, 1.0, 1.0, 1.0, 0.5], [9, 9, 9, 9, NEVER], HOLDS),
    ("rnn-L5", [0.95, 0.95, 0.95], [NEVER] * 3, PARTLY),  # nearly there on average, no seed at 99 %
    ("rnn-L5", [1.0, 0.2, 0.2], [40, NEVER, NEVER], PARTLY),  # one seed gets there
    ("rnn-L5", [0.5, 0.6], [NEVER, NEVER], FAILS),
    # "converges at about epoch 50, 100 %": by 1.5 × 50 = 75
    ("lstm-L10", [1.0] * 3, [20, 70, 90], HOLDS),
    ("lstm-L10", [1.0] * 3, [80, 90, 95], PARTLY),  # converges, later than claimed
    ("lstm-L10", [1.0, 0.9, 0.8], [30, NEVER, NEVER], PARTLY),
    ("lstm-L10", [0.3, 0.4, 0.5], [NEVER] * 3, FAILS),
    # "still rising at epoch 100, nearly 100 %, not converged"
    ("rnn-L10", [0.96, 0.97, 0.99], [NEVER, NEVER, 97], HOLDS),
    ("rnn-L10", [0.5, 0.6, 0.7], [NEVER] * 3, PARTLY),  # not converged, but not nearly 100 % either
    ("rnn-L10", [1.0] * 3, [80, 85, 99], PARTLY),  # converges, late (≥ 75)
    ("rnn-L10", [1.0] * 3, [10, 20, 30], FAILS),  # converged long before epoch 100
    # "about 12 %"
    ("rnn-L15", [0.10, 0.20, 0.15], [NEVER] * 3, HOLDS),
    ("rnn-L15", [0.30, 0.35], [NEVER] * 2, PARTLY),
    ("rnn-L15", [0.9, 0.52, 0.2], [NEVER] * 3, FAILS),
    # "performs very badly"
    ("rnn-L20", [0.1, 0.2, 0.3], [NEVER] * 3, HOLDS),
    ("rnn-L20", [0.2, 0.9, 0.6], [NEVER, NEVER, NEVER], PARTLY),
    ("rnn-L20", [1.0, 0.95, 0.9], [50, 60, NEVER], FAILS),
    # "converges, perfect accuracy"
    ("lstm-L20", [1.0] * 5, [30, 40, 50, 60, 70], HOLDS),
]


@pytest.mark.parametrize("key, accs, epochs_to_99, expected", CASES)
def test_each_verdict_is_reachable(key, accs, epochs_to_99, expected):
    model, length = key.split("-")[0], int(key.split("-L")[1])
    assert verdict(key, seeds(model, length, accs, epochs_to_99)) == expected


def test_not_converged_counts_only_the_epochs_the_original_trained():
    # a 150-epoch run whose seeds reach 99 % after epoch 100 has still not converged at 100
    late = seeds("rnn", 10, [1.0, 1.0, 1.0], [120, 130, 140], epochs=150)
    assert verdict("rnn-L10", late) == HOLDS


@pytest.mark.parametrize("lstm, rnn, expected", [
    ([10, 12, 14], [20, 25, 30], HOLDS),
    ([40, 40, 40], [NEVER, NEVER, 90], HOLDS),  # the RNN's median seed never gets there
    ([20, 21, 22], [20, 22, 24], PARTLY),  # a tie within ±10 %
    ([30, 35, 40], [20, 25, 30], FAILS),
    ([NEVER, NEVER, 5], [20, 25, 30], FAILS),
    ([NEVER] * 3, [NEVER] * 3, FAILS),
])
def test_converges_faster_compares_median_epochs_to_99(lstm, rnn, expected):
    measured = [seeds("lstm", 5, [1.0] * 3, lstm), seeds("rnn", 5, [1.0] * 3, rnn)]
    assert verdict("lstm-L5-faster", *measured) == expected
    assert verdict("lstm-L5-faster", measured[0]) == UNMEASURED  # nothing to compare with


def test_rows_state_the_measurement_the_median_and_the_rule():
    rows = {r.claim.key: r for r in verdicts([seeds("lstm", 10, [1.0, 0.98, 1.0, 1.0], [40, NEVER, 60, 44]),
                                              seeds("rnn", 15, [0.11], [NEVER])])}
    lstm = rows["lstm-L10"]
    assert lstm.measured == "99.5 ± 1.0 %" and lstm.reached == "3/4" and lstm.epochs_to_99 == "52"
    assert lstm.verdict == PARTLY and "3/4 seeds reach 99 %" in lstm.why
    assert rows["rnn-L15"].measured == "11.0 %" and rows["rnn-L15"].epochs_to_99 == "never"  # one seed: no ±
    assert len(lstm.cells()) == len(HEADERS) and lstm.cells()[:2] == ["LSTM, L = 10", lstm.claim.says]
    assert rows["rnn-L20"].verdict == UNMEASURED and rows["rnn-L20"].measured == "–"


def test_too_few_epochs_mark_the_verdict_quick():
    row = verdicts([seeds("rnn", 5, [1.0, 1.0, 1.0], [30, 35, 40], epochs=50)])[0]
    assert row.quick and row.verdict == "quick: " + HOLDS and "50 of the original's 100 epochs" in row.why
    quick_fail = verdicts([seeds("rnn", 5, [0.4], [NEVER], epochs=50)])[0]
    assert quick_fail.verdict == "quick: " + FAILS
    assert not verdicts([seeds("rnn", 5, [1.0], [30], epochs=100)])[0].quick


def gan(fid: float = 2.0, floor: float = 0.5, histogram: tuple[int, ...] = (10,) * 10, max_prob: float = 0.95,
        strips: tuple[StripReading, ...] = (), epochs: int = 200) -> GanMeasured:
    return GanMeasured(epochs, [fid, fid], [floor, floor], [list(histogram), list(histogram)],
                       [max_prob, max_prob], strips)


@pytest.mark.parametrize("measured, expected", [
    (gan(), HOLDS),
    (gan(fid=20.0), PARTLY),  # FID 40× the floor; classes and confidence fine
    (gan(histogram=(50, 50) + (0,) * 8), PARTLY),  # two classes only
    (gan(fid=20.0, max_prob=0.5), FAILS),
])
def test_gan_samples_look_like_digits(measured, expected):
    assert verdict("gan-digits", gan=measured) == expected
    assert verdict("gan-digits") == UNMEASURED


def strip(inner: list[float], ends: tuple[int, int] = (3, 8)) -> StripReading:
    return StripReading([ends[0], *[ends[0]] * len(inner), ends[1]], [0.99, *inner, 0.99])


@pytest.mark.parametrize("strips, expected", [
    ((strip([0.95] * 7), strip([0.91] * 7)), HOLDS),
    ((strip([0.95] * 6 + [0.4]),), PARTLY),
    ((strip([0.5] * 5 + [0.95] * 2),), FAILS),
    ((strip([0.95] * 7, ends=(4, 4)),), UNMEASURED),  # ends of one class do not test the claim
])
def test_gan_interpolation_steps_are_good_digits(strips, expected):
    assert verdict("gan-strip", gan=gan(strips=strips)) == expected


def test_gan_verdicts_on_a_short_run_are_quick():
    rows = verdicts([], gan(epochs=15, strips=(strip([0.95] * 7),)))
    assert [r.verdict for r in rows if r.claim.model == "gan"] == ["quick: " + HOLDS] * 2


def test_gan_verdicts_on_other_data_say_so():
    other = GanMeasured(200, [2.0], [0.5], [[10] * 10], [0.95], (strip([0.95] * 7),), ["fashion-mnist"])
    rows = [r for r in verdicts([], other) if r.claim.model == "gan"]
    assert [r.verdict for r in rows] == ["other data: " + HOLDS] * 2
    assert all(r.why.endswith("trained on fashion-mnist, not the original's MNIST") for r in rows)
    mnist = gan(strips=(strip([0.95] * 7),))
    assert [r.verdict for r in verdicts([], mnist) if r.claim.model == "gan"] == [HOLDS] * 2


def test_the_claims_and_the_ablation_import_neither_torch_nor_matplotlib():
    code = ("import sys, lstmgan.results.claims, lstmgan.results.ablation; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def finished(model: str, length: int, seed: int, acc: float | None, epoch_to_99: int | None, epochs: int = 100,
             **settings: object) -> RunRecord:
    cfg = PalindromeConfig(model=model, length=length, seed=seed, **settings)
    result = None if acc is None else {"final_val_acc": acc, "epoch_to_99": epoch_to_99, "epochs": epochs}
    return RunRecord(config=cfg, path=Path(f"{model}-L{length}-s{seed}"), metrics=[], result=result)


def test_measurements_group_finished_runs_by_model_and_length():
    records = [finished("lstm", 10, 0, 1.0, 40), finished("lstm", 10, 1, 0.9, None, epochs=80),
               finished("lstm", 10, 2, None, None),  # unfinished: left out
               finished("rnn", 10, 0, 0.5, None)]
    lstm, rnn = measurements(records)
    assert (lstm.model, lstm.length, list(lstm.final_val_acc), list(lstm.epoch_to_99), lstm.epochs) == \
        ("lstm", 10, [1.0, 0.9], [40, None], 80)
    assert (rnn.model, list(rnn.final_val_acc)) == ("rnn", [0.5])


def test_gan_measured_from_result_and_strip_files():
    results = [{"epochs": 200, "fid": 2.0, "fid_floor": 0.4, "class_histogram": [10] * 10, "mean_max_prob": 0.95},
               {"epochs": 150, "fid": 3.0, "fid_floor": 0.5, "class_histogram": [10] * 10, "mean_max_prob": 0.9},
               {"epochs": 3, "fid": None, "fid_floor": 0.5, "class_histogram": None, "mean_max_prob": None}]
    strips = [{"min_confidence": 0.9, "strips": [{"classes": [1, 1, 7], "confidences": [0.99, 0.93, 0.98]}]}]
    measured = gan_measured(results, strips)
    assert measured is not None and measured.epochs == 150 and list(measured.fid) == [2.0, 3.0]
    assert measured.strips == [StripReading([1, 1, 7], [0.99, 0.93, 0.98])]
    assert gan_measured(results[2:]) is None
