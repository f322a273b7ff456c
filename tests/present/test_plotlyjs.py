"""One copy of plotly.js per output folder, the one the plotly package ships."""

import os

import plotly

from nanobench.present.plotlyjs import SCRIPT_NAME, write_script


def test_the_script_written_is_the_installed_plotly_build(tmp_path):
    assert write_script(tmp_path) == "plotly.min.js"
    text = (tmp_path / SCRIPT_NAME).read_text(encoding="utf-8")
    # The bundle names its own version in its banner (plotly.py 7.1 ships plotly.js 4.1.1).
    assert "* plotly.js v" in text[:200], text[:200]
    assert len(text) > 1_000_000  # the full bundle, not a loader stub
    assert int(plotly.__version__.split(".")[0]) >= 7


def test_an_identical_copy_is_left_alone_and_a_damaged_one_replaced(tmp_path):
    write_script(tmp_path)
    path = tmp_path / SCRIPT_NAME
    os.utime(path, (1_000_000, 1_000_000))
    write_script(tmp_path)
    assert path.stat().st_mtime == 1_000_000  # not rewritten
    path.write_text("truncated")
    write_script(tmp_path)
    assert path.stat().st_size > 1_000_000
    assert [p.name for p in tmp_path.iterdir()] == [SCRIPT_NAME]  # no temporary left behind
