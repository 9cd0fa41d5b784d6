"""RunLock's judgement of a holder on another host: SLURM liveness is asked of the injected job_alive."""

from __future__ import annotations

import json

import pytest

from lstmgan.errors import UserError
from lstmgan.lock import LOCK, RunLock

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
