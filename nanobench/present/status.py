"""`nanobench status DIR`: a plan's cells as its output folder holds them (run/plan.py)."""

from __future__ import annotations

from collections import Counter

STYLE = {"completed": "green", "running": "cyan", "failed": "red", "not started": "dim"}


def to_json(plan, states, order: tuple[str, ...]) -> dict:
    """order: every state a cell can be in (run/plan.STATES), each counted even when none is."""
    return {
        "plan_id": plan.plan_id,
        "out_dir": plan.out_dir,
        "counts": {state: sum(s.state == state for s in states) for state in order},
        "cells": [
            {
                "cell": s.cell.id,
                "label": s.cell.label,
                "state": s.state,
                "path": s.path,
                "reason": s.reason,
            }
            for s in states
        ],
    }


def render_status(plan, states, console, order: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table("cell", "run", "state", "file / reason", title=f"plan {plan.plan_id}")
    for s in states:
        detail = " - ".join(x for x in (s.path, s.reason) if x)
        table.add_row(
            s.cell.id, s.cell.label, f"[{STYLE[s.state]}]{s.state}[/{STYLE[s.state]}]", detail
        )
    console.print(table)
    counts = Counter(s.state for s in states)
    console.print(", ".join(f"{counts[state]} {state}" for state in order))
