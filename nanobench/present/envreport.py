"""`nanobench env`: what this machine is, which devices it has, and their peaks."""

from __future__ import annotations


def collect(calibrate: bool = False, log=None) -> dict:
    """Devices found, with name, memory, and spec and measured peaks per dtype (or why not).
    `calibrate` re-measures the matmul peaks instead of reading the per-machine cache."""
    from nanobench.errors import InputError
    from nanobench.measure import environment, peaks
    from nanobench.measure.device import Device, available_kinds, cuda_device_count, resolve
    from nanobench.measure.precision import DTYPES, Precision

    devices = []
    for kind in available_kinds():
        names = [f"cuda:{i}" for i in range(cuda_device_count())] if kind == "cuda" else [kind]
        for spec in names:
            d = resolve(spec)
            entry = {
                "device": spec,
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
                    log(f"{'calibrating' if calibrate else 'peaks for'} {spec} {dtype}")
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
    from nanobench.run import tune

    return {
        "environment": environment.collect(Device.cpu()),
        "devices": devices,
        "peaks_cache": str(peaks.cache_path()),
        "tune_records": tune.load_records(),
        "tune_file": str(tune.record_path()),
    }


def _flops(f) -> str:
    if not f:
        return "unknown"
    return f"{f / 1e12:.3g} TFLOP/s" if f >= 1e12 else f"{f / 1e9:.3g} GFLOP/s"


def print_report(report: dict, console) -> None:
    from rich.table import Table

    env = report["environment"]
    console.print(
        f"[bold]{env['hostname']}[/bold]: {env['cpu_model']}, {env['cpu_physical_cores']} cores, "
        f"torch {env['torch']} ({env['torch_num_threads']} threads), Python {env['python']}"
    )
    console.print(f"CPU clock: {env['cpu_clock']['source']}")
    for d in report["devices"]:
        table = Table("device", "name", "memory", "dtype", "spec peak", "measured peak", "note")
        mem = f"{d['memory_bytes'] / 2**30:.1f} GiB" if d.get("memory_bytes") else "-"
        for dtype, p in d["peaks"].items():
            if not p["supported"]:
                table.add_row(
                    d["device"], d["name"], mem, dtype, "-", "-", "not supported: " + p["why"]
                )
                continue
            notes = [
                p["spec_source"] if not p["spec_flops"] else "",
                p["measured_source"] if not p["measured_flops"] else "",
                p.get("note") or "",
            ]
            table.add_row(
                d["device"],
                d["name"],
                mem,
                dtype,
                _flops(p["spec_flops"]),
                _flops(p["measured_flops"]),
                "; ".join(n for n in notes if n),
            )
        console.print(table)
        energy = d["energy"]
        console.print(
            f"{d['device']} energy: "
            + (energy["source"] if energy["source"] else f"unavailable ({energy['reason']})")
        )
    console.print(
        f"measured peaks are cached in {report['peaks_cache']}; `nanobench env --calibrate` re-measures"
    )
    from nanobench.present.tuning import record_lines

    records = report.get("tune_records") or {}
    console.print(
        f"tuned settings (`nanobench tune`, used by `run --best`) in {report['tune_file']}:"
        + ("" if records else " none yet")
    )
    for line in record_lines(records):
        console.print(f"  {line}")


def print_checks(console, as_json: bool = False) -> list:
    """`nanobench env --check`: gather this machine's facts, judge them, print each finding
    with its fix (JSON: the facts and the findings). Changes nothing. Returns the findings."""
    from nanobench.measure import envcheck

    facts = envcheck.gather()
    found = envcheck.checks(facts)
    if as_json:
        import json

        print(
            json.dumps(
                {"checks": [c.to_dict() for c in found], "facts": facts}, indent=1, default=str
            )
        )
        return found
    from rich.table import Table

    table = Table("check", "status", "finding", "fix")
    style = {"ok": "green", "warn": "bold yellow", "unknown": "dim"}
    for c in found:
        table.add_row(
            c.name,
            f"[{style[c.status]}]{c.status}[/]",
            c.detail,
            c.fix if c.status == "warn" else "",
        )
    console.print(table)
    warns = sum(c.status == "warn" for c in found)
    console.print(
        f"{warns} finding(s) will make timings noisy; nothing was changed"
        if warns
        else "nothing found that makes timings noisy; nothing was changed"
    )
    return found
