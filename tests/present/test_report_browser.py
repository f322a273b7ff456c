"""The report as a user works it in a real headless Chromium: the page renders every figure
offline, hovering a point shows its run and value, a legend click hides a configuration,
the buttons switch x to log, a drag zooms; and the page asks for nothing beyond its folder
(the browser's own network log).

Playwright's Python package drives Debian's Chromium through `executable_path`; no browser
is ever downloaded (no `playwright install`). Without chromium or playwright these skip.
"""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_report import FIGURES, HEADINGS  # the same page, read as text there

pytestmark = pytest.mark.browser

FIX = Path(__file__).parents[1] / "fixtures"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
# Debian's chromium as root in a container: no sandbox, no GPU, nothing fetched on start
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]
SAMPLE = "<script>alert('sample')</script> & <b>bold</b>"  # from make_fixtures.py
LOSS = "#plot-g1-loss-iteration"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def opened(browser, fixture_report):
    """The report open at 1400 px, with every request and error recorded. One page for the
    module (loading it is most of these tests' time): each test leaves it as it found it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.goto(fixture_report.as_uri())
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {FIGURES}"
    )
    yield page, seen
    context.close()


def _point_xy(page, div: str, x: float, y: float) -> tuple[float, float]:
    """Where on the screen the data point (x, y) of a figure is drawn, from its axes."""
    return tuple(
        page.evaluate(
            """([sel, x, y]) => {
                const gd = document.querySelector(sel), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                const r = gd.getBoundingClientRect();
                return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)];
            }""",
            [div, x, y],
        )
    )


def test_the_page_renders_every_figure_offline(opened):
    page, seen = opened
    got = page.evaluate(
        """() => ({
        h2: [...document.querySelectorAll('h2')].map(h => h.firstChild.textContent),
        plots: document.querySelectorAll('.js-plotly-plot .main-svg').length,
        samples: [...document.querySelectorAll('pre.sample')].map(p => p.textContent),
        summary: [...document.querySelectorAll('ul.summary li')].map(li => li.textContent),
        // the environment's summary table is whole within its box at 1400 px; the full one is folded
        envFits: [...document.querySelectorAll('table.env-diff')]
            .map(t => t.parentElement.scrollWidth <= t.parentElement.clientWidth),
        folded: [...document.querySelectorAll('details')]
            .filter(d => d.querySelector('table.env-all')).map(d => d.open),
    })"""
    )
    assert got["h2"] == HEADINGS
    assert got["plots"] >= FIGURES
    assert SAMPLE in got["samples"]  # shown as text, never run
    assert got["envFits"] == [True] and got["folded"] == [False]
    [line] = got["summary"]
    assert line.startswith("cuda bf16 vs cpu fp32:") and "4.00x faster per iteration" in line
    assert seen["errors"] == []
    # the browser's own log: the page and the plotly.js beside it, nothing else
    assert seen["requests"] and all(u.startswith("file://") for u in seen["requests"]), seen[
        "requests"
    ]
    assert any(u.endswith("/plotly.min.js") for u in seen["requests"])


def test_hovering_a_point_shows_its_run_seed_device_and_value(opened):
    page, _ = opened
    rows = pq.read_table(FIX / "compare" / "tiny-cpu-fp32-s1.parquet").to_pandas()
    last = rows[rows["eval_val_loss"].notna()].iloc[-1]  # the run's final evaluation
    page.locator(LOSS).scroll_into_view_if_needed()
    x, y = _point_xy(page, LOSS, float(last["iter"]), float(last["eval_val_loss"]))
    page.mouse.move(x, y)
    label = page.locator(f"{LOSS} .hoverlayer .hovertext")
    label.wait_for()
    text = label.text_content()
    assert "run tiny-cpu-fp32-s1" in text and "seed 1" in text
    assert "cpu fp32" in text and "AMD EPYC" in text  # device and dtype, the device's name
    assert f"val loss {last['eval_val_loss']:.4f}" in text  # 1.6000


def test_a_legend_click_hides_a_configuration(opened):
    page, _ = opened
    markers = f"() => document.querySelectorAll('{LOSS} .scatterlayer .trace .point').length"
    # evaluations drawn as markers: cpu fp32's 3 and cuda bf16's 2 seeds x 3
    assert page.evaluate(markers) == 9
    page.locator(f"{LOSS} .legend .traces", has_text="cuda bf16").click()
    page.wait_for_function(f"({markers})() === 3")
    visible = page.evaluate(
        f"""() => document.querySelector('{LOSS}')._fullData.map(t => [t.legendgroup, t.visible])"""
    )
    assert {v for g, v in visible if g == "cuda bf16"} == {"legendonly"}
    assert {v for g, v in visible if g == "cpu fp32"} == {True}
    page.locator(f"{LOSS} .legend .traces", has_text="cuda bf16").click()  # and back
    page.wait_for_function(f"({markers})() === 9")


def test_log_switch_and_zoom(opened):
    page, _ = opened
    axis = f"() => document.querySelector('{LOSS}')._fullLayout.xaxis"
    page.locator(f"{LOSS} .updatemenu-button", has_text="log x").click()
    page.wait_for_function(f"({axis})().type === 'log'")
    page.locator(f"{LOSS} .updatemenu-button", has_text="linear x").click()
    page.wait_for_function(f"({axis})().type === 'linear'")
    # drag from iteration 2 to 6 across the plot: the x range becomes about [2, 6]
    page.locator(LOSS).scroll_into_view_if_needed()
    (x0, y0), (x1, _) = _point_xy(page, LOSS, 2, 2.5), _point_xy(page, LOSS, 6, 2.5)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y0, steps=4)
    page.mouse.move(x1, y0, steps=4)
    page.mouse.up()
    page.wait_for_function(f"({axis})().range[1] < 7")
    lo, hi = page.evaluate(f"({axis})().range")
    assert lo == pytest.approx(2, abs=0.2) and hi == pytest.approx(6, abs=0.2)
    # leave the page as found (the module shares it); plotly's own call, not a double-click,
    # whose timing a loaded machine can stretch past plotly's double-click delay
    page.evaluate(
        f"() => Plotly.relayout(document.querySelector('{LOSS}'), {{'xaxis.autorange': true}})"
    )
    page.wait_for_function(f"({axis})().range[1] > 7")
