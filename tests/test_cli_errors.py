"""What reaches the terminal when something goes wrong: one line and a documented exit code, never a traceback
by accident. 2 bad input, 3 a disk or permission problem, 1 an internal error (its traceback in a file), 130
interrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, snapshot

from lstmgan.config import PalindromeConfig

RUN = ["palindrome", "--model", "rnn", "--length", "4", "--epochs", "1", *TINY, "--quiet"]


def one_line(text: str) -> bool:
    return text.count("\n") == 1 and "Traceback" not in text


@pytest.mark.parametrize("args, fragment", [
    (["palindrome", "--model", "gru"], "unknown model 'gru' for --model; choose one of: rnn, lstm"),
    (["sweep", "--models", "rnn,gru"], "unknown model 'gru' for --models; choose one of: rnn, lstm"),
    (["gan", "--dataset=cifar"], "unknown dataset 'cifar' for --dataset; choose one of: mnist, fashion-mnist"),
    (["sweep", "--slurm", "--container", "docker"], "unknown container runtime 'docker'"),
    (["interpolate", "runs/gan/x", "--method", "cubic"], "unknown interpolation method 'cubic'"),
    (["sweep", "--config", "no-such-job"], "no-such-job"),
    (["sweep", "--slurm", "--cluster", "no-such-cluster"], "no-such-cluster"),
    (["sweep", "--grid", "hidden"], "--grid"),
])
def test_a_choice_that_is_not_one_names_the_choices(cli, tmp_path, args, fragment):
    r = cli(*args, *(["--out", tmp_path / "o"] if args[0] != "interpolate" else []))
    assert r.code == 2 and r.err.startswith("lstmgan: error: ") and one_line(r.err), r.err
    assert fragment in r.err
    assert not (tmp_path / "o").exists()


@pytest.fixture
def broken(monkeypatch):
    """A bug: checking a palindrome config's rules raises an exception nobody expected."""
    def explode(self):
        raise RuntimeError("boom: the first line\nand a second line")

    monkeypatch.setattr(PalindromeConfig, "__post_init__", explode)


def test_an_internal_error_is_one_line_with_the_traceback_in_a_file(cli, tmp_path, broken, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("LSTMGAN_DEBUG", raising=False)
    r = cli(*RUN, "--out", tmp_path / "runs")
    assert r.code == 1 and one_line(r.err), r.err
    assert r.err.startswith("lstmgan: internal error: RuntimeError: boom: the first line; full traceback in ")
    crash = Path(r.err.split("full traceback in ")[1].strip())
    assert crash.parent == tmp_path / "state" / "lstmgan"
    text = crash.read_text()
    assert "Traceback" in text and "and a second line" in text and "palindrome --model rnn" in text
    assert not (tmp_path / "runs").exists()


def test_the_traceback_goes_to_the_temp_dir_when_the_state_dir_cannot_be_written(cli, tmp_path, broken,
                                                                                monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file" / "state"))  # under a file: cannot exist
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    r = cli(*RUN, "--out", tmp_path / "runs")
    assert r.code == 1 and one_line(r.err), r.err
    crash = Path(r.err.split("full traceback in ")[1].strip())
    assert crash.parent == tmp_path / "tmp" / "lstmgan" and "boom" in crash.read_text()


@pytest.mark.parametrize("how", ["flag", "flag after the command", "environment"])
def test_debug_shows_the_traceback_in_full(cli, tmp_path, broken, monkeypatch, how):
    args = {"flag": ["--debug", *RUN], "flag after the command": [*RUN, "--debug"], "environment": RUN}[how]
    if how == "environment":
        monkeypatch.setenv("LSTMGAN_DEBUG", "1")
    r = cli(*args, "--out", tmp_path / "runs")
    assert r.code == 1
    assert "Traceback (most recent call last)" in r.err and "and a second line" in r.err


def test_an_output_path_that_cannot_exist_is_refused_first_with_exit_2_naming_it(cli):
    r = cli(*RUN, "--out", "/proc/lstmgan-cannot-be-here")  # /proc takes no new folders, even from root
    assert r.code == 2 and one_line(r.err), r.err  # refused before the progress display starts
    assert r.err.startswith("lstmgan: error: --out /proc/lstmgan-cannot-be-here") and "choose another --out" in r.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_forbidden_run_folder_is_exit_3_naming_it(cli, tmp_path):
    sweep = tmp_path / "runs" / "palindrome-runs"
    sweep.mkdir(parents=True)
    sweep.chmod(0o555)  # --out itself is writable; the sweep folder in it is not
    try:
        r = cli(*RUN, "--out", tmp_path / "runs")
    finally:
        sweep.chmod(0o755)
    assert r.code == 3 and one_line(r.err), r.err
    assert str(sweep) in r.err and "permission denied" in r.err


def test_a_full_disk_is_exit_3_with_the_fix(cli, tmp_path, tmpfs):
    out = tmpfs(tmp_path / "small", "size=64k")
    try:
        with open(out / "filler", "wb") as f:  # fill it to the last byte
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    before = snapshot(out)
    r = cli(*RUN, "--out", out)
    assert r.code == 3 and one_line(r.err), r.err
    assert "no space left" in r.err and "free space" in r.err and str(out) in r.err
    assert snapshot(out) == before  # nothing half-written left behind
    (out / "filler").unlink()
    assert cli(*RUN, "--out", out).code == 0  # the same command finishes once space exists


def test_a_read_only_sweep_folder_is_exit_3(cli, tmp_path, tmpfs):
    (tmp_path / "runs").mkdir()
    sweep = tmpfs(tmp_path / "runs" / "palindrome-runs", "size=64k,ro")
    r = cli(*RUN, "--out", tmp_path / "runs")
    assert r.code == 3 and one_line(r.err), r.err
    assert str(sweep) in r.err and "read-only file system" in r.err


def test_ctrl_c_is_exit_130_with_how_to_resume(tmp_path):
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "lstmgan", "palindrome", "--model", "rnn", "--length", "4", "--epochs", "100000",
            *TINY, "--quiet", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,  # Ctrl-C as in a shell
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = out / "palindrome-runs" / "rnn-L4-s0" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("lstmgan: interrupted; rerun the same command to resume from the last "
                                           "checkpoints")
    assert "Traceback" not in err
