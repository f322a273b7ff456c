"""`nanobench env`: what this machine is, which devices it has, and their peaks."""

from __future__ import annotations


def collect(calibrate: bool = False) -> dict:
    import torch

    from nanobench import device as dev
    from nanobench import environment, peaks

    devices = []
    for kind in dev.available_kinds():
        names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if kind == "cuda" else [kind]
        for spec in names:
            d = dev.resolve(spec)
            entry = {"device": spec, "name": dev.name(d), "peaks": {}}
            for dtype in dev.DTYPES:
                try:
                    dev.check_dtype(d, dtype)
                except Exception as exc:  # InputError: this dtype does not run here
                    entry["peaks"][dtype] = {"supported": False, "why": str(exc)}
                    continue
                spec_peak = peaks.spec_peak(d, dtype)
                measured = peaks.measured_peak(d, dtype, recalibrate=calibrate)
                entry["peaks"][dtype] = {"supported": True, "spec_flops": spec_peak.flops, "spec_source": spec_peak.source,
                                         "measured_flops": measured.flops, "measured_source": measured.source}
            devices.append(entry)
    return {"environment": environment.collect(torch.device("cpu")), "devices": devices}


def print_report(report: dict, console) -> None:
    from rich.table import Table

    env = report["environment"]
    console.print(f"[bold]{env['hostname']}[/bold]: {env['cpu_model']}, {env['cpu_physical_cores']} cores, "
                  f"torch {env['torch']} ({env['torch_num_threads']} threads), Python {env['python']}")
    table = Table("device", "name", "dtype", "spec peak", "measured peak", "note")
    for d in report["devices"]:
        for dtype, p in d["peaks"].items():
            if not p["supported"]:
                table.add_row(d["device"], d["name"], dtype, "-", "-", "not supported")
                continue
            fmt = lambda f: f"{f / 1e12:.3g} TFLOP/s" if f else "unknown"  # noqa: E731
            note = "" if p["spec_flops"] else p["spec_source"]
            table.add_row(d["device"], d["name"], dtype, fmt(p["spec_flops"]), fmt(p["measured_flops"]), note)
    console.print(table)
