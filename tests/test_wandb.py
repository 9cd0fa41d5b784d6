"""W&B offline runs, read back with W&B's own CLI: the logged values are the ones in metrics.jsonl."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY
from lstmgan.config import TrackingConfig
from lstmgan.rundir import RunDir
from lstmgan.tracking import Tracker, resolve_mode

WANDB = str(Path(sys.executable).parent / "wandb")


def inspect_summary(run_dir: Path) -> dict:
    out = subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run_dir / "wandb")],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_an_offline_run_logs_config_metrics_and_tags_that_match_metrics_jsonl(cli, tmp_path):
    args = [a for a in TINY if a not in ("--wandb", "disabled")]
    r = cli("sweep", "--lengths", "4", "--models", "rnn", "--epochs", "3", "--name", "wb", "--wandb", "offline",
            "--out", tmp_path, *args)
    assert r.code == 0, r.err
    run = tmp_path / "wb" / "rnn-L4-s0"
    summary = inspect_summary(run)
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert summary["state"] == "finished"
    assert summary["config"]["hidden"] == 16 and summary["config"]["length"] == 4
    assert set(summary["tags"]) == {"rnn", "L4"}
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "grad_norm"):
        assert summary["summary"][key] == pytest.approx(last[key], rel=1e-9), key
    result = json.loads((run / "result.json").read_text())
    assert summary["summary"]["final_val_acc"] == pytest.approx(result["final_val_acc"])


def test_auto_mode_is_offline_without_credentials_and_online_with_a_key(monkeypatch):
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    assert resolve_mode("disabled") == "disabled"


def test_a_failing_wandb_never_stops_training(tmp_path, monkeypatch, caplog):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(wandb, "init", broken_init)
    run = RunDir(tmp_path)
    with Tracker(run, TrackingConfig(mode="online"), name="x", config={}, step_key="epoch") as tracker:
        tracker.log({"epoch": 1, "loss": 0.5})
    assert json.loads(run.metrics_file.read_text()) == {"epoch": 1, "loss": 0.5}
    assert "W&B init failed" in caplog.text
