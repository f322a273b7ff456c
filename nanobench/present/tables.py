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
from nanobench.analyze.seeds import config_hit, mean_or_none
from nanobench.analyze.verdicts import equivalence_sentence


@dataclass
class TableText:
    """A table as plain strings, rendered by rich here and as HTML by report.py."""

    columns: list[tuple[str, str]]  # (heading, "left" | "right")
    rows: list[list[str]]


def runs_table(group: Group) -> TableText:
    # the group's heading names the scenario; noise: the run's recorded verdict ("-": not sampled)
    cols = [
        ("device name", "left"),
        ("dtype", "left"),
        ("seed", "right"),
        ("iters", "right"),
        ("train loss", "right"),
        ("val loss", "right"),
        ("best val", "right"),
        ("ms/iter p50", "right"),
        ("p90", "right"),
        ("outliers", "right"),
        ("tokens/s", "right"),
        ("MFU", "right"),
        ("peak mem", "right"),
        ("energy", "right"),
        ("noise", "left"),
        ("status", "left"),
    ]
    rows = []
    for cs in group.configs:
        for r in cs.runs:
            rows.append(
                [
                    r.config.device_name,
                    r.config.dtype + (" compiled" if r.config.compile else ""),
                    str(r.seed),
                    str(r.iterations),
                    fmt(r.final_train_loss),
                    fmt(r.final_val_loss),
                    fmt(r.best_val_loss),
                    fmt_ms(r.median_step_s),
                    fmt_ms(r.p90_step_s),
                    str(r.slow_outliers),
                    fmt(r.tokens_per_s, ",.0f"),
                    "-" if r.mfu is None else f"{r.mfu * 100:.1f}%",
                    fmt_bytes(r.mem_peak_bytes),
                    "-" if r.energy_j is None else f"{r.energy_j:,.0f} J",
                    "-" if r.noise.verdict == "unknown" else r.noise.verdict,
                    r.status,
                ]
            )
    return TableText(cols, rows)


def timed_label(cs) -> str:
    """A configuration's label, marked where its timings rest on a run recorded as noisy."""
    noisy = sum(r.noise.verdict == "noisy" for r in cs.runs)
    return cs.label + (f" [noisy: {noisy}/{len(cs.runs)} runs]" if noisy else "")


def axes_differ(group: Group) -> bool:
    """Whether tokens or FLOPs per iteration differ within the group (other batch, context or
    model): only then does 'val at equal tokens / FLOPs' say more than 'val at equal iteration'."""
    return any(
        len({getattr(r, f) for r in group.runs}) > 1 for f in ("tokens_per_iter", "flops_per_iter")
    )


def _equal_cell(e, at: str) -> str:
    return f"{e.other_val:.4f} vs {e.base_val:.4f} @{at}" if e else "-"


def speed_table(group: Group) -> TableText:
    """Speed, and val loss at equal iteration and train time; at equal tokens and FLOPs too when
    the group's recipes differ in them (axes_differ)."""
    axes = axes_differ(group)
    cols = [
        ("configuration", "left"),
        ("runs", "right"),
        ("ms/iter p50", "right"),
        ("IQR", "right"),
        ("speedup", "right"),
        ("range", "right"),
        ("val @ iter", "right"),
        ("val @ train time", "right"),
    ]
    cols += [("val @ tokens", "right"), ("val @ FLOPs", "right")] * axes
    base = group.baseline
    rows = [
        [
            timed_label(base) + " (baseline)",
            str(len(base.runs)),
            fmt_ms(base.median_step_s),
            f"{fmt_ms(base.q1_step_s)}-{fmt_ms(base.q3_step_s)}",
            "1.00x",
            "",
            "",
            "",
        ]
        + ["", ""] * axes
    ]
    for p in group.pairs:
        o, s, ei, et = p.other, p.speedup, p.equal_iter, p.equal_time
        rows.append(
            [
                timed_label(o),
                str(len(o.runs)),
                fmt_ms(o.median_step_s),
                f"{fmt_ms(o.q1_step_s)}-{fmt_ms(o.q3_step_s)}",
                fmt_ratio(s.ratio if s else None),
                f"{s.low:.2f}-{s.high:.2f}x" if s else "-",
                _equal_cell(ei, str(int(ei.at)) if ei else ""),
                _equal_cell(et, fmt_time(et.at) if et else ""),
            ]
            + [
                _equal_cell(p.equal_tokens, fmt_count(p.equal_tokens.at) if p.equal_tokens else ""),
                _equal_cell(p.equal_flops, fmt_count(p.equal_flops.at) if p.equal_flops else ""),
            ]
            * axes
        )
    return TableText(cols, rows)


def fmt_count(x: float) -> str:
    """1.2M tokens, 3.4T FLOPs: three significant digits and an SI prefix."""
    for div, unit in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def equivalence_table(pair) -> TableText:
    """Per evaluation after iteration 0: the (paired or unpaired) difference, the 90% interval
    that decides equivalence (TOST at 0.05) and the 95% one, the Holm-adjusted p of a zero
    difference and the verdict against the seed noise."""
    points = pair.equivalence["points"]
    cols = [
        ("iter", "right"),
        ("seeds", "right"),
        ("diff (other - base)", "right"),
        ("90% CI (decides)", "right"),
        ("95% CI", "right"),
        ("p (Holm)", "right"),
        ("verdict", "left"),
    ]
    ci = lambda c: "-" if c is None else f"{c[0]:+.4f} to {c[1]:+.4f}"  # noqa: E731
    rows = [
        [
            str(p.iter),
            _seeds_cell(p),
            f"{p.diff:+.4f}",
            ci(p.ci90),
            ci(p.ci95),
            fmt_p(p.p_holm),
            p.verdict
            + (
                f" ({', '.join(f's{s} in {side.upper()}' for s, side, _ in p.diverged)})"
                if p.diverged
                else ""
            ),
        ]
        for p in points
    ]
    return TableText(cols, rows)


def _seeds_cell(p) -> str:
    if p.design == "paired":
        return f"{p.n_pairs} pairs"
    shared = f" ({p.n_pairs} shared)" if p.n_pairs else ""
    return f"{p.n_b} vs {p.n_a}{shared}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _hit_cells(h: Hit | None, reached: int, n: int, energy: bool) -> list[str]:
    if h is None:
        return [
            f"not reached ({reached}/{n} seeds)" if n > 1 and reached else "not reached",
            "",
            "",
        ] + [""] * energy
    joules = ["-" if h.energy_j is None else f"{h.energy_j:,.0f} J"] * energy
    return [
        f"{h.iter:.0f}",
        fmt_time(h.train_time_s),
        fmt_time(h.wall_time_s),
    ] + joules  # seeds: the mean, rounded


def has_energy(group: Group) -> bool:
    return any(r.energy_j is not None for r in group.runs)


def energy_note(group: Group) -> str | None:
    """Said once per group where no run read an energy counter (instead of a column of '-')."""
    if has_energy(group) or not group.targets:
        return None
    reasons = sorted(
        {r.info.energy_reason for r in group.runs if r.run is not None and r.info.energy_reason}
    )
    return "energy to target: no run read an energy counter" + (
        f" ({'; '.join(reasons)})" if reasons else ""
    )


def targets_table(group: Group) -> TableText | None:
    """Time to each target: the baseline's row, then each configuration with base/other ratios;
    the joules spent to get there where an energy counter was read (NVML, RAPL)."""
    if not group.targets:
        return None
    energy = has_energy(group)
    cols = (
        [
            ("target val", "right"),
            ("configuration", "left"),
            ("iters", "right"),
            ("train time", "right"),
            ("wall time", "right"),
        ]
        + [("energy", "right")] * energy
        + [("iters ratio", "right"), ("train ratio", "right"), ("wall ratio", "right")]
    )
    rows = []
    for target in group.targets:
        bh, bn = config_hit(group.baseline, target)
        rows.append(
            [
                f"{target:.2f}",
                timed_label(group.baseline),
                *_hit_cells(bh, bn, len(group.baseline.runs), energy),
                "",
                "",
                "",
            ]
        )
        for p in group.pairs:
            tr = next(x for x in p.targets if x.target == target)
            rows.append(
                [
                    "",
                    timed_label(p.other),
                    *_hit_cells(tr.other, tr.other_reached, len(p.other.runs), energy),
                    fmt_ratio(tr.iter_ratio),
                    fmt_ratio(tr.train_time_ratio),
                    fmt_ratio(tr.wall_time_ratio),
                ]
            )
    return TableText(cols, rows)


def matrix_table(group: Group) -> TableText | None:
    """Device x dtype at a glance, for a group whose configurations of the baseline's recipe span
    more than one cell (a `--device all --dtype fp32,bf16` matrix, or runs made one by one):
    rows are device and headline number, columns the dtypes. None with fewer than 2 cells."""
    base = group.baseline
    cells = {
        (cs.config.device_type, cs.config.device_name, _dtype_name(cs.config)): cs
        for cs in group.configs
        if cs.config.recipe == base.config.recipe and not cs.config.continues
    }
    if len(cells) < 2:
        return None
    dtypes = sorted({d for _, _, d in cells}, key=lambda d: (d != _dtype_name(base.config), d))
    devices = sorted(
        {(t, n) for t, n, _ in cells},
        key=lambda dn: (dn != (base.config.device_type, base.config.device_name), dn),
    )
    pairs = {id(p.other): p for p in group.pairs}

    def number(cs, what: str, target: float | None = None) -> str:
        if cs is None:
            return ""
        p = pairs.get(id(cs))
        if what == "ms":
            return fmt_ms(cs.median_step_s)
        if what == "speedup":
            return (
                "1.00x (baseline)"
                if cs is base
                else fmt_ratio(p.speedup.ratio if p and p.speedup else None)
            )
        if what == "val":
            return _equal_iteration_cell(cs, cs is base, p, equal_at)
        hit, reached = config_hit(cs, target)
        return (
            fmt_time(hit.train_time_s) if hit else _hit_cells(None, reached, len(cs.runs), False)[0]
        )

    equal_at = min(
        (
            int(p.equal_iter.at)
            for p in group.pairs
            if id(p.other) in {id(c) for c in cells.values()} and p.equal_iter
        ),
        default=None,
    )
    metrics = [("ms/iter p50", "ms", None), ("speedup", "speedup", None)]
    if equal_at is not None:
        metrics.append((f"val loss @{equal_at}", "val", None))
    metrics += [(f"train time to {t:.2f}", "target", t) for t in group.targets]
    rows = []
    for t, n in devices:
        for i, (name, what, target) in enumerate(metrics):
            rows.append(
                [f"{t} ({n})" if i == 0 else "", name]
                + [number(cells.get((t, n, d)), what, target) for d in dtypes]
            )
    return TableText([("device", "left"), ("", "left")] + [(d, "right") for d in dtypes], rows)


def _equal_iteration_cell(cs, is_base: bool, p, at: int) -> str:
    """The matrix's "val loss @N" cell: the baseline's mean val loss at iteration `at`; for
    another configuration its difference from the baseline there (pair `p`), with the seeds
    it rests on, its 90% interval and the verdict."""
    if is_base:
        return fmt(mean_or_none(e.val_loss for r in cs.runs for e in r.evaluations if e.iter == at))
    point = next((x for x in p.equivalence["points"] if x.iter == at), None) if p else None
    if point is None:
        return "-"
    ci = f", 90% CI {point.ci90[0]:+.4f} to {point.ci90[1]:+.4f}" if point.ci90 else ""
    design = (
        f"{point.n_pairs} pairs"
        if point.design == "paired"
        else point.split.on()
        if point.split is not None and point.n_pairs and point.ci90 is None
        else f"{point.n_b} vs {point.n_a} seeds"
    )
    return f"{point.diff:+.4f} vs baseline ({design}{ci}): {point.verdict}"


def _dtype_name(config) -> str:
    return config.dtype + (" compiled" if config.compile else "")


def to_rich(table: TableText) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in table.columns:
        t.add_column(name, justify=justify)
    for row in table.rows:
        t.add_row(*(escape(cell) for cell in row))
    return t


def render_comparison(
    c: Comparison, console, gates: list[GateResult] | None = None, ungated: list[str] | None = None
) -> None:
    for w in c.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for g in c.groups:
        console.print()
        console.print(
            f"[bold]{escape(g.scenario)}[/bold] on {escape(g.dataset)} (sha256 {escape(g.dataset_sha256[:12])}), "
            f"{len(g.runs)} run{'s' if len(g.runs) != 1 else ''}; baseline: {escape(g.baseline.label)}"
            + (f" ({escape(g.baseline_why)})" if len(g.configs) > 1 else "")
        )
        console.print(to_rich(runs_table(g)))
        if g.pairs:
            console.print()
            console.print(to_rich(speed_table(g)))
        tt = targets_table(g)
        if tt is not None:
            console.print()
            console.print(to_rich(tt))
            if energy_note(g):
                console.print(escape(energy_note(g)))
        if g.pairs:
            console.print()
            for p in g.pairs:
                console.print(escape(p.verdict))
                console.print(
                    "  "
                    + escape(
                        equivalence_sentence(p.equivalence, p.base.label, p.other.label, p.imported)
                    )
                )
                console.print("  " + escape(" ".join(p.explanation["sentences"])))
        for d in g.device_speedups:  # with `run --best` runs: the speedup each way
            console.print(escape(d.sentence()))
        for item in g.notes:
            console.print(f"[cyan]note:[/cyan] {escape(item)}")
        for item in g.confounds:
            console.print(f"[yellow]confound:[/yellow] {escape(item)}")
    if c.references:
        console.print()
        console.print(
            "[bold]Is each run normal?[/bold] Val loss against the reference points of its scenario:"
        )
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
