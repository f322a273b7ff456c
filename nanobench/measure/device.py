"""Everything that differs between devices: resolving a device string, precision, autocast,
synchronisation, timers, memory and optimizer choices. Every `if cuda` lives here.

Nothing is probed at import time; each function asks the hardware when called.
"""

from __future__ import annotations

import contextlib
import resource
import sys

import torch

from nanobench.errors import InputError
from nanobench.measure.metrics import CudaEventTimer, PerfCounterTimer

DTYPES = ("fp32", "tf32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def available_kinds() -> list[str]:
    kinds = ["cpu"]
    if torch.cuda.is_available():
        kinds.append("cuda")
    if _mps_available():
        kinds.append("mps")
    return kinds


def resolve(spec: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N`, `mps` or `auto` -> a torch.device that exists here."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise InputError(f"--device {spec}: not a device (use cpu, cuda, cuda:N, mps or auto)") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available on this machine (devices here: {', '.join(available_kinds())})")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise InputError(f"--device {spec}: MPS is not available on this machine (devices here: {', '.join(available_kinds())})")
        return torch.device("mps")
    raise InputError(f"--device {spec}: unsupported device type '{dev.type}' (use cpu, cuda, cuda:N, mps or auto)")


def for_rank(device: torch.device, local_rank: int) -> torch.device:
    """A torchrun worker's device: its own GPU (cuda:LOCAL_RANK); the CPU is shared."""
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def ddp_device_ids(device: torch.device) -> list[int] | None:
    return [device.index] if device.type == "cuda" else None


def devices_in_job(device: torch.device, world_size: int) -> int:
    """How many devices' peaks a data-parallel job can use: one GPU per rank; on the CPU
    all ranks share the one processor whose peak is already the whole machine's."""
    return world_size if device.type == "cuda" else 1


def check_dtype(device: torch.device, dtype: str) -> None:
    """Refuse precisions the device cannot run, before anything is trained."""
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: unknown (use {', '.join(DTYPES)})")
    if dtype == "tf32" and not (device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8):
        raise InputError(f"--dtype tf32: TF32 needs an NVIDIA GPU of compute capability 8.0+ (Ampere); not {device}")
    if dtype == "fp16" and device.type == "cpu":
        raise InputError("--dtype fp16: fp16 training needs a GPU (cuda or mps); on cpu use bf16")
    if dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"--dtype bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")


def configure_precision(device: torch.device, dtype: str) -> dict:
    """Set the global matmul precision for the run's dtype and return the flags, for metadata.

    fp32 means true fp32: TF32 is switched *off* so that 'fp32' on an Ampere GPU is not
    silently TF32. tf32 switches it on for matmuls and cuDNN.
    """
    tf32 = dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }


def autocast(device: torch.device, dtype: str):
    """Autocast for bf16/fp16; a no-op context for fp32 and tf32."""
    if dtype in _AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[dtype])
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, dtype: str) -> torch.amp.GradScaler:
    """A loss scaler for fp16 (its gradients underflow without one); disabled otherwise."""
    return torch.amp.GradScaler(device.type, enabled=(dtype == "fp16"))


def fused_adamw(device: torch.device) -> bool:
    """Whether to ask AdamW for its fused kernel (one kernel over all parameters).

    CUDA and CPU have one (torch >= 2.4): on this project's 2-core reference machine it takes
    the CPU recipe from 31.2 to 29.9 ms/iter, side by side (docs/performance.md). MPS keeps
    the foreach path. The choice is recorded in each run's metadata (`optimizer`).
    """
    return device.type in ("cuda", "cpu")


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a CPU batch to the device without stalling the host.

    A copy from pageable memory makes the host wait until the GPU has drained the work queued
    before it: a hidden sync point in every step. From pinned memory the copy is queued and
    the host runs ahead. Each step's batch is a fresh tensor, so no buffer is reused early.
    """
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def step_timer(device: torch.device):
    """CUDA events on CUDA (no host sync per step); perf_counter after a sync elsewhere."""
    if device.type == "cuda":
        return CudaEventTimer(device)
    return PerfCounterTimer(lambda: sync(device))


def host_read_interval(device: torch.device) -> int:
    """Iterations between host reads of losses and timings.

    On the CPU every value is already on the host, so read every step. On a GPU each read is
    a CPU-GPU sync that stalls the launch queue, so values are read in batches.
    """
    return 1 if device.type == "cpu" else 10


def memory_sample(device: torch.device) -> tuple[int, int, int | None]:
    """(in use, peak so far, reserved): CPU process RSS and peak RSS; CUDA allocator allocated
    and max allocated; MPS current allocated (its peak is not exposed, so in use is reported);
    plus the CUDA caching allocator's reserved bytes (None elsewhere). On CUDA one nested
    allocator-stats call serves all three:
    `torch.cuda.memory_allocated` and friends each rebuild the whole stats dict."""
    if device.type == "cuda":
        stats = torch.cuda.memory_stats_as_nested_dict(device)  # no flattening: cheap per step
        alloc, reserved = stats["allocated_bytes"]["all"], stats["reserved_bytes"]["all"]
        return alloc["current"], alloc["peak"], reserved["current"]
    if device.type == "mps":
        now = torch.mps.current_allocated_memory()
        return now, now, None
    import psutil

    rss = psutil.Process().memory_info().rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes
    return rss, max(rss, peak), None


def device_memory_reader(device: torch.device):
    """A callable -> bytes in use on the whole device (NVML: every process, plus the CUDA
    context), or None where there is no such counter. Read once per host-read window."""
    if device.type == "cuda":
        from nanobench.measure import nvml

        try:
            pynvml, handle = nvml.handle(device)
        except nvml.NvmlUnavailable:
            return lambda: None

        def used_bytes():
            try:
                return pynvml.nvmlDeviceGetMemoryInfo(handle).used
            except pynvml.NVMLError:  # a transient driver error costs one sample, not the run
                return None

        return used_bytes
    return lambda: None


def energy_meter(device: torch.device):
    """NVML's energy counter on CUDA, RAPL package counters on the CPU, else a meter that
    reads None and says why (metrics.py holds the meters)."""
    from nanobench.measure import metrics

    if device.type == "cuda":
        from nanobench.measure import nvml

        try:
            pynvml, handle = nvml.handle(device)
            return metrics.NvmlEnergyMeter(pynvml, handle)
        except nvml.NvmlUnavailable as exc:
            return metrics.NoEnergyMeter(str(exc))
        except Exception as exc:  # pynvml.NVMLError_NotSupported: before Volta
            return metrics.NoEnergyMeter(f"NVML energy counter unavailable on {name(device)}: {exc}")
    if device.type == "cpu":
        return metrics.rapl_meter()
    return metrics.NoEnergyMeter(f"no energy counter readable for {device.type} devices")


def sdpa_backends() -> dict:
    """Which scaled-dot-product-attention kernels torch may pick (CUDA flags; the CPU uses its
    fused flash kernel unless the math backend is forced)."""
    b = torch.backends.cuda
    flags = {"flash": b.flash_sdp_enabled, "mem_efficient": b.mem_efficient_sdp_enabled,
             "math": b.math_sdp_enabled, "cudnn": getattr(b, "cudnn_sdp_enabled", None)}
    return {k: (f() if f else None) for k, f in flags.items()}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def name(device: torch.device) -> str:
    """A human name for the device: the GPU model, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    from nanobench.measure.environment import cpu_model

    return cpu_model()


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, MPS's and the CPU allocator's ("can't allocate memory")."""
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def rng_state(device: torch.device) -> torch.Tensor | None:
    """The device's own random generator state (dropout masks), or None on the CPU, whose
    global generator is saved separately (torch.get_rng_state)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def set_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)
