"""The plotting library's script, one copy per output folder.

Interactive pages (the report, the board) draw with plotly.js. The page must open from
`file://` with no network, so the script travels with it: one `plotly.min.js` beside the
`index.html`, the exact build the installed plotly Python package ships, written once per
folder however many figures the page holds. Pages reference it with
`<script src="plotly.min.js">`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nanobench.files import write_atomic

SCRIPT_NAME = "plotly.min.js"


def script_text() -> str:
    """plotly.js as the installed Python package ships it (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs  # imported here: plotly loads in ~0.5 s

    return get_plotlyjs()


def write_script(out_dir: str | Path) -> str:
    """Put plotly.js into `out_dir` unless an identical copy is already there; return the
    name a page's `<script src=...>` uses. A different copy (another plotly version, a
    truncated file) is replaced, atomically."""
    out_dir = Path(out_dir)
    data = script_text().encode("utf-8")
    target = out_dir / SCRIPT_NAME
    try:
        same = hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    except OSError:
        same = False
    if not same:
        write_atomic(target, data, inside=out_dir)
    return SCRIPT_NAME


# What every interactive figure offers besides zoom, pan and hover: no plotly logo, a PNG
# download at twice the screen's resolution, and the figure follows the page's width.
FIGURE_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def figure_div(fig, div_id: str, validate: bool = False) -> str:
    """A plotly figure (a `go.Figure`, or its dict form) as a `<div>` and the inline call that
    draws it, without plotly.js itself: the page loads the one copy `write_script` put beside
    it. `div_id` names the div (an anchor, and the handle a test or a script finds the figure
    by). A dict is taken as it is unless `validate` (its tests validate it instead: plotly's
    validation of a large figure costs more than drawing it); plotly's JSON escapes `<` and
    `/`, so no string in the figure can end the page's script."""
    import plotly.io as pio

    layout = fig.get("layout", {}) if isinstance(fig, dict) else fig.layout
    height = (layout.get("height") if isinstance(layout, dict) else layout.height) or 440
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=FIGURE_CONFIG,
        default_height=f"{height}px",
        validate=validate,
    )
