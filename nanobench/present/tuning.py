"""`nanobench tune`'s table, and the tune records that `nanobench env` lists."""

from __future__ import annotations

import math

from rich import box
from rich.markup import escape
from rich.table import Table


def _row(m, ref, margin: float, chosen) -> list[str]:
    diff = "not finite" if not m.finite else f"{m.max_abs_loss_diff:.2e} @{m.max_diff_iter}"
    if m is ref:
        verdict = "reference"
    elif not m.equivalent(margin):
        verdict = (
            f"refused: loss off by more than {margin:g}" if m.finite else "refused: loss not finite"
        )
    else:
        verdict = "equivalent"
    speed = ref.median_step_s / m.median_step_s
    return [
        escape(m.settings.label()),
        f"{m.median_step_s * 1e3:.1f}",
        f"x{speed:.2f}",
        diff,
        "-" if not m.finite or math.isnan(m.final_loss_diff) else f"{m.final_loss_diff:+.2e}",
        verdict + (", chosen" if m.settings == chosen.settings else ""),
    ]


def _table(measured, margin: float, chosen) -> Table:
    t = Table(
        "settings",
        "ms/iter p50",
        "vs reference",
        "max |loss diff| @iter",
        "final diff",
        "verdict",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for col in t.columns[1:5]:
        col.justify = "right"
    for m in measured:
        t.add_row(*_row(m, measured[0], margin, chosen))
    return t


def print_tune(result, console, key: str | None = None) -> None:
    console.print(
        f"[bold]{escape(result.scenario)}[/bold] on {escape(result.device)}, torch {escape(result.torch)}: "
        f"{result.iters} iterations per candidate, the same seed as the fp32 eager reference, "
        f"margin {result.margin:g} nats (max |loss - reference loss|), kept if > {result.min_gain:.0%} faster"
    )
    for n, (title, measured) in enumerate(result.rounds):
        console.print(
            f"round {n + 1}: {escape(title)} (one run after another; speed against this round's reference)"
        )
        console.print(_table(measured, result.margin, result.best))
    load = result.load or {}
    # other work before the tune started, or more than the cores by its end: a 2-thread step
    # collapses as soon as a neighbour holds one of 2 cores
    if load.get("before") is not None and (
        load["before"] >= 0.5 or (load["after"] or 0) > load["cpus"]
    ):
        console.print(
            f"[yellow]warning:[/yellow] load average {load['before']:.1f} -> {load['after']:.1f} on "
            f"{load['cpus']} CPUs: other processes competed for the cores, so these timings (thread counts "
            f"above all) describe this machine under that load; tune again when it is quiet"
        )
    for what, why in result.refused.items():
        console.print(f"not a candidate: {escape(what)}: {escape(why)}")
    console.print(
        f"best: [bold]{escape(result.best.settings.label())}[/bold]"
        + (f" (recorded as {escape(key)})" if key else "")
    )


def record_lines(records: dict) -> list[str]:
    """One line per tune record, for `nanobench env`."""
    return [
        f"{r.get('scenario')} on {r.get('device')} (torch {r.get('torch')}): {r.get('label')}, "
        f"tuned {r.get('tuned_at')} over {r.get('iters')} iterations, margin {r.get('margin')}"
        for _, r in sorted(records.items())
    ]
