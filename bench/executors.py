"""One plan through every executor, side by side in one run (issue 29).

    .venv/bin/python bench/executors.py                 # smoke, fp32 and bf16, seeds 1-3
    .venv/bin/python bench/executors.py --tiny          # 1 cell, 2 iterations (the CI test)

Runs the same `nanobench run` command with `--executor local`, `--executor submitit` (its
local processes here: no SLURM) and `--executor ray` (a local cluster with --ray-cpus CPUs),
each into its own folder, one after another in `--rounds` interleaved rounds; then reads
every result back and checks, cell by cell, that the three executors recorded the same
loss curve, bit for bit (same seed, same device, same thread count: nothing else may
differ). Prints each executor's wall time and its overhead per cell against the local one,
and writes the same as JSON (--json PATH).

Each cell runs with --threads 1 so that every executor computes with the same thread
count (Ray gives a task one CPU; torch's default would use every core locally). The
executors do not run cells alike: local runs one at a time, submitit's local executor
starts every cell at once, Ray runs as many as it has CPUs for. The wall time is what a
user waits for, the overhead per cell is (executor wall - local wall) / cells.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

EXECUTORS = ("local", "submitit", "ray")


def run_one(executor: str, out: Path, args) -> float:
    """One executor's run of the plan, as a user starts it; returns its wall seconds."""
    cmd = [
        sys.executable,
        "-m",
        "nanobench",
        "run",
        args.scenario,
        "--dtype",
        args.dtypes,
        "--seeds",
        args.seeds,
        *(["--max-iters", str(args.max_iters)] if args.max_iters else []),
        "--threads",
        "1",
        "--quiet",
        "--json",
        "--out",
        str(out),
        "--executor",
        executor,
    ]
    if executor == "submitit":
        cmd += ["--submitit-cluster", "local", "--wait"]
    if executor == "ray":
        cmd += ["--ray-cpus", str(args.ray_cpus)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(
            f"{executor}: exit {proc.returncode}\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
        )
    return wall


def curves(folder: Path) -> dict:
    """Each result's cell -> its (iteration, loss) rows and val losses, as recorded."""
    found = {}
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"nanobench"])
        options = meta["options"]
        key = (options["device"], options["dtype"], options["seed"])
        # raw float64 bytes: equal only when bit for bit equal (NaN and null included)
        found[key] = {
            "status": meta["status"],
            "loss": table.column("loss").to_numpy(zero_copy_only=False).tobytes(),
            "val_loss": table.column("eval_val_loss").to_numpy(zero_copy_only=False).tobytes(),
        }
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="smoke")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--max-iters", type=int, help="(default: the scenario's)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="one cell, 2 iterations")
    parser.add_argument("--out", help="folder for the results (default: a temporary one)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.dtypes, args.seeds, args.max_iters = "fp32", "1", 2
    root = Path(args.out or tempfile.mkdtemp(prefix="nanobench-executors-"))
    walls: dict[str, list[float]] = {e: [] for e in EXECUTORS}
    found: dict[str, list[dict]] = {e: [] for e in EXECUTORS}
    for r in range(args.rounds):
        order = EXECUTORS if r % 2 == 0 else EXECUTORS[::-1]  # interleaved
        for executor in order:
            out = root / f"round{r}" / executor
            walls[executor].append(run_one(executor, out, args))
            found[executor].append(curves(out))
    n_cells = len(found["local"][0])
    cells = sorted(found["local"][0])
    same = {
        str(cell): all(
            run[cell]["loss"] == found["local"][0][cell]["loss"]
            and run[cell]["val_loss"] == found["local"][0][cell]["val_loss"]
            for e in EXECUTORS
            for run in found[e]
            if cell in run
        )
        and all(cell in run for e in EXECUTORS for run in found[e])
        for cell in cells
    }
    statuses = {
        e: sorted({v["status"] for run in found[e] for v in run.values()}) for e in EXECUTORS
    }
    local = min(walls["local"])
    report = {
        "cells": n_cells,
        "rounds": args.rounds,
        "command": f"{args.scenario} --dtype {args.dtypes} --seeds {args.seeds}"
        + (f" --max-iters {args.max_iters}" if args.max_iters else "")
        + " --threads 1",
        "identical_losses": same,
        "statuses": statuses,
        "executors": {
            e: {
                "wall_s": walls[e],
                "best_wall_s": min(walls[e]),
                "overhead_per_cell_s": (min(walls[e]) - local) / n_cells,
            }
            for e in EXECUTORS
        },
    }
    print(f"{n_cells} cells: {report['command']} ({args.rounds} round(s), interleaved)")
    print(f"{'executor':10} {'wall s (best)':>14} {'overhead/cell s':>16}  statuses")
    for e in EXECUTORS:
        x = report["executors"][e]
        print(
            f"{e:10} {x['best_wall_s']:14.1f} {x['overhead_per_cell_s']:+16.2f}  "
            f"{', '.join(statuses[e])}"
        )
    print("losses identical across executors, bit for bit, per cell:")
    for cell, ok in same.items():
        print(f"  {cell}: {'yes' if ok else 'NO'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(same.values()) and all(s == ["completed"] for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
