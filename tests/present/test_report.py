"""`nanobench report`: the page's content, escaping and self-containment, and the page as
a real headless Chromium renders it and a user works it (Playwright's Python package driving
Debian's /usr/bin/chromium: no browser is downloaded)."""

import html
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from scipy import stats

from nanobench.analyze import compare
from nanobench.analyze.references import Band, Check
from nanobench.present import report, tables
from nanobench.store.results import RunWriter

FIX = Path(__file__).parents[1] / "fixtures"
EXAMPLE = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"
SAMPLE = "<script>alert('sample')</script> & <b>bold</b>"  # from make_fixtures.py
HEADINGS = [
    "Summary",
    "Comparison",
    "Explaining the gap",
    "Figures",
    "Environment",
    "Text samples",
    "Methodology",
]
# per group: loss against iterations, train time and wall time, ms/iter over the run and per run,
# memory; and the difference view where a group has a pair (compare/ has one, compare-other/ none)
FIGURES = 7 + 6


@pytest.fixture
def page(fixture_report):
    return fixture_report  # conftest.py: made once per session


def test_report_is_self_contained_and_escaped(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)  # nothing to fetch
    # one script file, the plotly.js beside the page; every other script is inline
    assert re.findall(r"<script[^>]*\bsrc=\"([^\"]*)\"", text) == ["plotly.min.js"]
    assert sorted(p.name for p in page.parent.iterdir()) == ["index.html", "plotly.min.js"]
    assert html.escape(SAMPLE) in text and SAMPLE not in text
    assert (
        "&lt;b&gt;host&lt;/b&gt;" in text and "<b>host</b>" not in text
    )  # host name from the file
    assert "<title>fixtures &lt;report&gt;</title>" in text
    assert text.count('<figure class="plot"') == FIGURES
    assert "cuda bf16 ran 4.00x faster per iteration than cpu fp32" in text
    assert 'class="diff">2.13.0+cu128<' in text  # torch differs from the first run: highlighted
    assert os.path.getsize(page) < 1_000_000
    # every link of the table of contents leads to an anchor of the page
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    toc = text[text.index('<nav class="toc"') : text.index("</nav>")]
    links = re.findall(r'href="#([^"]+)"', toc)
    assert len(links) > 20 and set(links) <= ids


def test_the_summary_gives_each_pair_its_verdict_and_deciding_interval():
    """The committed example, 3 paired seeds: one line for bf16 vs fp32, with the paired 90%
    interval at the last evaluation, recomputed here with scipy from the files."""
    comparison = compare.compare_files([str(EXAMPLE)])
    [pair] = comparison.groups[0].pairs
    line = report.summary_line(pair)
    final = {}
    for f in EXAMPLE.glob("*.parquet"):
        t = pq.read_table(f).to_pandas()
        last = t[t["eval_val_loss"].notna()].iloc[-1]
        final[("bf16" if "-bf16-" in f.name else "fp32", f.name.split("-s")[-1][:4])] = last
    seeds = sorted({s for _, s in final})
    diffs = [
        final[("bf16", s)]["eval_val_loss"] - final[("fp32", s)]["eval_val_loss"] for s in seeds
    ]
    lo, hi = stats.t.interval(0.90, len(diffs) - 1, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert int(final[("bf16", seeds[0])]["iter"]) == 2000
    assert f"val loss {sum(diffs) / 3:+.4f} at iteration 2000" in line
    assert f"90% CI {lo:+.4f} to {hi:+.4f}" in line and "paired, 3 pairs" in line
    assert 'class="equivalent"' in line and "margin &plusmn;0.02" in line
    assert "1.15x faster per iteration" in line  # 29.6 / 25.8 ms per iteration (its table)


def test_is_each_run_normal_is_one_table():
    band = Band(500, 2.10, 2.20, "a source")
    checks = [
        Check(
            "run-a", "s", ((250, 2.5, Band(250, 2.4, 2.6, "x")), (500, 2.3, band)), (500, 2.3, band)
        ),
        Check("run-b", "s", ((250, 2.5, Band(250, 2.4, 2.6, "x")),), None),
        Check("run-c", "s", (), None),
        Check("run-d", "s", ((500, 2.05, band),), (500, 2.05, band)),
    ]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", report.normal_html(checks))[1:]
    cells = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows]
    assert cells == [
        [
            "run-a",
            "not normal",
            "iteration 500: val 2.3000, band 2.1000-2.2000 (a source)",
            "+0.1000 above",
        ],
        ["run-b", "normal", "all 1 inside (iterations 250-250)", ""],
        ["run-c", "no check", "no evaluation at a reference iteration", ""],
        [
            "run-d",
            "not normal",
            "iteration 500: val 2.0500, band 2.1000-2.2000 (a source)",
            "-0.0500 below",
        ],
    ]


def test_stills_are_written_on_request_and_stale_ones_removed(tmp_path):
    """--stills: a PNG per figure, linked from the page; a later report without them leaves no
    PNG of other runs behind."""
    c = compare.compare_files([str(FIX / "compare")])
    page = report.write_report(c, tmp_path, stills=True)
    pngs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert len(pngs) == 7 and all(
        (tmp_path / "figures" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs
    )
    text = page.read_text()
    assert all(f'href="figures/{n}"' in text for n in pngs)
    report.write_report(c, tmp_path)
    assert list((tmp_path / "figures").iterdir()) == []
    assert 'href="figures/' not in page.read_text()


def test_a_figures_folder_leading_elsewhere_is_neither_written_nor_cleaned(tmp_path, nb):
    outside, out = tmp_path / "outside", tmp_path / "report"
    outside.mkdir(), out.mkdir()
    (outside / "g1-precious.png").write_bytes(b"not ours")
    (out / "figures").symlink_to(outside)
    assert nb("report", FIX / "compare", "-o", out).returncode == 0  # no stills: figures/ untouched
    r = nb("report", FIX / "compare", "-o", out, "--stills")
    assert r.returncode == 2 and "refused" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in outside.iterdir()] == ["g1-precious.png"]


@pytest.mark.slow
def test_a_hundred_runs_stay_under_8_mb(tmp_path):
    """The folder (page, plotly.js) of 100 runs in 4 configurations: curves are downsampled to
    a budget of 160 points a run at 100 runs, so 300 rows weigh what 5,000 do (bench/ times
    the 5,000) and 21 evaluations a run what a 5,000-iteration run evaluated every 250 has.
    Slow (100 files written and compared); its fast counterpart is
    test_plots.test_a_figure_of_a_hundred_runs_keeps_to_its_point_budget."""
    runs, out = tmp_path / "runs", tmp_path / "report"
    for k in range(100):
        device, dtype = [("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "bf16"), ("cuda", "fp32")][
            k % 4
        ]
        w = RunWriter(
            runs,
            f"r{k:03d}",
            {
                "scenario": {"name": "s", "targets": {"val_loss": [2.0]}},
                "dataset": {"sha256": "a"},
                "options": {"device": device, "dtype": dtype, "seed": k // 4, "overrides": []},
                "device": {"spec": device, "type": device, "name": device.upper()},
            },
            flush_every_iters=10_000,
        )
        w.append(
            [
                {
                    "iter": i,
                    "loss": 4 - i / 150 + 0.01 * (k % 7),
                    "step_time_s": 0.01 + 0.001 * (i % 5),
                    "train_time_s": 0.01 * (i + 1),
                    "wall_time_s": 0.011 * (i + 1),
                    "mem_bytes": 2**20 * (100 + i),
                    "eval_val_loss": 4 - i / 150 if i % 15 == 0 else None,
                }
                for i in range(301)
            ]
        )
        w.finish("completed")
    report.write_report(compare.compare_files([str(runs)]), out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 8 * 2**20, size
    assert (out / "index.html").stat().st_size > 1_000_000  # the curves are there


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


def test_device_by_dtype_matrix_of_the_committed_example():
    """The example's two cells (cpu fp32, cpu bf16): one device row group, one column per dtype.
    Every figure written out, worked from the committed files with pandas and scipy:
      ms/iter p50, the median of the seeds' steady steps pooled: fp32 29.615 ms, bf16 25.761 ms
      speedup 29.615 / 25.761 = 1.15x
      final val (iteration 2000) fp32 1.9038, 1.8768, 1.8960 (seeds 1337-1339): mean 1.8922;
      bf16 minus fp32 by seed, mean -0.00059, paired t (2 df, t = 2.920) 90% interval
      -0.0018 to +0.0006, inside the 0.02 margin: equivalent."""
    example = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"
    [g] = compare.compare_files([str(example)]).groups
    m = tables.matrix_spec(g)
    assert [c for c, _ in m.columns] == ["device", "", "fp32", "bf16"]
    rows = {r[1]: r[2:] for r in m.rows}
    assert rows["ms/iter p50"] == ["29.6", "25.8"]
    assert rows["speedup"] == ["1.00x (baseline)", "1.15x"]
    assert rows["val loss @2000"] == [
        "1.8922",
        "-0.0006 vs baseline (3 pairs, 90% CI -0.0018 to +0.0006): equivalent",
    ]
    assert set(rows) >= {"train time to 2.00", "train time to 1.90"}
    # one configuration: no matrix
    assert tables.matrix_spec(compare.compare_files([str(FIX / "compare-other")]).groups[0]) is None
