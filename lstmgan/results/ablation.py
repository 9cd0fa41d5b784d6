"""The ablation's ranking: which factor (input encoding, initialisation, forget-gate bias) moves each model's
final validation accuracy most at the long lengths, per length, where the original's RNN fails and its LSTM
does not. Pure Python, like claims.py (no torch, no matplotlib)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lstmgan.results.markdown import pct

FACTORS = ("encoding", "init", "forget_bias")  # the ablation's axes that rank_factors weighs
LONG_LENGTHS = (15, 20)  # where the original's RNN fails and its LSTM does not


@dataclass(frozen=True)
class AblationRun:
    """One finished ablation run: its model, length, the factors' values and its final val accuracy."""

    model: str
    length: int
    settings: dict[str, Any]
    final_val_acc: float


@dataclass(frozen=True)
class FactorEffect:
    """How much one factor moves one model's mean final val accuracy at the long lengths.

    `effect` is, per long length, the spread (best − worst) of the mean accuracy over the runs with each of
    the factor's values (the other factors and the seeds averaged over: a main effect in a full grid),
    averaged over the lengths; `by_length` holds those means per length, `means` each value's mean over all
    long-length runs (a factor that helps at one length and hurts at the other can tie there)."""

    model: str
    factor: str
    effect: float
    means: dict[Any, float]
    by_length: dict[int, dict[Any, float]]

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(self.by_length)

    @property
    def best(self) -> Any:
        return max(self.means, key=self.means.__getitem__)

    @property
    def worst(self) -> Any:
        return min(self.means, key=self.means.__getitem__)

    def text(self) -> str:
        if self.effect == 0:
            return f"{self.factor} does not move it ({pct(self.means[self.best])} with each value)"
        parts, bests = [], set()
        for n, means in self.by_length.items():
            best, worst = max(means, key=means.__getitem__), min(means, key=means.__getitem__)
            parts.append(f"L = {n}: best {best}: {pct(means[best])}, worst {worst}: {pct(means[worst])}")
            bests.add(best)
        return (f"{self.factor} moves it by {100 * self.effect:.1f} points ({'; '.join(parts)})"
                + (", its best value changing with the length" if len(bests) > 1 else ""))


def rank_factors(runs: Iterable[AblationRun]) -> dict[str, list[FactorEffect]]:
    """Per model, the factors that took more than one value at the long lengths, largest effect first."""
    by_model: dict[str, list[AblationRun]] = defaultdict(list)
    for run in runs:
        if run.length in LONG_LENGTHS:
            by_model[run.model].append(run)
    ranked = {}
    for model, model_runs in sorted(by_model.items()):
        effects = []
        for factor in FACTORS:
            by_length = {}
            for length in sorted({r.length for r in model_runs}):
                means = _means((r for r in model_runs if r.length == length), factor)
                if len(means) > 1:
                    by_length[length] = means
            if by_length:
                spread = statistics.fmean(max(m.values()) - min(m.values()) for m in by_length.values())
                means = _means((r for r in model_runs if r.length in by_length), factor)
                effects.append(FactorEffect(model, factor, spread, means, by_length))
        ranked[model] = sorted(effects, key=lambda e: -e.effect)
    return ranked


def _means(runs: Iterable[AblationRun], factor: str) -> dict[Any, float]:
    """Mean final val accuracy per value of `factor` over the runs that record it."""
    values: dict[Any, list[float]] = defaultdict(list)
    for run in runs:
        if factor in run.settings:
            values[run.settings[factor]].append(run.final_val_acc)
    return {v: statistics.fmean(accs) for v, accs in values.items()}


def ablation_runs(records: Iterable[Any]) -> list[AblationRun]:
    """Finished runs as AblationRuns, the factors read from each run's config (a config without a factor —
    one written before it existed — records none for it)."""
    return [AblationRun(rec.config.model, rec.config.length,
                        {f: getattr(rec.config, f) for f in FACTORS if hasattr(rec.config, f)},
                        rec.result["final_val_acc"])
            for rec in records if rec.result and isinstance(rec.result.get("final_val_acc"), (int, float))]
