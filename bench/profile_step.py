"""Where does a training step's time go? torch.profiler over steady-state steps of a
scenario's model, grouped into the categories of docs/performance.md.

    python bench/profile_step.py [SCENARIO] [--steps N] [--compile] [--fused-adamw] [--threads N]

Prints ms per iteration by category, measured around the same step code as train.py
(forward, backward, clip, AdamW) on batches from the same stream.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from nanobench.measure.device import Device
from nanobench.measure.precision import Precision
from nanobench.run.data import Batches, generator, load_dataset
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import load
from nanobench.run.train import lr_at, make_optimizer, set_lr, train_step

CPU = Device.cpu()

# First matching substring wins: op names as the CPU profiler reports them.
CATEGORIES = [
    ("optimizer", ("adamw", "_foreach", "_fused_adamw", "optimizer.step", "lerp", "addcdiv")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("matmul", ("addmm", "aten::mm", "aten::bmm", "matmul", "linear")),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("cross-entropy / softmax", ("cross_entropy", "log_softmax", "nll_loss", "softmax")),
    ("embedding", ("embedding",)),
    ("grad clip / norm", ("norm", "clip")),
    (
        "elementwise / copies",
        (
            "add",
            "mul",
            "copy",
            "clone",
            "fill",
            "zero",
            "div",
            "view",
            "transpose",
            "contiguous",
            "cat",
            "split",
            "sum",
        ),
    ),
]


def categorize(name: str) -> str:
    low = name.lower()
    for category, needles in CATEGORIES:
        if any(n in low for n in needles):
            return category
    return "other ops"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default="shakespeare_char_cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--fused-adamw", action="store_true")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    s = load(args.scenario)
    t, m = s.train, s.model
    ds = load_dataset(s.data.dataset)
    batches = Batches(ds, t.batch_size, m.block_size, t.grad_accum, t.seed)
    model = GPT(GPTConfig.from_scenario(s, ds.vocab_size), generator(t.seed, "init"))
    opt = make_optimizer(model, t, fused=args.fused_adamw)
    step_model = torch.compile(model) if args.compile else model

    fp32 = Precision("fp32")
    scaler, autocast = fp32.grad_scaler(CPU), fp32.autocast(CPU)

    def step(it: int) -> None:  # train.py's own step
        set_lr(opt, lr_at(it, t))
        x, y = batches.train(it)
        train_step(step_model, model, opt, scaler, x, y, autocast, t.grad_clip)

    for it in range(args.warmup):
        step(it)
    t0 = time.perf_counter()
    for it in range(args.warmup, args.warmup + args.steps):
        step(it)
    plain_ms = (time.perf_counter() - t0) * 1e3 / args.steps
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for it in range(args.warmup, args.warmup + args.steps):
            step(it)
    wall_ms = (time.perf_counter() - t0) * 1e3 / args.steps

    # Self time of leaf-ish ops, so nothing is counted twice.
    by_cat: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        by_cat[categorize(ev.key)] += ev.self_cpu_time_total / 1e3 / args.steps
    profiled = sum(by_cat.values())
    print(
        f"{args.scenario}: {args.steps} steps, threads {torch.get_num_threads()}, "
        f"compile {args.compile}, fused AdamW {args.fused_adamw}"
    )
    print(
        f"wall {plain_ms:.1f} ms/iter without the profiler, {wall_ms:.1f} under it; op self time {profiled:.1f} ms/iter"
    )
    for cat, ms in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"  {cat:26s} {ms:6.2f} ms  {100 * ms / profiled:5.1f}%")
    print(
        f"  (op self times under the profiler add up to {100 * profiled / plain_ms:.0f}% of the un-profiled "
        f"step: the rest of the step is Python and dispatch, or the profiler's own cost)"
    )
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    print("top ops by self time (ms/iter):")
    for ev in top:
        print(
            f"  {ev.key[:60]:60s} {ev.self_cpu_time_total / 1e3 / args.steps:6.2f}  x{ev.count // args.steps}"
        )


if __name__ == "__main__":
    main()
