"""Figures (matplotlib, Agg): curves with mean ± std bands over seeds. Every writer returns its paths."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lstmgan.fs import write_bytes_atomic  # noqa: E402

COLORS = {"rnn": "tab:orange", "lstm": "tab:blue"}
PANELS = [("train_acc", "train accuracy"), ("val_acc", "validation accuracy"),
          ("train_loss", "train loss"), ("val_loss", "validation loss")]


def save_figure(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def mean_std(curves: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-epoch mean and std over the runs that reached that epoch (partial runs included)."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for curve in curves:
        for epoch, value in curve.items():
            by_epoch[epoch].append(value)
    epochs = np.array(sorted(by_epoch))
    values = [by_epoch[e] for e in epochs]
    return epochs, np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])


def curves_by_length(records: Iterable[Any], folder: Path, series: Callable[[Any], str]) -> list[Path]:
    """One figure per length comparing the models (2 × 2 panels: accuracy and loss, train and val).
    `series` names a record's line (its model, `LSTM`; a grid sweep's: `LSTM hidden=64`)."""
    grouped: dict[int, dict[str, list[list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.metrics:
            grouped[rec.config.length][series(rec)].append(rec.metrics)
    paths = []
    for length, by_model in sorted(grouped.items()):
        fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
        for ax, (key, title) in zip(axes.flat, PANELS):
            for label, runs in sorted(by_model.items(), key=lambda kv: (not kv[0].startswith("RNN"), kv[0])):
                epochs, mean, std = mean_std([{m["epoch"]: m[key] for m in rows} for rows in runs])
                color = COLORS.get(label.lower())  # one line per model: its colour; a grid's lines: the cycle
                ax.plot(epochs, mean, color=color, label=f"{label} (n={len(runs)})")
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
            if key.endswith("acc"):
                ax.axhline(0.1, color="grey", linestyle=":", linewidth=1, label="chance (10 %)")
                ax.set_ylim(0, 1.02)
            ax.set_title(title)
            ax.grid(alpha=0.3)
        for ax in axes[1]:
            ax.set_xlabel("epoch")
        axes[0, 1].legend(loc="lower right", fontsize=8)
        fig.suptitle(f"Palindromes of length {length}: RNN vs LSTM (mean ± std over seeds)")
        paths.append(save_figure(fig, folder / f"L{length}.png"))
    return paths


def gan_losses(metrics: list[dict[str, Any]], path: Path) -> Path:
    """D and G losses and D's mean outputs over training steps; classifier-FID on a second axis."""
    rows = [m for m in metrics if "d_loss" in m]
    evals = [m for m in metrics if "fid" in m]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [m["step"] for m in rows]
    ax_loss.plot(steps, [m["d_loss"] for m in rows], label="D loss")
    ax_loss.plot(steps, [m["g_loss"] for m in rows], label="G loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("losses")
    ax_loss.legend()
    ax_d.plot(steps, [m["d_real"] for m in rows], label="D(x)")
    ax_d.plot(steps, [m["d_fake"] for m in rows], label="D(G(z))")
    ax_d.set_xlabel("step")
    ax_d.set_ylim(0, 1)
    ax_d.set_title("discriminator outputs")
    if evals:
        ax_fid = ax_d.twinx()
        ax_fid.plot([m["step"] for m in evals], [m["fid"] for m in evals], "k.--", label="classifier-FID")
        ax_fid.set_ylabel("classifier-FID")
        ax_fid.legend(loc="upper right")
    ax_d.legend(loc="upper left")
    for ax in (ax_loss, ax_d):
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def heatmap(matrix: list[list[float]], rows: list[str], columns: list[str], path: Path, title: str) -> Path:
    data = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 3.5, 0.5 * len(rows) + 1.5))
    image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(data):
        text = "–" if np.isnan(value) else f"{100 * value:.0f}%"
        ax.text(j, i, text, ha="center", va="center", color="white" if np.isnan(value) or value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="accuracy")
    ax.set_title(title)
    return save_figure(fig, path)


def fid_curve(evals: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [m["epoch"] for m in evals]
    ax.plot(epochs, [m["fid"] for m in evals], "o-", label="generated vs real test")
    ax.plot(epochs, [m["fid_floor"] for m in evals], "k--", label="floor: real train vs real test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("classifier-FID")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def class_histogram_figure(counts: list[int], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.axhline(sum(counts) / len(counts), color="grey", linestyle=":", label="uniform")
    ax.set_xticks(range(len(counts)))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("samples")
    ax.legend()
    return save_figure(fig, path)
