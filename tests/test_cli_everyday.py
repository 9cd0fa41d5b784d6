"""What a new user meets every day, through the real CLI: where results go and how they are found again,
tables and words that read right, and the README's promises on bad input (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, snapshot
from helpers import in_fresh_process

SWEEP = ["sweep", "--models", "rnn", "--lengths", "3", "--seeds", "0", "--epochs", "1", *TINY, "--quiet"]
ONE = ["palindrome", "--model", "lstm", "--length", "3", "--epochs", "1", *TINY, "--quiet"]


def test_a_sweep_summary_counts_its_own_runs_and_says_the_folder_holds_others(cli, tmp_path):
    assert cli(*ONE, "--name", "palindrome", "--out", tmp_path).code == 0  # a one-off run in the sweep's folder
    r = cli(*SWEEP, "--out", tmp_path)
    assert r.code == 0, r.err
    assert "Sweep palindrome: 1 run, 1 epoch\n" in r.out and "1/1" in r.out and "lstm" not in r.out.split("Summary")[0]
    assert "also holds 1 other run" in r.err and f"lstmgan collect {tmp_path / 'palindrome'}" in r.err


def test_one_seed_shows_no_spread(cli, tmp_path):
    r = cli(*SWEEP, "--out", tmp_path)
    summary = (tmp_path / "palindrome" / "summary.md").read_text()
    assert r.code == 0 and "± 0.0" not in r.out and "± 0.0" not in summary and " % |" in summary, summary


def test_status_and_collect_find_the_sweep_beneath_the_folder_given(cli, tmp_path):
    assert cli(*SWEEP, "--out", tmp_path / "tiny" / "kill").code == 0
    status = cli("status", tmp_path / "tiny")
    assert status.code == 0, status.err
    assert "palindrome: 1 run" in status.out and "task" not in status.out and "rnn-L3-s0" in status.out
    collect = cli("collect", tmp_path / "tiny")
    assert collect.code == 0 and "Sweep palindrome (collected)" in collect.out, collect.err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("status", empty).code == 2 and cli("collect", empty).code == 2


def test_status_collect_and_report_answer_without_loading_torch(cli, tmp_path):
    # they read JSON and draw figures; importing torch would cost each call seconds
    assert cli(*SWEEP, "--out", tmp_path).code == 0
    codes, _, loaded = in_fresh_process(["status", tmp_path], ["collect", tmp_path, "--wandb", "disabled"],
                                        ["report", tmp_path, "--wandb", "disabled"], watch=["torch"])
    assert codes == [0, 0, 0] and loaded == [], loaded


def test_status_sorts_lengths_as_numbers(cli, tmp_path):
    assert cli(*SWEEP, "--lengths", "10", "--jobs", "1", "--out", tmp_path).code == 0  # lengths 3 and 10
    r = cli("status", tmp_path)
    assert r.code == 0 and r.out.index("rnn-L3-s0") < r.out.index("rnn-L10-s0"), r.out
    assert "palindrome: 2 runs" in r.out


def test_a_garbage_line_in_a_finished_runs_metrics_is_named_by_collect(cli, tmp_path):
    assert cli(*SWEEP, "--set", "epochs=3", "--out", tmp_path).code == 0
    metrics = tmp_path / "palindrome" / "rnn-L3-s0" / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join([lines[0], "garbage{\n", *lines[1:]]))
    r = cli("collect", tmp_path / "palindrome")
    assert r.code == 0 and "damaged run rnn-L3-s0: metrics.jsonl line 2 unreadable" in r.err, r.err


def test_collect_with_wandb_offline_ends_with_the_wandb_line(cli, tmp_path):
    assert cli(*SWEEP, "--out", tmp_path).code == 0
    r = cli("collect", tmp_path / "palindrome", "--wandb", "offline")
    assert r.code == 0, r.err
    assert r.out.strip().splitlines()[-1].startswith("W&B (offline): run in "), r.out


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@NO_CUDA
def test_palindrome_with_device_cuda_without_cuda_is_exit_2_and_leaves_nothing(cli, tmp_path):
    r = cli(*ONE, "--device", "cuda", "--out", tmp_path / "out")
    assert r.code == 2 and "no CUDA device is visible" in r.err, r.err
    assert not (tmp_path / "out").exists()  # no config.yaml with device: cuda left behind


@NO_CUDA
def test_gan_with_device_cuda_without_cuda_is_exit_2_and_leaves_nothing(cli, tmp_path):
    from idx import make_tiny_mnist

    data = make_tiny_mnist(tmp_path / "data", 64, 32)
    r = cli("gan", "--epochs", "1", "--wandb", "disabled", "--quiet", "--data-dir", data, "--device", "cuda",
            "--out", tmp_path / "out")
    assert r.code == 2 and "no CUDA device is visible" in r.err, r.err
    assert not (tmp_path / "out").exists()


def test_sample_into_a_folder_names_the_users_path_and_is_exit_2(cli, tmp_path):
    folder = tmp_path / "adir.npy"
    folder.mkdir()
    before = snapshot(tmp_path)
    r = cli("sample", tmp_path / "no-run", "--out", folder, "--force")
    assert r.code == 2 and f"--out {folder} is a folder" in r.err and ".tmp" not in r.err, r.err
    assert snapshot(tmp_path) == before and Path(folder).is_dir()


def test_one_off_runs_and_sweeps_keep_apart_by_default_and_an_old_folder_still_resumes(cli, tmp_path):
    assert cli(*ONE, "--out", tmp_path).code == 0
    assert cli(*SWEEP, "--out", tmp_path).code == 0
    assert (tmp_path / "palindrome-runs" / "lstm-L3-s0" / "result.json").exists()
    assert [p.parent.name for p in (tmp_path / "palindrome").glob("*/config.yaml")] == ["rnn-L3-s0"]
    (tmp_path / "palindrome-runs").rename(tmp_path / "old")  # a run made before one-off runs had their folder
    (tmp_path / "old" / "lstm-L3-s0" / "result.json").unlink()  # as if stopped after its checkpoint
    old = cli(*ONE, "--name", "old", "--out", tmp_path, "--dry-run")
    assert old.code == 0 and "resume" in old.out, old.out


def test_the_classifier_cache_is_keyed_by_the_data_it_saw(cli, tmp_path):
    from idx import make_tiny_mnist

    first, other = make_tiny_mnist(tmp_path / "a", 64, 32), make_tiny_mnist(tmp_path / "b", 64, 32, seed=1)
    args = ["classifier", "--epochs", "1", "--device", "cpu", "--out", tmp_path / "runs"]
    trained = cli(*args, "--data-dir", first)
    assert trained.code == 0 and "trained on mnist, 64 training images, data sha256 " in trained.out, trained.err
    cached = cli(*args, "--data-dir", first)
    assert cached.code == 0 and "(cached, trained on mnist, 64 training images, data sha256" in cached.out
    moved = cli(*args, "--data-dir", other)  # the same dataset name, other images: never reported as cached
    assert moved.code == 0 and "(cached" not in moved.out and "not on this data" in moved.err, moved.err
    assert cached.out.split("sha256 ")[1][:16] != moved.out.split("sha256 ")[1][:16]


def test_gan_never_overwrites_a_classifier_the_user_pointed_to_for_other_data(cli, tmp_path):
    from idx import make_tiny_mnist

    fashion = make_tiny_mnist(tmp_path / "f", 64, 32, dataset="fashion-mnist")
    digits = make_tiny_mnist(tmp_path / "d", 64, 32)
    made = cli("classifier", "--dataset", "fashion-mnist", "--data-dir", fashion, "--epochs", "1", "--device", "cpu",
               "--out", tmp_path / "runs")
    assert made.code == 0, made.err
    mine = tmp_path / "runs" / "classifiers" / "fashion-mnist.pt"
    before = snapshot(tmp_path / "runs")
    r = cli("gan", "--epochs", "1", "--data-dir", digits, "--set", f"classifier={mine}", "--wandb", "disabled",
            "--device", "cpu", "--quiet", "--out", tmp_path / "runs")
    assert r.code == 2 and f"classifier {mine}: it was trained on fashion-mnist" in r.err, r.err
    assert snapshot(tmp_path / "runs") == before


STUDY = """
sweep: {name: palindrome, lengths: [3], models: [rnn], seeds: [0], epochs: 1, hidden: 16, samples: 200}
ablation: {lengths: [3], models: [rnn], seeds: [0], inits: [pytorch], encodings: [onehot], epochs: 1, hidden: 16,
           samples: 200}
gan: {dataset: mnist, epochs: 1, batch_size: 32, eval_every: 1, eval_samples: 100, log_every: 4, sample_every: 8}
interpolation_pairs: 1
interpolation_min_confidence: 1.0
"""


def test_a_study_whose_gan_is_too_weak_to_interpolate_names_fixes_that_work_under_study(cli, tmp_path):
    from idx import make_tiny_mnist

    make_tiny_mnist(tmp_path / "data", n_train=128, n_test=64)
    (tmp_path / "study.yaml").write_text(STUDY)
    args = ["study", "--config", tmp_path / "study.yaml", "--data-dir", tmp_path / "data", "--out", tmp_path / "runs",
            "--wandb", "disabled", "--device", "cpu", "--quiet", "--jobs", "1"]
    r = cli(*args)
    assert r.code == 0 and "interpolation skipped" in r.err, r.err
    assert "--set interpolation_min_confidence=" in r.err and "pass a lower --min-confidence" not in r.err, r.err
    assert cli(*args, "--set", "interpolation_min_confidence=0.5", "--set", "gan.epochs=2", "--print-config").code == 0
