"""The CPU recipe's ms/iter with the default run options and with the fastest ones, side by
side in one process (issue 8). Each configuration is a model with its own optimizer; their
steps interleave, so a busy neighbour slows all of them alike and the ratios hold.

    make bench-micro PYTEST_ARGS="-k recipe -s"

The median is taken over steady steps after a warm-up that includes compilation.
NANOBENCH_BENCH_SIZE=small (`make bench-check`, in CI): the `smoke` model, 2 warm-up and 2
timed steps per configuration, compilation included: the same path, quickly.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from nanobench.measure.device import Device
from nanobench.measure.precision import Precision
from nanobench.run.data import Batches, generator, load_dataset
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import load
from nanobench.run.train import lr_at, make_optimizer, set_lr, train_step

CPU = Device.cpu()
SMALL = os.environ.get("NANOBENCH_BENCH_SIZE") == "small"
SCENARIO, WARMUP, TIMED = ("smoke", 2, 2) if SMALL else ("shakespeare_char_cpu", 6, 60)
# (label, dtype, fused AdamW, torch.compile): the default first
CONFIGS = [
    ("default (fp32, fused AdamW)", "fp32", True, False),
    ("fp32, for-loop AdamW (nanoGPT's path on a CPU)", "fp32", False, False),
    ("fp32 --compile", "fp32", True, True),
    ("--dtype bf16", "bf16", True, False),
    ("--dtype bf16 --compile", "bf16", True, True),
]


def make_step(dtype: str, fused: bool, compiled: bool, scenario, dataset):
    t, m = scenario.train, scenario.model
    model = GPT(GPTConfig.from_scenario(scenario, dataset.vocab_size), generator(t.seed, "init"))
    optimizer = make_optimizer(model, t, fused=fused)
    step_model = torch.compile(model) if compiled else model
    precision = Precision.for_device(dtype, CPU)
    autocast = precision.autocast(CPU)
    batches = Batches(dataset, t.batch_size, m.block_size, t.grad_accum, t.seed)

    scaler = precision.grad_scaler(CPU)

    def step(it: int) -> float:
        """train.py's own step (train_step): returns its seconds."""
        set_lr(optimizer, lr_at(it, t))
        x, y = batches.train(it)
        t0 = time.perf_counter()
        train_step(step_model, model, optimizer, scaler, x, y, autocast, t.grad_clip)
        return time.perf_counter() - t0

    return step


def test_recipe_default_vs_fastest(benchmark):
    scenario = load(SCENARIO)
    dataset = load_dataset(scenario.data.dataset)
    steps = {
        label: make_step(dtype, fused, compiled, scenario, dataset)
        for label, dtype, fused, compiled in CONFIGS
    }
    for step in steps.values():  # warm-up, compilation included
        for it in range(WARMUP):
            step(it)
    times = {label: [] for label in steps}
    for it in range(WARMUP, WARMUP + TIMED):
        for label, step in steps.items():
            times[label].append(step(it))
    medians = {label: statistics.median(v) for label, v in times.items()}
    base = medians[CONFIGS[0][0]]
    print(
        f"\n{SCENARIO} on the CPU, {torch.get_num_threads()} threads, median of {TIMED} interleaved steps:"
    )
    for label, med in medians.items():
        print(
            f"  {label:40s} {med * 1e3:6.1f} ms/iter  x{base / med:.2f} vs default"
            + ("" if SMALL else f"  x{0.0477 / med:.2f} vs nanoGPT's 47.7 ms (FIELD_NOTES)")
        )
    benchmark.extra_info.update({f"{label} ms": med * 1e3 for label, med in medians.items()})
    # pytest-benchmark's own table: the default step
    default = steps[CONFIGS[0][0]]
    its = iter(range(100, 10**9))
    benchmark.pedantic(lambda: default(next(its)), rounds=20, warmup_rounds=2)
    assert all(m > 0 for m in medians.values())
