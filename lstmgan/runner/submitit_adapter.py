"""The few private parts of submitit lstmgan uses, in one place (tested on submitit 1.5.x; pinned in
pyproject.toml and constraints.txt). If a submitit release changes them, only this module changes.

- `convert_parameters`: generic names (timeout_min, mem_gb, gpus_per_node, …) → sbatch's, with submitit's
  own unit conversions (SlurmExecutor._convert_parameters).
- `submission_script`: the exact sbatch script submitit would submit (SlurmExecutor._make_submission_file_text),
  for --dry-run and `sbatch --test-only`.
- `requeue_signal`: the signal SLURM sends ahead of a timeout or preemption (USR2 unless
  SUBMITIT_PREEMPT_SIGNAL says otherwise), on which submitit checkpoints and requeues (JobEnvironment._usr_sig).
- `parse_sacct`: sacct's --parsable2 output → {job id: {"State": …}} (SlurmInfoWatcher.read_info), which
  also expands array ranges such as 123_[0-3].
"""

from __future__ import annotations

import signal
from typing import Any

from submitit.core.job_environment import JobEnvironment
from submitit.slurm.slurm import SlurmExecutor, SlurmJob

TESTED_VERSIONS = ">=1.5.1,<1.6"


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


def parse_sacct(text: str) -> dict[str, dict[str, str]]:
    return SlurmJob.watcher.read_info(text)


def requeue_signal() -> signal.Signals:
    return JobEnvironment._usr_sig()
