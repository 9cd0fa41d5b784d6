"""Issue 16: every input has a bound, and lstmgan keeps Unix manners. A YAML alias bomb, a grid of a million
runs and a gzip bomb are refused in one line (exit 2) before anything big is built; a FIFO where SLURM's record
or a task log belongs is named, never waited on; a reader that goes away ends the command quietly (141, as
git); a crash file never follows a link planted in a shared temp folder."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, snapshot
from helpers import lstmgan

from lstmgan.config import PalindromeConfig

ARGS = ["palindrome", "--model", "rnn", "--length", "4", *TINY, "--quiet"]
# 3 KB that a YAML loader expands to 10^10 values: each line lists the one before it ten times.
BOMB = "[" + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
    f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]) + "]"


def one_line_refusal(r, *words):
    assert r.code == 2 and all(w in r.err for w in words), r.err
    assert len(r.err.strip().splitlines()) == 1 and len(r.err) < 1000, r.err


def peak_rss_of(*args, timeout=120, **kwargs):
    """Run the real CLI in a child; return (exit code, stderr, seconds, the child's peak RSS in MiB)."""
    code = ("import resource, subprocess, sys, time; t = time.monotonic(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(p.returncode, time.monotonic() - t, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); print(p.stderr, end='')")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "lstmgan", *map(str, args)],
                         capture_output=True, text=True, timeout=timeout, **kwargs).stdout
    head, _, err = out.partition("\n")
    rc, seconds, rss = head.split()
    return int(rc), err, float(seconds), float(rss)


# --- YAML ---------------------------------------------------------------------------------------------------


def test_bomb_is_small_and_expands_past_the_bound():
    assert len(BOMB) < 3000 and BOMB.count("*") == 90


def test_an_alias_bomb_given_to_set_is_refused_in_one_line(cli, tmp_path):
    one_line_refusal(cli(*ARGS, "--set", f"hidden={BOMB}", "--out", tmp_path), "--set hidden", "alias")
    assert not any(tmp_path.iterdir())


def test_an_alias_bomb_in_a_job_file_is_refused_in_one_line(cli, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"epochs: 1\nlengths: {BOMB}\n")
    one_line_refusal(cli("sweep", "--config", job, "--dry-run", "--out", tmp_path / "out"), str(job), "alias")
    one_line_refusal(cli("sweep", "--config", job, "--print-config", "--out", tmp_path / "out"), str(job))
    assert not (tmp_path / "out").exists()


def test_a_job_file_whose_alias_contains_itself_is_refused(cli, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("lengths: &a [3, *a]\n")
    one_line_refusal(cli("sweep", "--config", job, "--dry-run", "--out", tmp_path), str(job), "contains it")


def test_aliases_of_a_reasonable_size_still_work(cli, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("lengths: &short [3, 4]\ngrid: {hidden: *short}\n")
    r = cli("sweep", "--config", job, "--models", "rnn", "--print-config", "--out", tmp_path)
    assert r.code == 0 and "hidden:\n  - 3\n  - 4" in r.out, r.err


@pytest.mark.timeout(120)
def test_an_alias_bomb_planted_in_a_runs_config_is_refused_and_the_run_stays_as_it_was(cli, tmp_path):
    assert cli(*ARGS, "--epochs", "1", "--out", tmp_path / "out").code == 0
    run = tmp_path / "out" / "palindrome-runs" / "rnn-L4-s0"
    (run / "config.yaml").write_text(f"model: rnn\nlength: {BOMB}\n")
    before = snapshot(tmp_path)
    one_line_refusal(cli(*ARGS, "--epochs", "2", "--out", tmp_path / "out"), str(run / "config.yaml"))
    assert snapshot(tmp_path) == before
    r = cli("status", run.parent)
    assert r.code in (0, 2) and len(r.err) < 1000, r.err


def test_a_sweep_whose_figures_folder_is_a_link_is_refused_before_any_training(cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out" / "palindrome").mkdir(parents=True)
    (tmp_path / "out" / "palindrome" / "figures").symlink_to(outside, target_is_directory=True)
    r = cli("sweep", "--lengths", "3", "--models", "rnn", "--epochs", "1", *TINY, "--out", tmp_path / "out")
    one_line_refusal(r, str(tmp_path / "out" / "palindrome" / "figures"), "symbolic link")
    assert os.listdir(outside) == [] and os.listdir(tmp_path / "out" / "palindrome") == ["figures"]


@pytest.mark.parametrize("command", [
    ["gan", "--epochs", "1", "--device", "cpu", "--set", "batch_size=64", "--set", "eval_every=0", "--wandb",
     "disabled", "--quiet"],
    ["study", "--preset", "quick", "--set", "sweep.lengths=[3]", "--set", "sweep.epochs=1", "--wandb", "disabled",
     "--quiet"],
    ["classifier", "--epochs", "1", "--device", "cpu"],
], ids=["gan", "study", "classifier"])
def test_a_classifier_cache_folder_that_is_a_link_is_refused_before_anything_is_made(cli, tmp_path, command):
    """OUT/classifiers, where GAN runs cache their classifier, is lstmgan's own folder: found only when the
    classifier was written, the run folder had already been made (the `classifier` command had trained)."""
    from idx import make_tiny_mnist

    make_tiny_mnist(tmp_path / "data", n_train=256, n_test=64)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "classifiers").symlink_to(outside, target_is_directory=True)
    r = cli(*command, "--data-dir", tmp_path / "data", "--out", tmp_path / "out")
    one_line_refusal(r, str(tmp_path / "out" / "classifiers"), "symbolic link")  # one line: no training shown
    assert os.listdir(outside) == [] and os.listdir(tmp_path / "out") == ["classifiers"]
    assert "accuracy" not in r.out + r.err


# --- the number of runs -----------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_grid_of_a_million_runs_is_refused_in_one_line_before_it_is_built(tmp_path):
    values = ",".join(map(str, range(1, 1001)))
    rc, err, seconds, rss = peak_rss_of("sweep", "--grid", f"hidden={values}", "--grid", f"epochs={values}",
                                        "--dry-run", "--out", tmp_path)
    assert rc == 2 and "plans 8,000,000 runs" in err and "--max-runs 8000000" in err, err
    # 8,000,000 configs would take tens of GB; the bound leaves room for importing a CUDA build of torch (~1 GB)
    assert len(err.strip().splitlines()) == 1 and rss < 2048, (err, rss)
    assert not any(tmp_path.iterdir())


def test_the_cap_is_stated_and_max_runs_moves_it(cli, tmp_path):
    sweep = ["sweep", "--lengths", "3", "--models", "rnn", "--seeds", "0-9", "--dry-run", "--out", tmp_path]
    sweep[sweep.index("0-9")] = ",".join(map(str, range(10)))
    one_line_refusal(cli(*sweep, "--max-runs", "9"), "plans 10 runs", "more than 9", "--max-runs 10")
    r = cli(*sweep, "--max-runs", "10")
    assert r.code == 0 and "rnn-L3-s9" in r.out, r.err
    assert cli(*sweep).code == 0  # --max-runs held for its own command only
    one_line_refusal(cli(*sweep, "--max-runs", "0"), "--max-runs")


def test_a_job_file_over_the_cap_is_refused_too(cli, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"seeds: [{', '.join(map(str, range(20_000)))}]\n")
    one_line_refusal(cli("sweep", "--config", job, "--dry-run", "--out", tmp_path / "out"), "plans 160,000 runs",
                     "more than 10,000")


# --- decompressed data ------------------------------------------------------------------------------------------


def gzip_bomb(path, header: bytes, gib: int) -> None:
    """A gzip file (several members, as gzip allows) of `header` and then `gib` GiB of zeros, in ~gib MB."""
    zeros = gzip.compress(bytes(64 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(16 * gib):
            f.write(zeros)


def gan_on(data):
    return ["gan", "--data-dir", data, "--epochs", "1", "--device", "cpu", "--wandb", "disabled", "--quiet"]


@pytest.mark.timeout(180)
def test_a_gzip_bomb_in_the_data_folder_is_refused_without_decompressing_it(tmp_path):
    from idx import make_tiny_mnist

    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=64, n_test=16)
    images = next(data.rglob("train-images-idx3-ubyte*"))
    images.unlink()
    bomb = images.with_name("train-images-idx3-ubyte.gz")
    gzip_bomb(bomb, (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (64, 28, 28)), gib=2)
    assert bomb.stat().st_size < 4 << 20
    rc, err, seconds, rss = peak_rss_of(*gan_on(data), "--out", tmp_path / "out")
    assert rc == 2 and str(bomb) in err and "or more" in err, err  # stopped one byte past what the header says
    assert seconds < 60 and rss < 1536, (seconds, rss)


def test_a_gzip_header_that_promises_too_much_is_refused_before_decompressing(cli, tmp_path):
    from idx import make_tiny_mnist

    data = tmp_path / "data"
    make_tiny_mnist(data, n_train=64, n_test=16)
    images = next(data.rglob("train-images-idx3-ubyte*"))
    images.unlink()
    bomb = images.with_name("train-images-idx3-ubyte.gz")
    bomb.write_bytes(gzip.compress((2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big")
                                                                         for n in (4_000_000, 28, 28))))
    one_line_refusal(cli(*gan_on(data), "--out", tmp_path / "out"), str(bomb), "more than a data file can be")


# --- FIFOs where SLURM's files belong -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_fifo_as_slurm_json_is_named_never_waited_on(cli, tmp_path):
    sweep = tmp_path / "palindrome"
    sweep.mkdir()
    os.mkfifo(sweep / "slurm.json")
    one_line_refusal(cli("status", sweep), str(sweep / "slurm.json"), "FIFO")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_task_log_that_is_a_fifo_or_dev_zero_is_named_and_status_goes_on(cli, tmp_path, monkeypatch, plant):
    bin_dir = tmp_path / "bin"  # SLURM's accounting, as this host has none: the task failed
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nprintf 'JobID|State\\n4242_0|FAILED\\n'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sweep = tmp_path / "palindrome"
    run = sweep / "rnn-L3-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: rnn\nlength: 3\n")
    (run / "task.json").write_text(json.dumps({"outcome": "failed"}))  # no error line: the log is read
    (sweep / "submitit").mkdir()
    (sweep / "slurm.json").write_text(json.dumps({"job_id": "4242", "submitit_folder": "submitit",
                                                  "tasks": [{"job_id": "4242_0", "runs": ["rnn-L3-s0"]}]}))
    for name in ("4242_0_0_log.err", "4242_0_log.err"):  # submitit's names for an array task's stderr
        if plant == "fifo":
            os.mkfifo(sweep / "submitit" / name)
        else:
            (sweep / "submitit" / name).symlink_to("/dev/zero")
    r = cli("status", sweep)
    assert r.code == 0 and "4242_0" in r.out, r.err
    assert "FIFO" in r.out or "symbolic link" in r.out, r.out


# --- Unix manners -----------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_collect_whose_reader_went_away_ends_quietly_with_141(cli, tmp_path):
    assert cli(*ARGS, "--epochs", "1", "--out", tmp_path).code == 0
    p = lstmgan("collect", tmp_path / "palindrome-runs")
    p.stdout.close()  # `| head -1` that has read its line: the reader is gone before lstmgan writes
    assert p.wait(timeout=60) == 141
    assert p.stderr.read() == ""


def test_a_pipe_through_head_prints_the_first_line_and_no_traceback(tmp_path):
    sh = f"set -o pipefail; {sys.executable} -m lstmgan configs | (sleep 2; head -1)"
    r = subprocess.run(["bash", "-c", sh], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() and r.stderr == "" and r.returncode in (0, 141), (r.returncode, r.stderr)


def test_a_closed_stdout_runs_the_command_and_drops_its_output(tmp_path):
    r = subprocess.run(["bash", "-c", f"{sys.executable} -m lstmgan configs >&-"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.fixture
def broken(monkeypatch, tmp_path):
    """A bug (validating a config raises what nobody expected), with a state folder that cannot be written."""
    def explode(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(PalindromeConfig, "__post_init__", explode)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file" / "state"))  # under a file: cannot exist
    monkeypatch.delenv("LSTMGAN_DEBUG", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    outside = tmp_path / "outside"
    outside.mkdir()
    return outside


def crash_path(r):
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    return Path(r.err.split("full traceback in ")[1].strip())


@pytest.mark.parametrize("plant", ["link", "shared folder"])
def test_a_crash_file_goes_to_a_private_folder_never_through_a_planted_link(cli, tmp_path, broken, plant):
    shared = tmp_path / "tmp" / "lstmgan"
    if plant == "link":
        shared.symlink_to(broken, target_is_directory=True)
    else:  # another user's, or one anybody may write into
        shared.mkdir(mode=0o777)
        shared.chmod(0o777)
    crash = crash_path(cli(*ARGS, "--out", tmp_path / "runs"))
    assert os.listdir(broken) == [] and "boom" in crash.read_text()
    assert crash.parent.parent == tmp_path / "tmp" and crash.parent != shared
    assert stat.S_IMODE(crash.parent.lstat().st_mode) == 0o700 and stat.S_IMODE(crash.stat().st_mode) == 0o600


def test_a_crash_file_uses_the_users_own_private_temp_folder(cli, tmp_path, broken):
    crash = crash_path(cli(*ARGS, "--out", tmp_path / "runs"))
    assert crash.parent == tmp_path / "tmp" / "lstmgan" and stat.S_IMODE(crash.parent.stat().st_mode) == 0o700

