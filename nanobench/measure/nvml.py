"""NVML, through nvidia-ml-py (imported as `pynvml`; the old `pynvml` package is deprecated).

Every call imports and initialises NVML when asked, never at import time, and turns "no
driver / not supported" into `NvmlUnavailable` with a reason a person can act on.
"""

from __future__ import annotations


class NvmlUnavailable(Exception):
    """NVML cannot answer here; str() says why."""


def handle(index: int | None):
    """(pynvml module, NVML handle) for the CUDA device of torch index `index` (None: the
    current one), matched by UUID so that CUDA_VISIBLE_DEVICES reordering cannot point NVML
    at another GPU. Called once per device: `Device.nvml()` keeps the answer."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        raise NvmlUnavailable("NVML library not found (no NVIDIA driver on this machine)") from None
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML init failed: {exc}") from None
    import torch

    index = index if index is not None else torch.cuda.current_device()
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
    try:
        if uuid:
            return pynvml, pynvml.nvmlDeviceGetHandleByUUID(
                uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            )
    except pynvml.NVMLError:
        pass  # MIG or an odd UUID format: fall back to the index
    try:
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML has no handle for cuda:{index}: {exc}") from None


def gpus() -> list[dict]:
    """Every NVIDIA GPU of the machine, whatever CUDA_VISIBLE_DEVICES hides: name and memory in
    bytes, from NVML (no CUDA context is created). [] without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, no driver, or NVML refused: no NVIDIA GPU to list
        return []
    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            memory = _ask(pynvml.nvmlDeviceGetMemoryInfo, h)
            out.append(
                {
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_bytes": getattr(memory, "total", None),
                }
            )
    except pynvml.NVMLError:
        pass
    return out


def _ask(fn, *args):
    """One NVML query, or None where the GPU does not support it."""
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def gpu_state(device) -> dict:
    """Clocks, power limit and state of the GPU at the start of a run, for metadata.
    `device` is a CUDA `Device` (its cached handle is used)."""
    try:
        nv, h = device.nvml()
    except NvmlUnavailable as exc:
        return {"nvml": None, "reason": str(exc)}
    c = nv
    mw = lambda v: None if v is None else v / 1e3  # noqa: E731  NVML reports milliwatts
    return {
        "nvml": True,
        "driver": _ask(c.nvmlSystemGetDriverVersion),
        "sm_clock_mhz": _ask(c.nvmlDeviceGetClockInfo, h, c.NVML_CLOCK_SM),
        "mem_clock_mhz": _ask(c.nvmlDeviceGetClockInfo, h, c.NVML_CLOCK_MEM),
        "sm_clock_max_mhz": _ask(c.nvmlDeviceGetMaxClockInfo, h, c.NVML_CLOCK_SM),
        "mem_clock_max_mhz": _ask(c.nvmlDeviceGetMaxClockInfo, h, c.NVML_CLOCK_MEM),
        "power_limit_w": mw(_ask(c.nvmlDeviceGetPowerManagementLimit, h)),
        "power_limit_enforced_w": mw(_ask(c.nvmlDeviceGetEnforcedPowerLimit, h)),
        "power_draw_w": mw(_ask(c.nvmlDeviceGetPowerUsage, h)),
        "temperature_c": _ask(c.nvmlDeviceGetTemperature, h, c.NVML_TEMPERATURE_GPU),
        "pstate": _ask(c.nvmlDeviceGetPerformanceState, h),
        "persistence_mode": _ask(c.nvmlDeviceGetPersistenceMode, h),
        "compute_mode": _ask(c.nvmlDeviceGetComputeMode, h),
        "memory_total_bytes": getattr(_ask(c.nvmlDeviceGetMemoryInfo, h), "total", None),
    }
