"""The original study's claims as data, and the numeric rule that gives each a verdict.

The original (palindromes, vanilla RNN vs LSTM; a GAN on MNIST) states its findings in words; `CLAIMS` holds
them, one per statement, with the number each statement carries. `verdicts` turns measurements — per model
and length, each seed's final validation accuracy and first epoch at ≥ 99 %, and the epochs trained — into
one row per claim: what the original says, what was measured, and a verdict computed by a stated numeric
rule, never written by hand. Which ablation factor moves the long lengths most: results/ablation.py.

Pure Python (no torch, no matplotlib): the report, the tests and a notebook import it at no cost.

The rule is stated in words, with these constants' values, by `report.rule_text()` (the report prints it
above its table); the verdict functions below apply it. Any claim without measurements is "not measured"; a
claim whose runs trained fewer epochs than the original judged it at (its `horizon`) is marked "quick: ".
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lstmgan.results.markdown import acc_text, mean_std_text, pct

HOLDS, PARTLY, FAILS, UNMEASURED = "holds", "partly", "does not hold", "not measured"
QUICK = "quick: "
OTHER_DATA = "other data: "  # a GAN trained on another dataset than the original's MNIST (e.g. Fashion-MNIST)
ORIGINAL_DATASET = "mnist"

ORIGINAL_EPOCHS = 100  # the original trained every palindrome model for 100 epochs
GAN_EPOCHS = 200
TARGET = 0.99  # "reaches 99 %": the summary's epoch_to_99 (palindrome.train.TARGET_ACC)
CHANCE = 0.1  # ten digits

REACH_SHARE = 0.8  # of the seeds that must reach 99 % for "100 %"
NEARLY = 0.9  # mean final accuracy that is "nearly 100 %", and that "solves" the task
EPOCH_SLACK = 1.5  # "about epoch E" holds up to 1.5 E
LATE = 0.75  # converging after 75 % of the horizon is "still rising" near its end
ABOUT_BAND, ABOUT_PARTLY_BAND = 0.10, 0.25  # "about p": within 10 points; partly within 25
VERY_BAD = 0.3  # "very badly": within 20 points of chance
FASTER_MARGIN = 0.1  # median epochs within ±10 % of the other model's are a tie
FID_RATIO = 10.0  # classifier-FID at most 10× the real-vs-real floor
COVERAGE = 0.5  # a class is covered with at least half its uniform share of the samples
CONFIDENT = 0.9  # the classifier's max-probability that reads an image as a digit (the strips' end rule too)
STRIP_PARTLY = 0.5  # share of good inner frames for "partly"


@dataclass(frozen=True)
class Claim:
    """One statement of the original. `value`: the number its kind needs (the "about" accuracy, the epoch
    of "converges at about epoch E"); `other`: the model a "faster" claim compares against."""

    key: str
    model: str  # rnn | lstm | gan
    length: int | None  # palindrome length; None for the GAN
    says: str  # the original's words
    kind: str  # reaches | converges_by | not_converged | about | very_bad | faster | gan_digits | gan_strip
    value: float | None = None
    other: str | None = None
    horizon: int = ORIGINAL_EPOCHS  # the epochs the original judged it at

    @property
    def subject(self) -> str:
        return "GAN" if self.length is None else f"{self.model.upper()}, L = {self.length}"


CLAIMS: tuple[Claim, ...] = (
    Claim("rnn-L5", "rnn", 5, "100 % validation accuracy", "reaches"),
    Claim("lstm-L5", "lstm", 5, "100 %", "reaches"),
    Claim("lstm-L5-faster", "lstm", 5, "converges faster than the RNN", "faster", other="rnn"),
    Claim("rnn-L10", "rnn", 10, "still rising at epoch 100, nearly 100 %, not converged", "not_converged"),
    Claim("lstm-L10", "lstm", 10, "converges at about epoch 50, 100 %", "converges_by", 50),
    Claim("rnn-L15", "rnn", 15, "about 12 % validation accuracy (trains very slowly)", "about", 0.12),
    Claim("lstm-L15", "lstm", 15, "converges at about epoch 60, 100 %", "converges_by", 60),
    Claim("rnn-L20", "rnn", 20, "performs very badly", "very_bad"),
    Claim("lstm-L20", "lstm", 20, "converges, perfect accuracy", "reaches"),
    Claim("gan-digits", "gan", None, "after 200 epochs the samples look like hand-written digits", "gan_digits",
          horizon=GAN_EPOCHS),
    Claim("gan-strip", "gan", None, "the 7 interpolation steps between two samples of different classes are "
          "all good-quality digits", "gan_strip", horizon=GAN_EPOCHS),
)


@dataclass(frozen=True)
class Measured:
    """One model at one length over its seeds (final_val_acc and epoch_to_99 in seed order)."""

    model: str
    length: int
    final_val_acc: Sequence[float]
    epoch_to_99: Sequence[int | None]
    epochs: int  # epochs trained: the fewest over the seeds

    @property
    def mean(self) -> float:
        return statistics.fmean(self.final_val_acc)

    def reached(self, by: float = math.inf) -> int:
        return sum(e is not None and e <= by for e in self.epoch_to_99)

    def median_epoch(self, by: float = math.inf) -> float:
        """Median epoch to 99 % (only epochs ≤ by count); math.inf when the median seed never got there."""
        return statistics.median([e if e is not None and e <= by else math.inf for e in self.epoch_to_99])


@dataclass(frozen=True)
class StripReading:
    """The classifier's reading of one interpolation strip, both ends included."""

    classes: Sequence[int]
    confidences: Sequence[float]


@dataclass(frozen=True)
class GanMeasured:
    """The GAN over its seeds: final classifier-FID, its floor, sample class counts and mean max-probability
    per seed, and every strip drawn from any of them."""

    epochs: int  # the fewest over the seeds
    fid: Sequence[float]
    fid_floor: Sequence[float]
    class_histogram: Sequence[Sequence[int]]
    mean_max_prob: Sequence[float]
    strips: Sequence[StripReading] = ()
    datasets: Sequence[str] = (ORIGINAL_DATASET,)  # those of the seeds: the claims are about MNIST digits


@dataclass(frozen=True)
class ClaimRow:
    claim: Claim
    measured: str  # mean ± std over seeds (no ± part with one seed)
    reached: str  # seeds reaching 99 %: "4/5"
    epochs_to_99: str  # the median, "never", or "–"
    verdict: str  # holds | partly | does not hold | not measured, "quick: " in front when quick
    why: str  # the rule's numbers
    quick: bool = False

    def cells(self) -> list[str]:
        return [self.claim.subject, self.claim.says, self.measured, self.reached, self.epochs_to_99, self.verdict,
                self.why]


HEADERS = ["claim", "the original says", "measured", "seeds ≥ 99 %", "epochs to 99 % (median)", "verdict", "why"]


def verdicts(measured: Iterable[Measured], gan: GanMeasured | None = None) -> list[ClaimRow]:
    """One row per claim, in the claims' order, from the measurements (see the module's docstring)."""
    found = {(m.model, m.length): m for m in measured}
    rows = []
    for claim in CLAIMS:
        if claim.length is None:
            rows.append(_gan_row(claim, gan))
            continue
        m = found.get((claim.model, claim.length))
        other = found.get((claim.other, claim.length)) if claim.other else None
        if m is None or not m.final_val_acc or (claim.other and (other is None or not other.final_val_acc)):
            rows.append(ClaimRow(claim, "–", "–", "–", UNMEASURED, "no finished runs"))
            continue
        verdict, why = _palindrome_verdict(claim, m, other)
        epochs = min(m.epochs, other.epochs) if other else m.epochs
        rows.append(_row(claim, acc_text(m.final_val_acc), f"{m.reached()}/{len(m.epoch_to_99)}",
                         epoch_text(m.median_epoch()), verdict, why, epochs))
    return rows


def _row(claim: Claim, measured: str, reached: str, epochs_to_99: str, verdict: str, why: str,
         epochs: int) -> ClaimRow:
    quick = epochs < claim.horizon
    if quick:
        why += f"; {epochs} of the original's {claim.horizon} epochs"
    return ClaimRow(claim, measured, reached, epochs_to_99, QUICK + verdict if quick else verdict, why, quick)


def _palindrome_verdict(claim: Claim, m: Measured, other: Measured | None) -> tuple[str, str]:
    n, mean, share = len(m.epoch_to_99), m.mean, m.reached() / len(m.epoch_to_99)
    reach = f"{m.reached()}/{n} seeds reach 99 %"
    if claim.kind == "reaches" and share >= REACH_SHARE:
        return HOLDS, f"{reach} (≥ {pct(REACH_SHARE)} needed)"
    if claim.kind == "converges_by" and share >= REACH_SHARE:
        assert claim.value is not None
        by, median = EPOCH_SLACK * claim.value, m.median_epoch()
        if median <= by:
            return HOLDS, f"{reach}, median epoch {epoch_text(median)} ≤ {by:g}"
        return PARTLY, f"{reach}, but the median epoch {epoch_text(median)} > {by:g}"
    if claim.kind in ("reaches", "converges_by"):  # too few seeds reach 99 %
        if mean >= NEARLY or m.reached():
            return PARTLY, f"{reach}, mean {pct(mean)} (≥ {pct(REACH_SHARE)} of seeds needed to hold)"
        return FAILS, f"{reach}, mean {pct(mean)} < {pct(NEARLY)}"
    if claim.kind == "not_converged":
        h = claim.horizon
        by_h, median = m.reached(h), m.median_epoch(h)
        reach = f"{by_h}/{n} seeds reach 99 % by epoch {h}"
        if by_h < n / 2:
            if mean >= NEARLY:
                return HOLDS, f"{reach}, mean {pct(mean)} ≥ {pct(NEARLY)}"
            return PARTLY, f"{reach}, but mean {pct(mean)} < {pct(NEARLY)}: not nearly 100 %"
        if median >= LATE * h:
            return PARTLY, f"{reach}, late: median epoch {epoch_text(median)} ≥ {LATE * h:g}"
        return FAILS, f"{reach}, median epoch {epoch_text(median)} < {LATE * h:g}: converged"
    if claim.kind == "about":
        assert claim.value is not None
        off = abs(mean - claim.value)
        text = f"mean {pct(mean)} is {100 * off:.1f} points from {pct(claim.value)}"
        if off <= ABOUT_BAND:
            return HOLDS, f"{text} (≤ {100 * ABOUT_BAND:g})"
        if off <= ABOUT_PARTLY_BAND:
            return PARTLY, f"{text} (≤ {100 * ABOUT_PARTLY_BAND:g} for partly, ≤ {100 * ABOUT_BAND:g} to hold)"
        return FAILS, f"{text} (> {100 * ABOUT_PARTLY_BAND:g})"
    if claim.kind == "very_bad":
        if mean <= VERY_BAD:
            return HOLDS, f"mean {pct(mean)} ≤ {pct(VERY_BAD)} (chance is {pct(CHANCE)})"
        if mean < NEARLY:
            return PARTLY, f"mean {pct(mean)}: above {pct(VERY_BAD)}, below {pct(NEARLY)}"
        return FAILS, f"mean {pct(mean)} ≥ {pct(NEARLY)}: it solves the task"
    if claim.kind == "faster":
        assert other is not None
        a, b = m.median_epoch(), other.median_epoch()
        text = (f"median epoch to 99 %: {m.model.upper()} {epoch_text(a)}, "
                f"{other.model.upper()} {epoch_text(b)}")
        if math.isinf(a):
            return FAILS, text
        if math.isinf(b) or a <= (1 - FASTER_MARGIN) * b:
            return HOLDS, text
        if a <= (1 + FASTER_MARGIN) * b:
            return PARTLY, f"{text}: a tie (within ±{pct(FASTER_MARGIN)})"
        return FAILS, f"{text}: slower"
    raise ValueError(f"unknown claim kind {claim.kind!r}")


def _gan_row(claim: Claim, gan: GanMeasured | None) -> ClaimRow:
    if gan is None or not gan.fid:
        return ClaimRow(claim, "–", "–", "–", UNMEASURED, "no finished GAN run")
    row = _gan_verdict(claim, gan)
    others = sorted(set(gan.datasets) - {ORIGINAL_DATASET})
    if not others or row.verdict == UNMEASURED:
        return row
    return replace(row, verdict=OTHER_DATA + row.verdict,
                   why=f"{row.why}; trained on {', '.join(others)}, not the original's MNIST")


def _gan_verdict(claim: Claim, gan: GanMeasured) -> ClaimRow:
    if claim.kind == "gan_digits":
        fid, floor = statistics.fmean(gan.fid), statistics.fmean(gan.fid_floor)
        ratio = fid / floor if floor > 0 else math.inf
        covered = [sum(c >= COVERAGE * sum(h) / len(h) for c in h) for h in gan.class_histogram]
        classes = len(gan.class_histogram[0]) if gan.class_histogram else 0
        confidence = statistics.fmean(gan.mean_max_prob)
        signs = [ratio <= FID_RATIO, bool(covered) and min(covered) == classes, confidence >= CONFIDENT]
        measured = (f"classifier-FID {mean_std_text(gan.fid, '{:.2f}')} "
                    f"(floor {mean_std_text(gan.fid_floor, '{:.2f}')}); "
                    f"classes covered {'/'.join(map(str, covered))} of {classes}; "
                    f"max-prob {mean_std_text(gan.mean_max_prob, '{:.3f}')}")
        why = (f"FID/floor {ratio:.1f} {'≤' if signs[0] else '>'} {FID_RATIO:g}; "
               f"{'every' if signs[1] else 'not every'} seed covers all {classes} classes; "
               f"max-prob {confidence:.3f} {'≥' if signs[2] else '<'} {CONFIDENT}")
        verdict = HOLDS if all(signs) else PARTLY if sum(signs) == 2 else FAILS
        return _row(claim, measured, "–", "–", verdict, why, gan.epochs)
    if claim.kind == "gan_strip":
        usable = [s for s in gan.strips if len(s.classes) > 2 and s.classes[0] != s.classes[-1]]
        if not usable:
            return ClaimRow(claim, "–", "–", "–", UNMEASURED, "no strip between two different classes")
        inner = [c for s in usable for c in s.confidences[1:-1]]
        good = sum(c >= CONFIDENT for c in inner)
        measured = "; ".join(" ".join(f"{k}({c:.2f})" for k, c in zip(s.classes, s.confidences)) for s in usable)
        why = f"{good}/{len(inner)} inner frames read with confidence ≥ {CONFIDENT} over {len(usable)} strip(s)"
        verdict = HOLDS if good == len(inner) else PARTLY if good >= STRIP_PARTLY * len(inner) else FAILS
        return _row(claim, measured, "–", "–", verdict, why, gan.epochs)
    raise ValueError(f"unknown claim kind {claim.kind!r}")


# --- from run folders' records ---------------------------------------------------------------------


def measurements(records: Iterable[Any]) -> list[Measured]:
    """Finished palindrome runs grouped by model and length, seeds in the order given; unfinished ones are
    left out. `records`: RunRecord-like (`config.model`, `config.length`, `result` = result.json or None)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if rec.result and isinstance(rec.result.get("final_val_acc"), (int, float)):
            groups[rec.config.model, rec.config.length].append(rec.result)
    return [Measured(model, length, [r["final_val_acc"] for r in results], [r.get("epoch_to_99") for r in results],
                     min(int(r.get("epochs") or 0) for r in results))
            for (model, length), results in sorted(groups.items())]


def gan_measured(results: Iterable[dict[str, Any]], strip_files: Iterable[dict[str, Any]] = ()) -> GanMeasured | None:
    """The GAN's seeds from their result.json (those with a final evaluation) and the strips from their
    interpolation/<method>.json files; None when no seed was evaluated."""
    numbers = ("fid", "fid_floor", "mean_max_prob")
    done = [r for r in results if all(isinstance(r.get(k), (int, float)) for k in numbers)
            and isinstance(r.get("class_histogram"), list)]
    if not done:
        return None
    strips = [StripReading(s["classes"], s["confidences"]) for f in strip_files for s in f.get("strips", [])
              if isinstance(s.get("classes"), list) and isinstance(s.get("confidences"), list)]
    return GanMeasured(min(int(r.get("epochs") or 0) for r in done), [r["fid"] for r in done],
                       [r["fid_floor"] for r in done], [r["class_histogram"] for r in done],
                       [r["mean_max_prob"] for r in done], strips,
                       [str(r.get("dataset") or ORIGINAL_DATASET) for r in done])


# --- text --------------------------------------------------------------------------------------------


def epoch_text(epoch: float) -> str:
    return "never" if math.isinf(epoch) else f"{epoch:g}"
