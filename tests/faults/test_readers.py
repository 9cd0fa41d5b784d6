"""Issue 10 #8 and #11: readers never crash on damaged runs; messages name the fix for the command at hand."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import TINY, snapshot

from lstmgan.config import GanConfig, to_dict


@pytest.fixture
def sweep(cli, tmp_path):
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "lstm", "--seeds", "0", "1", "2", "--epochs", "2", *TINY,
            "--jobs", "1", "--quiet", "--out", tmp_path)
    assert r.code == 0, r.err
    return tmp_path / "palindrome"


def damage_files(sweep):
    """What any reader must survive: result.json that is {} or a string, metrics lines that are not objects."""
    (sweep / "rnn-L3-s0" / "result.json").write_text("{}")
    (sweep / "rnn-L3-s2" / "result.json").write_text(json.dumps("finished!"))
    metrics = sweep / "lstm-L3-s0" / "metrics.jsonl"
    metrics.write_text("\n".join(["[1, 2, 3]", '"text"', metrics.read_text().strip(), "\x00\xff{"]) + "\n")


def damage_values(sweep):
    """Readers of numbers (report; collect through sweep.load_runs, configs' branch) must also survive these."""
    (sweep / "rnn-L3-s1" / "result.json").write_text(json.dumps({"final_val_acc": None, "epoch_to_99": None}))
    (sweep / "lstm-L3-s1" / "result.json").write_text(json.dumps({"final_val_acc": "high", "epoch_to_99": "soon"}))
    metrics = sweep / "lstm-L3-s2" / "metrics.jsonl"
    metrics.write_text(json.dumps({"epoch": 1}) + "\n" + json.dumps({"val_acc": "x"}) + "\n" + metrics.read_text())


def test_collect_and_status_go_on_past_damaged_files(cli, sweep):
    damage_files(sweep)
    collect = cli("collect", sweep)
    assert collect.code == 0, collect.err
    summary = (sweep / "summary.md").read_text()
    assert "| rnn | 3 | 1/3 |" in summary and "| lstm | 3 | 3/3 |" in summary, summary
    damage_values(sweep)
    status = cli("status", sweep)
    assert status.code == 0 and "damaged" in status.out and status.out.count("-L3-s") == 6, status.out


def test_report_lists_damaged_runs_with_the_reason_and_goes_on(cli, sweep):
    damage_files(sweep)
    damage_values(sweep)
    report = cli("report", sweep, "--wandb", "disabled")
    assert report.code == 0, report.err
    text = (sweep / "report.md").read_text()
    skipped = next(line for line in text.splitlines() if line.startswith("Skipped"))
    for name in ("rnn-L3-s0", "rnn-L3-s1", "rnn-L3-s2", "lstm-L3-s1"):
        assert name in skipped, skipped
    assert "rnn-L3-s0 (result.json is empty or not an object; counted as unfinished)" in skipped


def test_report_refuses_a_single_run_folder_and_writes_nothing(cli, tmp_path):
    assert cli("palindrome", "--model", "rnn", "--length", "3", "--epochs", "1", *TINY, "--out", tmp_path).code == 0
    run = tmp_path / "palindrome-runs" / "rnn-L3-s0"
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
