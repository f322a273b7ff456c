"""What machine and software a run ran on, gathered when a run starts (never at import)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from nanobench import __version__
from nanobench.measure import host, nvml
from nanobench.measure.precision import current_matmul_flags

PROJECT_ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "KMP_AFFINITY",
    "GOMP_CPU_AFFINITY",
    "OMP_PROC_BIND",
    "OMP_PLACES",
    "OMP_DYNAMIC",
    "MKL_DYNAMIC",
    "KMP_BLOCKTIME",
)


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
    """Environment metadata for a run on `device` (a Device)."""
    import psutil
    import torch

    env = {
        "hostname": socket.gethostname(),  # shown, never part of the machine's fingerprint
        "os": platform.platform(),
        "os_family": platform.system(),
        "machine_arch": platform.machine(),
        "machine_token": host.machine_token(),
        "nanobench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cpu_model": host.cpu_model(),
        "cpu_flags": host.cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_physical_cores": host.physical_cores(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "memory_total_bytes": host.memory_total_bytes(),
        "gpus": _gpus(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "thread_env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        "parallel_backend": _parallel_backend(torch),
        "cpu_clock": _cpu_clock(),
        "sdpa_backends": sdpa_backends(),
        **current_matmul_flags(),
        "git": git_state(),
        "device_type": device.kind,
    }
    if device.kind == "cuda":
        props = torch.cuda.get_device_properties(device.torch)
        env.update(
            gpu_name=props.name,
            gpu_memory_bytes=props.total_memory,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
        )
        env["gpu_state_at_start"] = nvml.gpu_state(device)  # clocks, power limit, driver
    elif device.kind == "mps":  # Apple's GPU is part of the chip the CPU brand names
        env.update(gpu_name=host.cpu_model(), gpu_cores=host.apple_gpu_cores())
    return env


def _gpus() -> list[dict]:
    """Every GPU of the machine, for its fingerprint (store/meta.machine_fingerprint), whichever
    device this run uses: NVIDIA's from NVML; Apple's is part of the chip, told apart by its
    core count."""
    found = nvml.gpus()
    if not found and sys.platform == "darwin" and host.apple_gpu_cores():
        found = [
            {
                "name": f"{host.cpu_model()} GPU ({host.apple_gpu_cores()} cores)",
                "memory_bytes": None,
            }
        ]
    return found


def _parallel_backend(torch) -> str | None:
    """The ATen parallel backend line of torch's build info, e.g. 'OpenMP'."""
    for line in torch.__config__.parallel_info().splitlines():
        if line.startswith("ATen parallel backend"):
            return line.partition(":")[2].strip()
    return None


def _cpu_clock() -> dict:
    hz, source = host.cpu_clock_hz()
    return {"hz": hz, "source": source}


def sdpa_backends() -> dict:
    """Which scaled-dot-product-attention kernels torch may pick (CUDA flags; the CPU uses its
    fused flash kernel unless the math backend is forced)."""
    import torch

    b = torch.backends.cuda
    flags = {
        "flash": b.flash_sdp_enabled,
        "mem_efficient": b.mem_efficient_sdp_enabled,
        "math": b.math_sdp_enabled,
        "cudnn": getattr(b, "cudnn_sdp_enabled", None),
    }
    return {k: (f() if f else None) for k, f in flags.items()}


def compile_problem(device) -> str | None:
    """Why `torch.compile` cannot work for `device` (a Device) here, or None when it can.

    torch's own checks, asked before the run instead of failing deep inside inductor at the
    first step: dynamo's Python check; on CUDA the triton package its kernels need; on the
    CPU the C++ compiler inductor searches for (g++/clang++ or $CXX; MSVC's cl on Windows).
    MPS kernels are Metal, built by torch itself. A check torch does not have is skipped.
    """
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported
    except ImportError:
        check_if_dynamo_supported = None
    if check_if_dynamo_supported:
        try:
            check_if_dynamo_supported()
        except RuntimeError as exc:
            return f"torch.compile does not support this Python ({exc})"
    if device.kind == "cuda":
        try:
            from torch.utils._triton import has_triton_package
        except ImportError:
            return None
        if not has_triton_package():
            how = (
                "pip install triton-windows"
                if sys.platform == "win32"
                else "install the triton matching your torch"
            )
            return f"torch.compile on CUDA needs the triton package, which is not installed ({how})"
    elif device.kind == "cpu":
        try:
            from torch._inductor import cpp_builder
            from torch._inductor.exc import InvalidCxxCompiler
        except ImportError:
            return None
        try:
            cpp_builder.get_cpp_compiler()
        except (
            InvalidCxxCompiler,
            RuntimeError,
            OSError,
        ) as exc:  # torch's other compiler checks raise RuntimeError
            how = {
                "win32": "install Visual Studio Build Tools (C++) and run from the x64 Native Tools prompt",
                "darwin": "run `xcode-select --install`",
            }.get(sys.platform, "install g++ or set CXX")
            return (
                f"torch.compile on the CPU needs a C++ compiler: {str(exc).splitlines()[0]} ({how})"
            )
    return None
