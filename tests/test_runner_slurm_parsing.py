"""What lstmgan reads from SLURM's clients, on output as they print it (odd output included), and their time
limit. No cluster needed: the real-cluster behaviour is in test_slurm.py."""

from __future__ import annotations

import time

import pytest

from lstmgan.errors import UserError
from lstmgan.runner.status import job_alive, parse_sacct, slurm_tool, squeue_alive

HEADER = "JobID|State"


def test_sacct_states_of_array_tasks_without_their_steps():
    out = "\n".join([HEADER, "123_0|COMPLETED", "123_0.batch|COMPLETED", "123_0.extern|COMPLETED",
                     "123_1|CANCELLED by 1000", "123_2|RUNNING"])
    assert parse_sacct(out, ["123_0", "123_1", "123_2"]) == {"123_0": "COMPLETED", "123_1": "CANCELLED",
                                                             "123_2": "RUNNING"}


def test_a_single_job_is_listed_under_its_plain_id():
    assert parse_sacct(f"{HEADER}\n77|TIMEOUT\n77.batch|CANCELLED", ["77"]) == {"77": "TIMEOUT"}


def test_a_pending_range_gives_the_asked_tasks_their_state_without_expanding_it():
    out = f"{HEADER}\n123_0|RUNNING\n123_[1-3,7,10-999999%4]|PENDING"
    start = time.perf_counter()
    states = parse_sacct(out, ["123_0", "123_2", "123_7", "123_5", "123_500000"])
    assert states == {"123_0": "RUNNING", "123_2": "PENDING", "123_7": "PENDING", "123_500000": "PENDING"}
    assert time.perf_counter() - start < 0.1  # a million-task range is looked into, never listed


def test_a_requeued_task_has_its_latest_state():
    assert parse_sacct(f"{HEADER}\n5_1|PREEMPTED\n5_1|RUNNING", ["5_1"]) == {"5_1": "RUNNING"}


@pytest.mark.parametrize("line", ["123_4|", "123_4", "123_4|   |x"])
def test_an_empty_state_is_unknown(line):
    assert parse_sacct(f"{HEADER}\n{line}", ["123_4"]) == {"123_4": "unknown"}


@pytest.mark.parametrize("line", ["|RUNNING", "   |FAILED", "123_[|PENDING", "123_[a-b]|PENDING", "123_[9-x]|PENDING",
                                  "garbage without a bar"])
def test_lines_without_a_usable_job_id_are_skipped(line):
    assert parse_sacct(f"{HEADER}\n{line}\n123_4|COMPLETED", ["123_4", "123_9"]) == {"123_4": "COMPLETED"}


@pytest.mark.parametrize("out", ["", "123_4|COMPLETED", "State|JobID\n123_4|COMPLETED",
                                 "sacct: error: Problem talking to the database"])
def test_output_without_the_header_is_one_line_naming_sacct(out):
    with pytest.raises(UserError, match=r"^sacct printed no JobID\|State header") as e:
        parse_sacct(out, ["123_4"])
    assert "\n" not in str(e.value)


def test_squeue_lists_a_live_job_and_errs_on_one_it_forgot():
    assert squeue_alive(0, "123_4\n", "") is True
    assert squeue_alive(0, "123_[4-9]\n", "") is True  # a pending part of an array
    assert squeue_alive(0, "", "") is False  # known to slurmctld, but no longer queued or running
    assert squeue_alive(1, "", "slurm_load_jobs error: Invalid job id specified\n") is False


def test_squeue_failing_otherwise_cannot_tell():
    assert squeue_alive(1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)") is None
    assert squeue_alive(1, "", "") is None


@pytest.mark.parametrize("job, task", [("", None), ("--all", None), ("123", "4;rm"), ("12 3", None), ("123", "")])
def test_a_lock_naming_no_slurm_id_cannot_be_judged(job, task):
    assert job_alive(job, task) is None  # before any squeue: a planted lock file cannot pass it options


def test_a_client_that_does_not_answer_is_one_line_naming_it():
    start = time.monotonic()
    with pytest.raises(UserError, match=r"^sleep did not answer within 0.2 s") as e:
        slurm_tool(["sleep", "30"], timeout=0.2)
    assert time.monotonic() - start < 5 and "\n" not in str(e.value)


def test_a_client_that_cannot_start_is_one_line_naming_it(tmp_path):
    with pytest.raises(UserError, match="could not be run"):
        slurm_tool([str(tmp_path / "sacct")])
