"""The memory-horizon figure, drawn from planted metrics rows."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image

from lstmgan.config import PalindromeConfig
from lstmgan.results.horizon import horizon_figure
from lstmgan.results.summary import RunRecord


def record(model: str, length: int, seed: int, decay: float, with_hT: bool = True) -> RunRecord:
    """Five epochs whose first-step gradients shrink by `decay` per epoch; the last one underflowed to 0."""
    rows = []
    for epoch in range(1, 6):
        row = {"epoch": epoch, "val_acc": 0.1 * epoch, "grad_x1": (0.0 if epoch == 5 else decay ** epoch),
               "grad_h1": 2 * decay ** epoch * (1 + seed)}
        if with_hT:
            row["grad_hT"] = 0.5
        rows.append(row)
    cfg = PalindromeConfig(model=model, length=length, seed=seed)
    return RunRecord(config=cfg, path=Path(f"{model}-L{length}-s{seed}"), metrics=rows, result=None)


def test_horizon_figure_writes_a_png_per_model_and_length(tmp_path):
    records = [record(m, n, s, decay) for m, decay in (("rnn", 1e-3), ("lstm", 0.5)) for n in (5, 20)
               for s in (0, 1)]
    path = horizon_figure(records, tmp_path / "figures" / "horizon.png")
    assert path == tmp_path / "figures" / "horizon.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    three_rows = matplotlib.image.imread(path).shape
    without_ratio = horizon_figure([record("lstm", 5, 0, 0.5, with_hT=False), record("lstm", 20, 0, 0.5, False)],
                                   tmp_path / "two-rows.png")
    assert without_ratio is not None
    assert matplotlib.image.imread(without_ratio).shape[0] < three_rows[0]  # no ‖∂ℓ/∂h_T‖: no ratio row


def test_no_horizon_rows_no_figure(tmp_path):
    old = RunRecord(PalindromeConfig(), Path("old"), [{"epoch": 1, "val_acc": 0.5}], None)
    assert horizon_figure([old, RunRecord(PalindromeConfig(), Path("empty"), [], None)], tmp_path / "h.png") is None
    assert not (tmp_path / "h.png").exists()
