"""The report's figures (present/plots.py) and their stills (present/static.py), checked
against values read straight from the result files with pyarrow and computed by hand, pandas
or scipy, never through nanobench's own curves."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow.parquet as pq
import pytest
from matplotlib.image import imread
from scipy import stats

from nanobench.analyze import compare
from nanobench.present import plotlyjs, plots, report, static
from nanobench.store.results import RunWriter

FIX = Path(__file__).parents[1] / "fixtures"
EXAMPLE = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"


@pytest.fixture(scope="module")
def group():
    [g] = compare.compare_files([str(FIX / "compare")]).groups
    return g


def _series(g):
    return [(cs.label, r) for cs in g.configs for r in cs.runs]


def _trace(fig, name):
    [t] = [t for t in fig["data"] if t.get("name") == name]
    return t


def test_ema_is_debiased_and_downsample_keeps_ends():
    # constant input: a debiased EMA is the constant from the first point (a plain one starts at 0.1 * x)
    assert plots.ema_debiased([2.0, 2.0, 2.0]).tolist() == pytest.approx([2.0, 2.0, 2.0])
    # x = 0, 1: m1 = 0, m2 = 0.1 -> 0.1 / (1 - 0.81) = 0.5263
    assert plots.ema_debiased([0.0, 1.0])[1] == pytest.approx(0.1 / 0.19)
    x = np.random.default_rng(1).normal(3, 1, 5000)  # pandas' adjusted EWM is the same average
    assert plots.ema_debiased(x) == pytest.approx(pd.Series(x).ewm(alpha=0.1).mean().to_numpy())
    idx = plots.downsample(5000, 600)
    assert len(idx) <= 600 and idx[0] == 0 and idx[-1] == 4999
    # a figure's train points are shared out over its runs, within bounds
    assert plots.points_per_run(7) == 600 and plots.points_per_run(100) == 160
    assert plots.points_per_run(10_000) == 120


def test_every_figure_is_a_valid_plotly_figure(group):
    """plotly validates each dict as it would a graph object (a misspelt property raises)."""
    items, _ = report.group_figures(group, "g1")
    assert [i.slug for i in items] == [
        "g1-loss-iteration",
        "g1-loss-train-time",
        "g1-loss-wall-time",
        "g1-difference",
        "g1-step-time-over-run",
        "g1-step-time-per-run",
        "g1-memory",
    ]
    for item in items:
        go.Figure(item.figure)


def test_loss_figure_holds_each_runs_curve_and_the_seed_band(group):
    fig = plots.loss_vs_iteration(_series(group), group.targets)
    cpu = pq.read_table(FIX / "compare" / "tiny-cpu-fp32-s1.parquet").to_pandas()
    steps = cpu[cpu["loss"].notna()]
    train = _trace(fig, "cpu fp32")
    assert train["x"] == steps["iter"].tolist()  # one run: no break
    expected = steps["loss"].ewm(alpha=0.1).mean()  # pandas' debiased EWM, beta 0.9
    assert train["y"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert train["customdata"][0] == 1  # the seed of the point, shown on hover
    assert "AMD EPYC" in train["hovertemplate"] and "seed %{customdata}" in train["hovertemplate"]
    # evaluations: their own markers, each carrying its run id
    val = _trace(fig, "cpu fp32 val")
    assert val["mode"] == "markers" and val["y"] == [3.0, 2.0, 1.6] and val["x"] == [0, 4, 8]
    assert val["text"] == ["tiny-cpu-fp32-s1"] * 3 and "run %{text}" in val["hovertemplate"]
    # two cuda seeds: both curves in one trace with a null between them, and a min-max band
    cuda = _trace(fig, "cuda bf16 (2 seeds, min-max band)")
    assert len(cuda["x"]) == 2 * 8 + 1 and cuda["y"][8] is None
    assert _trace(fig, "cuda bf16 band low")["y"] == [3.0, 1.9, 1.4]  # fixture: s1 below s2
    high = _trace(fig, "cuda bf16 band high")
    assert high["y"] == [3.0, 2.1, 1.45] and high["fill"] == "tonexty"
    assert _trace(fig, "cuda bf16 mean val")["y"] == pytest.approx([3.0, 2.0, 1.425])
    # one legend entry per configuration; a click hides its whole group
    shown = [t["name"] for t in fig["data"] if t.get("showlegend")]
    assert shown == ["cpu fp32", "cuda bf16 (2 seeds, min-max band)"]
    assert {t["legendgroup"] for t in fig["data"]} == {"cpu fp32", "cuda bf16"}
    # the scenario's targets (2.0, 1.5) as guides; x switches between linear and log
    assert sorted(s["y0"] for s in fig["layout"]["shapes"]) == [1.5, 2.0]
    [menu] = fig["layout"]["updatemenus"]
    assert [b["args"] for b in menu["buttons"]] == [
        [{"xaxis.type": "linear"}],
        [{"xaxis.type": "log"}],
    ]


def test_time_axes_read_the_recorded_times(group):
    cpu = pq.read_table(FIX / "compare" / "tiny-cpu-fp32-s1.parquet").to_pandas()
    steps = cpu[cpu["loss"].notna()]
    train = _trace(plots.loss_vs_train_time(_series(group)), "cpu fp32")
    assert train["x"] == pytest.approx(steps["train_time_s"].tolist())
    wall = _trace(plots.loss_vs_wall_time(_series(group)), "cpu fp32")
    assert wall["x"] == pytest.approx(steps["wall_time_s"].tolist())
    # an evaluation is placed at the time its model was reached (before the step that follows it)
    val = _trace(plots.loss_vs_train_time(_series(group)), "cpu fp32 val")
    assert val["x"] == pytest.approx([0.0, 0.2 + 0.2 + 0.1 * 2, 1.0])
    tokens = _trace(plots.loss_vs_tokens(_series(group)), "cpu fp32")
    assert tokens["x"] == [768 * i for i in range(8)]


def test_the_difference_view_draws_the_paired_interval_of_each_evaluation():
    """The committed example: 3 seeds a side, paired. Each point is the mean per-seed
    difference bf16 - fp32, shaded with its 90% t interval, recomputed here with scipy from
    the files."""
    [g] = compare.compare_files([str(EXAMPLE)]).groups
    fig = plots.loss_difference(g.pairs, report.deciding_interval)
    vals = {}
    for f in EXAMPLE.glob("*.parquet"):
        t = pq.read_table(f).to_pandas()
        meta = pq.read_schema(f).metadata
        dtype = "bf16" if "-bf16-" in f.name else "fp32"
        seed = int(f.name.split("-s")[-1].split("-")[0])
        ev = t[t["eval_val_loss"].notna()]
        vals[(dtype, seed)] = dict(zip(ev["iter"], ev["eval_val_loss"]))
        assert meta  # a real result file
    iters = [i for i in sorted(vals[("fp32", 1337)]) if i > 0]  # iteration 0 is not judged
    diffs = np.array(
        [[vals[("bf16", s)][i] - vals[("fp32", s)][i] for s in (1337, 1338, 1339)] for i in iters]
    )
    mean = diffs.mean(axis=1)
    half = stats.t.ppf(0.95, 2) * diffs.std(axis=1, ddof=1) / np.sqrt(3)
    line = _trace(fig, "cpu bf16 minus cpu fp32 (paired band)")
    assert line["x"] == iters and line["y"] == pytest.approx(mean.tolist(), abs=1e-7)
    banded = [i for i, h in zip(iters, half) if h > 0]  # iteration 0: every seed starts alike
    low, high = (
        _trace(fig, "cpu bf16 minus cpu fp32 low"),
        _trace(fig, "cpu bf16 minus cpu fp32 high"),
    )
    got = dict(zip(low["x"], zip(low["y"], high["y"])))
    for i, m, h in zip(iters, mean, half):
        if i in banded:
            assert got[i] == pytest.approx((m - h, m + h), abs=1e-7)
    assert "90% CI" in line["customdata"][-1][0]
    # zero and the margin as guides
    assert sorted(s["y0"] for s in fig["layout"]["shapes"]) == [-0.02, 0.0, 0.02]


def test_step_time_and_memory_figures(group):
    series = _series(group)
    box = plots.step_time_distribution(series)
    cpu = next(t for t in box["data"] if t["name"] == "cpu fp32")
    # the cpu run's timed steps (warm-up excluded): six steps of 0.1 s
    assert cpu["median"] == pytest.approx([100.0]) and cpu["q1"] == pytest.approx([100.0])
    over = _trace(plots.step_time_over_run(series), "cpu fp32")
    assert over["x"] == [2, 3, 4, 5, 6, 7] and over["y"] == pytest.approx([100.0] * 6)
    mem = _trace(plots.memory_over_time(series), "cpu fp32")
    assert mem["y"][:3] == pytest.approx([100.0, 101.0, 102.0])  # MiB, from mem_bytes


def test_strings_from_a_file_are_escaped_in_figures(tmp_path):
    """A device name is data: plotly renders a subset of HTML in names and hover text."""
    hostile = "<img src=x onerror=alert(1)>"
    w = RunWriter(
        tmp_path,
        "r1",
        {
            "scenario": {"name": "s"},
            "dataset": {"sha256": "a"},
            "device": {"spec": "cpu", "type": "cpu", "name": hostile},
        },
    )
    w.append(
        [{"iter": 0, "loss": 3.0, "step_time_s": 0.1, "train_time_s": 0.1, "wall_time_s": 0.1}]
    )
    w.finish("completed")
    [g] = compare.compare_files([str(tmp_path)]).groups
    fig = plots.loss_vs_iteration(_series(g))
    template = fig["data"][0]["hovertemplate"]
    assert hostile not in template and "&lt;img src=x onerror=alert(1)&gt;" in template
    # and plotly's JSON in the page cannot close the page's <script>
    div = plotlyjs.figure_div(
        {"data": [{"type": "scatter", "name": "</script><b>"}], "layout": {}}, "d"
    )
    assert "</script><b>" not in div


def test_a_still_is_drawn_from_the_figure_itself(group):
    """The PNG a report writes with --stills: the same traces, guides and axis type."""
    fig = plots.loss_vs_iteration(_series(group), group.targets)
    mpl = static.render(fig)
    ax = mpl.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["cpu fp32"].get_ydata()) == pytest.approx(
        _trace(fig, "cpu fp32")["y"], abs=1e-6
    )
    assert sorted(
        round(line.get_ydata()[0], 6) for line in ax.get_lines() if line.get_linestyle() == ":"
    ) == [
        1.5,
        2.0,
    ]  # the target guides
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "cpu fp32",
        "cuda bf16 (2 seeds, min-max band)",
    ]
    assert len(ax.collections) == 1  # the cuda seeds' band
    image = imread(io.BytesIO(static.png(fig)), format="png")
    assert image.shape[1] == 9 * static.DPI and image.shape[0] > 200
    log = plots.loss_vs_train_time(_series(group), log_x=True)
    assert static.render(log).axes[0].get_xscale() == "log"
    boxes = static.render(plots.step_time_distribution(_series(group))).axes[0]
    assert [t.get_text() for t in boxes.get_yticklabels()] == ["cpu fp32", "cuda bf16", "cuda bf16"]


def test_a_figure_of_a_hundred_runs_keeps_to_its_point_budget():
    """The committed example's 2,001-row runs drawn as 100 series: every run gets
    16,000 / 100 = 160 train points, so a figure holds 16,000 whatever the runs' length
    (the slow test_report.test_a_hundred_runs_stay_under_8_mb weighs the whole folder)."""
    [g] = compare.compare_files([str(EXAMPLE)]).groups
    runs = [r for cs in g.configs for r in cs.runs]
    series = [(f"config {k % 4}", runs[k % len(runs)]) for k in range(100)]
    fig = plots.loss_vs_iteration(series)
    train = [t for t in fig["data"] if t.get("showlegend")]
    assert len(train) == 4
    points = sum(sum(v is not None for v in t["y"]) for t in train)
    assert points == 100 * 160
