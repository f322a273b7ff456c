"""compare + report over 100 runs x 5,000 rows (pytest-benchmark; not a pass/fail test).

    make bench-micro PYTEST_ARGS="-k compare_report"
    PYTHONPATH=. python bench/test_bench_compare_report.py     # one timed pass, printed

The runs are synthetic (4 configurations x 25 seeds, evaluations every 250 iterations)
but written through RunWriter, so they are real result files of the real size.
NANOBENCH_BENCH_SIZE=small (`make bench-check`, in CI) makes 8 runs x 300 rows: the same
path, run once, so that it cannot break unseen.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nanobench.analyze import compare
from nanobench.present import report
from nanobench.store.results import RunWriter

SMALL = os.environ.get("NANOBENCH_BENCH_SIZE") == "small"
N_RUNS, N_ROWS, EVAL_EVERY = (8, 300, 50) if SMALL else (100, 5000, 250)
CONFIGS = [
    ("cpu", "AMD EPYC", "fp32", 0.030),
    ("cpu", "AMD EPYC", "bf16", 0.045),
    ("cuda", "NVIDIA H100 80GB HBM3", "bf16", 0.004),
    ("cuda", "NVIDIA H100 80GB HBM3", "fp32", 0.008),
]


def make_runs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for k in range(N_RUNS):
        dev_type, dev_name, dtype, step_s = CONFIGS[k % len(CONFIGS)]
        seed = 1000 + k // len(CONFIGS)
        steps = step_s * np.abs(1 + 0.1 * rng.standard_normal(N_ROWS))  # (N_ROWS,) seconds
        train = np.cumsum(steps)
        loss = 4.2 * np.exp(-np.arange(N_ROWS) / 1500) + 1.4 + 0.05 * rng.standard_normal(N_ROWS)
        rows = []
        for i in range(N_ROWS + 1):
            val = (
                4.2 * math.exp(-i / 1500) + 1.5 + 0.01 * (k % 7)
                if i % EVAL_EVERY == 0 or i == N_ROWS
                else None
            )
            if i == N_ROWS:
                rows.append(
                    {
                        "iter": i,
                        "train_time_s": train[-1],
                        "wall_time_s": train[-1] * 1.05,
                        "tokens": 768 * i,
                        "mem_bytes": 400 << 20,
                        "mem_peak_bytes": 400 << 20,
                        "eval_val_loss": val,
                        "eval_train_loss": val,
                    }
                )
                break
            rows.append(
                {
                    "iter": i,
                    "loss": loss[i],
                    "lr": 1e-3,
                    "step_time_s": steps[i],
                    "train_time_s": train[i],
                    "wall_time_s": train[i] * 1.05,
                    "tokens": 768 * (i + 1),
                    "tokens_per_s": 768 / steps[i],
                    "grad_norm": 1.0,
                    "mem_bytes": (300 << 20) + i * 1000,
                    "mem_peak_bytes": (300 << 20) + i * 1000,
                    "eval_val_loss": val,
                    "eval_train_loss": val,
                    "warmup": i < 5,
                }
            )
        w = RunWriter(
            folder,
            f"bench-{k:03d}",
            {
                "scenario": {"name": "bench", "targets": {"val_loss": [2.0, 1.9]}},
                "options": {
                    "device": dev_type,
                    "dtype": dtype,
                    "compile": False,
                    "seed": seed,
                    "overrides": [],
                },
                "device": {"type": dev_type, "name": dev_name, "spec": dev_type},
                "dataset": {"name": "synthetic", "sha256": "c" * 64},
                "environment": {"torch": "2.13.0", "torch_num_threads": 2, "hostname": "bench"},
                "sample": "bench sample " * 20,
            },
            flush_every_iters=N_ROWS + 1,
        )
        w.append(rows)
        w.finish("completed")


def compare_and_report(folder: Path, out: Path) -> Path:
    """`nanobench report FOLDER -o OUT` as the command runs it: the comparison, then the page."""
    return report.write_report(compare.compare_files([str(folder)]), out)


def test_compare_and_report_100_runs(benchmark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    make_runs(folder)
    out = tmp_path_factory.mktemp("report")
    path = benchmark.pedantic(compare_and_report, args=(folder, out), rounds=3, iterations=1)
    page = path.read_text()
    assert path.name == "index.html" and "NVIDIA H100 80GB HBM3" in page and "AMD EPYC" in page


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        folder, out = Path(d) / "runs", Path(d) / "report"
        t0 = time.perf_counter()
        make_runs(folder)
        print(
            f"made {N_RUNS} runs x {N_ROWS} rows in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        for _ in range(3):
            t0 = time.perf_counter()
            path = compare_and_report(folder, out)
            print(
                f"compare + report: {time.perf_counter() - t0:.2f} s ({path.stat().st_size / 2**20:.1f} MiB)"
            )
