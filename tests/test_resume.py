"""A run killed with SIGKILL resumes from its checkpoint and ends exactly like an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time

import torch
from conftest import TINY
from helpers import metrics_without_times


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(cli, tmp_path):
    args = ["palindrome", "--model", "lstm", "--length", "8", "--epochs", "6", *TINY,
            "--set", "hidden=48", "--set", "samples=3000", "--quiet"]
    killed = tmp_path / "killed" / "palindrome-runs" / "lstm-L8-s0"
    proc = subprocess.Popen([sys.executable, "-m", "lstmgan", *args, "--out", str(tmp_path / "killed")])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once at least two epochs are checkpointed, before the end
        if (killed / "metrics.jsonl").exists() and len((killed / "metrics.jsonl").read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists(), "the run finished before it could be killed"
    epoch_at_kill = torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= epoch_at_kill < 6

    assert cli(*args, "--out", tmp_path / "killed").code == 0
    assert cli(*args, "--out", tmp_path / "whole").code == 0
    whole = tmp_path / "whole" / "palindrome-runs" / "lstm-L8-s0"

    assert metrics_without_times(killed) == metrics_without_times(whole)
    a = torch.load(killed / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert json.loads((killed / "result.json").read_text())["resumed"] is True
