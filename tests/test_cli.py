"""The command line: spellings from the README work; bad input is one line, exit 2, nothing changed."""

import json

import pytest
import torch
from conftest import TINY, snapshot

from lstmgan.cli.main import expand_multi_value


def test_multi_value_flags_accept_spaces_commas_and_repeats():
    assert expand_multi_value(["sweep", "--lengths", "5", "10", "--models", "rnn", "--quiet"]) == \
        ["sweep", "--lengths", "5", "--lengths", "10", "--models", "rnn", "--quiet"]
    assert expand_multi_value(["--lengths", "5,10", "--seeds=0,1"]) == \
        ["--lengths", "5", "--lengths", "10", "--seeds", "0", "--seeds", "1"]


def test_a_single_run_writes_its_run_directory(cli, tmp_path):
    r = cli("palindrome", "--model", "rnn", "--length", "4", "--seed", "3", "--epochs", "2", "--out", tmp_path, *TINY)
    assert r.code == 0, r.err
    run = tmp_path / "palindrome-runs" / "rnn-L4-s3"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.pt", "result.json"}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert set(metrics[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "grad_norm", "epoch_time"}
    result = json.loads((run / "result.json").read_text())
    assert result["final_val_acc"] == metrics[-1]["val_acc"]
    assert result["train_samples"] + result["val_samples"] == 200
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["seed"] == 3


def test_same_command_twice_gives_identical_metrics_and_a_finished_run_is_not_retrained(cli, tmp_path):
    args = ["palindrome", "--model", "lstm", "--length", "5", "--epochs", "3", *TINY]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    strip = lambda p: [{k: v for k, v in json.loads(line).items() if k != "epoch_time"}
                       for line in p.read_text().splitlines()]
    a, b = (tmp_path / x / "palindrome-runs" / "lstm-L5-s0" / "metrics.jsonl" for x in "ab")
    assert strip(a) == strip(b)
    before = snapshot(tmp_path / "a")
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert snapshot(tmp_path / "a") == before  # done: skipped, nothing rewritten
    assert cli(*args, "--out", tmp_path / "a", "--force").code == 0
    assert strip(a) == strip(b)


BAD_INPUTS = [
    (["palindrome", "--model", "gru"], "unknown model 'gru'"),
    (["palindrome", "--name", "../elsewhere"], "--name '../elsewhere' must be a plain folder name"),
    (["gan", "--name", ""], "--name '' must be a plain folder name"),
    (["palindrome", "--set", "lr=inf"], "lr must be a positive finite number"),
    (["sweep", "--slurm", "--image", "lstmgan.sif", "--dry-run"], "--image needs a container runtime"),
    (["sweep", "--slurm", "--mem", "inf", "--dry-run"], "mem must be a positive number of GB"),
    (["sweep", "--slurm", "--time", "99999999", "--dry-run"], "time must be at most"),
    (["palindrome", "--length", "0"], "length must be at least 1"),
    (["palindrome", "--length", "ten"], "Invalid value for '--length'"),
    (["palindrome", "--epochs", "0"], "epochs must be at least 1"),
    (["sweep", "--lengths", "5", "x"], "Invalid value for '--lengths'"),
    (["sweep", "--models", "rnn", "gru"], "unknown model 'gru'"),
    (["palindrome", "--set", "epochs"], "key=value"),
    (["palindrome", "--set", "colour=red"], "unknown key 'colour'"),
    (["palindrome", "--wandb", "sometimes"], "--wandb"),
    (["palindrome", "--device", "tpu"], "unknown device 'tpu'"),
    (["palindrome", "--bogus"], "No such option: --bogus"),
    (["palindrome", "--config", "missing.yaml"], "missing.yaml"),
    (["sweep", "--jobs", "0"], "--jobs must be at least 1"),
    (["sweep", "--set", "seeds=[1,2]"], "--seeds"),
    (["sweep", "--grid", "hidden"], "--grid"),
    (["palindrome", "--mem", "4"], "--mem only apply to SLURM submissions; add --slurm"),
]


@pytest.mark.parametrize("args, fragment", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli, tmp_path, args, fragment):
    existing = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    assert cli("palindrome", "--model", "rnn", "--length", "4", "--epochs", "1", "--out", tmp_path, *TINY).code == 0
    before = snapshot(tmp_path)
    r = cli(*args, "--out", tmp_path)
    assert r.code == 2
    assert r.err.startswith("lstmgan: error: ") and r.err.count("\n") == 1, r.err
    assert fragment in r.err
    assert "Traceback" not in r.err + r.out
    assert snapshot(tmp_path) == before and existing.exists()


def test_bad_yaml_files(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, fragment in [("epochs: [\n", "not valid YAML"), ("epochs: 3\nspeed: 9\n", "unknown key 'speed'")]:
        bad.write_text(text)
        r = cli("sweep", "--config", bad, "--out", tmp_path / "runs")
        assert r.code == 2 and fragment in r.err and r.err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_output_under_a_file_is_refused(cli, tmp_path):
    (tmp_path / "file").write_text("keep me")
    r = cli("palindrome", "--out", tmp_path / "file" / "runs", *TINY)
    assert r.code == 2 and "choose another --out" in r.err
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_corrupt_checkpoint_is_refused_and_kept(cli, tmp_path):
    args = ["palindrome", "--model", "rnn", "--length", "4", "--epochs", "2", "--out", tmp_path, *TINY]
    assert cli(*args).code == 0
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    (run / "result.json").unlink()  # as if killed before the end
    (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:100])  # truncated
    before = snapshot(tmp_path)
    r = cli(*args)
    assert r.code == 2 and "checkpoint" in r.err and "corrupt" in r.err and "--force" in r.err
    assert snapshot(tmp_path) == before
    assert cli(*args, "--force").code == 0  # the fix the message names works


def test_a_run_folder_with_another_config_is_not_overwritten(cli, tmp_path):
    base = ["palindrome", "--model", "rnn", "--length", "4", "--out", tmp_path, *TINY]
    assert cli(*base, "--epochs", "1").code == 0
    before = snapshot(tmp_path)
    r = cli(*base, "--epochs", "1", "--set", "lr=0.01")
    assert r.code == 2 and "another config (lr: 0.001 → 0.01)" in r.err
    assert snapshot(tmp_path) == before
