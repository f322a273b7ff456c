"""The host's CPU as the OS describes it: model, SIMD flags, physical cores and clock.

A leaf module: devices, peaks and the environment all read the CPU through it, and it
imports none of them. Everything is read when asked, never at import time.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path


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


def cpu_vendor() -> str:
    return _cpuinfo().get("vendor_id", "")


def cpu_family() -> int | None:
    try:
        return int(_cpuinfo().get("cpu family", ""))
    except ValueError:
        return None


def physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def cpu_clock_hz() -> tuple[float | None, str]:
    """The clock to multiply by, and which one it is.

    psutil's maximum where the OS reports one (bare metal: the boost clock); otherwise the
    current clock from /proc/cpuinfo, which in a VM is the only one visible (VMs hide boost,
    so the spec peak can then read below what the CPU really reaches).
    """
    import psutil

    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, FileNotFoundError):
        freq = None
    if freq and freq.max and freq.max > 0:
        return freq.max * 1e6, f"{freq.max / 1e3:.3f} GHz (max clock reported by the OS)"
    mhz = _cpuinfo().get("cpu MHz")
    try:
        mhz = float(mhz) if mhz else 0.0
    except ValueError:
        mhz = 0.0
    if mhz > 0:
        return mhz * 1e6, f"{mhz / 1e3:.3f} GHz (current clock from /proc/cpuinfo; a VM hides boost clocks)"
    return None, "CPU clock unknown: the OS reports none (VMs and macOS on Apple silicon often hide it)"
