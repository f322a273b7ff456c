"""`nanobench board` as a user runs it: formats, the index read on the second call, exit
codes for bad input and for files of which none is usable."""

import csv
import io
import json

import pytest


# fast in the default suite: tests/present/test_board_page.py (every format from the same
# hand-made runs, in process) and test_board_bad_input_is_one_line_and_exit_2
@pytest.mark.slow
def test_board_command(nb, tmp_path, handmade):
    d = tmp_path / "runs"
    handmade(d, "cpu", seed=1)
    handmade(
        d, "gpu", device_type="cuda", device_name="NVIDIA H100 80GB HBM3", dtype="bf16", step_s=0.01
    )
    first = nb("board", d, "--format", "json")
    assert first.returncode == 0, first.stderr
    assert "board of 2 files (2 read" in first.stderr
    data = json.loads(first.stdout)
    assert [r["device_type"] for r in data["tables"][0]["rows"]] == ["cuda", "cpu"]
    again = nb("board", d, "--format", "csv")
    assert again.returncode == 0 and "board of 2 files (0 read" in again.stderr
    assert len(list(csv.reader(io.StringIO(again.stdout)))) == 3
    page = nb("board", d, "-o", tmp_path / "page")  # -o alone: the html page
    assert page.returncode == 0 and (tmp_path / "page" / "index.html").is_file()


def test_board_bad_input_is_one_line_and_exit_2(nb, tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    none = nb("board", tmp_path)
    assert none.returncode == 2 and "no usable run" in none.stderr
    assert "junk.parquet: not a parquet file" in none.stdout  # the left-out list names it
    html = nb("board", tmp_path, "--format", "html")
    assert html.returncode == 2 and html.stderr.strip() == (
        "nanobench: error: --format html: give the folder for index.html with -o DIR"
    )
