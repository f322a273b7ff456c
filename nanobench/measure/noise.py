"""Noise: what else the machine did while a run was timed, and whether its timings hold.

A `Reading` is a snapshot of cumulative counters (system CPU time, this job's CPU time,
steal time) and instant values (load average, CPU frequency, battery, GPU SM clock, NVML
clock-event reasons, GPU temperature). Two readings make an interval; `interval()` turns it
into the row columns documented in docs/results.md. `verdict()` judges a run from its
intervals, each weighted by the training steps it covered. Both are pure: tests inject
readings. `Sampler` reads the real sources, at most every SAMPLE_EVERY_S seconds, at the
training loop's existing host reads (never inside a step: no new device sync).

Thresholds (a sample interval is *affected* by a detector when):
- other processes: they used more than the cores the run leaves idle plus OTHER_CORES_MIN
  (half a core), i.e. at least half a core was taken from the run's threads;
- steal: the hypervisor took at least STEAL_FRAC_MIN (5%) of the CPU time;
- CPU frequency: the clock was below (1 - FREQ_DROP_MIN) = 90% of the run's highest sample;
- battery: the machine ran on battery;
- GPU clock events: NVML reported a slowdown reason (thermal, power brake, hardware
  slowdown, board limit, reliability) at the reading. NVML's reasons are the state at that
  instant, not an average: a sampled interval counts as affected whole;
- GPU clock: the SM clock was below (1 - FREQ_DROP_MIN) = 90% of the run's highest sample.
A GPU held at its power limit (NVML's software power cap, 0x4) is not noise: most consumer
cards run there under steady full load, at a clock that holds. It is recorded (the verdict's
`power_capped_share`), and counts only if its clock then moves (the GPU clock detector).
A run is *noisy* when any detector affected at least NOISY_SHARE_MIN (10%) of its sampled
steps; *quiet* when none did; *unknown* when no interval covered a step (nothing readable,
or the run ended before its first sample).
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_EVERY_S = 1.0  # ~0.2 ms per reading on a 2-core VM: < 0.03% of the time at 1 Hz
OTHER_CORES_MIN = 0.5
STEAL_FRAC_MIN = 0.05
FREQ_DROP_MIN = 0.10
NOISY_SHARE_MIN = 0.10
THRESHOLDS = {
    "other_cores_above_idle": OTHER_CORES_MIN,
    "steal_frac": STEAL_FRAC_MIN,
    "cpu_freq_drop_frac": FREQ_DROP_MIN,
    "noisy_share": NOISY_SHARE_MIN,
}

# NVML clock-event ("throttle") reasons (pynvml's nvmlClocksThrottleReason* constants) that
# slow a GPU below what was asked of it. Idle, application/user clocks, sync boost and display
# clocks are not slowdowns of a busy GPU; the software power cap is the steady state of a card
# that runs at its power limit (most RTX cards under full load): recorded, not a slowdown.
GPU_POWER_CAP = 0x4  # nvmlClocksThrottleReasonSwPowerCap
GPU_SLOWDOWN_REASONS = {
    0x8: "hardware slowdown",
    0x20: "thermal (driver)",
    0x40: "thermal (hardware)",
    0x80: "power brake",
    0x200: "board limit",
    0x400: "reliability limit",
}

# The row columns a sample sets (null on rows without a sample); see docs/results.md.
COLUMNS = (
    "other_cpu_cores",
    "cpu_steal_frac",
    "load_1m",
    "cpu_freq_hz",
    "on_battery",
    "gpu_sm_clock_mhz",
    "gpu_clock_event_mask",
    "gpu_temp_c",
)


@dataclass(frozen=True)
class Reading:
    """Counters at one instant. CPU times are seconds summed over all logical CPUs."""

    t_s: float  # time.monotonic()
    cpu_busy_s: float | None  # user + nice + system + irq + softirq, every process
    cpu_total_s: float | None  # busy + idle + iowait + steal
    cpu_steal_s: float | None  # None where the kernel does not report steal
    job_cpu_s: float | None  # this run's own processes (all ranks on this host)
    load_1m: float | None = None
    cpu_freq_hz: float | None = None
    on_battery: bool | None = None
    gpu_sm_clock_mhz: int | None = None
    gpu_clock_event_mask: int | None = None
    gpu_temp_c: int | None = None


def interval(prev: Reading, now: Reading, logical_cpus: int) -> dict:
    """The columns for the interval prev -> now: the cores' worth of CPU time other
    processes used and the share stolen, averaged over it; the instant values of `now`."""
    other = steal = None
    if None not in (prev.cpu_total_s, now.cpu_total_s, prev.cpu_busy_s, now.cpu_busy_s):
        total = now.cpu_total_s - prev.cpu_total_s
        # the kernel's own count of elapsed seconds (total / CPUs), so tick rounding cancels
        if total > 0:
            if prev.job_cpu_s is not None and now.job_cpu_s is not None:
                others_s = (now.cpu_busy_s - prev.cpu_busy_s) - (now.job_cpu_s - prev.job_cpu_s)
                other = max(0.0, others_s) / (total / logical_cpus)
            if prev.cpu_steal_s is not None and now.cpu_steal_s is not None:
                steal = max(0.0, now.cpu_steal_s - prev.cpu_steal_s) / total
    return {
        "other_cpu_cores": other,
        "cpu_steal_frac": steal,
        "load_1m": now.load_1m,
        "cpu_freq_hz": now.cpu_freq_hz,
        "on_battery": now.on_battery,
        "gpu_sm_clock_mhz": now.gpu_sm_clock_mhz,
        "gpu_clock_event_mask": now.gpu_clock_event_mask,
        "gpu_temp_c": now.gpu_temp_c,
    }


def gpu_slowdowns(mask: int | None) -> list[str]:
    """Names of the slowdown reasons set in an NVML clock-event mask."""
    return [name for bit, name in GPU_SLOWDOWN_REASONS.items() if mask and mask & bit]


# ---- detectors: (samples, context) -> per-sample affected flags, and a sentence ----------------
# A sample is (steps it covered, its interval columns). Each detector says which samples it
# affects; `verdict` weighs them by steps.


def _other_processes(cols: list[dict], idle_cores: float, logical_cpus: int):
    limit = idle_cores + OTHER_CORES_MIN
    hit = [c["other_cpu_cores"] is not None and c["other_cpu_cores"] > limit for c in cols]
    used = [c["other_cpu_cores"] for c, h in zip(cols, hit) if h]
    return (
        hit,
        lambda share: (
            f"other processes used {sum(used) / max(1, len(used)):.1f} of {logical_cpus} cores "
            f"for {share:.0%} of the iterations"
        ),
    )


def _steal(cols: list[dict], idle_cores: float, logical_cpus: int):
    hit = [c["cpu_steal_frac"] is not None and c["cpu_steal_frac"] >= STEAL_FRAC_MIN for c in cols]
    stolen = [c["cpu_steal_frac"] for c, h in zip(cols, hit) if h]
    return (
        hit,
        lambda share: (
            f"the hypervisor took {sum(stolen) / max(1, len(stolen)):.0%} of the CPU time "
            f"(steal) for {share:.0%} of the iterations"
        ),
    )


def _clock_drops(cols: list[dict], column: str):
    """(affected flags, lowest, highest) of a clock column: below 90% of the run's highest."""
    clocks = [c[column] for c in cols if c[column]]
    top = max(clocks, default=None)
    hit = [bool(top and c[column] and c[column] < (1 - FREQ_DROP_MIN) * top) for c in cols]
    return hit, min(clocks, default=0), top


def _cpu_frequency(cols: list[dict], idle_cores: float, logical_cpus: int):
    hit, low, top = _clock_drops(cols, "cpu_freq_hz")
    return (
        hit,
        lambda share: (
            f"the CPU clock fell to {low / 1e9:.2f} GHz from {top / 1e9:.2f} GHz "
            f"for {share:.0%} of the iterations"
        ),
    )


def _battery(cols: list[dict], idle_cores: float, logical_cpus: int):
    hit = [c["on_battery"] is True for c in cols]
    return hit, lambda share: f"the machine ran on battery for {share:.0%} of the iterations"


def _gpu_clock(cols: list[dict], idle_cores: float, logical_cpus: int):
    hit, low, top = _clock_drops(cols, "gpu_sm_clock_mhz")
    return (
        hit,
        lambda share: (
            f"the GPU's SM clock fell to {low} MHz from {top} MHz for {share:.0%} of the iterations"
        ),
    )


def _gpu_clock_events(cols: list[dict], idle_cores: float, logical_cpus: int):
    hit = [bool(gpu_slowdowns(c["gpu_clock_event_mask"])) for c in cols]
    names = sorted({n for c in cols for n in gpu_slowdowns(c["gpu_clock_event_mask"])})
    return (
        hit,
        lambda share: f"the GPU was slowed ({', '.join(names)}) for {share:.0%} of the iterations",
    )


DETECTORS = {
    "other_processes": _other_processes,
    "steal": _steal,
    "cpu_frequency": _cpu_frequency,
    "battery": _battery,
    "gpu_clock_events": _gpu_clock_events,
    "gpu_clock": _gpu_clock,
}


def verdict(samples: list[tuple[int, dict]], idle_cores: float, logical_cpus: int) -> dict:
    """quiet, noisy (with reasons and the share of sampled steps each affected) or unknown.

    `samples`: (steps covered, interval columns) per sample; `idle_cores`: logical CPUs the
    run's threads leave free (logical CPUs - threads, at least 0)."""
    samples = [(n, c) for n, c in samples if n > 0]
    steps = sum(n for n, _ in samples)
    out = {
        "verdict": "unknown",
        "reasons": [],
        "minor": [],
        "share_affected": None,
        "power_capped_share": None,  # held at its power limit: recorded, not noise
        "steps_sampled": steps,
        "samples": len(samples),
        "thresholds": dict(THRESHOLDS, idle_cores=idle_cores),
    }
    if not steps:
        return out
    cols = [c for _, c in samples]
    any_hit = [False] * len(samples)
    for name, detector in DETECTORS.items():
        hit, describe = detector(cols, idle_cores, logical_cpus)
        share = sum(n for (n, _), h in zip(samples, hit) if h) / steps
        if share == 0:
            continue
        entry = {"detector": name, "share": share, "text": describe(share)}
        out["reasons" if share >= NOISY_SHARE_MIN else "minor"].append(entry)
        any_hit = [a or h for a, h in zip(any_hit, hit)]
    out["share_affected"] = sum(n for (n, _), a in zip(samples, any_hit) if a) / steps
    masks = [c["gpu_clock_event_mask"] for c in cols]
    if any(m is not None for m in masks):
        capped = sum(n for (n, _), m in zip(samples, masks) if m and m & GPU_POWER_CAP)
        out["power_capped_share"] = capped / steps
    out["verdict"] = "noisy" if out["reasons"] else "quiet"
    return out


def start_problems(
    cols: dict, idle_cores: float, logical_cpus: int, governors: set[str] | None
) -> list[str]:
    """What already makes timings noisy when a run starts, each with what to do: `cols` is
    the interval over the run's setup (model build, data load)."""
    problems = []
    other = cols.get("other_cpu_cores")
    if other is not None and other > idle_cores + OTHER_CORES_MIN:
        problems.append(
            f"other processes are using {other:.1f} of {logical_cpus} cores (load {cols.get('load_1m') or 0:.1f}); "
            f"wait for them to finish (see `top`) or run where nothing else runs"
        )
    if (cols.get("cpu_steal_frac") or 0) >= STEAL_FRAC_MIN:
        problems.append(
            f"the hypervisor is taking {cols['cpu_steal_frac']:.0%} of the CPU time (steal); "
            f"use a dedicated or less crowded instance"
        )
    if governors and governors != {"performance"}:
        problems.append(
            f"the CPU frequency governor is {'/'.join(sorted(governors))}, not performance; "
            f"`sudo cpupower frequency-set -g performance`"
        )
    if cols.get("on_battery"):
        problems.append("the machine is on battery; plug it in")
    if gpu_slowdowns(cols.get("gpu_clock_event_mask")):
        problems.append(
            f"the GPU is already slowed ({', '.join(gpu_slowdowns(cols['gpu_clock_event_mask']))}); "
            f"check `nvidia-smi -q -d PERFORMANCE`"
        )
    return problems


# ---- the real sources --------------------------------------------------------------------------


def governors(root: str = "/sys/devices/system/cpu") -> set[str] | None:
    """The cpufreq governors in use (one per policy), or None where cpufreq is not exposed
    (VMs, containers, macOS)."""
    found = set()
    for path in glob.glob(f"{root}/cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            found.add(Path(path).read_text().strip())
        except OSError:
            continue
    return found or None


def _job_pids(ddp) -> list[int]:
    """This run's processes on this host: itself, or every rank torchrun started beside it."""
    if not ddp:
        return [os.getpid()]
    import psutil

    try:
        return [p.pid for p in psutil.Process().parent().children()] or [os.getpid()]
    except (psutil.Error, AttributeError):
        return [os.getpid()]


def _gpu_reader(device):
    """A callable -> (SM clock MHz, clock-event mask, temperature C) for a measure.device.Device,
    or None without NVML."""
    if device is None or device.kind != "cuda":
        return None
    from nanobench.measure import nvml

    try:
        pynvml, h = device.nvml()  # opened once per Device
    except nvml.NvmlUnavailable:
        return None
    reasons = (
        getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )

    def read():
        values = []
        for fn, *args in (
            (pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM),
            (reasons, h),
            (pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
        ):
            try:
                values.append(int(fn(*args)))
            except pynvml.NVMLError:
                values.append(None)
        return tuple(values)

    return read


class SystemReader:
    """Reads a `Reading` from psutil, os and NVML. Each source that fails reads None."""

    def __init__(self, device=None, ddp=None):
        import psutil

        self._psutil = psutil
        self._procs = [psutil.Process(pid) for pid in _job_pids(ddp)]
        self._gpu = _gpu_reader(device)
        self.logical_cpus = psutil.cpu_count(logical=True) or 1

    def _job_cpu_s(self) -> float | None:
        total = 0.0
        for proc in self._procs:
            try:
                t = proc.cpu_times()
            except self._psutil.Error:  # a rank that already exited
                continue
            total += t.user + t.system
        return total

    def __call__(self) -> Reading:
        ps = self._psutil
        t = ps.cpu_times()
        steal = getattr(t, "steal", None)
        # fields per OS: Linux has all of these, macOS no irq/steal, Windows none (its interrupt
        # and dpc times are already inside system)
        busy = t.user + t.system + sum(getattr(t, f, 0.0) for f in ("nice", "irq", "softirq"))
        total = busy + t.idle + getattr(t, "iowait", 0.0) + (steal or 0.0)
        try:
            freq = ps.cpu_freq()
            freq_hz = freq.current * 1e6 if freq and freq.current else None
        except (OSError, NotImplementedError, AttributeError):
            freq_hz = None
        try:
            battery = ps.sensors_battery()
            on_battery = (
                None
                if battery is None or battery.power_plugged is None
                else not battery.power_plugged
            )
        except (OSError, AttributeError):
            on_battery = None
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows has no load average
            load = None
        sm, mask, temp = self._gpu() if self._gpu else (None, None, None)
        return Reading(
            time.monotonic(),
            busy,
            total,
            steal,
            self._job_cpu_s(),
            load,
            freq_hz,
            on_battery,
            sm,
            mask,
            temp,
        )


class Sampler:
    """Takes a reading at most every `every_s` seconds, at the host reads the loop already
    does, and writes the interval's columns on the last row of that window (the rows since
    the previous reading are the steps it covers). The run's last row always gets one."""

    def __init__(
        self,
        read,
        *,
        logical_cpus: int,
        threads: int,
        last_iter: int,
        every_s: float = SAMPLE_EVERY_S,
        clock=time.monotonic,
    ):
        self._read, self._clock, self.every_s = read, clock, every_s
        self.logical_cpus = logical_cpus
        self.idle_cores = max(0, logical_cpus - threads)
        self.last_iter = last_iter
        self._prev = read()
        self._steps = 0
        self.samples: list[tuple[int, dict]] = []

    def start_check(self, governors_in_use: set[str] | None) -> dict:
        """The interval over the run's setup, and the problems it shows (see start_problems)."""
        now = self._read()
        cols = interval(self._prev, now, self.logical_cpus)
        self._prev = now  # the loop's first sample starts here: setup is not training
        problems = start_problems(cols, self.idle_cores, self.logical_cpus, governors_in_use)
        return {
            "other_cpu_cores": cols["other_cpu_cores"],
            "load_1m": cols["load_1m"],
            "governors": sorted(governors_in_use or []) or None,
            "on_battery": cols["on_battery"],
            "problems": problems,
            "warning": ("timings will be noisy: " + "; ".join(problems)) if problems else None,
        }

    def mark(self, rows: list[dict]) -> None:
        """Called with each window's rows before they are written."""
        if not rows:
            return
        self._steps += sum(1 for r in rows if r.get("step_time_s") is not None)
        if self._clock() - self._prev.t_s < self.every_s and rows[-1]["iter"] < self.last_iter:
            return
        now = self._read()
        cols = interval(self._prev, now, self.logical_cpus)
        rows[-1].update(cols)
        self.samples.append((self._steps, cols))
        self._prev, self._steps = now, 0

    def verdict(self) -> dict:
        return verdict(self.samples, self.idle_cores, self.logical_cpus)


def watch(device, *, threads: int, last_iter: int, ddp=None) -> Sampler:
    """A Sampler over this machine's real sources, for a run on `device`."""
    reader = SystemReader(device, ddp)
    world = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ddp else 1
    return Sampler(
        reader, logical_cpus=reader.logical_cpus, threads=threads * world, last_iter=last_iter
    )
