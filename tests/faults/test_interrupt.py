"""Issue 10 #1: Ctrl-C (SIGINT) or SIGTERM on a parallel sweep stops everything within seconds, cleanly."""

from __future__ import annotations

import signal

import pytest
import torch
from conftest import TINY
from helpers import alive, checkpointed, children, lstmgan, metrics_without_times, wait_for

# 6 runs on 2 workers: when the first checkpoint appears, 2 runs are training and 4 are queued.
SWEEP = ["sweep", "--lengths", "6", "--models", "rnn", "lstm", "--seeds", "0", "1", "2", "--epochs", "8",
         *TINY, "--set", "samples=1000", "--quiet"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_parallel_sweep_and_a_rerun_resumes_it(cli, tmp_path, sig):
    sweep = tmp_path / "stopped" / "palindrome"
    proc = lstmgan(*SWEEP, "--jobs", "2", "--out", tmp_path / "stopped")
    wait_for(lambda: checkpointed(sweep), "a first checkpoint")
    workers = children(proc.pid)
    proc.send_signal(sig)  # to the parent alone: it must pass the request on
    _, err = proc.communicate(timeout=60)  # in practice ~3 s: the running runs end their epoch

    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    # typer turns KeyboardInterrupt into a silent Exit(130): the CLI's "interrupted …" line is its business;
    # here: at most that line, never a traceback (from the parent or any worker)
    assert "Traceback" not in err and len(lines) <= 1 and all("interrupted" in line for line in lines), err
    # multiprocessing's helpers (resource tracker, manager) exit as soon as they notice the parent is gone
    assert workers and wait_for(lambda: not [p for p in workers if alive(p)], "the workers to exit", timeout=20)
    started = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert 1 <= len(started) <= 2, f"queued runs started after the signal: {started}"
    assert all(not (sweep / name / "result.json").exists() for name in started), "a stopped run claims it finished"
    # every checkpoint left is whole (a run stopped before its first epoch has none, which is fine)
    checkpoints = [sweep / name / "checkpoint.pt" for name in started if (sweep / name / "checkpoint.pt").exists()]
    assert checkpoints and all(torch.load(c, weights_only=True)["epoch"] >= 1 for c in checkpoints)
    assert not list(sweep.glob("*/.lstmgan.lock")), "a lock outlived its writer"
    if sig == signal.SIGTERM:
        return  # resuming is the same either way: checked once, after SIGINT

    # in this process, one run after another (no worker start-up): the same numbers, in less time
    rerun = cli(*SWEEP, "--jobs", "1", "--out", tmp_path / "stopped")
    assert rerun.code == 0, rerun.err
    assert cli(*SWEEP, "--jobs", "1", "--out", tmp_path / "whole").code == 0
    whole = tmp_path / "whole" / "palindrome"
    names = sorted(p.name for p in whole.iterdir() if (p / "result.json").exists())
    assert len(names) == 6
    for name in names:
        assert metrics_without_times(sweep / name) == metrics_without_times(whole / name), name


STUDY = """
sweep: {name: palindrome, lengths: [6], models: [rnn, lstm], seeds: [0, 1, 2], epochs: 8, hidden: 16, samples: 1000}
ablation: {lengths: [3], models: [rnn], seeds: [0], inits: [pytorch], encodings: [onehot], epochs: 2, hidden: 16,
           samples: 200}
gan: {dataset: mnist, epochs: 1, batch_size: 32, eval_every: 1, eval_samples: 100, log_every: 4, sample_every: 8}
interpolation_pairs: 0
"""


@pytest.mark.timeout(240)
def test_ctrl_c_stops_a_study_before_its_gan_run_and_a_rerun_completes_it(cli, tmp_path):
    from idx import make_tiny_mnist

    make_tiny_mnist(tmp_path / "data", n_train=256, n_test=128)
    (tmp_path / "study.yaml").write_text(STUDY)
    args = ["study", "--config", tmp_path / "study.yaml", "--data-dir", tmp_path / "data", "--out", tmp_path / "runs",
            "--wandb", "disabled", "--device", "cpu", "--quiet"]
    sweep = tmp_path / "runs" / "palindrome"
    proc = lstmgan(*args, "--jobs", "2")
    wait_for(lambda: checkpointed(sweep), "a first checkpoint")
    workers = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert workers and wait_for(lambda: not [p for p in workers if alive(p)], "the workers to exit", timeout=20)
    assert not (tmp_path / "runs" / "gan").exists(), "the GAN run started after Ctrl-C"
    assert len([p for p in sweep.iterdir() if p.is_dir()]) <= 2

    rerun = cli(*args, "--jobs", "1")
    assert rerun.code == 0, rerun.err
    assert len(list(sweep.glob("*/result.json"))) == 6 and list((tmp_path / "runs" / "gan").glob("*/result.json"))


@pytest.mark.timeout(240)
def test_ctrl_c_on_a_gan_run_checkpoints_where_it_is_and_a_rerun_ends_like_an_uninterrupted_run(cli, tmp_path):
    """One run in this process, checkpointing only at its end (as on a GPU, every 10 epochs): the first
    Ctrl-C must still leave a checkpoint at the step it stopped at, so nothing is lost."""
    import json

    from idx import make_tiny_mnist

    make_tiny_mnist(tmp_path / "data", n_train=512, n_test=128)
    args = ["gan", "--data-dir", tmp_path / "data", "--epochs", "40", "--device", "cpu", "--wandb", "disabled",
            "--quiet", "--set", "batch_size=32", "--set", "log_every=4", "--set", "sample_every=1000",
            "--set", "eval_every=0", "--set", "eval_samples=64", "--set", "checkpoint_every=40"]
    run = tmp_path / "stopped" / "gan" / "mnist-s0"
    proc = lstmgan(*args, "--out", tmp_path / "stopped")
    wait_for(lambda: (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 3,
             "three metrics rows")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "stopping at the next checkpoint" in err and "rerun the same command" in err, err
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert 0 < ckpt["step"] < 40 * 16 and not (run / "result.json").exists()

    assert cli(*args, "--out", tmp_path / "stopped").code == 0
    assert cli(*args, "--out", tmp_path / "whole").code == 0
    rows = lambda folder: [{k: v for k, v in json.loads(line).items() if k != "images_per_s"}
                           for line in (folder / "gan" / "mnist-s0" / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "stopped") == rows(tmp_path / "whole")
    assert json.loads((run / "result.json").read_text())["resumed"] is True
