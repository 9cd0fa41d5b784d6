"""Issue 10 #4 and #5: a full or read-only disk damages nothing and is one line; temp files a killed writer left
behind are removed on the next start. (A disk that fills up mid-run, then resuming: test_stop_and_resume.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import TINY
from helpers import fill

@pytest.fixture
def small_disk(tmp_path: Path, tmpfs) -> Path:
    return tmpfs(tmp_path / "small")


def temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


def test_temp_files_a_killed_writer_left_are_removed_when_the_run_starts_again(cli, tmp_path):
    args = ["palindrome", "--model", "rnn", "--length", "4", *TINY, "--out", tmp_path]
    assert cli(*args, "--epochs", "1").code == 0
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    (run / "result.json").unlink()  # as if killed right after its last checkpoint
    debris = [run / ".checkpoint.pt.k2j3h4.tmp", run / ".metrics.jsonl.x9y8z7.tmp"]
    for path in debris:
        path.write_bytes(b"\0" * 4096)
    theirs = run / ".not-ours.tmp"  # not our pattern: left alone
    theirs.write_text("x")
    assert cli(*args, "--epochs", "1").code == 0
    assert not any(p.exists() for p in debris) and theirs.exists()


def test_sample_and_report_on_a_full_disk_leave_nothing_behind_and_work_once_there_is_space(cli, small_disk,
                                                                                            tmp_path):
    from test_readers import gan_folder

    from lstmgan.config import GanConfig
    from lstmgan.gan.models import Generator

    run = gan_folder(tmp_path, {"epoch": 3, "generator": Generator(GanConfig().latent_dim).state_dict()})
    sweep = small_disk / "palindrome"
    assert cli("sweep", "--lengths", "3", "--models", "rnn", "--seeds", "0", "--epochs", "1", *TINY, "--quiet",
               "--out", small_disk).code == 0
    (sweep / "summary.md").unlink()
    filler = small_disk / "filler"
    fill(filler)
    before = {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file() and p != filler}

    out = small_disk / "samples.npy"
    for args in (("sample", run, "--n", "500", "--device", "cpu", "--out", out),
                 ("report", sweep, "--wandb", "disabled")):
        r = cli(*args)
        assert r.code == 3 and len(r.err.strip().splitlines()) == 1 and "no space left" in r.err.lower(), r.err
        assert str(small_disk) in r.err, r.err
        assert {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file() and p != filler} == before
        assert temps(small_disk) == [], "a failed write left its temp file"

    filler.unlink()
    assert cli("sample", run, "--n", "500", "--device", "cpu", "--out", out).code == 0 and out.exists()
    assert cli("report", sweep, "--wandb", "disabled").code == 0 and (sweep / "report.md").exists()


@pytest.fixture
def read_only_disk(tmp_path: Path, tmpfs) -> Path:
    """A tmpfs the test remounts read-only (root ignores permission bits, not a read-only mount)."""
    return tmpfs(tmp_path / "ro")


def test_a_read_only_folder_is_one_line_and_nothing_changes(cli, read_only_disk):
    args = ["palindrome", "--model", "rnn", "--length", "3", "--epochs", "1", *TINY, "--quiet"]
    assert cli(*args, "--out", read_only_disk).code == 0
    run = read_only_disk / "palindrome-runs" / "rnn-L3-s0"
    (run / "result.json").unlink()  # unfinished: the next command must write to resume it
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_disk)], check=True)
    before = {p: p.read_bytes() for p in read_only_disk.rglob("*") if p.is_file()}
    for command in (args + ["--epochs", "2", "--out", read_only_disk], ["report", read_only_disk / "palindrome-runs",
                                                                        "--wandb", "disabled"]):
        r = cli(*command)
        assert r.code in (2, 3) and len(r.err.strip().splitlines()) == 1, r.err
        assert str(read_only_disk) in r.err and "Traceback" not in r.err, r.err
        assert {p: p.read_bytes() for p in read_only_disk.rglob("*") if p.is_file()} == before
