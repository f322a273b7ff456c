"""The host's CPU as the OS describes it: model, SIMD flags, cores and clock, on Linux,
macOS and Windows; and, on a Mac, the chip's GPU core count.

Sources, each read only on its own OS (elsewhere it is empty): Linux /proc/cpuinfo; macOS
`sysctl` (machdep.cpu.*, hw.*, hw.optional.* features); Windows the registry's processor
description and IsProcessorFeaturePresent. psutil gives cores and clocks everywhere.

A leaf module: devices, peaks and the environment all read the CPU through it, and it
imports none of them. Everything is read when asked, never at import time.
"""

from __future__ import annotations

import hashlib
import platform
import re
import secrets
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from nanobench import files


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


def _run(cmd: list[str]) -> str:
    """A probe command's stdout, or "" if it is missing, fails to start or hangs."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def parse_sysctl(text: str) -> dict:
    """`sysctl NAME...` output ("key: value" lines) as a dict."""
    pairs = (line.partition(": ") for line in text.splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


@lru_cache(maxsize=1)
def _sysctl() -> dict:
    """macOS: the machdep.cpu and hw subtrees (brand, features, core counts, clocks) from one
    `sysctl` call; empty elsewhere."""
    return parse_sysctl(_run(["sysctl", "machdep.cpu", "hw"])) if sys.platform == "darwin" else {}


# macOS feature keys -> the names Linux uses for the same features (what peaks reads)
MAC_FEATURES = {
    "hw.optional.avx1_0": "avx",
    "hw.optional.avx2_0": "avx2",
    "hw.optional.fma": "fma",
    "hw.optional.avx512f": "avx512f",
    "hw.optional.AdvSIMD": "asimd",
    "hw.optional.neon": "asimd",
    "hw.optional.arm.FEAT_FP16": "asimdhp",
    "hw.optional.arm.FEAT_BF16": "bf16",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_SME": "sme",
    "hw.optional.arm.FEAT_SME2": "sme2",
}
_WINDOWS_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
# IsProcessorFeaturePresent's PF_* numbers (winnt.h) -> Linux flag names
WINDOWS_FEATURES = {39: "avx", 40: "avx2", 41: "avx512f"}


@lru_cache(maxsize=1)
def _windows_cpu() -> dict:
    """Windows: processor 0 as the registry describes it (ProcessorNameString,
    VendorIdentifier, Identifier "... Family 25 Model ...", ~MHz); empty elsewhere."""
    if sys.platform != "win32":
        return {}
    import winreg

    info = {}
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, _WINDOWS_KEY) as key:
            for name in ("ProcessorNameString", "VendorIdentifier", "Identifier", "~MHz"):
                try:
                    info[name] = winreg.QueryValueEx(key, name)[0]
                except OSError:
                    pass
    except OSError:
        pass
    return info


def _windows_feature_present(feature: int) -> bool:
    import ctypes

    return bool(ctypes.windll.kernel32.IsProcessorFeaturePresent(feature))


def _windows_flags() -> list[str]:
    """Windows reports AVX, AVX2 and AVX-512F, but no FMA bit: every x86 CPU with AVX2 has FMA3
    (Intel Haswell, AMD Excavator and later), so AVX2 stands for both. AArch64 makes Advanced
    SIMD mandatory. AVX-512 BF16 and AMX are not reported: bf16 gets no spec peak there."""
    if sys.platform != "win32":
        return []
    flags = [
        name for feature, name in WINDOWS_FEATURES.items() if _windows_feature_present(feature)
    ]
    flags += ["fma"] if "avx2" in flags else []
    return flags + (["asimd"] if platform.machine().lower() in ("arm64", "aarch64") else [])


def cpu_model() -> str:
    return (
        _cpuinfo().get("model name")
        or _sysctl().get("machdep.cpu.brand_string")
        or _windows_cpu().get("ProcessorNameString", "").strip()
        or platform.processor()
        or platform.machine()
        or "unknown CPU"
    )


def cpu_flags() -> list[str]:
    info = _cpuinfo()
    mac = {MAC_FEATURES[k] for k, v in _sysctl().items() if k in MAC_FEATURES and v == "1"}
    return sorted(
        set((info.get("flags") or info.get("Features") or "").split()) | mac | set(_windows_flags())
    )


# Native bf16 matmul instructions: Intel AMX tiles, AVX-512 BF16 dot products (x86 flags), Arm
# FEAT_BF16 ("bf16" in an aarch64 Features line). Without one, torch converts bf16 to fp32 and
# back around every multiply: correct, but many times slower than fp32.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def cpu_native_bf16() -> bool:
    return any(flag in NATIVE_BF16_FLAGS for flag in cpu_flags())


def cpu_vendor() -> str:
    windows = _windows_cpu().get("VendorIdentifier") or ""
    return _cpuinfo().get("vendor_id") or _sysctl().get("machdep.cpu.vendor") or windows


def cpu_family() -> int | None:
    m = re.search(r"Family (\d+)", _windows_cpu().get("Identifier") or "")
    text = (
        _cpuinfo().get("cpu family")
        or _sysctl().get("machdep.cpu.family")
        or (m.group(1) if m else "")
    )
    try:
        return int(text)
    except ValueError:
        return None


def physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def compute_cores() -> tuple[int | None, str]:
    """The cores a CPU peak counts, and which they are. Apple silicon: the performance cores
    only (hw.perflevel0), since its efficiency cores are far slower; elsewhere every physical core."""
    mac = _sysctl()
    if mac.get("hw.nperflevels", "1") != "1" and mac.get("hw.perflevel0.physicalcpu", "").isdigit():
        slow = mac.get("hw.perflevel1.physicalcpu", "?")
        return int(
            mac["hw.perflevel0.physicalcpu"]
        ), f"performance cores; {slow} efficiency cores not counted"
    return physical_cores(), "physical"


@lru_cache(maxsize=1)
def apple_gpu_cores() -> int | None:
    """macOS: the GPU core count of the chip (variants of one chip differ), from `ioreg`'s
    AGXAccelerator entry (milliseconds), else system_profiler (a second or more). Asked only
    for an MPS device's spec peak; None elsewhere or when neither says."""
    if sys.platform != "darwin":
        return None
    m = re.search(
        r'"gpu-core-count"\s*=\s*(\d+)', _run(["ioreg", "-rc", "AGXAccelerator", "-d", "1"])
    )
    m = m or re.search(
        r"Total Number of Cores:\s*(\d+)", _run(["system_profiler", "SPDisplaysDataType"])
    )
    return int(m.group(1)) if m else None


def cpu_clock_hz() -> tuple[float | None, str]:
    """The clock to multiply by, and which one it is.

    psutil's maximum where the OS reports one (Linux bare metal and macOS: the boost clock;
    Windows: the rated base clock, so the spec peak can read low there); otherwise the current
    clock from /proc/cpuinfo, which in a VM is the only one visible (VMs hide boost, so the
    spec peak can then read below what the CPU really reaches).
    """
    import psutil

    try:
        freq = psutil.cpu_freq()
    except (
        OSError,
        NotImplementedError,
        FileNotFoundError,
        AttributeError,
    ):  # AttributeError: no cpu_freq here
        freq = None
    max_mhz = freq.max if freq and freq.max else 0.0
    if 0 < max_mhz < 100:  # psutil on Apple M4 reports GHz in the MHz field (psutil issue 2642)
        return None, f"CPU clock unknown: the OS reported an implausible {max_mhz:g} MHz"
    if max_mhz > 0:
        base = " (Windows reports the base clock, not boost)" if sys.platform == "win32" else ""
        return max_mhz * 1e6, f"{max_mhz / 1e3:.3f} GHz (max clock reported by the OS{base})"
    mhz = _cpuinfo().get("cpu MHz")
    try:
        mhz = float(mhz) if mhz else 0.0
    except ValueError:
        mhz = 0.0
    if mhz > 0:
        return (
            mhz * 1e6,
            f"{mhz / 1e3:.3f} GHz (current clock from /proc/cpuinfo; a VM hides boost clocks)",
        )
    return (
        None,
        "CPU clock unknown: the OS reports none (VMs and macOS on Apple silicon often hide it)",
    )


# Where each OS keeps a per-install random id (systemd's machine-id, the Mac's platform UUID,
# Windows' MachineGuid). It is hashed with nanobench's own salt before it is recorded, as
# systemd asks of applications (machine-id(5)): the token identifies one machine to nanobench
# and cannot be matched with anything else that reads the raw id.
LINUX_MACHINE_ID = ("/etc/machine-id", "/var/lib/dbus/machine-id")
TOKEN_SALT = b"nanobench machine token v1:"
TOKEN_FILE = "machine-token"


def _os_machine_id() -> str:
    if sys.platform.startswith("linux"):
        for name in LINUX_MACHINE_ID:
            try:
                text = Path(name).read_text().strip()
            except OSError:
                continue
            if text:
                return text
    elif sys.platform == "darwin":
        m = re.search(
            r'"IOPlatformUUID"\s*=\s*"([^"]+)"',
            _run(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"]),
        )
        return m.group(1) if m else ""
    elif sys.platform == "win32":
        import winreg

        try:
            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography"
            ) as key:
                return str(winreg.QueryValueEx(key, "MachineGuid")[0])
        except OSError:
            return ""
    return ""


def machine_token() -> str:
    """16 hex characters that stay the same on this machine and differ between machines, even
    of identical hardware: the salted hash of the OS's machine id, or, where the OS has none
    (some containers), a random token kept in nanobench's cache folder. Never the host name."""
    raw = _os_machine_id()
    if raw:
        return hashlib.sha256(TOKEN_SALT + raw.encode()).hexdigest()[:16]
    path = files.cache_dir() / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{16}", token):
            return token
    except OSError:
        pass
    token = secrets.token_hex(8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, token + "\n")
    except OSError:
        pass  # unwritable cache: this run's token is its own, and the machine counts again next time
    return token


def memory_total_bytes() -> int | None:
    import psutil

    try:
        return int(psutil.virtual_memory().total)
    except (OSError, AttributeError):
        return None
