"""Issue 10 #8 and #11: readers never crash on damaged runs; messages name the fix for the command at hand."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from conftest import TINY, snapshot
from lstmgan.config import GanConfig, to_dict


@pytest.fixture
def damaged_sweep(cli, tmp_path):
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "lstm", "--seeds", "0", "1", "2", "--epochs", "2", *TINY,
            "--jobs", "1", "--quiet", "--out", tmp_path)
    assert r.code == 0, r.err
    sweep = tmp_path / "palindrome"
    (sweep / "rnn-L3-s0" / "result.json").write_text("{}")
    (sweep / "rnn-L3-s1" / "result.json").write_text(json.dumps({"final_val_acc": None, "epoch_to_99": None}))
    (sweep / "rnn-L3-s2" / "result.json").write_text(json.dumps("finished!"))
    metrics = sweep / "lstm-L3-s0" / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join(["[1, 2, 3]", '"text"', json.dumps({"epoch": 1}), *rows, "\x00\xff{"]) + "\n")
    (sweep / "lstm-L3-s1" / "result.json").write_text(json.dumps({"final_val_acc": "high", "epoch_to_99": "soon"}))
    return sweep


def test_collect_status_and_report_list_damaged_runs_and_go_on(cli, damaged_sweep):
    collect = cli("collect", damaged_sweep)
    assert collect.code == 0, collect.err
    summary = (damaged_sweep / "summary.md").read_text()
    assert "| rnn | 3 | 0/3 |" in summary and "| lstm | 3 | 2/3 |" in summary, summary

    status = cli("status", damaged_sweep)
    assert status.code == 0 and "damaged" in status.out, status.out

    report = cli("report", damaged_sweep, "--wandb", "disabled")
    assert report.code == 0, report.err
    text = (damaged_sweep / "report.md").read_text()
    assert "Skipped 4 damaged run(s)" in text, text
    assert "rnn-L3-s0 (result.json is empty or not an object; counted as unfinished)" in text
    assert "rnn-L3-s1 (result.json has no number for final_val_acc; counted as unfinished)" in text


def test_report_refuses_a_single_run_folder_and_writes_nothing(cli, tmp_path):
    assert cli("palindrome", "--model", "rnn", "--length", "3", "--epochs", "1", *TINY, "--out", tmp_path).code == 0
    run = tmp_path / "palindrome" / "rnn-L3-s0"
    before = snapshot(tmp_path)
    r = cli("report", run, "--wandb", "disabled")
    assert r.code == 2 and "is a run folder" in r.err and str(run.parent) in r.err, r.err
    assert snapshot(tmp_path) == before


def gan_folder(tmp_path, checkpoint: bytes | dict) -> object:
    run = tmp_path / "gan" / "mnist-s0"
    run.mkdir(parents=True)
    cfg = to_dict(GanConfig(classifier=str(tmp_path / "classifiers" / "mnist.pt")))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if isinstance(checkpoint, bytes):
        (run / "checkpoint.pt").write_bytes(checkpoint)
    else:
        torch.save({"config": cfg, **checkpoint}, run / "checkpoint.pt")
    return run


@pytest.mark.parametrize("checkpoint, message", [
    (b"PK\x03\x04 this is no zip archive at all " * 20, "is corrupt or not a lstmgan checkpoint"),
    ({"epoch": "three", "generator": {}}, "config or epoch of the wrong type"),
    ({"epoch": 3, "generator": "weights"}, "holds no generator weights"),
    ({"epoch": 3, "generator": {"net.0.weight": torch.zeros(2, 2)}}, "does not hold this run's generator"),
], ids=["garbage", "epoch-string", "generator-string", "wrong-shapes"])
@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_sample_and_interpolate_refuse_a_damaged_checkpoint_with_their_own_fix(cli, tmp_path, command,
                                                                                checkpoint, message):
    run = gan_folder(tmp_path, checkpoint)
    before = snapshot(tmp_path)
    extra = ["--out", tmp_path / "s.npy"] if command == "sample" else ["--wandb", "disabled"]
    r = cli(command, run, "--device", "cpu", *extra)
    assert r.code == 2 and message in r.err and "lstmgan gan" in r.err, r.err
    assert "--force" not in r.err, "the fix offered must be one this command has"
    assert len(r.err.strip().splitlines()) == 1 and snapshot(tmp_path) == before
