"""Figures of loaded runs (matplotlib, Agg). Every function returns a Figure; the caller
saves it. Figures are built with `matplotlib.figure.Figure`, not pyplot, so nothing global
is touched and no display is needed.

A series is `(label, run)`: the label is the run's configuration ('cuda bf16'); runs that
share a label (seeds) share a colour and one legend entry.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from nanobench.compare import evaluations, step_times

MAX_POINTS = 600  # per curve: enough for the eye, keeps 5,000-iteration runs small on the page
EMA_BETA = 0.9


def ema_debiased(values, beta: float = EMA_BETA) -> np.ndarray:
    """Exponential moving average with Adam's bias correction, so the first points are not
    pulled towards 0: m_t = beta*m_{t-1} + (1-beta)*x_t, shown as m_t / (1 - beta^t)."""
    x = np.asarray(values, dtype=float)
    out = np.empty_like(x)
    m = 0.0
    for t, v in enumerate(x, start=1):  # a python loop: 5,000 points take ~1 ms
        m = beta * m + (1 - beta) * v
        out[t - 1] = m / (1 - beta**t)
    return out


def downsample(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most max_points evenly spaced points out of n, first and last kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def _colours(series) -> dict[str, str]:
    labels = list(dict.fromkeys(label for label, _ in series))
    cycle = [f"C{i % 10}" for i in range(len(labels))]
    return dict(zip(labels, cycle))


STYLES = ["-", "--", ":", "-."]  # configurations that overlap (fp32 vs bf16 on one device) stay visible


def _style(colours: dict[str, str], label: str) -> str:
    return STYLES[list(colours).index(label) % len(STYLES)]


def _legend(ax, colours: dict[str, str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, ls=_style(colours, lab), marker="o", ms=4) for lab, c in colours.items()]
    ax.legend(handles, list(colours), fontsize=8, loc="upper right")


def _train_curve(rows, x_column: str):
    steps = rows[rows["step_time_s"].notna() & rows["loss"].notna()]
    loss = ema_debiased(steps["loss"].to_numpy(dtype=float))
    x = steps[x_column].to_numpy(dtype=float)
    keep = downsample(len(x))
    return x[keep], loss[keep]


def loss_vs_iteration(series) -> Figure:
    """Train loss (debiased EMA) and evaluation points (markers: val) against iteration."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(series)
    for label, run in series:
        x, y = _train_curve(run.rows, "iter")
        ax.plot(x, y, color=colours[label], lw=1, alpha=0.55)
        ev = evaluations(run.rows)
        ax.plot([e.iter for e in ev], [e.val_loss for e in ev], marker="o", ls=_style(colours, label),
                color=colours[label], ms=4, lw=1.2)
    ax.set(xlabel="iteration", ylabel="loss (nats)", title="Loss against iterations (line: train EMA, dots: val)")
    ax.grid(alpha=0.3)
    _legend(ax, colours)
    return fig


def loss_vs_train_time(series, log_x: bool = False) -> Figure:
    """The same curves against train time (s): what each device bought per second."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(series)
    for label, run in series:
        x, y = _train_curve(run.rows, "train_time_s")
        ax.plot(x, y, color=colours[label], lw=1, alpha=0.55)
        ev = [e for e in evaluations(run.rows) if not log_x or e.train_time_s > 0]
        ax.plot([e.train_time_s for e in ev], [e.val_loss for e in ev], marker="o", ls=_style(colours, label),
                color=colours[label], ms=4, lw=1.2)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel="train time (s" + (", log scale)" if log_x else ")"), ylabel="loss (nats)",
           title="Loss against train time" + (" (log x)" if log_x else ""))
    ax.grid(alpha=0.3, which="both" if log_x else "major")
    _legend(ax, colours)
    return fig


def step_time_distribution(series, names: list[str] | None = None) -> Figure:
    """ms/iter per run (warm-up excluded), one horizontal box per run: median, quartiles,
    whiskers at 1.5 IQR; outliers drawn small."""
    names = names or [label for label, _ in series]
    data = [step_times(run.rows) * 1e3 for _, run in series]
    keep = [i for i, d in enumerate(data) if d.size]
    fig = Figure(figsize=(7.5, 1.2 + 0.28 * max(1, len(keep))), layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(series)
    if keep:
        bp = ax.boxplot([data[i] for i in keep], vert=False, widths=0.6, patch_artist=True,
                        flierprops={"markersize": 2, "alpha": 0.4})
        for patch, i in zip(bp["boxes"], keep):
            patch.set_facecolor(colours[series[i][0]])
            patch.set_alpha(0.6)
        ax.set_yticks(range(1, len(keep) + 1), [names[i] for i in keep], fontsize=8)
        ax.invert_yaxis()
    ax.set(xlabel="ms per iteration (warm-up excluded)", title="Step time distribution per run")
    ax.grid(alpha=0.3, axis="x")
    return fig


def memory_over_time(series) -> Figure:
    """Device memory in use (CPU: RSS; CUDA: allocated) against wall time."""
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    colours = _colours(series)
    for label, run in series:
        rows = run.rows[run.rows["mem_bytes"].notna()]
        keep = downsample(len(rows))
        ax.plot(rows["wall_time_s"].to_numpy(float)[keep], rows["mem_bytes"].to_numpy(float)[keep] / 2**20,
                color=colours[label], lw=1)
    ax.set(xlabel="wall time (s)", ylabel="memory in use (MiB)", title="Memory over time")
    ax.grid(alpha=0.3)
    _legend(ax, colours)
    return fig
