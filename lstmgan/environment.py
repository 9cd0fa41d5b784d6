"""What a run ran on: versions and hardware, stored in every result.json for the report's header."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

import lstmgan


def git_revision() -> str | None:
    """The source checkout's commit (+ '-dirty'), or LSTMGAN_REVISION (set in the Docker image)."""
    root = Path(lstmgan.__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            return rev or None
        except (OSError, subprocess.SubprocessError):
            pass
    return os.environ.get("LSTMGAN_REVISION")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "lstmgan": lstmgan.__version__, "git_revision": git_revision(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
    return env
