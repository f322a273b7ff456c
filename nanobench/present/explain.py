"""`nanobench explain` on the terminal and in the report: the ladder, the split of the gap with
its bands, the runs still missing with their commands, and the paragraph in words. Tables are
plain strings (TableText) so the terminal and the HTML page show the same figures.

Every projected figure carries the word "projected" in its cell; the printed parts of each
quantity are rounded so that they add up to the printed total (attribution.rounded_parts).
"""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from nanobench.analyze.attribution import QUANTITIES, PointResult, Value, rounded_parts
from nanobench.analyze.explain import Explanation, Ladder
from nanobench.analyze.format import fmt_duration
from nanobench.analyze.ladder import FACTOR_LABELS
from nanobench.present.tables import TableText

# per quantity: (heading, scale to the printed unit, decimals)
SHOWN = {
    "val_loss": ("val loss", 1.0, 4),
    "step_s": ("ms/iter", 1e3, 2),
    "time_to_target_s": ("train s to target", 1.0, 2),
    "train_time_s": ("train s, whole run", 1.0, 2),
}


def _num(x: float | None, q: str, signed: bool = False) -> str:
    if x is None:
        return "-"
    _, scale, digits = SHOWN[q]
    return f"{x * scale:{'+' if signed else ''}.{digits}f}"


def _value(v: Value | None, q: str) -> str:
    if v is None:
        return "-"
    text = _num(v.mean, q)
    return text + " projected" if v.projected else text


def _status(r: PointResult, missing) -> str:
    return _status_kind(r, missing) + "".join(
        f"; {run_id} stopped ({status}) at iteration {last}: val {val:.4f} at {at}"
        for run_id, status, last, at, val in r.stopped
    )


def _status_kind(r: PointResult, missing) -> str:
    if r.kind == "measured":
        return f"{len(r.run_ids)} seed{'s' * (len(r.run_ids) > 1)}"
    if r.kind == "projected":
        return f"projected ({len(r.probe_ids)} probe run{'s' * (len(r.probe_ids) > 1)})"
    run = next((p for p in missing if p.point == r.point or r.point in p.covers), None)
    if run is None:
        return "missing"
    est = f", est. {fmt_duration(run.estimate_s)}" if run.estimate_s is not None else ""
    return f"missing: {'runs here' if run.here else run.where}{est}" + (
        " (probe)" if run.probe else ""
    )


def ladder_table(e: Explanation) -> TableText:
    cols = [("rung", "right"), ("change", "left"), ("configuration", "left"), ("results", "left")]
    cols += [(SHOWN[q][0], "right") for q, _, _ in QUANTITIES]
    lad = e.ladder
    names = ["A"] + [str(i + 1) for i in range(len(lad.rungs))]
    changes = ["(start)"] + [r.description for r in lad.rungs]
    if lad.rungs:
        names[-1] += " = B"
    rows = []
    for name, change, res in zip(names, changes, lad.results):
        rows.append(
            [name, change, res.point.label(), _status(res, e.missing)]
            + [_value(res.values.get(q), q) for q, _, _ in QUANTITIES]
        )
    return TableText(cols, rows)


def attribution_table(lad: Ladder) -> TableText:
    """One row per rung, its part of each quantity's gap with the band; a row for the rungs' own
    seed sets where they add anything; then the sum and the total. The printed parts of a
    quantity add up to its printed total exactly."""
    cols = [("rung", "right"), ("changes", "left")] + [
        (f"{SHOWN[q][0]} part [band]", "right") for q, _, _ in QUANTITIES
    ]
    shown: dict[str, list[str]] = {}
    sums: dict[str, str] = {}
    seeds_row: dict[str, str] = {}
    for q, _, _ in QUANTITIES:
        att = lad.attribution[q]
        _, scale, digits = SHOWN[q]
        cells = []
        if att.complete:
            printed = rounded_parts(
                [p.value * scale for p in att.parts] + [att.seed_sets * scale],
                att.total.value * scale,
                digits,
            )
            seeds_row[q] = f"{printed[-1]:+.{digits}f}"
            sums[q] = f"{sum(printed):+.{digits}f}" + (" projected" if att.projected else "")
        else:
            printed = [None if p is None else p.value * scale for p in att.parts]
            seeds_row[q] = "-"
            sums[q] = "incomplete"
        for p, x in zip(att.parts, printed):
            if p is None:
                cells.append("-")
                continue
            band = (
                f" [{_num(p.low, q, True)}, {_num(p.high, q, True)}]" if p.low is not None else ""
            )
            cells.append(
                f"{x:+.{digits}f}{band}"
                + (" (same runs)" if p.same_runs else "")
                + (" projected" if p.projected else "")
            )
        shown[q] = cells
    rows = [
        [str(i + 1), FACTOR_LABELS[r.factors[0]]] + [shown[q][i] for q, _, _ in QUANTITIES]
        for i, r in enumerate(lad.rungs)
    ]
    if any(abs(lad.attribution[q].seed_sets) > 0 for q, _, _ in QUANTITIES):
        rows.append(["", "which seeds ran at the rungs"] + [seeds_row[q] for q, _, _ in QUANTITIES])
    rows.append(["", "sum of the parts"] + [sums[q] for q, _, _ in QUANTITIES])
    total = []
    for q, _, _ in QUANTITIES:
        t = lad.attribution[q].total
        band = (
            f" [{_num(t.low, q, True)}, {_num(t.high, q, True)}]"
            if t is not None and t.low is not None
            else ""
        )
        total.append(
            "-"
            if t is None
            else _num(t.value, q, True) + band + (" projected" if t.projected else "")
        )
    rows.append(["", "total gap, B - A"] + total)
    return TableText(cols, rows)


def band_notes(lad: Ladder) -> list[str]:
    """How each band of the table was made, and the seed sets where they differ: one line each."""
    methods, seeds = [], []
    for q, _, _ in QUANTITIES:
        att = lad.attribution[q]
        for p in (*att.parts, att.total):
            if p is not None and p.method not in methods:
                methods.append(p.method)
            if p is not None and p.seeds and p.seeds not in seeds and q == "val_loss":
                seeds.append(p.seeds)
    return [f"band: {m}" for m in methods] + [f"seeds: {x}" for x in seeds]


def commands(e: Explanation) -> list[str]:
    out = []
    for p in e.missing:
        est = f"est. {fmt_duration(p.estimate_s)}" if p.estimate_s is not None else "no estimate"
        what = "probe for a projection" if p.probe else p.point.label()
        also = f"; also makes {', '.join(c.label() for c in p.covers)}" if p.covers else ""
        out.append(f"[{p.where}; {est}] {what}{also}\n    {p.command()}\n    ({p.estimate_how})")
    return out


def _rich(text: TableText, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for name, justify in text.columns:
        table.add_column(escape(name), justify=justify)
    for row in text.rows:
        table.add_row(*(escape(c) for c in row))
    return table


def render_explanation(e: Explanation, console) -> None:
    console.print(
        f"[bold]A[/bold] {escape(e.a.point.label())}\n[bold]B[/bold] {escape(e.b.point.label())}"
    )
    console.print("They differ in:" if e.differences else "They differ in no recorded factor.")
    for d in e.differences:
        console.print(f"  - {escape(d)}")
    if e.target is not None:
        console.print(f"Common target: val {e.target:g} ({escape(e.target_how)})")
    console.print(
        _rich(
            ladder_table(e),
            "The ladder: A -> "
            + "".join(FACTOR_LABELS[r.factors[0]] + " -> " for r in e.ladder.rungs)
            + "B",
        )
    )
    console.print(
        _rich(
            attribution_table(e.ladder),
            "Each rung's part of the gap (on the seeds the two points share; bands below)",
        )
    )
    for line in band_notes(e.ladder):
        console.print(f"  {escape(line)}")
    for alt in e.alternatives:
        console.print(
            _rich(
                attribution_table(alt),
                "Another order: " + " -> ".join(FACTOR_LABELS[r.factors[0]] for r in alt.rungs),
            )
        )
    for res in e.ladder.results:
        if res.kind == "projected":
            wall = res.projected_wall_s
            extra = (
                f"; whole run with evaluations {fmt_duration(wall.mean)} projected "
                f"[{fmt_duration(wall.low)}, {fmt_duration(wall.high)}]"
                if wall
                else ""
            )
            t = res.values["train_time_s"]
            console.print(
                f"projected: {escape(res.point.label())}: training {fmt_duration(t.mean)} projected "
                f"[{fmt_duration(t.low)}, {fmt_duration(t.high)}]{escape(extra)}; {escape('; '.join(res.notes))}"
            )
    if e.missing:
        console.print("[bold]Runs that would complete the ladder[/bold]")
        for line in commands(e):
            console.print(escape(line))
    console.print()
    console.print(escape(" ".join(e.sentences)))


def explanation_html(e: Explanation, table_html, esc) -> str:
    """The report's section: the same tables and paragraph as the terminal."""
    parts = [
        f"<p><b>A</b> {esc(e.a.point.label())}<br><b>B</b> {esc(e.b.point.label())}</p>",
        "<ul>" + "".join(f"<li>{esc(d)}</li>" for d in e.differences) + "</ul>",
        f"<p>{esc(' '.join(e.sentences))}</p>",
        table_html(ladder_table(e)),
        "<h4>Each rung's part of the gap</h4>",
        table_html(attribution_table(e.ladder)),
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in band_notes(e.ladder)) + "</ul>",
    ]
    for alt in e.alternatives:
        parts += [
            f"<h4>Another order: {esc(' -> '.join(FACTOR_LABELS[r.factors[0]] for r in alt.rungs))}</h4>",
            table_html(attribution_table(alt)),
        ]
    if e.missing:
        parts.append(
            "<h4>Runs that would complete the ladder</h4><ul>"
            + "".join(
                f"<li>{esc(p.where)}: <code>{esc(p.command())}</code></li>" for p in e.missing
            )
            + "</ul>"
        )
    return "".join(parts)
