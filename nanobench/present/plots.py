"""Figures of loaded runs (matplotlib, Agg). Every function returns a Figure; the caller
saves it. Figures are built with `matplotlib.figure.Figure`, not pyplot, so nothing global
is touched and no display is needed.

A series is `(label, stats)`: the label is the run's configuration ('cuda bf16'), stats its
analyze/runs.RunStats (evaluations and step times computed once, rows for the curves); runs that
share a label (seeds) share a colour, a line style and one legend entry. The runs of one
label are drawn as one line with NaN breaks between runs: 100 runs cost a handful of
artists instead of hundreds, which is most of a report's drawing time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nanobench.analyze.equivalence import band

MAX_POINTS = 600  # per curve: enough for the eye, keeps 5,000-iteration runs small on the page
EMA_BETA = 0.9
STYLES = [
    "-",
    "--",
    ":",
    "-.",
]  # configurations that overlap (fp32 vs bf16 on one device) stay visible
MARGINS = {
    "left": 0.09,
    "right": 0.98,
    "top": 0.91,
    "bottom": 0.13,
}  # fixed: constrained layout costs ~0.1 s a figure


def ema_debiased(values, beta: float = EMA_BETA) -> np.ndarray:
    """Exponential moving average with Adam's bias correction, so the first points are not
    pulled towards 0: m_t = beta*m_{t-1} + (1-beta)*x_t, shown as m_t / (1 - beta^t).
    That equals sum(beta^i x_{t-i}) / sum(beta^i), which is pandas' ewm(adjust=True)."""
    x = np.asarray(values, dtype=float)
    if not x.size:
        return x
    return pd.Series(x).ewm(alpha=1 - beta, adjust=True).mean().to_numpy()


def downsample(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most max_points evenly spaced points out of n, first and last kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def _mpl_version() -> tuple[int, int]:
    import matplotlib

    return tuple(int(p) for p in matplotlib.__version__.split(".")[:2])


def _labels(series) -> list[str]:
    return list(dict.fromkeys(label for label, _ in series))


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Curves (x, y) joined into one array pair with NaN between them (matplotlib breaks there)."""
    xs, ys = [], []
    for x, y in parts:
        xs += [x, [np.nan]]
        ys += [y, [np.nan]]
    return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.array([]), np.array([]))


def _figure(height: float = 4.2, left: float | None = None) -> tuple[Figure, object]:
    fig = Figure(figsize=(7.5, height))
    fig.subplots_adjust(**dict(MARGINS, **({"left": left} if left else {})))
    return fig, fig.add_subplot()


def _legend(ax, labels: list[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=f"C{i % 10}", ls=STYLES[i % len(STYLES)], marker="o", ms=4)
        for i in range(len(labels))
    ]
    ax.legend(handles, labels, fontsize=8, loc="upper right")


def _train_curve(run, x_column: str):
    """Train loss (debiased EMA over the steps), downsampled for display; (x, y) arrays.
    x_column "flops" is iter x the run's model FLOPs per iteration (the rows hold no such column)."""
    rows = run.rows
    step = rows["step_time_s"].to_numpy(dtype=float, na_value=np.nan)
    loss = rows["loss"].to_numpy(dtype=float, na_value=np.nan)
    ok = ~np.isnan(step) & ~np.isnan(loss)
    y = ema_debiased(loss[ok])
    if x_column == "flops":
        x = rows["iter"].to_numpy(dtype=float)[ok] * (run.flops_per_iter or np.nan)
    else:
        x = rows[x_column].to_numpy(dtype=float, na_value=np.nan)[ok]
    keep = downsample(len(x))
    return x[keep], y[keep]


def _loss_figure(
    series, x_column: str, eval_x, title: str, xlabel: str, log_x: bool = False
) -> Figure:
    fig, ax = _figure()
    labels = _labels(series)
    for i, label in enumerate(labels):
        runs = [run for lab, run in series if lab == label]
        colour, style = f"C{i % 10}", STYLES[i % len(STYLES)]
        train = [_train_curve(run, x_column) for run in runs]
        if log_x:
            train = [(x[x > 0], y[x > 0]) for x, y in train]
        ax.plot(*_joined(train), color=colour, lw=1, alpha=0.5)
        if len(runs) > 1:  # seeds: the mean val loss with a band (equivalence.band)
            x, mean, lo, hi, kind = _seed_band(runs, eval_x, log_x)
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)
            ax.plot(x, mean, color=colour, ls=style, marker="o", ms=4, lw=1.2)
            labels[i] = f"{label} ({len(runs)} seeds, {kind})"
            continue
        evals = []
        for run in runs:
            ev = [
                e for e in run.evaluations if eval_x(e) is not None and (not log_x or eval_x(e) > 0)
            ]
            evals.append((np.array([eval_x(e) for e in ev]), np.array([e.val_loss for e in ev])))
        ax.plot(*_joined(evals), color=colour, ls=style, marker="o", ms=4, lw=1.2)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="loss (nats)", title=title)
    ax.grid(alpha=0.3, which="both" if log_x else "major")
    _legend(ax, labels)
    return fig


def _seed_band(runs, eval_x, log_x: bool):
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
        x = float(np.mean([eval_x(e) for e in evs]))
        if log_x and x <= 0:
            continue
        mean, lo, hi, kind = band([e.val_loss for e in evs])
        xs.append(x), means.append(mean), los.append(lo), his.append(hi)
    return np.array(xs), np.array(means), np.array(los), np.array(his), kind


def loss_vs_iteration(series) -> Figure:
    """Train loss (debiased EMA) and evaluation points (markers: val) against iteration."""
    return _loss_figure(
        series,
        "iter",
        lambda e: e.iter,
        "Loss against iterations (thin: train EMA, dots: val)",
        "iteration",
    )


def loss_vs_train_time(series, log_x: bool = False) -> Figure:
    """The same curves against train time (s): what each device bought per second."""
    return _loss_figure(
        series,
        "train_time_s",
        lambda e: e.train_time_s,
        "Loss against train time" + (" (log x)" if log_x else ""),
        "train time (s" + (", log scale)" if log_x else ")"),
        log_x=log_x,
    )


def loss_vs_flops(series) -> Figure:
    """The same curves against model FLOPs spent (iteration x FLOPs per iteration, log scale):
    the axis on which recipes with other batches, contexts or model sizes compare. Runs whose
    metadata records no FLOPs are left out of it."""
    series = [(label, run) for label, run in series if run.flops_per_iter]
    return _loss_figure(
        series,
        "flops",
        lambda e: e.flops,
        "Loss against model FLOPs (log x)",
        "model FLOPs (6N + 12LHQT per token x tokens, log scale)",
        log_x=True,
    )


def step_time_distribution(series, names: list[str] | None = None) -> Figure:
    """ms/iter per run (warm-up excluded), one horizontal box per run: median, quartiles,
    whiskers at 1.5 IQR; outliers drawn small."""
    names = names or [label for label, _ in series]
    data = [run.step_times_s * 1e3 for _, run in series]
    keep = [i for i, d in enumerate(data) if d.size]
    height = 1.3 + 0.22 * max(1, len(keep))
    fig = Figure(figsize=(7.5, height))
    fig.subplots_adjust(left=0.22, right=0.98, top=1 - 0.45 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    labels = _labels(series)
    if keep:
        # matplotlib 3.10 renamed vert=False to orientation="horizontal"
        horizontal = {"orientation": "horizontal"} if _mpl_version() >= (3, 10) else {"vert": False}
        bp = ax.boxplot(
            [data[i] for i in keep],
            widths=0.6,
            patch_artist=True,
            flierprops={"markersize": 2, "alpha": 0.4},
            **horizontal,
        )
        for patch, i in zip(bp["boxes"], keep):
            patch.set_facecolor(f"C{labels.index(series[i][0]) % 10}")
            patch.set_alpha(0.6)
        ax.set_yticks(range(1, len(keep) + 1), [names[i] for i in keep], fontsize=8)
        ax.invert_yaxis()
    ax.set(xlabel="ms per iteration (warm-up excluded)", title="Step time distribution per run")
    ax.grid(alpha=0.3, axis="x")
    return fig


def memory_over_time(series) -> Figure:
    """Device memory in use (CPU: RSS; CUDA: allocated) against wall time."""
    fig, ax = _figure(3.6)
    labels = _labels(series)
    for i, label in enumerate(labels):
        curves = []
        for lab, run in series:
            if lab != label:
                continue
            mem = run.rows["mem_bytes"].to_numpy(dtype=float, na_value=np.nan)
            wall = run.rows["wall_time_s"].to_numpy(dtype=float, na_value=np.nan)
            ok = ~np.isnan(mem) & ~np.isnan(wall)
            keep = downsample(int(ok.sum()))
            curves.append((wall[ok][keep], mem[ok][keep] / 2**20))
        ax.plot(*_joined(curves), color=f"C{i % 10}", ls=STYLES[i % len(STYLES)], lw=1)
    ax.set(xlabel="wall time (s)", ylabel="memory in use (MiB)", title="Memory over time")
    ax.grid(alpha=0.3)
    _legend(ax, labels)
    return fig
