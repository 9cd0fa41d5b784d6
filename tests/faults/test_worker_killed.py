"""Issue 19: a sweep's worker process killed outright (SIGKILL, the OOM killer) is that run's failure: named in
one line, exit 1, no traceback, the other runs stop at a checkpoint, and a rerun finishes the sweep."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import TINY
from helpers import alive, checkpointed, children, lstmgan, wait_for

SWEEP = ["sweep", "--lengths", "6", "--models", "rnn", "lstm", "--seeds", "0", "1", "--epochs", "8", *TINY,
         "--set", "samples=1000", "--quiet"]


@pytest.mark.timeout(240)
def test_a_killed_worker_fails_its_run_by_name_and_a_rerun_resumes(cli, tmp_path):
    sweep = tmp_path / "palindrome"
    proc = lstmgan(*SWEEP, "--jobs", "2", "--out", tmp_path)
    wait_for(lambda: checkpointed(sweep), "a first checkpoint")
    workers = children(proc.pid)
    lock = next(sweep.glob("*/.lstmgan.lock"))  # a run under way names its writer
    victim = lock.parent.name
    os.kill(json.loads(lock.read_text())["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=90)

    assert proc.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{victim} (its worker process was killed by SIGKILL)" in err and "rerun the same command" in err, err
    assert wait_for(lambda: not [p for p in workers if alive(p)], "the workers to exit", timeout=20)

    rerun = cli(*SWEEP, "--jobs", "1", "--out", tmp_path)
    assert rerun.code == 0, rerun.err
    assert len(list(sweep.glob("*/result.json"))) == 4
