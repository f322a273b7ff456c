"""`nanobench env --check`: what on this machine will make timings noisy, and how to fix it.

`gather()` reads the facts (one second of CPU accounting, sysfs, psutil sensors, NVML);
`checks(facts)` judges them, purely, so tests inject facts. Nothing here changes a setting:
each finding names the command that would, for a person to run.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nanobench.measure import noise

BUSY_CPU_PERCENT = 50.0  # a logical CPU this busy with other work slows a thread on its core
GPU_BUSY_PERCENT = 10.0  # GPU utilisation before the run: someone else is using it
HOT_MARGIN_C = 5.0  # a sensor within this of its `high` mark is about to throttle


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | unknown
    detail: str
    fix: str | None = None  # the command (or action) that removes the cause

    def to_dict(self) -> dict:
        return asdict(self)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _siblings(root: str) -> list[list[int]]:
    """Groups of logical CPUs that share a physical core (SMT siblings), from sysfs."""
    groups = set()
    for path in glob.glob(f"{root}/cpu[0-9]*/topology/thread_siblings_list"):
        text = _read(path) or ""
        cpus = []
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            if lo.strip().isdigit():
                cpus.extend(range(int(lo), int(hi or lo) + 1))
        if cpus:
            groups.add(tuple(sorted(cpus)))
    return [list(g) for g in sorted(groups)]


def _gpus() -> list[dict]:
    """Per NVIDIA GPU: persistence mode, clocks, power limit and its default, temperature and
    the slowdown threshold, clock-event reasons, utilisation, compute processes. [] without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # no package, no driver: nothing to check
        return []
    nv = pynvml

    def ask(fn, *args):
        try:
            return fn(*args)
        except nv.NVMLError:
            return None

    reasons = (
        getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    out = []
    for i in range(count):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        util = ask(nv.nvmlDeviceGetUtilizationRates, h)
        procs = ask(nv.nvmlDeviceGetComputeRunningProcesses, h)
        out.append(
            {
                "index": i,
                "name": ask(nv.nvmlDeviceGetName, h),
                "persistence_mode": ask(nv.nvmlDeviceGetPersistenceMode, h),
                "sm_clock_mhz": ask(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                "sm_clock_max_mhz": ask(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM),
                "power_limit_w": (ask(nv.nvmlDeviceGetPowerManagementLimit, h) or 0) / 1e3 or None,
                "power_limit_default_w": (ask(nv.nvmlDeviceGetPowerManagementDefaultLimit, h) or 0)
                / 1e3
                or None,
                "temperature_c": ask(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                "slowdown_temperature_c": ask(
                    nv.nvmlDeviceGetTemperatureThreshold, h, nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
                ),
                "clock_event_mask": ask(reasons, h),
                "utilization_percent": getattr(util, "gpu", None),
                "compute_processes": None if procs is None else len(procs),
            }
        )
    return out


def gather(window_s: float = 1.0, cpu_root: str = "/sys/devices/system/cpu") -> dict:
    """This machine's facts, over `window_s` seconds of CPU accounting (this process idles)."""
    import psutil

    procs = list(psutil.process_iter(["name", "pid"]))
    for p in procs:  # the first cpu_percent call of a process only starts its count
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    psutil.cpu_percent(None, percpu=True)
    before = psutil.cpu_times()
    time.sleep(window_s)
    percpu = psutil.cpu_percent(None, percpu=True)
    after = psutil.cpu_times()
    top = []
    for p in procs:
        try:
            if p.pid != os.getpid():
                top.append((p.cpu_percent(None), p.info["name"], p.pid))
        except psutil.Error:
            continue
    top.sort(reverse=True)
    steal = getattr(after, "steal", None)
    total = (
        sum(after)
        - sum(before)
        - (getattr(after, "guest", 0) - getattr(before, "guest", 0))
        - (getattr(after, "guest_nice", 0) - getattr(before, "guest_nice", 0))
    )
    try:
        battery = psutil.sensors_battery()
    except (AttributeError, OSError):
        battery = None
    try:
        load = os.getloadavg()
    except (OSError, AttributeError):  # Windows has no load average
        load = None
    return {
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "load_avg": load,
        "cpu_busy_percent": percpu,
        "top_processes": [
            {"cpu_percent": c, "name": n, "pid": pid} for c, n, pid in top[:3] if c > 0
        ],
        "steal_frac": None if steal is None or total <= 0 else (steal - before.steal) / total,
        "governors": sorted(noise.governors(cpu_root) or []) or None,
        "no_turbo": _read(f"{cpu_root}/intel_pstate/no_turbo"),  # "1": turbo off (intel_pstate)
        "boost": _read(f"{cpu_root}/cpufreq/boost"),  # "1": boost on (acpi-cpufreq, amd-pstate)
        "smt_control": _read(f"{cpu_root}/smt/control"),
        "smt_siblings": _siblings(cpu_root),
        "temperatures": _temperatures(),
        "on_battery": None
        if battery is None or battery.power_plugged is None
        else not battery.power_plugged,
        "gpus": _gpus(),
    }


def _temperatures() -> dict:
    """'chip/label' -> current, high and critical degrees C of every sensor psutil reads ({}
    where it reads none: macOS and Windows have no sensors_temperatures)."""
    import psutil

    temps = {}
    try:
        for chip, entries in (psutil.sensors_temperatures() or {}).items():
            for e in entries:
                temps[f"{chip}/{e.label or 'temp'}"] = {
                    "current_c": e.current,
                    "high_c": e.high,
                    "critical_c": e.critical,
                }
    except (AttributeError, OSError):
        pass
    return temps


def _cpu_checks(f: dict) -> list[Check]:
    """The CPU's checks, in the order they are shown; a check with nothing to say is left out."""
    found = (
        _cpu_load(f),
        _steal(f),
        _governor(f),
        _turbo(f),
        _smt_siblings(f),
        _thermal(f),
        _power(f),
    )
    return [c for c in found if c is not None]


def _cpu_load(f: dict) -> Check:
    n = f.get("logical_cpus") or 1
    busy = f.get("cpu_busy_percent")
    if busy is None:
        return Check("cpu load", "unknown", "per-CPU utilisation unreadable")
    used = sum(busy) / 100
    if used < noise.OTHER_CORES_MIN:
        return Check("cpu load", "ok", f"{used:.1f} of {n} cores in use by others")
    top = ", ".join(
        f"{p['name']} ({p['pid']}) {p['cpu_percent']:.0f}%" for p in f.get("top_processes") or []
    )
    return Check(
        "cpu load",
        "warn",
        f"other processes use {used:.1f} of {n} cores now"
        + (f" (load average {f['load_avg'][0]:.1f})" if f.get("load_avg") else "")
        + (f"; busiest: {top}" if top else ""),
        "wait for them to finish or stop them (`top` shows them); benchmark on an idle machine",
    )


def _steal(f: dict) -> Check | None:
    steal = f.get("steal_frac")
    if steal is None:
        return None
    return Check(
        "steal time",
        "warn" if steal >= noise.STEAL_FRAC_MIN else "ok",
        f"the hypervisor took {steal:.0%} of the CPU time over the last second",
        "use a dedicated (or less crowded) instance" if steal >= noise.STEAL_FRAC_MIN else None,
    )


def _governor(f: dict) -> Check:
    govs = f.get("governors")
    if not govs:
        return Check(
            "cpu governor",
            "unknown",
            "no cpufreq in sysfs (a VM or container): the host sets the clock",
        )
    if govs != ["performance"]:
        return Check(
            "cpu governor",
            "warn",
            f"governor {'/'.join(govs)}: the clock follows the load",
            "sudo cpupower frequency-set -g performance",
        )
    return Check("cpu governor", "ok", "performance")


def _turbo(f: dict) -> Check:
    if f.get("no_turbo") == "0" or f.get("boost") == "1":
        return Check(
            "turbo",
            "warn",
            "turbo/boost is on: the clock varies with temperature and how many cores are busy",
            "echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate/no_turbo"
            if f.get("no_turbo") == "0"
            else "echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost",
        )
    if f.get("no_turbo") == "1" or f.get("boost") == "0":
        return Check("turbo", "ok", "turbo/boost off")
    return Check("turbo", "unknown", "no turbo/boost switch in sysfs")


def _smt_siblings(f: dict) -> Check | None:
    busy = f.get("cpu_busy_percent")
    pairs = [g for g in f.get("smt_siblings") or [] if len(g) > 1]
    if not pairs or busy is None:
        return None
    hot = [g for g in pairs if any(busy[c] >= BUSY_CPU_PERCENT for c in g if c < len(busy))]
    if not hot:
        return Check(
            "smt siblings", "ok", f"SMT on, no busy sibling threads among {len(pairs)} cores"
        )
    return Check(
        "smt siblings",
        "warn",
        f"SMT is on and {len(hot)} of {len(pairs)} cores have a busy sibling "
        f"thread, which shares the core with a run's thread",
        "echo off | sudo tee /sys/devices/system/cpu/smt/control "
        "(or --threads at most the idle physical cores)",
    )


def _thermal(f: dict) -> Check:
    hot = [
        f"{name} {t['current_c']:.0f} C (high {t['high_c']:.0f} C)"
        for name, t in (f.get("temperatures") or {}).items()
        if t.get("high_c") and t["current_c"] >= t["high_c"] - HOT_MARGIN_C
    ]
    if hot:
        return Check(
            "thermal",
            "warn",
            "near the throttling point: " + ", ".join(hot),
            "let the machine cool; check its fans and airflow",
        )
    if f.get("temperatures"):
        return Check("thermal", "ok", "all sensors below their high mark")
    return Check("thermal", "unknown", "no temperature sensors readable")


def _power(f: dict) -> Check | None:
    if f.get("on_battery"):
        return Check(
            "power", "warn", "on battery: laptops lower their clocks", "plug in the charger"
        )
    if f.get("on_battery") is False:
        return Check("power", "ok", "on mains power")
    return None


def _gpu_checks(g: dict) -> list[Check]:
    """One GPU's checks (`g`: its facts from _gpus), in the order they are shown."""
    name = f"gpu {g['index']}"
    found = (
        _gpu_persistence(g, name),
        _gpu_clocks(g, name),
        _gpu_power_limit(g, name),
        _gpu_thermal(g, name),
        _gpu_in_use(g, name),
    )
    return [c for c in found if c is not None]


def _gpu_persistence(g: dict, name: str) -> Check | None:
    if g.get("persistence_mode") == 0:
        return Check(
            f"{name} persistence",
            "warn",
            "persistence mode off: the driver re-initialises the GPU for each process",
            f"sudo nvidia-smi -i {g['index']} -pm 1",
        )
    if g.get("persistence_mode") == 1:
        return Check(f"{name} persistence", "ok", "persistence mode on")
    return None


def _gpu_clocks(g: dict, name: str) -> Check:
    slow = noise.gpu_slowdowns(g.get("clock_event_mask"))
    # at its power limit: the steady state of a loaded consumer card, said but not a slowdown
    capped = bool((g.get("clock_event_mask") or 0) & noise.GPU_POWER_CAP)
    clocks = f"SM clock {g.get('sm_clock_mhz')} of {g.get('sm_clock_max_mhz')} MHz" + (
        ", held at its power limit now" if capped else ""
    )
    if slow:
        return Check(
            f"{name} clocks",
            "warn",
            f"{clocks}, slowed now ({', '.join(slow)})",
            f"nvidia-smi -i {g['index']} -q -d PERFORMANCE shows why",
        )
    return Check(
        f"{name} clocks",
        "ok",
        f"{clocks}; boost clocks still vary with power and temperature",
        f"to pin them: sudo nvidia-smi -i {g['index']} --lock-gpu-clocks=<MHz>,<MHz>",
    )


def _gpu_power_limit(g: dict, name: str) -> Check | None:
    limit, default = g.get("power_limit_w"), g.get("power_limit_default_w")
    if limit and default and limit < 0.99 * default:
        return Check(
            f"{name} power limit",
            "warn",
            f"power limit {limit:.0f} W, below the default {default:.0f} W",
            f"sudo nvidia-smi -i {g['index']} -pl {default:.0f}",
        )
    if limit:
        return Check(f"{name} power limit", "ok", f"power limit {limit:.0f} W")
    return None


def _gpu_thermal(g: dict, name: str) -> Check | None:
    temp, slowdown = g.get("temperature_c"), g.get("slowdown_temperature_c")
    if temp is None:
        return None
    if slowdown and temp >= slowdown - HOT_MARGIN_C:
        return Check(
            f"{name} thermal",
            "warn",
            f"{temp} C, slowdown at {slowdown} C",
            "cool the GPU (airflow, fan curve)",
        )
    return Check(
        f"{name} thermal", "ok", f"{temp} C" + (f" (slowdown at {slowdown} C)" if slowdown else "")
    )


def _gpu_in_use(g: dict, name: str) -> Check | None:
    util, procs = g.get("utilization_percent"), g.get("compute_processes")
    if (util or 0) >= GPU_BUSY_PERCENT or procs:
        return Check(
            f"{name} in use",
            "warn",
            f"{util}% busy, {procs} compute process(es) already on it",
            f"wait for them (nvidia-smi -i {g['index']} lists them) or use another GPU",
        )
    if util is not None:
        return Check(f"{name} in use", "ok", "idle")
    return None


def checks(facts: dict) -> list[Check]:
    """Each thing that will make timings noisy here: ok, warn (with the fix) or unknown."""
    return _cpu_checks(facts) + [c for g in facts.get("gpus") or [] for c in _gpu_checks(g)]
