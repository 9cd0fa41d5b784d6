"""The few private parts of submitit lstmgan uses, in one place (tested on submitit 1.5.x; pinned in
pyproject.toml and constraints.txt). If a submitit release changes them, only this module changes.

- `convert_parameters`: generic names (timeout_min, mem_gb, gpus_per_node, …) → sbatch's, with submitit's
  own unit conversions (SlurmExecutor._convert_parameters).
- `submission_script`: the exact sbatch script submitit would submit (SlurmExecutor._make_submission_file_text),
  for --dry-run and `sbatch --test-only`.
- `requeue_signal`: the signal SLURM sends ahead of a timeout or preemption (USR2 unless
  SUBMITIT_PREEMPT_SIGNAL says otherwise), on which submitit checkpoints and requeues (JobEnvironment._usr_sig).
- `TimedSlurmExecutor`: submitit's executor with its sbatch call (SlurmExecutor._make_submission_command, run
  by submitit with no time limit) under coreutils' `timeout`, so a hung controller cannot hang a submission.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from submitit.core.job_environment import JobEnvironment
from submitit.slurm.slurm import SlurmExecutor


class TimedSlurmExecutor(SlurmExecutor):
    SUBMIT_TIMEOUT_S = 60
    TIMED_OUT = 124  # timeout's exit status; submitit raises FailedJobError from a CalledProcessError with it

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return ["timeout", "--kill-after=5", str(self.SUBMIT_TIMEOUT_S), *super()._make_submission_command(
            submission_file_path)]


def convert_parameters(executor: SlurmExecutor, params: dict[str, Any]) -> dict[str, Any]:
    return executor._convert_parameters(params)


def submission_script(executor: SlurmExecutor, tasks: int) -> str:
    """The sbatch script for `tasks` array tasks (a single job when tasks == 1)."""
    saved = dict(executor.parameters)
    if tasks > 1:
        executor.parameters["map_count"] = tasks  # what submitit sets on its array copy of the executor
    try:
        return executor._make_submission_file_text(executor._submitit_command_str, "preview")
    finally:
        executor.parameters = saved


def requeue_signal() -> signal.Signals:
    return JobEnvironment._usr_sig()
