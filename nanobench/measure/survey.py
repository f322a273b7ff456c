"""`nanobench env`'s facts: this machine, every device found here, with its name, memory,
energy source, and spec and measured peaks per dtype (or why a dtype does not run). The
terminal page is present/envreport.py; the CLI adds the tune records (run/tune.py)."""

from __future__ import annotations

from nanobench.errors import InputError
from nanobench.measure import environment, peaks
from nanobench.measure.device import Device, available_kinds, cuda_device_count, resolve
from nanobench.measure.precision import DTYPES, Precision


def survey(calibrate: bool = False, log=None) -> dict:
    """Devices found, with name, memory, and spec and measured peaks per dtype (or why not).
    `calibrate` re-measures the matmul peaks instead of reading the per-machine cache."""

    devices = []
    for kind in available_kinds():
        names = [f"cuda:{i}" for i in range(cuda_device_count())] if kind == "cuda" else [kind]
        for text in names:
            d = resolve(text)
            entry = {
                "device": text,
                "name": d.name,
                "memory_bytes": d.memory_total_bytes(),
                "peaks": {},
                "energy": d.energy_meter().describe(),
            }
            for dtype in DTYPES:
                try:
                    precision = Precision.for_device(dtype, d)
                except InputError as exc:  # this dtype does not run here
                    entry["peaks"][dtype] = {"supported": False, "why": str(exc)}
                    continue
                if log:
                    log(f"{'calibrating' if calibrate else 'peaks for'} {text} {dtype}")
                spec_peak = peaks.spec_peak(d, precision)
                measured = peaks.measured_peak(d, precision, recalibrate=calibrate)
                entry["peaks"][dtype] = {
                    "supported": True,
                    "spec_flops": spec_peak.flops,
                    "spec_source": spec_peak.source,
                    "measured_flops": measured.flops,
                    "measured_source": measured.source,
                    "note": peaks.consistency_note(spec_peak, measured),
                }
            devices.append(entry)
    return {
        "environment": environment.collect(Device.cpu()),
        "devices": devices,
        "peaks_cache": str(peaks.cache_path()),
    }
