"""How much `compare` and `report` cost beyond reading the files, side by side in one run.

    PYTHONPATH=. .venv/bin/python bench/test_bench_report_ratio.py [ROUNDS] [RUNS_DIR]   # printed
    .venv/bin/python -m pytest -q bench/test_bench_report_ratio.py         # one round, as a check
    (`make bench-check` runs that round at NANOBENCH_BENCH_SIZE=small: make_runs' 8 x 300)

Each round times, one after the other on the same 100 runs x 5,000 rows (bench/
test_bench_compare_report.make_runs, written through RunWriter): reading every file into
pandas with pyarrow (the floor any tool pays), `compare` (compare.compare_files), and
`compare` + `report` (write_report into a folder). Interleaving the three inside each round
means a machine that gets busier mid-run slows all three alike, so the ratios hold where the
absolute times do not. The goal of issue 27: compare + report within 3x the read.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from nanobench.analyze import compare
from nanobench.present import report
from nanobench.store import results

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bench_compare_report import N_ROWS, N_RUNS, make_runs  # noqa: E402


def read_floor(folder: Path) -> int:
    """Every result file's rows into pandas, nothing else."""
    return sum(len(pq.read_table(p).to_pandas()) for p in results.expand_paths([str(folder)]))


def compare_only(folder: Path):
    return compare.compare_files([str(folder)])


def compare_and_report(folder: Path, out: Path) -> Path:
    return report.write_report(compare.compare_files([str(folder)]), out)


STEPS = ("read", "compare", "compare + report")


def rounds(folder: Path, out: Path, n: int) -> dict[str, list[tuple[float, float]]]:
    """Per step, (wall s, CPU s of this process) of each round. On a shared machine the CPU
    time is the steadier figure: it leaves out the time spent waiting for a core."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in STEPS}
    steps = (
        ("read", lambda: read_floor(folder)),
        ("compare", lambda: compare_only(folder)),
        ("compare + report", lambda: compare_and_report(folder, out)),
    )
    for _ in range(n):
        for name, step in steps:
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def folder_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def test_report_ratio_runs_once(tmp_path_factory):
    """Not a timing gate: the benchmark's three steps run and the report folder is written."""
    folder = tmp_path_factory.mktemp("runs")
    make_runs(folder)
    out = tmp_path_factory.mktemp("report")
    times = rounds(folder, out, 1)
    assert all(len(v) == 1 for v in times.values())
    assert (out / "index.html").stat().st_size > 0


if __name__ == "__main__":
    # ROUNDS (default 5); RUNS_DIR: runs made once and kept, so that two checkouts (before
    # and after a change) can be timed in turn on the same files
    with tempfile.TemporaryDirectory() as d:
        folder, out = (
            Path(sys.argv[2] if len(sys.argv) > 2 else Path(d) / "runs"),
            Path(d) / "report",
        )
        if not folder.is_dir():
            t0 = time.perf_counter()
            make_runs(folder)
            print(
                f"made {N_RUNS} runs x {N_ROWS} rows in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        times = rounds(folder, out, int(sys.argv[1]) if len(sys.argv) > 1 else 5)
        for k, clock in enumerate(("wall", "CPU")):
            floor = statistics.median(t[k] for t in times["read"])
            for name, ts in times.items():
                v = [t[k] for t in ts]
                print(
                    f"{clock:>4} {name:>16}: median {statistics.median(v):.2f} s (min {min(v):.2f}, "
                    f"max {max(v):.2f}), {statistics.median(v) / floor:.1f}x the read"
                )
        print(f"report folder: {folder_bytes(out) / 2**20:.1f} MiB")
