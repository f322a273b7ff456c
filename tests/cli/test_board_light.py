"""A `nanobench board` as a user runs it stays light, whatever the folder's size: its process
imports neither torch nor pandas nor scipy.stats (each a second or more of start-up, none of
them needed), and a second board reads only the file added since the first. The files are
counted by strace, which sees every open of the process (pyarrow's and DuckDB's as well as
Python's), not by any counter of nanobench's own."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the board through the command line's own entry, then what the process had imported
SCRIPT = """
import contextlib, io, json, sys
from nanobench.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["board", sys.argv[1], "--format", "json"])
board = json.loads(out.getvalue())
heavy = ("torch", "pandas", "scipy.stats", "matplotlib", "plotly")
print(json.dumps({
    "code": code,
    "imported": [m for m in heavy if m in sys.modules],
    "rows": sum(len(t["rows"]) for t in board["tables"]),
    "history": [h["sentence"] for t in board["tables"] for r in t["rows"] for h in r["history"]],
    "verdicts": [r["val_loss"]["verdict"] for t in board["tables"] for r in t["rows"] if r["val_loss"]],
}))
"""


def board_process(folder: Path, trace: Path | None = None) -> dict:
    cmd = [sys.executable, "-c", SCRIPT, str(folder)]
    if trace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def runs_of_two_versions(folder: Path, handmade) -> None:
    """A CPU row with runs under two torch versions (a Welch test in its history) and a GPU
    row (a loss verdict against the CPU reference): every statistic a board computes."""
    for k, (torch, step_s) in enumerate([("2.12.0", 0.10), ("2.12.0", 0.11), ("2.13.0", 0.09)]):
        handmade(folder, f"cpu{k}", seed=k, torch=torch, step_s=step_s)
    handmade(folder, "cpu3", seed=3, torch="2.13.0", step_s=0.085)
    for k in range(2):
        handmade(
            folder,
            f"gpu{k}",
            seed=k,
            device_type="cuda",
            device_name="NVIDIA H100 80GB HBM3",
            dtype="bf16",
            step_s=0.01,
        )


def test_board_process_imports_no_torch_pandas_or_scipy_stats(tmp_path, handmade):
    runs = tmp_path / "runs"
    runs_of_two_versions(runs, handmade)
    for _ in range(2):  # the first board reads every file; the second, the index
        got = board_process(runs)
        assert got["code"] == 0 and got["imported"] == []
        assert got["rows"] == 2 and len(got["history"]) == 1 and len(got["verdicts"]) == 1
        assert got["history"][0].startswith("torch 2.12.0 -> 2.13.0: +")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace counts the files opened")
def test_second_board_process_opens_only_the_new_file(tmp_path, handmade):
    runs = tmp_path / "runs"
    runs_of_two_versions(runs, handmade)
    board_process(runs)  # the first board: writes the index
    handmade(runs, "late", seed=9, torch="2.13.0")
    trace = tmp_path / "openat.log"
    got = board_process(runs, trace)
    opened = {
        Path(line.split('"')[1]).name
        for line in trace.read_text().splitlines()
        if '.parquet"' in line and "ENOENT" not in line
    }
    assert opened == {"late.parquet"} and got["code"] == 0
