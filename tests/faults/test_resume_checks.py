"""Issue 10 #6: resume checks what it resumes from; old folders still resume."""

from __future__ import annotations

import json

import yaml
from conftest import TINY, snapshot

ARGS = ["palindrome", "--model", "rnn", "--length", "4", *TINY, "--quiet"]


def test_metrics_that_lost_rows_the_checkpoint_covers_are_refused_with_the_fix(cli, tmp_path):
    assert cli(*ARGS, "--epochs", "3", "--out", tmp_path).code == 0
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    (run / "result.json").unlink()  # killed after its last checkpoint, and metrics.jsonl lost a row
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(rows[:1] + rows[2:]) + "\n")
    before = snapshot(tmp_path)
    r = cli(*ARGS, "--epochs", "3", "--out", tmp_path)
    assert r.code == 2 and "lacks the rows of epoch(s) 2" in r.err and "--force" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and snapshot(tmp_path) == before


def test_a_finished_run_is_never_done_with_another_number_of_epochs(cli, tmp_path):
    """More epochs continue it (test_stop_and_resume); fewer would claim a run that does not exist."""
    assert cli(*ARGS, "--epochs", "3", "--out", tmp_path).code == 0
    fewer = cli(*ARGS, "--epochs", "2", "--out", tmp_path)
    assert fewer.code == 2 and "finished 3 epochs" in fewer.err, fewer.err


def test_a_folder_written_before_a_config_key_existed_still_resumes(cli, tmp_path):
    assert cli(*ARGS, "--epochs", "2", "--out", tmp_path).code == 0
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored.pop("forget_bias") == 0.0  # folders written before the forget-gate bias existed lack the key
    (run / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    again = cli(*ARGS, "--epochs", "3", "--out", tmp_path)
    assert again.code == 0, again.err
    assert json.loads((run / "result.json").read_text())["epochs"] == 3
    other = cli(*ARGS, "--epochs", "3", "--set", "forget_bias=1", "--out", tmp_path)  # not the default: another run
    assert other.code == 2 and "another config" in other.err, other.err
