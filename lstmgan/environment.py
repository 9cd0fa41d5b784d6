"""What a run ran on: versions and hardware, stored in every result.json for the report's header."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import lstmgan


def git_revision() -> str | None:
    """The source checkout's commit (+ '-dirty'), or LSTMGAN_REVISION (set in the Docker image)."""
    root = Path(lstmgan.__file__).resolve().parent.parent
    if (root / ".git").exists():
        with suppress(OSError, subprocess.SubprocessError):
            rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            return rev or None
    return os.environ.get("LSTMGAN_REVISION")


def cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask (what SLURM, taskset or a container grants),
    not os.cpu_count(), which counts every core of the node."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def numerics() -> dict[str, Any]:
    """The settings that change floating-point results on a GPU, as a run used them."""
    return {
        "matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


@contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 matmuls and convolutions for a block (TF32 keeps only 10 mantissa bits), restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """torch's float32 matmul precision for a block ("highest": exact; "high": TF32 on CUDA), restored after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@dataclass(frozen=True)
class GpuProbe:
    """What the machine and torch say about CUDA."""

    nvidia: bool  # an NVIDIA driver is loaded (/proc/driver/nvidia) or nvidia-smi is installed
    driver_cuda: str | None  # the newest CUDA the driver supports (nvidia-smi's "CUDA Version"), if known
    torch_cuda: str | None  # the CUDA torch was built for (torch.version.cuda; None: a CPU-only build)
    usable: bool  # torch.cuda.is_available()
    hidden: bool = False  # CUDA_VISIBLE_DEVICES hides every GPU on purpose


def probe_gpu() -> GpuProbe:
    usable = torch.cuda.is_available()
    smi = shutil.which("nvidia-smi")
    driver_cuda = None
    if smi and not usable:
        with suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
            found = re.search(r"CUDA Version:\s*([0-9.]+)", out)
            driver_cuda = found.group(1) if found else None
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    return GpuProbe(nvidia=bool(smi) or Path("/proc/driver/nvidia").exists(), driver_cuda=driver_cuda,
                    torch_cuda=torch.version.cuda, usable=usable, hidden=hidden)


CUDA12_INDEX = "https://download.pytorch.org/whl/cu126"


def cuda_problem(probe: Callable[[], GpuProbe] = probe_gpu) -> str | None:
    """Why torch cannot use this machine's NVIDIA GPU, in one line with the fix; None when it can, when
    there is none, or when CUDA_VISIBLE_DEVICES hides it on purpose. (`--device auto` refuses on such a
    line instead of quietly training on the CPU.)"""
    p = probe()
    if p.usable or not p.nvidia or p.hidden:
        return None
    driver = f"the driver supports CUDA {p.driver_cuda}" if p.driver_cuda else "the driver's CUDA version unknown"
    if p.torch_cuda is None:
        return (f"this machine has an NVIDIA GPU ({driver}) but torch {torch.__version__} is a CPU-only build: "
                f"make clean install TORCH_INDEX={CUDA12_INDEX}, or --device cpu")
    if p.driver_cuda and _version(p.driver_cuda) < _version(p.torch_cuda):
        return (f"this machine has an NVIDIA GPU but {driver} and torch {torch.__version__} needs CUDA "
                f"{p.torch_cuda}: install a torch build for CUDA 12 (make clean install TORCH_INDEX={CUDA12_INDEX}) "
                "or update the driver, or --device cpu")
    return (f"this machine has an NVIDIA GPU ({driver}; torch built for CUDA {p.torch_cuda}) but torch sees no "
            "usable device (run nvidia-smi; is the GPU allocated to this job?), or --device cpu")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """With enabled: deterministic kernels only (an error where none exists), no TF32, no cuDNN autotuning;
    every setting is restored after, so one run's choice never leaks into the next run in the process."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    # cuBLAS is deterministic only with a fixed workspace (see the CUDA docs on reproducibility).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with no_tf32():
            yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]
        if before[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def describe(device: torch.device) -> dict[str, Any]:
    """Versions, hardware and the process's numeric settings now (a trainer that scopes its own settings,
    e.g. `deterministic`, also records them in its result as "numerics")."""
    env: dict[str, Any] = {
        "lstmgan": lstmgan.__version__, "git_revision": git_revision(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
        "cpu": cpu_model(), "cpu_count": usable_cpus(), "cpu_count_node": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **numerics(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cudnn"] = torch.backends.cudnn.version()
    return env
