"""Seeing before running: --print-config, --dry-run (with and without --slurm), --grid, refused --set keys."""

import yaml
from conftest import TINY, snapshot
from idx import make_tiny_mnist

SWEEP = ["sweep", "--lengths", "3", "--models", "rnn", "--epochs", "1", *TINY, "--quiet"]


def test_print_config_prints_what_the_sweep_will_run_and_writes_nothing(cli, tmp_path):
    r = cli("sweep", "--config", "palindrome-sweep", "--lengths", "5,10", "--set", "hidden=32",
            "--grid", "lr=1e-3,3e-3", "--out", tmp_path / "o", "--print-config")
    assert r.code == 0, r.err
    cfg = yaml.safe_load(r.out)
    assert cfg["lengths"] == [5, 10] and cfg["models"] == ["rnn", "lstm"] and cfg["name"] == "palindrome"
    assert cfg["runs"] == 2 * 2 * len(cfg["seeds"]) * 2 and cfg["per_run"]["hidden"] == 32
    assert "run" not in cfg and not {"model", "length", "seed", "lr"} & set(cfg["per_run"])  # no setting it won't train
    assert not (tmp_path / "o").exists()


def test_print_config_of_a_gan_names_the_classifier_it_would_use(cli, tmp_path):
    r = cli("gan", "--epochs", "3", "--out", tmp_path / "o", "--print-config")
    assert r.code == 0, r.err
    cfg = yaml.safe_load(r.out)
    assert cfg["epochs"] == 3 and cfg["classifier"] == str(tmp_path / "o" / "classifiers" / "mnist.pt")
    assert not (tmp_path / "o").exists()


def test_study_reads_the_packaged_study_from_any_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no jobs/ here
    r = cli("study", "--preset", "quick", "--print-config")
    assert r.code == 0, r.err
    assert set(yaml.safe_load(r.out)) >= {"sweep", "ablation", "gan"}
    assert list(tmp_path.iterdir()) == []


def test_dry_run_lists_what_each_run_would_do_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "runs"
    assert cli(*SWEEP, "--out", out).code == 0  # rnn-L3-s0 finished
    (out / "palindrome" / "rnn-L3-s0" / "result.json").unlink()  # as if killed after its checkpoint
    assert cli("sweep", "--lengths", "4", "--models", "rnn", "--epochs", "1", *TINY, "--quiet", "--out", out).code == 0
    before = snapshot(out)
    r = cli("sweep", "--lengths", "3", "4", "5", "--models", "rnn", "--epochs", "1", *TINY, "--out", out, "--dry-run")
    assert r.code == 0, r.err
    lines = {line.split("│")[1].strip(): line for line in r.out.splitlines() if "rnn-L" in line}
    assert "resume" in lines["rnn-L3-s0"] and "skip" in lines["rnn-L4-s0"] and "train" in lines["rnn-L5-s0"]
    assert "nothing was run or written" in r.out
    assert snapshot(out) == before and not (out / "palindrome" / "rnn-L5-s0").exists()


def test_a_grid_multiplies_the_runs_and_works_with_dry_run_and_slurm(cli, tmp_path):
    grid = ["--grid", "hidden=8,16", "--grid", "lr=1e-3,3e-3"]
    r = cli(*SWEEP, *grid, "--out", tmp_path / "runs", "--dry-run")
    assert r.code == 0, r.err
    assert "4 runs; nothing was run or written" in r.out
    r = cli(*SWEEP, *grid, "--out", tmp_path / "runs", "--slurm", "--dry-run")
    assert r.code == 0, r.err
    assert "# 4 tasks for" in r.out and "#SBATCH --array=0-3" in r.out
    r = cli(*SWEEP, *grid, "--out", tmp_path / "runs", "--print-config")
    assert yaml.safe_load(r.out)["grid"]["hidden"] == [8, 16]
    assert not (tmp_path / "runs").exists()


def test_set_keys_a_command_owns_are_refused_naming_the_flag(cli, tmp_path):
    for key, flag in (("model=rnn", "--models"), ("length=7", "--lengths"), ("seed=3", "--seeds")):
        r = cli(*SWEEP, "--set", key, "--out", tmp_path / "runs")
        assert r.code == 2 and flag in r.err and r.err.count("\n") == 1, r.err
    r = cli("study", "--set", "dataset=fashion-mnist", "--out", tmp_path / "study", "--print-config")
    assert r.code == 2 and "--dataset" in r.err
    assert not tmp_path.joinpath("runs").exists() and not tmp_path.joinpath("study").exists()


def test_a_gan_on_slurm_without_a_gpu_is_warned_about(cli, tmp_path):
    data = make_tiny_mnist(tmp_path / "data", n_train=64, n_test=32, layout="flat")
    args = ["gan", "--data-dir", data, "--out", tmp_path / "runs", "--wandb", "disabled", "--slurm", "--dry-run"]
    r = cli(*args)
    assert r.code == 0, r.err
    assert "requests no GPU" in r.err and r.err.count("\n") == 1 and "#!/bin/bash" in r.out
    assert "requests no GPU" not in cli(*args, "--gpus", "1").err
    assert not (tmp_path / "runs").exists()
