"""The board in every format: a rich terminal table, Markdown (to paste into a GitHub
discussion), CSV, JSON (analyze/board.to_json) and a self-contained HTML page.

Every string of a board comes from strangers' files (device names, scenario names, versions,
the reasons a file was left out): it is text in every format. Control characters are shown
as `\\xNN` (an escape sequence in a device name must not drive the terminal); terminal cells
are rich `Text`, never markup; HTML goes through `html.escape` (and JSON inside the page's
script is escaped so that no `</script>` can end it); Markdown escapes its table and
emphasis characters; a CSV cell that a spreadsheet would read as a formula (=, +, -, @) is
quoted with a leading apostrophe.

The page's table sorts by any column with a few lines of script written here: plotly's own
table trace cannot sort on a click, is drawn in SVG (no find-in-page, no copy of a row) and
wraps long names poorly, while an HTML table does all of that. The chart is plotly's, drawn by
the one plotly.min.js written beside index.html (present/plotlyjs.py), so the page opens from
file:// with no network.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

from nanobench import files
from nanobench.analyze.board import Board, BoardRow, BoardTable, Spread, to_json
from nanobench.analyze.format import fmt_bytes, fmt_ratio
from nanobench.errors import InputError
from nanobench.present.plotlyjs import write_script

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text) -> str:
    """`text` with control, line-separator and bidirectional-override characters written as
    \\xNN / \\uNNNN, so that a name shows as written and cannot move the cursor or reorder a line."""
    return _CONTROL.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"
        ),
        str(text),
    )


# ---- cells: each column as (header, text, sort value) ----------------------------------------


def _num(x: float, digits: int = 3) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _spread_text(s: Spread | None, scale: float = 1.0, pct: bool = False) -> str:
    if s is None:
        return "-"
    show = (lambda v: f"{v * scale:.0%}") if pct else (lambda v: _num(v * scale))
    if s.n == 1 or show(s.low) == show(s.high):  # a range too narrow to print is left out
        return show(s.median)
    return f"{show(s.median)} [{show(s.low)}-{show(s.high)}]"


def _with_unit(s: Spread | None, unit: str) -> str:
    """'3.6 s' or '3.6 s [3.59-3.61]'."""
    if s is None:
        return "-"
    text = f"{_num(s.median)} {unit}"
    if s.n == 1 or _num(s.low) == _num(s.high):
        return text
    return f"{text} [{_num(s.low)}-{_num(s.high)}]"


def _target_text(t) -> str:
    """Train time to a target over the runs that reached it; how many did when not all."""
    if not t.reached:
        return f"not reached (0/{t.runs})"
    return _with_unit(t.train_time_s, "s") + (
        "" if t.reached == t.runs else f" ({t.reached}/{t.runs})"
    )


def _versions(values: list[str]) -> str:
    return ", ".join(values) if values else "not recorded"


def columns(table: BoardTable) -> list[tuple[str, callable, callable]]:
    """(header, row -> text, row -> sort value or None) for each column of a table."""

    def median(get, scale=1.0):
        return lambda r: None if get(r) is None else get(r).median * scale

    cols = [
        ("hardware", lambda r: r.hardware, lambda r: r.hardware),
        ("dtype", lambda r: r.dtype, lambda r: r.dtype),
        (
            "settings",
            lambda r: r.settings + ("" if r.program == "nanobench" else f"; {r.program} log"),
            None,
        ),
        ("machines", lambda r: str(r.machines), lambda r: r.machines),
        (
            "runs",
            lambda r: str(r.runs) + _noisy_text(r, " ("),
            lambda r: r.runs,
        ),
        ("seeds", lambda r: str(r.seeds), lambda r: r.seeds),
        ("tokens/s", lambda r: _spread_text(r.tokens_per_s), median(lambda r: r.tokens_per_s)),
        ("ms/iter", lambda r: _spread_text(r.step_s, 1e3), median(lambda r: r.step_s, 1e3)),
        ("MFU spec", lambda r: _spread_text(r.mfu, pct=True), median(lambda r: r.mfu)),
        (
            "MFU measured",
            lambda r: _spread_text(r.mfu_measured, pct=True),
            median(lambda r: r.mfu_measured),
        ),
    ]
    for k, target in enumerate(table.targets):
        cols.append(
            (
                f"time to val {target:g}",
                lambda r, k=k: _target_text(r.targets[k]),
                lambda r, k=k: (
                    r.targets[k].train_time_s.median
                    if r.targets[k].train_time_s and r.targets[k].reached == r.targets[k].runs
                    else None
                ),
            )
        )
        cols.append(
            (
                f"energy to val {target:g}",
                lambda r, k=k: _with_unit(r.targets[k].energy_j, "J"),
                lambda r, k=k: r.targets[k].energy_j.median if r.targets[k].energy_j else None,
            )
        )
    cols += [
        ("tokens/J", lambda r: _spread_text(r.tokens_per_j), median(lambda r: r.tokens_per_j)),
        (
            "peak memory",
            lambda r: fmt_bytes(r.mem_peak_bytes.median) if r.mem_peak_bytes else "-",
            median(lambda r: r.mem_peak_bytes),
        ),
        ("val loss", _loss_text, lambda r: r.loss.val_loss if r.loss else None),
        ("speedup", _speedup_text, lambda r: r.speedup.ratio if r.speedup else None),
        ("torch", lambda r: _versions(r.torch), None),
        (
            "CUDA / driver",
            lambda r: (
                f"{_versions(r.cuda)} / {_versions(r.driver)}" if r.device_type == "cuda" else "-"
            ),
            None,
        ),
        ("nanobench", lambda r: _versions(r.nanobench), None),
    ]
    return cols


def _noisy_text(r: BoardRow, start: str) -> str:
    """' (+2 noisy left out)', or ' (2 noisy)' when noisy runs are counted in; '' for none."""
    if not r.noisy:
        return ""
    return f"{start}{r.noisy} noisy)" if r.noisy_counted else f"{start}+{r.noisy} noisy left out)"


def _loss_text(r: BoardRow) -> str:
    if r.reference:
        return "reference"
    if r.loss is None:
        return "no common evaluation"
    return f"{r.loss.val_loss:.4f} @{r.loss.iter} {r.loss.verdict} ({r.loss.diff:+.3f})"


def _speedup_text(r: BoardRow, sep: str = " ") -> str:
    """'16.2x [15.8x-16.6x]'; with sep='\\n' the range goes on a second line (terminal)."""
    if r.speedup is None:
        return "-"
    if r.reference:
        return f"1.00x{sep}(reference)"
    s = r.speedup
    return fmt_ratio(s.ratio) + (
        "" if s.low == s.high else f"{sep}[{fmt_ratio(s.low)}-{fmt_ratio(s.high)}]"
    )


def _history_lines(table: BoardTable) -> list[str]:
    return [f"{r.label}: {h.sentence()}" for r in table.rows for h in r.history]


def _footer(board: Board) -> list[str]:
    lines = []
    if board.noisy_left_out:
        lines.append(
            f"{board.noisy_left_out} run(s) recorded noisy are left out of every number (--include-noisy shows them)"
        )
    elif board.include_noisy:
        lines.append(
            "runs recorded noisy are included (--include-noisy); the runs column counts them"
        )
    return lines + board.notes


# ---- terminal ---------------------------------------------------------------------------------


def _two_lines(s: Spread | None, scale: float = 1.0, unit: str = "") -> str:
    """The median, and under it the range across machines and seeds relative to it (terminal
    cells: '-3%..+1%' is narrower than the two numbers)."""
    if s is None:
        return "-"
    head = f"{_num(s.median * scale)}{unit}"
    if s.n == 1 or s.low == s.high or not s.median:
        return head
    return f"{head}\n{s.low / s.median - 1:+.0%}..{s.high / s.median - 1:+.0%}"


def software_text(r: BoardRow) -> str:
    text = f"torch {_versions(r.torch)}"
    if r.device_type == "cuda":
        text += f"; CUDA {_versions(r.cuda)}, driver {_versions(r.driver)}"
    return text + f"; nanobench {_versions(r.nanobench)}"


def terminal_columns(table: BoardTable) -> list[tuple[str, callable]]:
    """The terminal's narrower cut of `columns`: related numbers share a cell, one per line,
    and a column no row has a value for (energy on CPU-only boards) or one every row shares
    (the software) is left out (`render_board` prints the shared software under the table)."""

    def mfu(r):
        pct = lambda s: "-" if s is None else f"{s.median:.0%}"  # noqa: E731
        return f"{pct(r.mfu)} / {pct(r.mfu_measured)}"

    def target(k):
        def cell(r):
            t = r.targets[k]
            if not t.reached:
                return f"not reached\n(0/{t.runs})"
            lines = [_two_lines(t.train_time_s, unit=" s")]
            lines += [f"{_num(t.energy_j.median)} J"] if t.energy_j else []
            lines += [] if t.reached == t.runs else [f"({t.reached}/{t.runs})"]
            return "\n".join(lines)

        return cell

    def loss(r):
        if r.reference or r.loss is None:
            return _loss_text(r).replace(" ", "\n", 1)
        return f"{r.loss.val_loss:.4f} @{r.loss.iter}\n{r.loss.verdict} {r.loss.diff:+.3f}"

    def settings(r):
        prog = "" if r.program == "nanobench" else f"\n{r.program} log"
        return f"{r.dtype}\n{r.settings}{prog}"

    def counts(r):
        return f"{r.machines}/{r.runs}/{r.seeds}" + _noisy_text(r, "\n(")

    cols = [
        ("hardware", lambda r: r.hardware),
        ("dtype,\nsettings", settings),
        ("mach./\nruns/\nseeds", counts),
        ("tokens/s", lambda r: _two_lines(r.tokens_per_s)),
        ("ms/iter", lambda r: _two_lines(r.step_s, 1e3)),
        ("MFU spec/\nmeasured", mfu),
    ]
    cols += [(f"to val\n{t:g}", target(k)) for k, t in enumerate(table.targets)]
    if any(r.tokens_per_j for r in table.rows):
        cols.append(("tokens/J", lambda r: _two_lines(r.tokens_per_j)))
    cols += [
        ("peak\nmemory", lambda r: fmt_bytes(r.mem_peak_bytes.median) if r.mem_peak_bytes else "-"),
        ("val loss vs\nreference", loss),
        ("speedup", lambda r: _speedup_text(r, "\n")),
    ]
    if len({software_text(r) for r in table.rows}) > 1:
        cols.append(
            (
                "software",
                lambda r: software_text(r).replace("; ", "\n").replace("not recorded", "?"),
            )
        )
    return cols


def render_board(board: Board, console) -> None:
    """The rich tables, one per scenario and recipe, then history, notes and what was left out."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for t in board.tables:
        ref = t.reference.label if t.reference else "none"
        table = Table(
            title=Text(f"{printable(t.title)}  (reference: {printable(ref)})"),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_lines=True,
            pad_edge=False,
        )
        cols = terminal_columns(t)
        for k, (header, _) in enumerate(cols):
            table.add_column(
                header,
                justify="left" if k in (0, 1) or header == "software" else "right",
                # names and versions wrap when the terminal is narrow; numbers stay whole
                no_wrap=k not in (0, 1) and header not in ("software", "val loss vs\nreference"),
            )
        for r in t.rows:
            # each line of a cell made printable on its own: the newlines are ours
            table.add_row(
                *(Text("\n".join(printable(x) for x in text(r).split("\n"))) for _, text in cols)
            )
        console.print(table)
        shared = {software_text(r) for r in t.rows}
        lines = [f"software of every row: {shared.pop()}"] if len(shared) == 1 else []
        for line in lines + t.notes + _history_lines(t):
            console.print(Text(printable(line)))
        console.print()
    for line in _footer(board):
        console.print(Text(printable(line)))
    if board.left_out:
        console.print(Text(f"left out ({len(board.left_out)}):"))
        for x in board.left_out:
            console.print(Text(f"  {printable(left_out_line(x))}"))


def left_out_line(x) -> str:
    """The refusal as one line naming the file (readers' messages already start with it)."""
    return x.reason if x.reason.startswith(x.file) else f"{x.file}: {x.reason}"


# ---- Markdown -------------------------------------------------------------------------------

# What can make text in a GitHub table cell other than text: the cell's bar, emphasis, code,
# links and images (through the brackets), tags, strikethrough, and an @mention that would
# notify someone. Line-start markers (#, -, +) cannot occur inside a cell.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~@])")


def md_text(text) -> str:
    """Text for a Markdown table cell: shown as written (GitHub renders no tag, link or emphasis
    from it) and unable to end the cell or the row."""
    text = printable(text).replace("&", "&amp;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def to_markdown(board: Board) -> str:
    out = []
    for t in board.tables:
        ref = t.reference.label if t.reference else "none"
        out.append(f"### {md_text(t.title)}\n")
        out.append(
            f"Reference row: {md_text(ref)}. " + " ".join(md_text(n) + "." for n in t.notes) + "\n"
        )
        cols = columns(t)
        out.append("| " + " | ".join(md_text(h) for h, _, _ in cols) + " |")
        out.append(
            "|"
            + "|".join(
                "---:" if s is not None and h not in ("hardware", "dtype") else "---"
                for h, _, s in cols
            )
            + "|"
        )
        for r in t.rows:
            out.append("| " + " | ".join(md_text(text(r)) for _, text, _ in cols) + " |")
        history = _history_lines(t)
        if history:
            out.append("\nPer version:\n")
            out += [f"- {md_text(h)}" for h in history]
        out.append("")
    out += [md_text(line) + "\n" for line in _footer(board)]
    if board.left_out:
        out.append(f"Left out ({len(board.left_out)}):\n")
        out += [f"- {md_text(left_out_line(x))}" for x in board.left_out]
    return "\n".join(out) + "\n"


# ---- CSV ----------------------------------------------------------------------------------------


def csv_cell(value):
    """A CSV value: numbers as they are; text with control characters shown, and a leading
    =, +, -, @ (or tab, CR) quoted with an apostrophe so no spreadsheet runs it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = printable(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(board: Board) -> str:
    """One line per row of every table; target columns numbered (target1_...) since scenarios differ."""
    n_targets = max((len(t.targets) for t in board.tables), default=0)
    header = [
        "scenario", "recipe", "hardware", "device_type", "device_name", "dtype", "settings", "program",
        "reference", "machines", "runs", "seeds", "noisy_runs",
        "tokens_per_s", "tokens_per_s_min", "tokens_per_s_max",
        "ms_per_iter", "ms_per_iter_min", "ms_per_iter_max",
        "mfu", "mfu_measured", "tokens_per_joule", "mem_peak_bytes",
    ]  # fmt: skip
    for k in range(1, n_targets + 1):
        header += [
            f"target{k}_val_loss",
            f"target{k}_reached",
            f"target{k}_train_time_s",
            f"target{k}_energy_j",
        ]
    header += [
        "val_loss_iter", "val_loss", "val_loss_diff", "val_loss_verdict",
        "speedup", "speedup_low", "speedup_high", "torch", "cuda", "driver", "nanobench",
    ]  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    w.writerow(header)
    med = lambda s, scale=1.0: None if s is None else s.median * scale  # noqa: E731
    for t in board.tables:
        for r in t.rows:
            line = [
                t.scenario, t.recipe_tag.removeprefix(" · "), r.hardware, r.device_type, r.device_name,
                r.dtype, r.settings, r.program, r.reference, r.machines, r.runs, r.seeds, r.noisy,
                med(r.tokens_per_s), r.tokens_per_s and r.tokens_per_s.low, r.tokens_per_s and r.tokens_per_s.high,
                med(r.step_s, 1e3), r.step_s and r.step_s.low * 1e3, r.step_s and r.step_s.high * 1e3,
                med(r.mfu), med(r.mfu_measured), med(r.tokens_per_j), med(r.mem_peak_bytes),
            ]  # fmt: skip
            for k in range(n_targets):
                tt = r.targets[k] if k < len(r.targets) else None
                line += (
                    [tt.target, tt.reached, med(tt.train_time_s), med(tt.energy_j)]
                    if tt
                    else [None] * 4
                )
            loss = r.loss
            line += [
                loss and loss.iter, loss and loss.val_loss, loss and loss.diff, loss and loss.verdict,
                r.speedup and r.speedup.ratio, r.speedup and r.speedup.low, r.speedup and r.speedup.high,
                ";".join(r.torch), ";".join(r.cuda), ";".join(r.driver), ";".join(r.nanobench),
            ]  # fmt: skip
            w.writerow([csv_cell(v) for v in line])
    return buf.getvalue()


def to_json_text(board: Board) -> str:
    return json.dumps(to_json(board), indent=1)


# ---- HTML -------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 13px; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e3e3e3; vertical-align: top; white-space: nowrap; }
th { text-align: left; background: #f4f4f4; cursor: pointer; user-select: none; }
th[data-dir=asc]::after { content: " \\25B2"; } th[data-dir=desc]::after { content: " \\25BC"; }
td.r { text-align: right; font-variant-numeric: tabular-nums; }
tr.reference td { background: #eef6ee; }
.note { background: #eef3fb; border-left: 4px solid #58c; padding: .3em 1em; margin: .3em 0; }
.left-out li { font-family: ui-monospace, monospace; font-size: 12px; }
"""

# Sorts a table by the clicked column: numbers by their data-v (a cell without one, '-', last),
# text by its content; a second click on the same header reverses.
SORT_JS = """
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.dataset.dir !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = up ? "asc" : "desc";
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (cell.dataset.v === undefined) return cell.textContent;
        return cell.dataset.v === "" ? null : Number(cell.dataset.v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        var c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _script_json(value) -> str:
    """JSON to place inside a <script> element: nothing in it can close the element or
    start markup (<, >, & and the line separators JavaScript reads as newlines are escaped)."""
    text = json.dumps(value, allow_nan=False, default=str)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def _plotly_text(text) -> str:
    """A label as plotly should show it: plotly renders a few tags (<b>, <a href>, <br>) in
    text, and decodes entities, so escaped text is shown as written."""
    return html.escape(printable(text))


def board_figure(table: BoardTable):
    """Per row of one table: train time to the scenario's first target, and tokens/s, as two
    horizontal bar charts side by side (plotly). A row that did not reach the target has no bar
    on the left."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = table.rows
    labels = [_plotly_text(r.label) for r in rows]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(
            f"train time to val {table.targets[0]:g} (s)" if table.targets else "no target",
            "tokens/s (median, range across machines and seeds)",
        ),
    )
    if table.targets:
        times = [
            r.targets[0].train_time_s.median
            if r.targets[0].train_time_s and r.targets[0].reached == r.targets[0].runs
            else None
            for r in rows
        ]
        fig.add_trace(
            go.Bar(y=labels, x=times, orientation="h", name="time to target", marker_color="#58c"),
            1,
            1,
        )
    tps = [r.tokens_per_s for r in rows]
    fig.add_trace(
        go.Bar(
            y=labels,
            x=[s.median if s else None for s in tps],
            orientation="h",
            name="tokens/s",
            marker_color="#4a4",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [s.high - s.median if s else None for s in tps],
                "arrayminus": [s.median - s.low if s else None for s in tps],
            },
        ),
        1,
        2,
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(
        height=120 + 28 * max(len(rows), 1),
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
    )
    return fig


def _cell(text: str, sort_value, numeric: bool) -> str:
    attr = ""
    if numeric:
        attr = (
            ' class="r" data-v=""'
            if sort_value is None
            else f' class="r" data-v="{float(sort_value)!r}"'
        )
    return f"<td{attr}>{html.escape(printable(text))}</td>"


def to_html(board: Board, title: str = "nanobench board") -> str:
    """The page (index.html) for `board`; its chart needs plotly.min.js beside it (write_html)."""
    e = lambda s: html.escape(printable(s))  # noqa: E731
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{CSS}</style>",
        '<script src="plotly.min.js"></script></head><body>',
        f"<h1>{e(title)}</h1>",
        f"<p>{board.n_used} runs from {board.n_files} files; click a column to sort by it.</p>",
    ]
    figures = []
    for k, t in enumerate(board.tables):
        ref = t.reference.label if t.reference else "none"
        parts.append(f"<h2>{e(t.title)}</h2>")
        parts.append(f"<p>Reference row: {e(ref)}</p>")
        parts += [f'<div class="note">{e(n)}</div>' for n in t.notes]
        cols = columns(t)
        parts.append(f'<div class="scroll"><table class="board" id="board-{k}"><thead><tr>')
        parts += [f"<th>{e(h)}</th>" for h, _, _ in cols]
        parts.append("</tr></thead><tbody>")
        for r in t.rows:
            parts.append(f"<tr{' class=reference' if r.reference else ''}>")
            parts += [
                _cell(
                    text(r),
                    sort(r) if sort else None,
                    sort is not None and h not in ("hardware", "dtype"),
                )
                for h, text, sort in cols
            ]
            parts.append("</tr>")
        parts.append("</tbody></table></div>")
        history = _history_lines(t)
        if history:
            parts.append(
                "<h3>Per version</h3><ul>" + "".join(f"<li>{e(h)}</li>" for h in history) + "</ul>"
            )
        parts.append(f'<div class="chart" id="chart-{k}"></div>')
        figures.append((f"chart-{k}", board_figure(t).to_plotly_json()))
    parts += [f'<div class="note">{e(line)}</div>' for line in _footer(board)]
    if board.left_out:
        parts.append(f"<h2>Left out ({len(board.left_out)})</h2><ul class='left-out'>")
        parts += [f"<li>{e(left_out_line(x))}</li>" for x in board.left_out]
        parts.append("</ul>")
    parts.append(f"<script>{SORT_JS}</script>")
    for div, fig in figures:
        data = _script_json(fig.get("data", []))
        layout = _script_json(fig.get("layout", {}))
        parts.append(
            f"<script>Plotly.newPlot({_script_json(div)}, {data}, {layout}, "
            '{"displaylogo": false, "responsive": true});</script>'
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(board: Board, out_dir: str | Path, title: str = "nanobench board") -> Path:
    """index.html and plotly.min.js in out_dir (created), each written atomically."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot create the folder ({files.write_cause(exc)})") from None
    write_script(out)
    return files.write_atomic(out / "index.html", to_html(board, title), inside=out)
