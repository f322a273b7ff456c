"""nanobench against nanoGPT's own train.py on its CPU recipe, side by side and interleaved.

    NANOGPT_DIR=/path/to/nanoGPT make bench-micro PYTEST_ARGS="-k nanogpt -s"

The user fetches nanoGPT (it is never vendored here) and prepares its tiny Shakespeare data
(`python data/shakespeare_char/prepare.py`). Each round runs nanoGPT for ITERS iterations,
then nanobench for the same (ABAB...), so a busy neighbour slows both alike; the ratio of the
medians is the figure, never either median against a number from another day or machine.

What is timed, the same for both: the wall time of one iteration as the loop sees it (batch,
forward, backward, optimizer step, logging), iterations that evaluate left out. nanoGPT
prints it as `time X ms`; nanobench records `wall_time_s`, whose differences are the same
quantity. nanobench's own `step_time_s` (the step alone) is printed beside it.
Extra nanobench options (e.g. `--best` once tuned): NANOBENCH_ARGS="...".
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from nanobench.store import results

ROUNDS = int(os.environ.get("ROUNDS", "3"))
ITERS = int(os.environ.get("ITERS", "300"))
WARMUP = 5  # first iterations of each process left out (allocator growth, first-touch)
ITER_LINE = re.compile(r"^iter (\d+): loss [-\d.]+, time ([\d.]+)ms", re.M)
# nanoGPT's CPU recipe (its README's "I only have a macbook" line), evaluation pushed past the
# end so that no timed iteration includes one
NANOGPT_ARGS = [
    "config/train_shakespeare_char.py",
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters={iters}",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
    "--eval_interval=100000",
    "--always_save_checkpoint=False",
]


def nanogpt_iteration_s(stdout: str) -> list[float]:
    """Per-iteration wall seconds from nanoGPT's `iter N: loss X, time Yms, mfu Z%` lines."""
    return [float(ms) / 1e3 for it, ms in ITER_LINE.findall(stdout) if int(it) >= WARMUP]


def run_nanogpt(nanogpt: Path, iters: int, out_dir: Path) -> list[float]:
    args = [a.format(iters=iters) for a in NANOGPT_ARGS] + [f"--out_dir={out_dir}"]
    proc = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=nanogpt,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return nanogpt_iteration_s(proc.stdout)


def run_nanobench(iters: int, out_dir: Path) -> tuple[list[float], list[float]]:
    """(per-iteration wall seconds, step seconds) of one nanobench run of the CPU recipe."""
    extra = shlex.split(os.environ.get("NANOBENCH_ARGS", ""))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nanobench",
            "run",
            "shakespeare_char_cpu",
            "--device",
            "cpu",
            "--max-iters",
            str(iters),
            "--set",
            "eval.interval=100000",
            "--quiet",
            "--out",
            str(out_dir),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = sorted(out_dir.glob("*.parquet"), key=lambda p: p.stat().st_mtime)[-1:]
    rows = results.read_run(path).rows
    rows = rows[rows["step_time_s"].notna()]
    wall = rows["wall_time_s"].diff().iloc[WARMUP:].tolist()
    return wall, rows["step_time_s"].iloc[WARMUP:].tolist()


@pytest.mark.skipif(
    not os.environ.get("NANOGPT_DIR"),
    reason="set NANOGPT_DIR to a nanoGPT checkout with prepared data",
)
def test_nanobench_vs_nanogpt_interleaved(tmp_path):
    nanogpt = Path(os.environ["NANOGPT_DIR"])
    if not (nanogpt / "data" / "shakespeare_char" / "train.bin").is_file():
        pytest.skip(f"{nanogpt}/data/shakespeare_char/train.bin missing: run its prepare.py first")
    ng, nb_wall, nb_step, per_round = [], [], [], []
    for r in range(ROUNDS):
        ng_round = run_nanogpt(nanogpt, ITERS, tmp_path / f"ng{r}")
        wall, step = run_nanobench(ITERS, tmp_path / f"nb{r}")
        per_round.append((statistics.median(ng_round), statistics.median(wall), os.getloadavg()[0]))
        ng += ng_round
        nb_wall += wall
        nb_step += step
    ng_med, nb_med, step_med = (statistics.median(v) for v in (ng, nb_wall, nb_step))
    print(
        f"\nCPU recipe, {ROUNDS} x {ITERS} iterations each, interleaved (nanoGPT first in each round):"
    )
    print(f"  nanoGPT train.py      {ng_med * 1e3:6.1f} ms/iter (median of {len(ng)})")
    print(
        f"  nanobench             {nb_med * 1e3:6.1f} ms/iter (median of {len(nb_wall)}; "
        f"step alone {step_med * 1e3:.1f} ms)"
    )
    print(f"  ratio nanoGPT / nanobench: {ng_med / nb_med:.2f}x")
    for r, (ng_r, nb_r, load) in enumerate(
        per_round
    ):  # a round whose ratio stands out had a neighbour
        print(
            f"  round {r + 1}: {ng_r * 1e3:.1f} vs {nb_r * 1e3:.1f} ms/iter, x{ng_r / nb_r:.2f} "
            f"(1-min load after it {load:.2f})"
        )
    assert len(ng) >= ROUNDS * (ITERS - WARMUP - 1) and len(nb_wall) >= ROUNDS * (
        ITERS - WARMUP - 1
    )


def test_nanogpt_log_lines_are_read():
    """The parser above on nanoGPT's documented line shape (no checkout needed)."""
    log = "iter 0: loss 4.2, time 900.00ms, mfu -100.00%\n" + "".join(
        f"iter {i}: loss 2.5, time {40 + i}.00ms, mfu 0.01%\n" for i in range(1, 8)
    )
    assert nanogpt_iteration_s(log) == [0.045, 0.046, 0.047]
