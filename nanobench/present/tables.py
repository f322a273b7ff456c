"""Terminal presentation of a comparison (rich). The console is passed in, never global,
so tests render into a StringIO at a fixed width and compare with a golden file."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.markup import escape
from rich.table import Table

from nanobench.analyze.compare import Comparison, Group
from nanobench.analyze.format import fmt, fmt_bytes, fmt_ms, fmt_ratio, fmt_time
from nanobench.analyze.gates import GateResult
from nanobench.analyze.runs import Hit
from nanobench.analyze.seeds import config_hit
from nanobench.analyze.verdicts import equivalence_sentence


@dataclass
class TableSpec:
    """A table as plain strings, rendered by rich here and as HTML by report.py."""

    columns: list[tuple[str, str]]  # (heading, "left" | "right")
    rows: list[list[str]]


def runs_spec(group: Group) -> TableSpec:
    # the group's heading names the scenario; noise: the run's recorded verdict ("-": not sampled)
    cols = [("device name", "left"), ("dtype", "left"), ("seed", "right"), ("iters", "right"),
            ("train loss", "right"), ("val loss", "right"), ("best val", "right"), ("ms/iter p50", "right"),
            ("p90", "right"), ("outliers", "right"), ("tokens/s", "right"), ("MFU", "right"), ("peak mem", "right"),
            ("energy", "right"), ("noise", "left"), ("status", "left")]
    rows = []
    for cs in group.configs:
        for r in cs.runs:
            rows.append([
                r.config.device_name,
                r.config.dtype + (" compiled" if r.config.compile else ""), str(r.seed),
                str(r.iterations), fmt(r.final_train_loss), fmt(r.final_val_loss), fmt(r.best_val_loss),
                fmt_ms(r.median_step_s), fmt_ms(r.p90_step_s), str(r.slow_outliers), fmt(r.tokens_per_s, ",.0f"),
                "-" if r.mfu is None else f"{r.mfu * 100:.1f}%",
                fmt_bytes(r.mem_peak_bytes), "-" if r.energy_j is None else f"{r.energy_j:,.0f} J",
                "-" if r.noise.verdict == "unknown" else r.noise.verdict, r.status,
            ])
    return TableSpec(cols, rows)


def timed_label(cs) -> str:
    """A configuration's label, marked where its timings rest on a run recorded as noisy."""
    noisy = sum(r.noise.verdict == "noisy" for r in cs.runs)
    return cs.label + (f" [noisy: {noisy}/{len(cs.runs)} runs]" if noisy else "")


def speed_spec(group: Group) -> TableSpec:
    cols = [("configuration", "left"), ("runs", "right"), ("ms/iter p50", "right"), ("IQR", "right"),
            ("speedup", "right"), ("range", "right"), ("val @ iter", "right"), ("val @ train time", "right")]
    base = group.baseline
    rows = [[timed_label(base) + " (baseline)", str(len(base.runs)), fmt_ms(base.median_step_s),
             f"{fmt_ms(base.q1_step_s)}-{fmt_ms(base.q3_step_s)}", "1.00x", "", "", ""]]
    for p in group.pairs:
        o, s, ei, et = p.other, p.speedup, p.equal_iter, p.equal_time
        rows.append([
            timed_label(o), str(len(o.runs)), fmt_ms(o.median_step_s), f"{fmt_ms(o.q1_step_s)}-{fmt_ms(o.q3_step_s)}",
            fmt_ratio(s.ratio if s else None), f"{s.low:.2f}-{s.high:.2f}x" if s else "-",
            f"{ei.other_val:.4f} vs {ei.base_val:.4f} @{int(ei.at)}" if ei else "-",
            f"{et.other_val:.4f} vs {et.base_val:.4f} @{fmt_time(et.at)}" if et else "-",
        ])
    return TableSpec(cols, rows)


def equivalence_spec(pair) -> TableSpec:
    """Per evaluation: the difference of seed means and its verdict against the seed noise."""
    cols = [("iter", "right"), ("seeds", "right"), ("diff (other - base)", "right"), ("90% CI", "right"),
            ("95% CI", "right"), ("verdict", "left")]
    ci = lambda c: "-" if c is None else f"{c[0]:+.4f} to {c[1]:+.4f}"  # noqa: E731
    rows = [[str(p.iter), f"{p.n_b} vs {p.n_a}", f"{p.diff:+.4f}", ci(p.ci90), ci(p.ci95), p.verdict]
            for p in pair.equivalence["points"]]
    return TableSpec(cols, rows)


def _hit_cells(h: Hit | None, reached: int, n: int) -> list[str]:
    if h is None:
        return [f"not reached ({reached}/{n} seeds)" if n > 1 and reached else "not reached", "", ""]
    return [f"{h.iter:.0f}", fmt_time(h.train_time_s), fmt_time(h.wall_time_s)]  # seeds: the mean, rounded


def targets_spec(group: Group) -> TableSpec | None:
    """Time to each target: the baseline's row, then each configuration with base/other ratios."""
    if not group.targets:
        return None
    cols = [("target val", "right"), ("configuration", "left"), ("iters", "right"), ("train time", "right"),
            ("wall time", "right"), ("iters ratio", "right"), ("train ratio", "right"), ("wall ratio", "right")]
    rows = []
    for target in group.targets:
        bh, bn = config_hit(group.baseline, target)
        rows.append([f"{target:.2f}", timed_label(group.baseline), *_hit_cells(bh, bn, len(group.baseline.runs)), "", "", ""])
        for p in group.pairs:
            tr = next(x for x in p.targets if x.target == target)
            rows.append(["", timed_label(p.other), *_hit_cells(tr.other, tr.other_reached, len(p.other.runs)),
                         fmt_ratio(tr.iter_ratio), fmt_ratio(tr.train_time_ratio), fmt_ratio(tr.wall_time_ratio)])
    return TableSpec(cols, rows)


def to_rich(spec: TableSpec) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in spec.columns:
        t.add_column(name, justify=justify)
    for row in spec.rows:
        t.add_row(*(escape(cell) for cell in row))
    return t


def render_comparison(c: Comparison, console, gates: list[GateResult] | None = None, ungated: list[str] | None = None) -> None:
    for w in c.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for g in c.groups:
        console.print()
        console.print(f"[bold]{escape(g.scenario)}[/bold] on {escape(g.dataset)} (sha256 {escape(g.dataset_sha256[:12])}), "
                      f"{len(g.runs)} run{'s' if len(g.runs) != 1 else ''}; baseline: {escape(g.baseline.label)}")
        console.print(to_rich(runs_spec(g)))
        if g.pairs:
            console.print()
            console.print(to_rich(speed_spec(g)))
        tt = targets_spec(g)
        if tt is not None:
            console.print()
            console.print(to_rich(tt))
        if g.pairs:
            console.print()
            for p in g.pairs:
                console.print(escape(p.verdict))
                console.print("  " + escape(equivalence_sentence(p.equivalence, p.base.label, p.other.label)))
                console.print("  " + escape(" ".join(p.explanation["sentences"])))
        for item in g.notes:
            console.print(f"[cyan]note:[/cyan] {escape(item)}")
        for item in g.confounds:
            console.print(f"[yellow]confound:[/yellow] {escape(item)}")
    if c.references:
        console.print()
        console.print("[bold]Is each run normal?[/bold] Val loss against the reference points of its scenario:")
        for ch in c.references:
            style = "bold red" if ch.first_outside else "green"
            console.print(f"  [{style}]{escape(ch.sentence())}[/{style}]")
    if gates is not None:
        console.print()
        for r in gates:
            style = {True: "green", False: "bold red", None: "bold yellow"}[r.passed]
            console.print(f"[{style}]{escape(r.describe())}[/{style}]")
        for u in ungated or []:
            console.print(f"[yellow]not gated:[/yellow] {escape(u)}")
