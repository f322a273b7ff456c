"""The board in every format (present/board.py) with strangers' strings in it: markup, table
and formula characters and escape sequences show as written and break nothing; the JSON keys
are the documented ones; the HTML page in headless Chromium (Playwright driving Debian's
/usr/bin/chromium) sorts by a clicked column, draws its chart and fetches nothing from the
network."""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from nanobench.analyze import board as analyze_board
from nanobench.present import board as present

REPO = Path(__file__).resolve().parents[2]
EVIL = '<img src=x onerror="window.pwned=1"> | x | [bold]rich[/bold] \x1b[2J'
FORMULA = "@SUM(1+1)*cmd|' /C calc'!A0"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture
def board(tmp_path, handmade):
    d = tmp_path / "runs"
    for seed, step in ((1, 0.10), (2, 0.12), (3, 0.11)):
        handmade(d, f"cpu-s{seed}", seed=seed, step_s=step)
    for name, step in ((EVIL, 0.01), (FORMULA, 0.02), ("NVIDIA H100 80GB HBM3", 0.005)):
        for seed in (1, 2):
            handmade(
                d,
                f"gpu-{step}-s{seed}",
                device_type="cuda",
                device_name=name,
                dtype="bf16",
                seed=seed,
                step_s=step,
                vals={0: 3.0, 4: 1.9, 8: 1.45},
            )
    (d / "junk.parquet").write_bytes(b"PAR1 | <b>not</b> a result PAR1")
    return analyze_board.board_files([str(d)])[0]


def test_terminal_shows_markup_and_escapes_as_written(board):
    from rich.console import Console

    out = io.StringIO()
    present.render_board(
        board, Console(file=out, width=250, force_terminal=False, color_system=None)
    )
    text = out.getvalue()
    assert "[bold]rich[/bold]" in text and "\\x1b[2J" in text  # rich markup not applied
    assert "\x1b" not in text  # no escape sequence reaches the terminal
    assert "left out (1):" in text and "junk.parquet" in text


def test_markdown_cells_cannot_break_the_table(board):
    md = present.to_markdown(board)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    bars = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
    assert len(bars) == 1  # every line of the table has the header's columns, no more
    assert not re.search(r"(?<!\\)[<>]", md) and "\\<img src=x" in md  # escaped, shown as written
    assert "\\@SUM" in md  # no @mention of a user named SUM
    assert "\x1b" not in md


def test_csv_neutralises_formulas_and_keeps_its_columns(board):
    rows = list(csv.reader(io.StringIO(present.to_csv(board))))
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body) and len(body) == 4
    hardware = [r[header.index("hardware")] for r in body]
    assert "'" + FORMULA in hardware  # a leading @ is quoted: a spreadsheet shows it, runs nothing
    assert any(h.startswith("<img src=x") and "\\x1b[2J" in h for h in hardware)
    tps = [float(r[header.index("tokens_per_s")]) for r in body]
    assert sorted(tps) == pytest.approx(sorted([768 / 0.11, 768 / 0.01, 768 / 0.02, 768 / 0.005]))
    assert present.csv_cell("-3+4") == "'-3+4" and present.csv_cell(-3.5) == "-3.5"


def _keys(value, prefix=""):
    """Every key of a JSON value, as dotted paths with [] for list items."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{prefix}{k}"
            yield from _keys(v, f"{prefix}{k}.")
    elif isinstance(value, list) and value:
        yield from _keys(value[0], f"{prefix[:-1]}[].") if prefix else ()


def test_json_keys_are_the_documented_ones(board):
    data = json.loads(present.to_json_text(board))
    assert data["tables"][0]["rows"][0]["device_name"] in (
        EVIL,
        FORMULA,
        "NVIDIA H100 80GB HBM3",
        "AMD EPYC",
    )
    documented = set(re.findall(r"`([a-z_\[\].0-9]+)`", (REPO / "docs" / "board.md").read_text()))
    keys = set(_keys(data))
    assert keys and keys <= documented, f"undocumented keys: {sorted(keys - documented)}"


@pytest.mark.browser
def test_page_in_headless_chromium_sorts_by_a_clicked_column(board, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package (dev extra)"
    )
    page_path = present.write_html(board, tmp_path / "page")
    assert (tmp_path / "page" / "plotly.min.js").is_file()
    requests, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(page_path.as_uri())
            page.wait_for_selector("#chart-0 .main-svg")

            def first_column():
                return page.eval_on_selector_all(
                    "#board-0 tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
                )

            def column(header):
                return page.eval_on_selector_all(
                    "#board-0 tbody tr",
                    f"""rows => {{
                        const heads = [...document.querySelectorAll('#board-0 th')];
                        const i = heads.findIndex(h => h.textContent === {json.dumps(header)});
                        return rows.map(r => r.cells[i].dataset.v === '' ? null : Number(r.cells[i].dataset.v));
                    }}""",
                )

            before = first_column()
            page.click("#board-0 th:text-is('tokens/s')")
            after = first_column()
            ascending = column("tokens/s")
            page.click("#board-0 th:text-is('tokens/s')")
            descending = column("tokens/s")
            shown = page.eval_on_selector_all(
                "#board-0 td", "cells => cells.map(c => c.textContent)"
            )
            injected = page.evaluate("document.querySelectorAll('table img, .chart img').length")
            pwned = page.evaluate("window.pwned === undefined")
            ticks = page.eval_on_selector_all(
                "#chart-0 .ytick text", "ts => ts.map(t => t.textContent)"
            )
        finally:
            browser.close()
    assert before != after  # the click changed the row order
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert len(ascending) == 4
    assert any(c.startswith("<img src=x") for c in shown) and injected == 0 and pwned
    assert any("<img src=x" in t for t in ticks)  # the chart shows the name as written too
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), requests  # opens offline


def test_noisy_runs_are_counted_in_words(tmp_path, handmade):
    d = tmp_path / "runs"
    handmade(d, "quiet", seed=1)
    handmade(d, "noisy", seed=2, step_s=0.3, noise="noisy")
    left = present.to_markdown(analyze_board.board_files([str(d)])[0])
    counted = present.to_markdown(analyze_board.board_files([str(d)], include_noisy=True)[0])
    assert "| 1 (+1 noisy left out) |" in left and "1 run(s) recorded noisy are left out" in left
    assert "| 2 (1 noisy) |" in counted
