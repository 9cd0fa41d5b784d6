"""The memory horizon as a figure: how much of the loss's gradient reaches the first step, per epoch.

Reads the `grad_x1`, `grad_h1` and `grad_hT` keys that palindrome training writes into each epoch's row
(see `palindrome.train.memory_horizon`). One column per length, one line per model (geometric mean over seeds,
band ×/÷ the geometric std: the numbers span orders of magnitude, so the y axes are logarithmic).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lstmgan.results.plots import COLORS, mean_std, plt, save_figure  # plots' pyplot: the Agg backend set first

# (what is plotted, its label); "ratio" is ‖∂ℓ/∂h_1‖ / ‖∂ℓ/∂h_T‖: the share of the gradient at the last step
# that survives back to the first, free of the loss's own scale (which shrinks as a model gets it right).
PANELS = [("grad_h1", "‖∂ℓ/∂h₁‖"), ("grad_x1", "‖∂ℓ/∂x₁‖"), ("ratio", "‖∂ℓ/∂h₁‖ / ‖∂ℓ/∂h_T‖")]
KEYS = ("grad_x1", "grad_h1")
FLOOR = 1e-30  # float32 gradients underflow to 0 over long sequences; 0 has no logarithm


def _value(row: dict[str, Any], key: str) -> float | None:
    if key == "ratio":
        h1, hT = row.get("grad_h1"), row.get("grad_hT")
        return h1 / hT if isinstance(h1, (int, float)) and isinstance(hT, (int, float)) and hT > 0 else None
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def horizon_figure(records: Iterable[Any], path: Path) -> Path | None:
    """Gradient norms at the first step vs epoch, per model and length; the PNG's path, or None when no
    record has horizon rows (runs trained before they were measured). `records`: RunRecord-like objects
    (`config.model`, `config.length`, `metrics`)."""
    grouped: dict[int, dict[str, list[list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        rows = [m for m in rec.metrics or [] if isinstance(m.get("epoch"), int) and any(k in m for k in KEYS)]
        if rows:
            grouped[rec.config.length][rec.config.model.upper()].append(rows)
    if not grouped:
        return None
    panels = [(key, label) for key, label in PANELS
              if any(_value(row, key) is not None for by in grouped.values() for runs in by.values()
                     for rows in runs for row in rows)]
    lengths = sorted(grouped)
    fig, axes = plt.subplots(len(panels), len(lengths), figsize=(3.2 * len(lengths) + 1, 2.6 * len(panels) + 0.6),
                             sharex=True, sharey="row", squeeze=False)
    for col, length in enumerate(lengths):
        for row_index, (key, label) in enumerate(panels):
            ax = axes[row_index, col]
            for line, runs in sorted(grouped[length].items(), key=lambda kv: (not kv[0].startswith("RNN"), kv[0])):
                curves = [{m["epoch"]: np.log10(max(v, FLOOR)) for m in rows if (v := _value(m, key)) is not None}
                          for rows in runs]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                epochs, mean, std = mean_std(curves)
                color = COLORS.get(line.lower())
                ax.plot(epochs, 10 ** mean, color=color, label=f"{line} (n={len(curves)})")
                ax.fill_between(epochs, 10 ** (mean - std), 10 ** (mean + std), color=color, alpha=0.25, linewidth=0)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            if row_index == 0:
                ax.set_title(f"L = {length}")
            if col == 0:
                ax.set_ylabel(label)
            if row_index == len(panels) - 1:
                ax.set_xlabel("epoch")
    axes[0, -1].legend(loc="best", fontsize=8)
    fig.suptitle("Memory horizon: the loss's gradient at the first step (validation set; geometric mean over seeds)")
    return save_figure(fig, path)
