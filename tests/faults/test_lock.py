"""Issue 10 #2: one writer per run folder; a lock left by a killed process is taken over (a second writer
refused, the first killed, the rerun resuming: test_stop_and_resume)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, snapshot

from lstmgan.config import GanConfig
from lstmgan.errors import UserError
from lstmgan.lock import LOCK, RunLock

RUN = ["palindrome", "--model", "lstm", "--length", "6", "--epochs", "20", *TINY, "--set", "samples=1000",
       "--quiet"]


def test_a_lock_held_on_another_host_is_respected_and_named(cli, tmp_path):
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    run.mkdir(parents=True)
    (run / ".lstmgan.lock").write_text(json.dumps({"host": "node-0042", "pid": 4242, "slurm_job_id": None,
                                                   "slurm_array_task": None, "started": "2026-01-01T00:00:00"}))
    before = snapshot(tmp_path)
    r = cli("palindrome", "--model", "rnn", "--length", "4", "--epochs", "1", *TINY, "--out", tmp_path)
    assert r.code == 2 and "PID 4242 on node-0042" in r.err and ".lstmgan.lock" in r.err, r.err
    assert snapshot(tmp_path) == before


def test_a_requeued_slurm_task_takes_over_its_own_lock(cli, tmp_path, monkeypatch):
    run = tmp_path / "palindrome-runs" / "rnn-L4-s0"
    run.mkdir(parents=True)
    # the same array task's earlier attempt, on another node (preempted, then requeued here)
    (run / ".lstmgan.lock").write_text(json.dumps({"host": "node-0042", "pid": 4242, "slurm_job_id": "777",
                                                   "slurm_array_task": "3", "started": "2026-01-01T00:00:00"}))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "777")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    r = cli("palindrome", "--model", "rnn", "--length", "4", "--epochs", "1", *TINY, "--out", tmp_path)
    assert r.code == 0, r.err
    assert (run / "result.json").exists() and not (run / ".lstmgan.lock").exists()


def test_interpolate_does_not_write_into_a_run_another_command_is_writing(cli, tmp_path):
    from test_readers import gan_folder

    from lstmgan.gan.models import Generator

    run = gan_folder(tmp_path, {"epoch": 3, "generator": Generator(GanConfig().latent_dim).state_dict()})
    (run / ".lstmgan.lock").write_text(json.dumps({"host": "node-0042", "pid": 4242, "slurm_job_id": None,
                                                   "slurm_array_task": None, "started": "2026-01-01T00:00:00"}))
    before = snapshot(tmp_path)
    r = cli("interpolate", run, "--device", "cpu", "--wandb", "disabled")
    assert r.code == 2 and "being written by another command (PID 4242 on node-0042" in r.err, r.err
    assert snapshot(tmp_path) == before


# RunLock's judgement of a holder on another host: SLURM liveness is asked of the injected job_alive.

ELSEWHERE = {"host": "node-0042", "pid": 4242, "slurm_job_id": "777", "slurm_array_task": "3",
             "started": "2026-01-01T00:00:00"}


def plant(folder, holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text(json.dumps(holder))


@pytest.mark.parametrize("alive, taken", [(False, True), (True, False), (None, False)],
                         ids=["job-gone", "job-running", "cannot-tell"])
def test_a_lock_of_another_hosts_slurm_job_is_taken_over_only_when_the_job_is_gone(tmp_path, alive, taken):
    asked = []

    def job_alive(job, task):
        asked.append((job, task))
        return alive

    plant(tmp_path, ELSEWHERE)
    lock = RunLock(tmp_path, job_alive=job_alive)
    if taken:
        with lock:
            assert json.loads((tmp_path / LOCK).read_text())["token"] == lock.token
    else:
        with pytest.raises(UserError, match="PID 4242 on node-0042, SLURM job 777_3"):
            lock.acquire()
    assert asked and asked[0] == ("777", "3")


def test_without_job_alive_a_lock_of_another_hosts_slurm_job_is_respected(tmp_path):
    plant(tmp_path, ELSEWHERE)
    with pytest.raises(UserError, match="being written by another command"):
        RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK).read_text()) == ELSEWHERE


def test_the_lock_is_not_created_through_a_linked_folder(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "run").symlink_to(tmp_path / "target", target_is_directory=True)
    with pytest.raises(UserError, match="symbolic link"):
        RunLock(tmp_path / "run").acquire()
    assert list((tmp_path / "target").iterdir()) == []
