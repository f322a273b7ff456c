"""The board at scale: runs of 20 machines (bench/board_runs.py, through the real writer),
10,000 runs of 2,000 rows by default. Not a pass/fail test: it measures and prints.

    PYTHONPATH=. python bench/test_bench_board.py          # full size, one measured pass
    BOARD_RUNS=200 BOARD_ROWS=200 make bench-micro PYTEST_ARGS="-k board -s"   # CI size

The runs are generated once into $TMPDIR/nanobench-board-bench-RUNSxROWS/runs and reused
(a file `complete` marks a finished set). Measured in one process:

1. First board (no index) against reading the same files' metadata and the summary's
   columns with pyarrow (ParquetFile, json.loads of the metadata, the READ_COLUMNS a summary
   reads), interleaved: pyarrow, board, pyarrow, board, after one untimed read of every file so
   that both find them in the page cache. The goal is at most 2x.
2. Second board after adding one run: the result files the process opens (counted through
   builtins.open, as every result read goes through it) and its time; and the same as a user
   runs it (`python -m nanobench board DIR --format json`), with the files its process opens
   counted by strace where strace exists. The goal is one file and under 2 s.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import board_runs  # noqa: E402

from nanobench.analyze import board  # noqa: E402
from nanobench.store import index  # noqa: E402

N_RUNS = int(os.environ.get("BOARD_RUNS", "10000"))
N_ROWS = int(os.environ.get("BOARD_ROWS", "2000"))


def dataset(n_runs: int = N_RUNS, n_rows: int = N_ROWS) -> Path:
    """The folder of n_runs runs, made once (resumed where a previous generation stopped)."""
    root = Path(tempfile.gettempdir()) / f"nanobench-board-bench-{n_runs}x{n_rows}"
    folder = root / "runs"
    if not (root / "complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        machines, cells = board_runs.machines(), board_runs.plan(n_runs)
        for n in range(n_runs):
            if not (folder / f"bench-{n:05d}.parquet").exists():
                board_runs.write_run(folder, n, n_rows, cells[n], machines)
        (root / "complete").write_text(f"{n_runs} {n_rows}\n")
    for extra in folder.glob("bench-extra-*.parquet"):  # runs a previous measurement added
        extra.unlink()
    return folder


def read_with_pyarrow(files: list[Path]) -> int:
    """The baseline: each file's metadata and the summary's columns, nothing computed."""
    rows = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        json.loads(parquet.schema_arrow.metadata[b"nanobench"])
        have = set(parquet.schema_arrow.names)
        rows += parquet.read(columns=[c for c in board.READ_COLUMNS if c in have]).num_rows
    return rows


def first_board(folder: Path) -> float:
    (folder / index.INDEX_NAME).unlink(missing_ok=True)
    t0 = time.perf_counter()
    b, refreshed = board.board_files([str(folder)])
    assert refreshed.n_read == refreshed.n_files and b.tables
    return time.perf_counter() - t0


def count_opens(fn):
    """fn()'s result and the result files (*.parquet) opened while it ran."""
    seen, real = [], builtins.open

    def counting(file, *args, **kwargs):
        if str(file).endswith(".parquet"):
            seen.append(str(file))
        return real(file, *args, **kwargs)

    builtins.open = counting
    try:
        return fn(), seen
    finally:
        builtins.open = real


def cli_second_board(folder: Path) -> tuple[float, int | None]:
    """Wall time of `nanobench board DIR --format json` and, with strace, the .parquet files
    its process opened (None without strace)."""
    cmd = [sys.executable, "-m", "nanobench", "board", str(folder), "--format", "json"]
    trace = Path(tempfile.mkdtemp()) / "openat.log"
    if shutil.which("strace"):
        cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *cmd]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if not trace.exists():
        return wall, None
    lines = trace.read_text().splitlines()
    opened = {ln.split('"')[1] for ln in lines if '.parquet"' in ln and "ENOENT" not in ln}
    return wall, len(opened)


def measure(n_runs: int = N_RUNS, n_rows: int = N_ROWS) -> dict:
    folder = dataset(n_runs, n_rows)
    files = sorted(folder.glob("*.parquet"))
    read_with_pyarrow(files)  # page cache: both sides read from memory
    pairs = []
    for _ in range(2):
        t0 = time.perf_counter()
        read_with_pyarrow(files)
        baseline = time.perf_counter() - t0
        pairs.append((baseline, first_board(folder)))
    extra = board_runs.write_run(folder, n_runs, n_rows, board_runs.plan(n_runs + 1)[n_runs])
    extra = extra.rename(folder / "bench-extra-00000.parquet")
    t0 = time.perf_counter()
    (b, refreshed), opened = count_opens(lambda: board.board_files([str(folder)]))
    second = time.perf_counter() - t0
    extra.unlink()
    board.board_files([str(folder)])  # the index without the extra run again
    extra = board_runs.write_run(folder, n_runs, n_rows, board_runs.plan(n_runs + 1)[n_runs])
    extra = extra.rename(folder / "bench-extra-00001.parquet")
    cli_wall, cli_opened = cli_second_board(folder)
    extra.unlink()
    return {
        "runs": len(files),
        "rows_per_run": n_rows,
        "pairs_s": pairs,
        "ratios": [b_ / a for a, b_ in pairs],
        "second_board_s": second,
        "second_board_files_opened": opened,
        "second_board_read": refreshed.n_read,
        "cli_second_board_s": cli_wall,
        "cli_second_board_parquet_opened": cli_opened,
        "tables": len(b.tables),
        "board_rows": sum(len(t.rows) for t in b.tables),
    }


def report(m: dict) -> str:
    lines = [f"{m['runs']} runs x {m['rows_per_run']} rows, {m['board_rows']} board rows"]
    for k, ((base, first), ratio) in enumerate(zip(m["pairs_s"], m["ratios"]), 1):
        lines.append(
            f"pass {k}: pyarrow metadata + summary columns {base:.2f} s, first board {first:.2f} s "
            f"({ratio:.2f}x)"
        )
    lines.append(
        f"second board after one new run: {m['second_board_s']:.2f} s in process, "
        f"{len(m['second_board_files_opened'])} result file(s) opened "
        f"({', '.join(Path(p).name for p in m['second_board_files_opened'])})"
    )
    opened = m["cli_second_board_parquet_opened"]
    lines.append(
        f"the same from the command line: {m['cli_second_board_s']:.2f} s wall (interpreter and "
        f"imports included), "
        + (f"{opened} .parquet file(s) opened (strace)" if opened is not None else "no strace here")
    )
    return "\n".join(lines)


def test_board_at_scale():
    """Runs at BOARD_RUNS x BOARD_ROWS (200 x 200 unless set: the CI size). Prints; asserts only
    what is not a timing: the second board opens the one new file."""
    runs = int(os.environ.get("BOARD_RUNS", "200"))
    rows = int(os.environ.get("BOARD_ROWS", "200"))
    m = measure(runs, rows)
    print("\n" + report(m))
    assert [Path(p).name for p in m["second_board_files_opened"]] == ["bench-extra-00000.parquet"]


if __name__ == "__main__":
    print(report(measure()))
