"""`nanobench report`: the page's content, escaping and self-containment, and the page as
a real headless Chromium renders it."""

import html
import os
import re
from pathlib import Path

import pytest

from nanobench.analyze import compare
from nanobench.present import plots, report, tables
from nanobench.store.results import RunWriter

FIX = Path(__file__).parents[1] / "fixtures"
SAMPLE = "<script>alert('sample')</script> & <b>bold</b>"  # from make_fixtures.py
HEADINGS = [
    "Verdict",
    "Comparison",
    "Explaining the gap",
    "Plots",
    "Environment",
    "Text samples",
    "Methodology",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory, nb):
    out = tmp_path_factory.mktemp("report")
    r = nb(
        "report", FIX / "compare", FIX / "compare-other", "-o", out, "--title", "fixtures <report>"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "index.html")
    return out / "index.html"


def test_report_is_self_contained_and_escaped(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)  # nothing to fetch
    assert "<script" not in text.replace(
        html.escape("<script>alert('sample')</script>"), ""
    )  # no script at all
    assert html.escape(SAMPLE) in text
    assert (
        "&lt;b&gt;host&lt;/b&gt;" in text and "<b>host</b>" not in text
    )  # host name from the file
    assert "<title>fixtures &lt;report&gt;</title>" in text
    assert text.count('src="data:image/png;base64,') == 10  # 5 figures x 2 groups
    assert "cuda bf16 ran 4.00x faster per iteration than cpu fp32" in text
    assert 'class="diff">2.13.0+cu128<' in text  # torch differs from the first run: highlighted
    assert os.path.getsize(page) < 2_000_000


def test_plots_return_figures_with_the_curves():
    c = compare.compare_files([str(FIX / "compare")])
    series = [(cs.label, s) for cs in c.groups[0].configs for s in cs.runs]
    fig = plots.loss_vs_iteration(series)
    ax = fig.axes[0]
    # per configuration one train-EMA line (runs joined with a NaN break) and one evaluation line:
    # cpu: 8 steps + 1, 3 evaluations + 1; cuda (2 seeds): 2 * (8 + 1), and the seeds' mean at its
    # 3 evaluations with a min-max band around it
    assert sorted(len(line.get_xdata()) for line in ax.get_lines()) == [3, 4, 9, 18]
    assert len(ax.collections) == 1  # the band
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cpu fp32", "cuda bf16 (2 seeds, min-max)"]
    fig = plots.loss_vs_train_time(series, log_x=True)
    assert fig.axes[0].get_xscale() == "log"
    assert len(plots.step_time_distribution(series).axes[0].get_yticklabels()) == 3
    assert report.figure_img(plots.memory_over_time(series), "m").startswith(
        '<img alt="m" src="data:image/png;base64,'
    )


def test_environment_shows_the_gpu_driver_where_nvml_recorded_it(tmp_path):
    """The driver row reads the NVML state taken at the start of a CUDA run
    (environment.gpu_state_at_start.driver); a CPU run has none: "-"."""
    row = {
        "iter": 0,
        "loss": 3.0,
        "step_time_s": 0.1,
        "train_time_s": 0.1,
        "wall_time_s": 0.1,
        "eval_val_loss": 3.0,
    }
    for kind, env in (
        ("cpu", {"torch": "2"}),
        ("cuda", {"torch": "2", "gpu_state_at_start": {"nvml": True, "driver": "550.54.15"}}),
    ):
        w = RunWriter(
            tmp_path,
            f"r-{kind}",
            {
                "scenario": {"name": "s"},
                "dataset": {"sha256": "a"},
                "environment": env,
                "device": {"spec": kind, "type": kind, "name": kind.upper()},
            },
        )
        w.append([row])
        w.finish("completed")
    page = report.environment_html(compare.compare_files([str(tmp_path)]).runs)
    # once among the fields that differ, once in the full table folded under <details>
    summary, folded = page.split("<details>")
    for part in (summary, folded):
        [driver] = re.findall(r"<tr><th>driver</th>(.*?)</tr>", part)
        assert re.findall(r"<td[^>]*>(.*?)</td>", driver) == [
            "-",
            "550.54.15",
        ]  # cpu (the baseline) first
    assert (
        "<tr><th>Python</th>" in folded and "<tr><th>Python</th>" not in summary
    )  # the same in both runs


def test_ema_is_debiased_and_downsample_keeps_ends():
    # constant input: a debiased EMA is the constant from the first point (a plain one starts at 0.1 * x)
    assert plots.ema_debiased([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])
    # x = 0, 1: m1 = 0, m2 = 0.1 -> 0.1 / (1 - 0.81) = 0.5263
    assert plots.ema_debiased([0.0, 1.0])[1] == pytest.approx(0.1 / 0.19)
    idx = plots.downsample(5000, 600)
    assert len(idx) <= 600 and idx[0] == 0 and idx[-1] == 4999


@pytest.mark.browser
def test_report_in_headless_chromium(page):
    from cdp import CHROMIUM, Browser

    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    browser = Browser()
    try:
        session = browser.open(page.as_uri())
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        seen = browser.evaluate(
            session,
            """(async () => {
            await Promise.all([...document.images].map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
            return {
              h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
              widths: [...document.images].map(i => i.naturalWidth),
              samples: [...document.querySelectorAll('pre.sample')].map(p => p.textContent),
              scripts: document.querySelectorAll('script').length,
              verdicts: [...document.querySelectorAll('.verdict')].map(p => p.textContent),
              // the environment's summary table is whole within its box at 1400 px; the full one is folded
              envFits: [...document.querySelectorAll('table.env-diff')].map(t => t.parentElement.scrollWidth <= t.parentElement.clientWidth),
              folded: [...document.querySelectorAll('details')].filter(d => d.querySelector('table.env-all')).map(d => d.open),
            };
        })()""",
        )
        events = list(browser.events)
    finally:
        browser.close()
    assert seen["h2"] == HEADINGS
    assert len(seen["widths"]) == 10 and all(w > 0 for w in seen["widths"])
    assert SAMPLE in seen["samples"]  # shown as text, never run
    assert seen["scripts"] == 0
    assert seen["envFits"] == [True] and seen["folded"] == [
        False
    ]  # the full table is folded, closed
    assert any("3.00x sooner" in v for v in seen["verdicts"])
    errors = [
        e
        for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == []
    requests = [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests


def test_device_by_dtype_matrix_of_the_committed_example():
    """The example's two cells (cpu fp32, cpu bf16): one device row group, one column per dtype.
    Every figure written out, worked from the committed files with pandas and scipy:
      ms/iter p50, the median of the seeds' steady steps pooled: fp32 29.615 ms, bf16 25.761 ms
      speedup 29.615 / 25.761 = 1.15x
      final val (iteration 2000) fp32 1.9038, 1.8768, 1.8960 (seeds 1337-1339): mean 1.8922;
      bf16 minus fp32 by seed, mean -0.00059, paired t (2 df, t = 4.303) 95% interval
      -0.0023 to +0.0012, inside the 0.02 margin: equivalent."""
    example = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"
    [g] = compare.compare_files([str(example)]).groups
    m = tables.matrix_spec(g)
    assert [c for c, _ in m.columns] == ["device", "", "fp32", "bf16"]
    rows = {r[1]: r[2:] for r in m.rows}
    assert rows["ms/iter p50"] == ["29.6", "25.8"]
    assert rows["speedup"] == ["1.00x (baseline)", "1.15x"]
    assert rows["val loss @2000"] == [
        "1.8922",
        "-0.0006 vs baseline (3 pairs, 95% CI -0.0023 to +0.0012): equivalent",
    ]
    assert set(rows) >= {"train time to 2.00", "train time to 1.90"}
    # one configuration: no matrix
    assert tables.matrix_spec(compare.compare_files([str(FIX / "compare-other")]).groups[0]) is None
