"""Figures of loaded runs, drawn with plotly. Every function returns a figure: plotly's own
figure form as a dict (`{"data": [traces], "layout": {...}}`, what `go.Figure(fig)` takes and
`plotly.io.to_html` draws); the caller chooses where it goes (present/report.py puts it in the
page through plotlyjs.figure_div and, when asked, a PNG of it beside the page through
present/static.py). Dicts rather than graph objects: building `go.Figure`s validates every
property of every trace at each build, which cost more than the rest of a 100-run report;
the tests validate the same dicts through `go.Figure` once.

A series is `(label, stats)`: the label is the run's configuration ('cuda bf16'), stats its
analyze/runs.RunStats (evaluations and step times computed once, rows for the curves). The
runs of one label are one legend entry (`legendgroup`): a click on it hides the whole
configuration. They are drawn as few traces per configuration, the runs joined with NaN
breaks; which run a point belongs to travels per point (its seed in `customdata`, its run id
in `text` where the points are few): 100 runs cost a handful of traces per figure, not
hundreds, which keeps both the build and the page small.

Hover shows the configuration (device and dtype), the device's name, the run or seed and the
value; zoom, pan and the legend come with plotly; loss figures carry a log/linear switch for
x (an `updatemenus` button pair).
"""

from __future__ import annotations

import functools
import html

import numpy as np
from scipy.signal import lfilter

from nanobench.analyze.equivalence import band

# train-curve points over all runs of one figure: 100 runs stay well under 8 MB
POINTS_PER_FIGURE = 16_000
MIN_POINTS, MAX_POINTS = 120, 600  # per run: a short run keeps its shape, a long one stays small
EMA_BETA = 0.9
# The D3 palette (plotly's and matplotlib's default): a configuration has one colour everywhere.
COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
DASHES = ["solid", "dash", "dot", "dashdot"]  # configurations that overlap stay visible
GUIDE = "#555"  # target losses, the zero line and the equivalence margin


def ema_debiased(values, beta: float = EMA_BETA) -> np.ndarray:
    """Exponential moving average with Adam's bias correction, so the first points are not
    pulled towards 0: m_t = beta*m_{t-1} + (1-beta)*x_t, shown as m_t / (1 - beta^t).
    That equals sum(beta^i x_{t-i}) / sum(beta^i) (pandas' ewm(adjust=True)); the recursion
    runs as scipy's IIR filter (lfilter), with no pandas object built per run."""
    x = np.asarray(values, dtype=float)
    if not x.size:
        return x
    m = lfilter([1 - beta], [1, -beta], x)
    return m / (1 - beta ** np.arange(1, x.size + 1))


def downsample(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most max_points evenly spaced points out of n, first and last kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def points_per_run(n_runs: int) -> int:
    """The train-curve points each run gets: the figure's budget shared out, within bounds."""
    return int(np.clip(POINTS_PER_FIGURE // max(1, n_runs), MIN_POINTS, MAX_POINTS))


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _fill(hex_colour: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_colour[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _labels(series) -> list[str]:
    return list(dict.fromkeys(label for label, _ in series))


def _text(s) -> str:
    """A string from a result file, as plotly shows it: its markup subset is escaped away."""
    return html.escape(str(s))


def _seed(run) -> int:
    return -1 if run.seed is None else int(run.seed)


def _who(label: str, runs) -> str:
    """The hover's first line: the configuration (device and dtype) and the device's name."""
    names = sorted({str(r.info.device.name) for r in runs if r.info.device.name})
    return f"<b>{_text(label)}</b>" + (f" · {_text(', '.join(names))}" if names else "")


def _joined(parts) -> tuple[np.ndarray, ...]:
    """Curves (x, y, seed) joined into arrays with a NaN break between runs."""
    if not parts:
        return np.array([]), np.array([]), np.array([], np.int32)
    xs, ys, ss = [], [], []
    for x, y, seed in parts:
        xs += [np.asarray(x, np.float64), [np.nan]]
        ys += [np.asarray(y, np.float64), [np.nan]]
        ss += [np.full(len(x) + 1, seed, np.int32)]
    # no break after the last run
    return np.concatenate(xs)[:-1], np.concatenate(ys)[:-1], np.concatenate(ss)[:-1]


def _figure() -> dict:
    """An empty figure without plotly's default template: the look is set by _layout, and the
    template would add 6 KB to every figure on the page and its copying to every build."""
    return {"data": [], "layout": {"template": {}}}


def _jsonable(v):
    """A numpy array as the lists plotly's JSON takes: floats rounded to 6 significant digits
    (the page's size; a loss of 1.88573 needs no more), NaN as null (plotly breaks a line
    there). Anything else as it is."""
    if not isinstance(v, np.ndarray):
        return v
    if v.dtype.kind != "f":
        return v.tolist()
    finite = np.abs(v[np.isfinite(v)])
    top = float(finite.max()) if finite.size else 0.0
    digits = 5 - int(np.floor(np.log10(top))) if top > 0 else 6
    r = np.round(v, digits)
    return np.where(np.isnan(r), None, r).tolist()


def _add(fig: dict, kind: str, **props) -> None:
    fig["data"].append({"type": kind, **{k: _jsonable(v) for k, v in props.items()}})


def _update(fig: dict, **props) -> None:
    fig["layout"].update(props)


def _layout(fig: dict, title: str, xlabel: str, ylabel: str, log_x: bool = False) -> None:
    """Title, axes and the look, set in one update. The look is spelt out rather than taken from
    a named template: applying a template copies it whole, which costs more than the figure."""
    axis = {"gridcolor": "#e8e8e8", "zeroline": False, "linecolor": "#999", "ticks": "outside"}
    _update(
        fig,
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        height=440,
        margin={"l": 64, "r": 16, "t": 56, "b": 52},
        paper_bgcolor="white",
        plot_bgcolor="white",
        hovermode="closest",
        legend={
            "itemclick": "toggle",
            "itemdoubleclick": "toggleothers",
            "groupclick": "togglegroup",
        },
        xaxis={"title": {"text": xlabel}, "type": "log" if log_x else "linear", **axis},
        yaxis={"title": {"text": ylabel}, **axis},
    )


def _log_switch(fig: dict, log_x: bool) -> None:
    """Two buttons above the plot: linear or log x (the figure keeps its data, plotly relayouts)."""
    _update(
        fig,
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "showactive": True,
                "active": 1 if log_x else 0,
                "x": 1.0,
                "xanchor": "right",
                "y": 1.13,
                "yanchor": "top",
                "pad": {"r": 0, "t": 0},
                "font": {"size": 11},
                "buttons": [
                    {"label": "linear x", "method": "relayout", "args": [{"xaxis.type": "linear"}]},
                    {"label": "log x", "method": "relayout", "args": [{"xaxis.type": "log"}]},
                ],
            }
        ],
    )


def _guides(fig: dict, lines) -> None:
    """Horizontal guides across the plot, each (y, label, dash), labelled at the right: the
    target losses, zero, the equivalence margin. Set as layout shapes in one update
    (fig.add_hline does the same one line at a time, at many times the cost)."""
    shapes, notes = [], []
    for k, (y, label, dash) in enumerate(lines):
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": y,
                "y1": y,
                "line": {"color": GUIDE, "width": 1, "dash": dash},
            }
        )
        if label:
            notes.append(
                {
                    "xref": "paper",
                    "x": 1 if k % 2 == 0 else 0,  # alternate sides: close targets stay legible
                    "xanchor": "right" if k % 2 == 0 else "left",
                    "yref": "y",
                    "y": y,
                    "yanchor": "bottom",
                    "text": label,
                    "showarrow": False,
                    "font": {"size": 10, "color": GUIDE},
                }
            )
    _update(fig, shapes=shapes, annotations=notes)


def _train_curve(run, x_of, n_points: int, shared: dict | None = None):
    """Train loss (debiased EMA over the steps), downsampled for display; (x, y) arrays.
    shared: a dict the loss figures of one set of runs pass along, so that each run's EMA is
    computed once however many x axes it is drawn against."""
    done = shared.get((id(run), n_points)) if shared is not None else None
    if done is None:
        step, loss = run.column("step_time_s"), run.column("loss")
        ok = ~np.isnan(step) & ~np.isnan(loss)
        y = ema_debiased(loss[ok])
        keep = downsample(len(y), n_points)
        done = (ok, keep, y[keep])
        if shared is not None:
            shared[(id(run), n_points)] = done
    ok, keep, y = done
    return x_of(run)[ok][keep], y


def _column(name: str):
    return lambda run: run.column(name)


def _scaled_iter(per_iter):
    """x = iteration x a per-run constant (tokens or FLOPs per iteration)."""
    return lambda run: run.column("iter") * (per_iter(run) or np.nan)


def _shade(fig: dict, x, low, high, c: str, group: str, name: str, alpha: float = 0.18) -> None:
    """A shaded band between two invisible lines (`fill="tonexty"` fills down to the trace
    before it), in the configuration's legend group, without hover of its own."""
    for y, end in ((low, "low"), (high, "high")):
        _add(
            fig,
            "scatter",
            x=x,
            y=y,
            mode="lines",
            line={"width": 0, "color": c},
            legendgroup=group,
            showlegend=False,
            hoverinfo="skip",
            name=f"{name} {end}",
            **({"fill": "tonexty", "fillcolor": _fill(c, alpha)} if end == "high" else {}),
        )


@functools.lru_cache(maxsize=4096)
def _band(values: tuple[float, ...]):
    """equivalence.band, once per set of values: the loss figures share their bands."""
    return band(list(values))


def _seed_band(runs, eval_x):
    """Per evaluation every seed reached: x (mean over seeds), mean, low, high val loss."""
    by_iter: dict[int, list] = {}
    for run in runs:
        for ev in run.evaluations:
            by_iter.setdefault(ev.iter, []).append(ev)
    xs, means, los, his, kind = [], [], [], [], "min-max"
    for it in sorted(by_iter):
        evs = by_iter[it]
        if len(evs) < len(runs) or any(eval_x(e) is None for e in evs):
            continue
        mean, lo, hi, kind = _band(tuple(e.val_loss for e in evs))
        xs.append(float(np.mean([eval_x(e) for e in evs])))
        means.append(mean), los.append(lo), his.append(hi)
    return np.array(xs), np.array(means), np.array(los), np.array(his), kind


def _loss_figure(
    series, x_of, eval_x, title: str, xlabel: str, targets=(), log_x=False, shared=None
) -> dict:
    """Per configuration: the train EMA of every run (thin line), each run's evaluations
    (markers), and with several seeds the mean val loss in its band (shaded)."""
    fig = _figure()
    labels = _labels(series)
    n_points = points_per_run(len(series))
    for i, label in enumerate(labels):
        runs = [run for lab, run in series if lab == label]
        c, dash, who = colour(i), DASHES[i % len(DASHES)], _who(label, runs)
        x, y, seeds = _joined([(*_train_curve(r, x_of, n_points, shared), _seed(r)) for r in runs])
        seeds_band = _seed_band(runs, eval_x) if len(runs) > 1 else None
        _add(
            fig,
            "scatter",
            x=x,
            y=y,
            customdata=seeds,
            mode="lines",
            line={"color": c, "width": 1},
            opacity=0.55,
            name=_text(label)
            + (f" ({len(runs)} seeds, {seeds_band[4]} band)" if seeds_band else ""),
            legendgroup=label,
            showlegend=True,
            hovertemplate=f"{who}<br>seed %{{customdata}}<br>{xlabel} %{{x:.4~g}}"
            "<br>train loss (EMA) %{y:.4f}<extra></extra>",
        )
        evs = [(r, e) for r in runs for e in r.evaluations if eval_x(e) is not None]
        _add(
            fig,
            "scatter",
            x=np.array([eval_x(e) for _, e in evs], np.float64),
            y=np.array([e.val_loss for _, e in evs], np.float64),
            customdata=np.array([_seed(r) for r, _ in evs], np.int32),
            text=[_text(r.run_id) for r, _ in evs],
            mode="markers",
            marker={"color": c, "size": 6, "symbol": "circle-open", "line": {"width": 1.5}},
            name=f"{_text(label)} val",
            legendgroup=label,
            showlegend=False,
            hovertemplate=f"{who}<br>run %{{text}}<br>seed %{{customdata}}<br>{xlabel} %{{x:.4~g}}"
            "<br>val loss %{y:.4f}<extra></extra>",
        )
        if seeds_band:  # seeds: the mean val loss in a band (equivalence.band)
            bx, mean, lo, hi, kind = seeds_band
            _shade(fig, bx, lo, hi, c, label, f"{_text(label)} band")
            _add(
                fig,
                "scatter",
                x=bx,
                y=mean,
                customdata=np.stack([lo, hi], axis=-1) if len(bx) else None,
                mode="lines",
                line={"color": c, "width": 2, "dash": dash},
                name=f"{_text(label)} mean val",
                legendgroup=label,
                showlegend=False,
                hovertemplate=f"{who}<br>mean val loss of {len(runs)} seeds %{{y:.4f}}"
                f"<br>{kind} band %{{customdata[0]:.4f}} to %{{customdata[1]:.4f}}"
                f"<br>{xlabel} %{{x:.4~g}}<extra></extra>",
            )
    _layout(fig, title, xlabel, "loss (nats)", log_x)
    _log_switch(fig, log_x)
    _guides(fig, [(t, f"target {t:g}", "dot") for t in targets])
    return fig


def loss_vs_iteration(series, targets=(), shared=None) -> dict:
    """Train loss (debiased EMA, lines) and evaluations (markers: val) against iteration."""
    return _loss_figure(
        series,
        _column("iter"),
        lambda e: e.iter,
        "Loss against iterations (lines: train EMA, circles: val, shaded: seed band)",
        "iteration",
        targets,
        shared=shared,
    )


def loss_vs_train_time(series, targets=(), log_x: bool = False, shared=None) -> dict:
    """The same curves against train time (s): what each device bought per second of steps."""
    return _loss_figure(
        series,
        _column("train_time_s"),
        lambda e: e.train_time_s,
        "Loss against train time",
        "train time (s)",
        targets,
        log_x,
        shared=shared,
    )


def loss_vs_wall_time(series, targets=(), shared=None) -> dict:
    """Against wall time (s since the run started, evaluations included): what a user waited."""
    return _loss_figure(
        series,
        _column("wall_time_s"),
        lambda e: e.wall_time_s,
        "Loss against wall time (evaluation included)",
        "wall time (s)",
        targets,
        shared=shared,
    )


def loss_vs_tokens(series, targets=(), shared=None) -> dict:
    """Against training tokens seen (iteration x tokens per iteration): the axis on which
    recipes with other batches or contexts compare. Runs that record no tokens are left out."""
    series = [(label, run) for label, run in series if run.tokens_per_iter]
    return _loss_figure(
        series,
        _scaled_iter(lambda r: r.tokens_per_iter),
        lambda e: e.tokens,
        "Loss against training tokens",
        "tokens",
        targets,
        shared=shared,
    )


def loss_vs_flops(series, targets=(), shared=None) -> dict:
    """Against model FLOPs spent (iteration x FLOPs per iteration, log x at first): the axis on
    which recipes with other model sizes compare. Runs whose metadata records no FLOPs are
    left out."""
    series = [(label, run) for label, run in series if run.flops_per_iter]
    return _loss_figure(
        series,
        _scaled_iter(lambda r: r.flops_per_iter),
        lambda e: e.flops,
        "Loss against model FLOPs (6N + 12LHQT per token x tokens)",
        "model FLOPs",
        targets,
        log_x=True,
        shared=shared,
    )


def loss_difference(pairs, intervals) -> dict:
    """Each configuration minus the baseline, per evaluation, with the interval the verdict
    rests on shaded around it: a gap of 0.001 that the loss figures cannot show is visible
    here, against zero and the equivalence margin.

    pairs: analyze/pairs.PairComparison of one group (their `equivalence` holds the points);
    intervals: a function point -> (low, high, name) or None, the caller's choice of which of
    the point's recorded intervals to draw (the report draws the one that decides)."""
    fig = _figure()
    margin = None
    for i, p in enumerate(pairs):
        eq, c = p.equivalence, colour(i + 1)  # colour i + 1: the baseline is colour 0
        if not eq or not eq["points"]:
            continue
        margin = eq["margin"]
        pts = eq["points"]
        label = f"{p.other.label} minus {p.base.label}"
        shown = [(pt, intervals(pt)) for pt in pts]
        banded = [(pt, iv) for pt, iv in shown if iv is not None]
        if banded:
            _shade(
                fig,
                np.array([pt.iter for pt, _ in banded], np.float64),
                np.array([iv[0] for _, iv in banded]),
                np.array([iv[1] for _, iv in banded]),
                c,
                label,
                _text(label),
                0.22,
            )
        design = {pt.design for pt, _ in banded}
        _add(
            fig,
            "scatter",
            x=np.array([pt.iter for pt in pts], np.float64),
            y=np.array([pt.diff for pt in pts], np.float64),
            customdata=[
                [
                    "-" if iv is None else f"{iv[2]} {iv[0]:+.4f} to {iv[1]:+.4f}",
                    f"{pt.n_pairs} pairs"
                    if pt.design == "paired"
                    else f"{pt.n_b} vs {pt.n_a} seeds",
                    pt.verdict,
                ]
                for pt, iv in shown
            ],
            mode="lines+markers",
            line={"color": c, "width": 2},
            marker={"size": 6},
            name=_text(label) + (f" ({'/'.join(sorted(design))} band)" if design else ""),
            legendgroup=label,
            hovertemplate=f"<b>{_text(label)}</b><br>iteration %{{x}}<br>difference %{{y:+.4f}}"
            "<br>%{customdata[0]} (%{customdata[1]})<br>%{customdata[2]}<extra></extra>",
        )
    _guides(
        fig,
        [(0.0, "", "solid")]
        + ([(m, f"margin {m:+g}", "dot") for m in (margin, -margin)] if margin else []),
    )
    _layout(
        fig,
        "Val loss minus the baseline's, per evaluation (shaded: the interval of the verdict)",
        "iteration",
        "val loss difference (nats)",
    )
    _log_switch(fig, False)
    return fig


def _binned(x: np.ndarray, y: np.ndarray, n_bins: int):
    """Median of y over n_bins consecutive bins of equal length (the last few points, fewer
    than a bin, join no bin): spikes stay in their bin's quartiles, not on the line."""
    if len(x) <= n_bins:
        return x, y
    size = len(x) // n_bins
    cut = size * n_bins
    mids = np.arange(n_bins) * size + size // 2
    return x[mids], np.median(y[:cut].reshape(n_bins, size), axis=1)


def _run_lines(fig: dict, series, curve, hover: str) -> None:
    """One line per configuration through each of its runs' curves (NaN breaks between runs):
    curve(run) -> (x, y); hover: the hover's value lines after the configuration and seed."""
    for i, label in enumerate(_labels(series)):
        runs = [run for lab, run in series if lab == label]
        x, y, seeds = _joined([(*curve(r), _seed(r)) for r in runs])
        _add(
            fig,
            "scatter",
            x=x,
            y=y,
            customdata=seeds,
            mode="lines",
            line={"color": colour(i), "width": 1.2, "dash": DASHES[i % len(DASHES)]},
            name=_text(label),
            legendgroup=label,
            hovertemplate=f"{_who(label, runs)}<br>seed %{{customdata}}<br>{hover}<extra></extra>",
        )


def step_time_over_run(series) -> dict:
    """ms/iter along each run (warm-up excluded), the median of each bin of consecutive
    iterations: a device that slows down (heat, a neighbour) shows as a slope or a step."""
    n_bins = points_per_run(len(series)) // 3

    def curve(run):
        rows, step = run.rows, run.column("step_time_s")
        timed = ~np.isnan(step)
        if "warmup" in rows:
            timed &= ~rows["warmup"].to_numpy(dtype=bool, na_value=False)  # null: not warm-up
        return _binned(run.column("iter")[timed], step[timed] * 1e3, n_bins)

    fig = _figure()
    _run_lines(fig, series, curve, "iteration %{x}<br>%{y:.2f} ms/iter (median of the bin)")
    _layout(
        fig,
        f"ms per iteration over the run (median of bins of about 1/{n_bins} of each run)",
        "iteration",
        "ms per iteration",
    )
    return fig


def step_time_distribution(series, names: list[str] | None = None) -> dict:
    """ms/iter per run (warm-up excluded), one horizontal box per run: median, quartiles,
    whiskers at the furthest step within 1.5 IQR. The boxes are computed here (numpy's
    percentiles), so the page carries five numbers per run, not every step."""
    names = names or [label for label, _ in series]
    fig = _figure()
    labels = _labels(series)
    for i, label in enumerate(labels):
        stats, ys, who = [], [], []
        for (lab, run), name in zip(series, names):
            ms = run.step_times_s * 1e3
            if lab != label or not ms.size:
                continue
            q1, med, q3 = np.percentile(ms, [25, 50, 75])
            inside = ms[(ms >= q1 - 1.5 * (q3 - q1)) & (ms <= q3 + 1.5 * (q3 - q1))]
            stats.append((q1, med, q3, inside.min(), inside.max()))
            ys.append(_text(name))
            who.append(_text(run.run_id))
        if not stats:
            continue
        q1, med, q3, lo, hi = (np.array(v) for v in zip(*stats))
        _add(
            fig,
            "box",
            y=ys,
            q1=q1,
            median=med,
            q3=q3,
            lowerfence=lo,
            upperfence=hi,
            orientation="h",
            marker={"color": colour(i)},
            line={"width": 1},
            name=_text(label),
            legendgroup=label,
            text=who,
            hoverinfo="x+y+text",
        )
    height = 160 + 22 * max(1, len(series))
    _layout(fig, "ms per iteration, per run (warm-up excluded)", "ms per iteration", "")
    _update(fig, height=height, margin={"l": 170}, yaxis={"autorange": "reversed"})
    return fig


def memory_over_time(series) -> dict:
    """Device memory in use (CPU: RSS; CUDA: allocated) against wall time."""
    n_points = points_per_run(len(series)) // 2

    def curve(run):
        mem, wall = run.column("mem_bytes"), run.column("wall_time_s")
        ok = ~np.isnan(mem) & ~np.isnan(wall)
        keep = downsample(int(ok.sum()), n_points)
        return wall[ok][keep], mem[ok][keep] / 2**20

    fig = _figure()
    _run_lines(fig, series, curve, "wall time %{x:.1f} s<br>%{y:.1f} MiB")
    _layout(fig, "Memory in use over the run", "wall time (s)", "memory in use (MiB)")
    return fig
