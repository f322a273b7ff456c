"""`nanobench env` on the terminal: what measure/survey.py found (this machine, its devices and
their peaks), the tune records, and the findings of `env --check`. Nothing here measures."""

from __future__ import annotations


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


def print_checks(found: list, facts: dict, console, as_json: bool = False) -> None:
    """`nanobench env --check`: each finding (measure/envcheck.py) with its fix; JSON: the
    facts and the findings."""
    if as_json:
        import json

        print(
            json.dumps(
                {"checks": [c.to_dict() for c in found], "facts": facts}, indent=1, default=str
            )
        )
        return
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
