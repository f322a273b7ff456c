"""A still image of a plotly figure, for where no script runs (an e-mail, a PDF, a slide).

plotly's own image export (kaleido) drives a Chrome of its own; a report must not need one,
so the still is drawn here with matplotlib from the figure itself: the same traces, colours,
bands, guides and axis titles, so the interactive and the still view cannot drift apart. It
covers what present/plots.py draws (scatter lines, markers, `fill="tonexty"` bands,
precomputed box plots, horizontal guides), not all of plotly; anything else raises.
"""

from __future__ import annotations

import html
import io
import re

import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

DPI = 80
WIDTH_IN = 9.0
DASH = {None: "-", "solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}


def _plain(text) -> str:
    """plotly's text (HTML subset, entities) as plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", str(text or "")))


def _mpl_colour(c):
    """'#1f77b4' or 'rgba(31,119,180,0.18)' as matplotlib takes it."""
    if c is None:
        return None
    m = re.fullmatch(r"rgba?\(([^)]*)\)", str(c).replace(" ", ""))
    if not m:
        return c
    parts = [float(v) for v in m.group(1).split(",")]
    return tuple(v / 255 for v in parts[:3]) + ((parts[3],) if len(parts) > 3 else ())


def _array(v) -> np.ndarray:
    """A trace's values (a list with nulls, or an array) as floats, null as NaN."""
    return np.array([], float) if v is None else np.array(v, dtype=float)


def _get(d: dict, path: str, default=None):
    """d["a"]["b"] for path "a.b", or default where a key is missing."""
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def _scatter(ax, t: dict, previous) -> None:
    x, y = _array(t.get("x")), _array(t.get("y"))
    name = t.get("name")
    label = _plain(name) if t.get("showlegend") is not False and name else "_nolegend_"
    width, colour = _get(t, "line.width"), _get(t, "line.color")
    if t.get("fill") == "tonexty" and previous is not None:
        px, py = previous
        if len(px) == len(x):
            ax.fill_between(x, py, y, color=_mpl_colour(t.get("fillcolor")), lw=0)
    mode = t.get("mode") or "lines"
    if "lines" in mode and (width is None or width > 0):
        ax.plot(
            x,
            y,
            color=_mpl_colour(colour),
            lw=width or 1.5,
            ls=DASH.get(_get(t, "line.dash"), "-"),
            alpha=t.get("opacity", 1.0),
            label=label,
            marker="o" if "markers" in mode else None,
            ms=4,
        )
    elif "markers" in mode:
        open_ = str(_get(t, "marker.symbol", "")).endswith("-open")
        c = _mpl_colour(_get(t, "marker.color") or colour)
        ax.plot(
            x,
            y,
            ls="none",
            marker="o",
            ms=_get(t, "marker.size", 6) * 0.7,
            mfc="none" if open_ else c,
            mec=c,
            label=label,
        )


def _box(ax, t: dict, position: int) -> list[str]:
    """Boxes from precomputed quartiles and fences, drawn as three collections (a Line2D per
    box, as matplotlib's bxp makes, costs seconds at 100 runs)."""
    q1, med, q3, lo, hi = (_array(t[k]) for k in ("q1", "median", "q3", "lowerfence", "upperfence"))
    pos = np.arange(position, position + len(q1))
    c = _mpl_colour(_get(t, "marker.color"))
    ax.hlines(pos, lo, hi, color=c, lw=1)
    ax.barh(pos, q3 - q1, left=q1, height=0.6, color=c, alpha=0.6, label=_plain(t.get("name")))
    ax.vlines(med, pos - 0.3, pos + 0.3, color="black", lw=1)
    return [_plain(y) for y in t["y"]]


def render(fig: dict) -> Figure:
    """The plotly figure (its dict form: present/plots.py) redrawn as a matplotlib Figure (not
    pyplot: nothing global)."""
    layout = fig.get("layout", {})
    height_px = layout.get("height") or 440
    out = Figure(figsize=(WIDTH_IN, max(2.5, height_px / 100)))
    ax = out.add_subplot()
    previous, box_names = None, []
    for t in fig["data"]:
        if t["type"] == "scatter":
            _scatter(ax, t, previous)
            previous = (_array(t.get("x")), _array(t.get("y")))
        elif t["type"] == "box":
            box_names += _box(ax, t, len(box_names) + 1)
        else:
            raise ValueError(f"static: a {t['type']} trace is not drawn here")
    if box_names:
        ax.set_yticks(range(1, len(box_names) + 1), box_names, fontsize=7)
        ax.invert_yaxis()
    on_right = blended_transform_factory(ax.transAxes, ax.transData)
    for shape in layout.get("shapes", []):
        if shape.get("type") == "line" and shape.get("y0") == shape.get("y1"):
            ax.axhline(
                shape["y0"],
                color=_mpl_colour(_get(shape, "line.color")),
                lw=_get(shape, "line.width", 1),
                ls=DASH.get(_get(shape, "line.dash"), "-"),
            )
    for note in layout.get("annotations", []):
        if note.get("y") is not None and note.get("text"):
            left = note.get("x") == 0
            ax.text(
                0.005 if left else 0.995,
                note["y"],
                _plain(note["text"]),
                transform=on_right,
                ha="left" if left else "right",
                va="bottom",
                fontsize=7,
            )
    if _get(layout, "xaxis.type") == "log":
        ax.set_xscale("log")
    ax.set_title(_plain(_get(layout, "title.text")), fontsize=10, loc="left")
    ax.set_xlabel(_plain(_get(layout, "xaxis.title.text")))
    ax.set_ylabel(_plain(_get(layout, "yaxis.title.text")))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="best")
    out.subplots_adjust(left=0.09 if not box_names else 0.22, right=0.98, top=0.92, bottom=0.12)
    return out


def png(fig: dict) -> bytes:
    """The still as PNG bytes (no timestamp in its metadata: the same figure, the same bytes)."""
    buf = io.BytesIO()
    render(fig).savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
