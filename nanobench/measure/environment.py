"""What machine and software a run ran on, gathered when a run starts (never at import)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_AFFINITY", "GOMP_CPU_AFFINITY",
                    "OMP_PROC_BIND", "OMP_PLACES", "OMP_DYNAMIC", "MKL_DYNAMIC", "KMP_BLOCKTIME")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict:
    """The first processor's fields from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> list[str]:
    info = _cpuinfo()
    return sorted((info.get("flags") or info.get("Features") or "").split())


def physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def git_state() -> dict:
    """The project's commit and whether the working tree had uncommitted changes."""
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=5
        )

    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def collect(device) -> dict:
    """Environment metadata for a run on `device` (a torch.device)."""
    import psutil
    import torch

    env = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_physical_cores": physical_cores(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "memory_total_bytes": psutil.virtual_memory().total,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "thread_env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "parallel_backend": _parallel_backend(torch),
        "cpu_clock": _cpu_clock(),
        "sdpa_backends": _sdpa_backends(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "git": git_state(),
        "device_type": device.type,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu_name=props.name,
            gpu_memory_bytes=props.total_memory,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
        )
        from nanobench.measure import nvml

        env["gpu_state_at_start"] = nvml.gpu_state(device)  # clocks, power limit, driver
    return env


def _parallel_backend(torch) -> str | None:
    """The ATen parallel backend line of torch's build info, e.g. 'OpenMP'."""
    for line in torch.__config__.parallel_info().splitlines():
        if line.startswith("ATen parallel backend"):
            return line.partition(":")[2].strip()
    return None


def _cpu_clock() -> dict:
    from nanobench.measure.peaks import cpu_clock_hz

    hz, source = cpu_clock_hz()
    return {"hz": hz, "source": source}


def _sdpa_backends() -> dict:
    from nanobench.measure.device import sdpa_backends

    return sdpa_backends()
