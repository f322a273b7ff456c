"""The board at scale: runs of 20 machines (bench/board_runs.py, through the real writer),
10,000 runs of 2,000 rows by default. Not a pass/fail test: it measures and prints, with the
CPU's name and the 1-minute load average beside every timing (the machine may be shared).

    PYTHONPATH=. python bench/test_bench_board.py          # full size, BOARD_PASSES=3 passes
    BOARD_RUNS=200 BOARD_ROWS=200 make bench-micro PYTEST_ARGS="-k board -s"   # CI size, once

The runs are generated once into $TMPDIR/nanobench-board-bench-RUNSxROWS/runs and reused
(a file `complete` marks a finished set). Measured in one process:

1. First board (no index) against reading the same files' metadata and the summary's
   columns with pyarrow (ParquetFile, json.loads of the metadata, the READ_COLUMNS a summary
   reads), interleaved: pyarrow, board, pyarrow, board, ..., after one untimed read of every
   file so that both find them in the page cache. The goal is at most 2x.
2. Second board after adding one run: the result files the process opens (counted through
   builtins.open, as every result read goes through it) and its time; then as a user runs
   it, `python -m nanobench board DIR --format json` in a fresh process after each new run:
   once under strace (where it exists) to count every .parquet file the process opens, then
   timed without it, BOARD_PASSES times. The goal is one file and under 2 s.
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
PASSES = int(os.environ.get("BOARD_PASSES", "3"))  # interleaved pairs, and command-line boards


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


def load_1m() -> float:
    """The 1-minute load average, printed beside every timing: other work on the machine."""
    return os.getloadavg()[0]


def cpu_name() -> str:
    """The CPU's model name, as lscpu prints it (the bench's printout names its machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cli_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "nanobench", "board", str(folder), "--format", "json"]


def cli_second_board(folder: Path) -> tuple[float, float]:
    """Wall time of `nanobench board DIR --format json` in a fresh process, as a user runs it
    (interpreter start and imports included), and the load average before it."""
    load = load_1m()
    t0 = time.perf_counter()
    subprocess.run(
        cli_command(folder), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0, load


def cli_parquet_opened(folder: Path) -> list[str] | None:
    """The .parquet files the command's process opens (strace, every open by Python, pyarrow
    or DuckDB alike); None without strace. Not timed: strace slows every system call."""
    if not shutil.which("strace"):
        return None
    trace = Path(tempfile.mkdtemp()) / "openat.log"
    cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), *cli_command(folder)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = trace.read_text().splitlines()
    return sorted({ln.split('"')[1] for ln in lines if '.parquet"' in ln and "ENOENT" not in ln})


def add_run(folder: Path, n_runs: int, n_rows: int, k: int) -> Path:
    """Run number n_runs + k of the plan (its own run id), under a name the dataset does not use."""
    n = n_runs + k
    new = board_runs.write_run(folder, n, n_rows, board_runs.plan(n + 1)[n])
    return new.rename(folder / f"bench-extra-{k:05d}.parquet")


def measure(n_runs: int = N_RUNS, n_rows: int = N_ROWS, passes: int = PASSES) -> dict:
    folder = dataset(n_runs, n_rows)
    files = sorted(folder.glob("*.parquet"))
    read_with_pyarrow(files)  # page cache: both sides read from memory
    pairs = []  # (pyarrow s, first board s, load before the pair)
    for _ in range(passes):
        load = load_1m()
        t0 = time.perf_counter()
        read_with_pyarrow(files)
        baseline = time.perf_counter() - t0
        pairs.append((baseline, first_board(folder), load))
    # the second board, in this process: the files opened through builtins.open (every
    # result read goes through it: store/results.check_ends, before pyarrow or DuckDB reads)
    extra = add_run(folder, n_runs, n_rows, 0)
    load = load_1m()
    t0 = time.perf_counter()
    (b, refreshed), opened = count_opens(lambda: board.board_files([str(folder)]))
    second = (time.perf_counter() - t0, load)
    # as the user runs it: a fresh process after each new run, several times over
    cli, traced = [], None
    for k in range(1, passes + 1):
        add_run(folder, n_runs, n_rows, k)
        if k == 1:
            traced = cli_parquet_opened(folder)  # counts the one file; the next run is timed
            add_run(folder, n_runs, n_rows, passes + 1)
        cli.append(cli_second_board(folder))
    for path in folder.glob("bench-extra-*.parquet"):
        path.unlink()
    board.board_files([str(folder)])  # the index of the dataset alone again
    del extra
    return {
        "runs": len(files),
        "rows_per_run": n_rows,
        "cpu": cpu_name(),
        "pairs": pairs,
        "ratios": [first / base for base, first, _ in pairs],
        "second_board": second,
        "second_board_files_opened": opened,
        "second_board_read": refreshed.n_read,
        "cli_second_boards": cli,
        "cli_parquet_opened": traced,
        "tables": len(b.tables),
        "board_rows": sum(len(t.rows) for t in b.tables),
    }


def report(m: dict) -> str:
    lines = [
        f"{m['runs']} runs x {m['rows_per_run']} rows, {m['board_rows']} board rows; "
        f"{m['cpu']}, {os.cpu_count()} CPUs; 'load' is the 1-minute load average before each"
    ]
    for k, ((base, first, load), ratio) in enumerate(zip(m["pairs"], m["ratios"]), 1):
        lines.append(
            f"pass {k}: pyarrow metadata + summary columns {base:.2f} s, first board {first:.2f} s "
            f"({ratio:.2f}x; load {load:.2f})"
        )
    second, load = m["second_board"]
    lines.append(
        f"second board after one new run: {second:.2f} s in process (load {load:.2f}), "
        f"{len(m['second_board_files_opened'])} result file(s) opened "
        f"({', '.join(Path(p).name for p in m['second_board_files_opened'])})"
    )
    opened = m["cli_parquet_opened"]
    lines.append(
        "the same from the command line, a fresh process each time (interpreter and imports "
        "included): "
        + ", ".join(f"{wall:.2f} s (load {load:.2f})" for wall, load in m["cli_second_boards"])
        + "; "
        + (
            f"{len(opened)} .parquet file(s) opened (strace: {', '.join(Path(p).name for p in opened)})"
            if opened is not None
            else "no strace here to count the files opened"
        )
    )
    return "\n".join(lines)


def test_board_at_scale(benchmark):
    """Runs at BOARD_RUNS x BOARD_ROWS (200 x 200 unless set: the CI size), once (a pytest-
    benchmark test, so that bench-micro runs it and bench-check collects it). Prints; asserts
    only what is not a timing: the second board opens the one new file."""
    runs = int(os.environ.get("BOARD_RUNS", "200"))
    rows = int(os.environ.get("BOARD_ROWS", "200"))
    m = benchmark.pedantic(measure, args=(runs, rows, 1), rounds=1, iterations=1)
    print("\n" + report(m))
    assert [Path(p).name for p in m["second_board_files_opened"]] == ["bench-extra-00000.parquet"]
    if m["cli_parquet_opened"] is not None:
        assert [Path(p).name for p in m["cli_parquet_opened"]] == ["bench-extra-00001.parquet"]


if __name__ == "__main__":
    print(report(measure()))
