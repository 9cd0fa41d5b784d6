"""fs: atomic writes that never follow a link and always clean up, and a reader of regular files only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lstmgan import fs
from lstmgan.errors import UserError


def test_an_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    fs.write_text_atomic(tmp_path / "a" / "b.txt", "one")
    fs.write_text_atomic(tmp_path / "a" / "b.txt", "two")
    assert (tmp_path / "a" / "b.txt").read_text() == "two" and os.listdir(tmp_path / "a") == ["b.txt"]


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path):
    (tmp_path / "precious").write_text("keep")
    (tmp_path / "out.json").symlink_to(tmp_path / "precious")
    fs.write_json_atomic(tmp_path / "out.json", {"a": 1})
    assert not (tmp_path / "out.json").is_symlink() and (tmp_path / "precious").read_text() == "keep"


def test_a_folder_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "interpolation").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UserError, match="interpolation is a symbolic link"):
        fs.write_bytes_atomic(tmp_path / "interpolation" / "linear-0.png", b"png")
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_link_planted_at_the_drawn_temp_name_is_skipped_for_another_name(tmp_path, monkeypatch):
    """Temp names are random; even a planted name that is drawn is never opened: O_EXCL|O_NOFOLLOW fails
    on it and another name is drawn. (token_hex is fixed here only to make the draw hit the planted name.)"""
    (tmp_path / "precious").write_text("keep")
    (tmp_path / ".result.json.planted.tmp").symlink_to(tmp_path / "precious")
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(fs.secrets, "token_hex", lambda _n: next(names))
    fs.write_text_atomic(tmp_path / "result.json", "{}")
    assert (tmp_path / "precious").read_text() == "keep" and (tmp_path / "result.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == [".result.json.planted.tmp", "precious", "result.json"]


def test_write_once_keeps_the_first_value_and_leaves_no_temp(tmp_path):
    assert fs.write_bytes_once(tmp_path / "wandb-group", b"first") is True
    assert fs.write_bytes_once(tmp_path / "wandb-group", b"second") is False
    assert os.listdir(tmp_path) == ["wandb-group"] and (tmp_path / "wandb-group").read_bytes() == b"first"


def test_append_adds_to_a_regular_file_and_never_to_a_link_or_a_fifo(tmp_path):
    fs.append_bytes(tmp_path / "metrics.jsonl", b'{"epoch": 1}\n')
    fs.append_bytes(tmp_path / "metrics.jsonl", b'{"epoch": 2}\n')
    assert fs.read_jsonl(tmp_path / "metrics.jsonl") == [{"epoch": 1}, {"epoch": 2}]
    (tmp_path / "precious").write_text("keep")
    (tmp_path / "linked.jsonl").symlink_to(tmp_path / "precious")
    with pytest.raises(fs.NotRegular, match="linked.jsonl is a symbolic link"):
        fs.append_bytes(tmp_path / "linked.jsonl", b"row\n")
    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(fs.NotRegular, match="fifo.jsonl is a FIFO"):
        fs.append_bytes(tmp_path / "fifo.jsonl", b"row\n")
    assert (tmp_path / "precious").read_text() == "keep"


def test_sigterm_during_a_large_write_removes_its_temp_file(tmp_path):
    """SIGTERM's default would end the process before any cleanup; during a write it raises instead."""
    code = ("import sys, pathlib; from lstmgan import fs; print('go', flush=True); "
            "[fs.write_bytes_atomic(pathlib.Path(sys.argv[1]), bytes(64 << 20)) for _ in range(1000)]")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "big.npy")], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"go\n"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert [p for p in os.listdir(tmp_path) if fs.is_temp(tmp_path / p)] == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make, words", [
    (lambda p: os.mkfifo(p), "is a FIFO"),
    (lambda p: p.symlink_to("/dev/zero"), "is a symbolic link"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b"x" * (fs.LIMITS["lock"] + 1)), "more than a lock file can be"),
], ids=["fifo", "dev-zero", "folder", "oversized"])
def test_the_reader_takes_regular_files_of_bounded_size_only(tmp_path, make, words):
    make(tmp_path / "f")
    with pytest.raises(fs.NotRegular, match=words):
        fs.read_regular(tmp_path / "f", "lock")


@pytest.mark.timeout(30)
def test_a_file_the_user_names_may_be_a_link_to_a_regular_file_but_never_to_a_device(tmp_path):
    (tmp_path / "job.yaml").write_text("epochs: 3\n")
    (tmp_path / "linked.yaml").symlink_to(tmp_path / "job.yaml")
    assert fs.read_text(tmp_path / "linked.yaml", "config", follow=True) == "epochs: 3\n"
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with pytest.raises(fs.NotRegular, match="zero.yaml is a device"):
        fs.read_regular(tmp_path / "zero.yaml", "config", follow=True)


def test_read_jsonl_names_a_fifo_and_skips_a_missing_file(tmp_path):
    assert fs.read_jsonl(tmp_path / "missing.jsonl") == []
    os.mkfifo(tmp_path / "metrics.jsonl")
    with pytest.raises(fs.NotRegular, match="metrics.jsonl is a FIFO"):
        fs.read_jsonl(tmp_path / "metrics.jsonl")


def test_a_name_too_long_is_bad_input(tmp_path):
    with pytest.raises(UserError, match="too long for the file system"):
        fs.write_text_atomic(tmp_path / ("n" * 300) / "config.yaml", "x")
    with pytest.raises(UserError, match="too long for the file system"):
        fs.check_writable(tmp_path / ("n" * 300))


def test_read_tail_takes_the_last_bytes_of_a_regular_file_only(tmp_path):
    log = tmp_path / "task.err"
    log.write_bytes(b"x" * 100_000 + b"ValueError: the end\n")
    assert fs.read_tail(log, "log", 20) == b"ValueError: the end\n"
    assert fs.read_tail(log, "log", 10**9) == log.read_bytes()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(fs.NotRegular, match="a FIFO"):
        fs.read_tail(tmp_path / "fifo", "log", 20)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(fs.NotRegular, match="symbolic link"):
        fs.read_tail(tmp_path / "zero", "log", 20)
