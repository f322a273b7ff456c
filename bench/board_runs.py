"""Synthetic result files for the board's scale bench: runs of 20 machines written through
the real writer (store/results.RunWriter), with the metadata a real run records (environment,
machine fingerprint, peaks, noise verdict, sample) and a real run's columns.

Not a test module: bench/test_bench_board.py and tests/store/test_board_index.py use it.
The files are statistics-shaped (loss curves, step times around a per-device mean, energy on
GPUs) so that every one passes the board's validation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nanobench.store.meta import machine_record
from nanobench.store.results import RunWriter

TOKENS_PER_ITER = 768  # the CPU recipe: batch 12 x block 64
FLOPS_PER_ITER = 3_969_515_520
EVAL_EVERY = 250
SHA = "c" * 64
X86_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
    "mmx fxsr sse sse2 ht syscall nx lm constant_tsc rep_good nopl pni pclmulqdq "
    "ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
    "hypervisor lahf_lm abm bmi1 avx2 smep bmi2 erms adx smap clflushopt sha_ni "
    "xsaveopt xsavec xgetbv1 "
).split()

# (cpu model, cores, extra flags, memory GiB, os, gpus [(name, GiB)], devices [(kind, name, step s per dtype)])
HARDWARE = [
    ("AMD EPYC", 2, [], 24, "Linux", [], [("cpu", "AMD EPYC", {"fp32": 0.040})]),
    (
        "Intel(R) Xeon(R) Processor",
        2,
        ["avx512f", "avx512_bf16"],
        24,
        "Linux",
        [],
        [("cpu", "Intel(R) Xeon(R) Processor", {"fp32": 0.036, "bf16": 0.030})],
    ),
    (
        "AMD Ryzen 9 7950X 16-Core Processor",
        16,
        ["avx512f"],
        64,
        "Linux",
        [],
        [("cpu", "AMD Ryzen 9 7950X 16-Core Processor", {"fp32": 0.009})],
    ),
    ("Apple M2 Pro", 10, None, 32, "Darwin", [], [("mps", "Apple M2 Pro", {"fp32": 0.006})]),
    (
        "12th Gen Intel(R) Core(TM) i7-12700K",
        12,
        [],
        32,
        "Windows",
        [],
        [("cpu", "12th Gen Intel(R) Core(TM) i7-12700K", {"fp32": 0.012})],
    ),
    (
        "AMD EPYC 9654 96-Core Processor",
        96,
        ["avx512f", "avx512_bf16"],
        1024,
        "Linux",
        [("NVIDIA H100 80GB HBM3", 80)],
        [("cuda", "NVIDIA H100 80GB HBM3", {"fp32": 0.0030, "bf16": 0.0021})],
    ),
    (
        "AMD EPYC 7763 64-Core Processor",
        64,
        [],
        512,
        "Linux",
        [("NVIDIA A100-SXM4-80GB", 80)],
        [("cuda", "NVIDIA A100-SXM4-80GB", {"fp32": 0.0040, "bf16": 0.0026})],
    ),
    (
        "AMD Ryzen 9 5950X 16-Core Processor",
        16,
        [],
        64,
        "Linux",
        [("NVIDIA GeForce RTX 4090", 24)],
        [("cuda", "NVIDIA GeForce RTX 4090", {"fp32": 0.0032, "bf16": 0.0024})],
    ),
    (
        "Intel(R) Core(TM) i9-10900K CPU @ 3.70GHz",
        10,
        [],
        32,
        "Linux",
        [("NVIDIA GeForce RTX 3090", 24)],
        [("cuda", "NVIDIA GeForce RTX 3090", {"fp32": 0.0045, "bf16": 0.0035})],
    ),
    (
        "Intel(R) Xeon(R) CPU @ 2.20GHz",
        4,
        [],
        16,
        "Linux",
        [("NVIDIA L4", 22)],
        [("cuda", "NVIDIA L4", {"fp32": 0.0060, "bf16": 0.0042})],
    ),
    (
        "Intel(R) Xeon(R) CPU @ 2.00GHz",
        2,
        [],
        13,
        "Linux",
        [("Tesla T4", 15)],
        [("cuda", "Tesla T4", {"fp32": 0.0090})],
    ),
    ("Apple M3 Max", 16, None, 64, "Darwin", [], [("mps", "Apple M3 Max", {"fp32": 0.0040})]),
]
# machines of each hardware: 20 in all; machines of one hardware share rows but count apart
MACHINES_PER_HARDWARE = [3, 2, 1, 1, 1, 3, 2, 2, 1, 1, 2, 1]
TORCH_VERSIONS = ("2.12.0", "2.13.0")


def machines() -> list[dict]:
    """The 20 machines: environment sections as measure/environment.collect writes them."""
    out = []
    for hw, count in zip(HARDWARE, MACHINES_PER_HARDWARE):
        model, cores, extra, mem_gib, os_family, gpus, devices = hw
        for _ in range(count):
            arm = extra is None
            env = {
                "hostname": "localhost",  # what users share: never part of a fingerprint
                "os": {
                    "Linux": "Linux-6.8.0-x86_64-with-glibc2.39",
                    "Darwin": "macOS-14.5-arm64-arm-64bit",
                }.get(os_family, "Windows-11-10.0.22631-SP0"),
                "os_family": os_family,
                "machine_arch": "arm64" if arm else "x86_64",
                "machine_token": f"{len(out):016x}",
                "nanobench": "0.1.0",
                "python": "3.11.7",
                "cpu_model": model,
                "cpu_flags": ["asimd", "fp", "bf16"] if arm else sorted(X86_FLAGS + extra),
                "cpu_physical_cores": cores,
                "cpu_logical_cores": cores * (1 if arm or cores <= 2 else 2),
                "memory_total_bytes": mem_gib * 2**30 - 123_456_789,
                "gpus": [{"name": g, "memory_bytes": gib * 2**30} for g, gib in gpus]
                + (
                    [{"name": f"{model} GPU (30 cores)", "memory_bytes": None}]
                    if any(d[0] == "mps" for d in devices)
                    else []
                ),
                "torch_num_threads": min(cores, 16),
            }
            out.append({"env": env, "devices": devices})
    assert len(out) == 20, len(out)
    return out


def _meta(machine: dict, device: tuple, dtype: str, torch_version: str, seed: int, noisy: bool):
    kind, name, steps = device
    env = dict(machine["env"], torch=f"{torch_version}+{'cu128' if kind == 'cuda' else 'cpu'}")
    dev = {"spec": kind, "type": kind, "name": name}
    if kind == "cuda":
        env.update(gpu_name=name, cuda_runtime="12.8", gpu_state_at_start={"driver": "575.57.08"})
    peak = FLOPS_PER_ITER / steps[dtype] * 2.0  # every run at 50% of its device's peak
    return {
        "scenario": {
            "name": "bench",
            "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
            "train": {"batch_size": 12, "learning_rate": 1e-3, "max_iters": 2000, "seed": seed},
            "eval": {"interval": EVAL_EVERY, "iters": 20},
            "data": {"dataset": "tinyshakespeare"},
            "targets": {"val_loss": [2.0, 1.9]},
        },
        "options": {
            "device": kind,
            "dtype": dtype,
            "compile": False,
            "seed": seed,
            "overrides": [],
            "compile_mode": None,
            "optimizer": "auto",
            "sdpa": "auto",
            "best": False,
        },
        "device": dev,
        "dataset": {"name": "tinyshakespeare", "sha256": SHA},
        "environment": env,
        "machine": machine_record(env, dev),
        "flops": {"per_iter": FLOPS_PER_ITER, "per_token": FLOPS_PER_ITER // TOKENS_PER_ITER},
        "peak_flops": {
            "spec": {"flops": peak, "source": "bench"},
            "measured": {"flops": peak, "source": "bench"},
            "used_for_mfu": {"flops": peak, "source": "bench"},
        },
        "energy": {"source": "nvml" if kind == "cuda" else None, "reason": None},
        "noise": {
            "verdict": "noisy" if noisy else "quiet",
            "reasons": [{"detector": "other_cpu", "share": 0.4, "text": "other processes"}]
            if noisy
            else [],
        },
        "sample": "To be, or not to be " * 15,
        "started_at": "2026-12-01T00:00:00Z",
    }


def _rows(rng, n_rows: int, step_s: float, energy_w: float | None, val_shift: float) -> list[dict]:
    steps = step_s * np.abs(1 + 0.05 * rng.standard_normal(n_rows))
    train = np.cumsum(steps)
    loss = 4.2 * np.exp(-np.arange(n_rows) / 600) + 1.45 + 0.03 * rng.standard_normal(n_rows)
    flops_rate = FLOPS_PER_ITER / steps
    peak = FLOPS_PER_ITER / step_s * 2.0
    rows = []
    for i in range(n_rows + 1):
        val = (
            4.2 * math.exp(-i / 600) + 1.55 + val_shift
            if i % EVAL_EVERY == 0 or i == n_rows
            else None
        )
        t = train[i] if i < n_rows else train[-1]
        common = {
            "iter": i,
            "train_time_s": float(t),
            "wall_time_s": float(t) * 1.05 + 0.5,
            "tokens": TOKENS_PER_ITER * (i + 1 if i < n_rows else i),
            "mem_peak_bytes": (300 << 20) + min(i, n_rows - 1) * 1000,
            "mem_bytes": (300 << 20) + min(i, n_rows - 1) * 1000,
            "energy_j": float(energy_w * (t * 1.05 + 0.5)) if energy_w else None,
            "eval_val_loss": val,
            "eval_train_loss": None if val is None else val - 0.05,
        }
        if i == n_rows:
            rows.append(common)
            break
        sampled = i % 25 == 24
        rows.append(
            dict(
                common,
                loss=float(loss[i]),
                lr=1e-3,
                step_time_s=float(steps[i]),
                tokens_per_s=TOKENS_PER_ITER / float(steps[i]),
                mfu=float(flops_rate[i] / peak),
                mfu_measured=float(flops_rate[i] / peak),
                grad_norm=1.0,
                warmup=i < 5,
                other_cpu_cores=0.01 if sampled else None,
                load_1m=0.5 if sampled else None,
            )
        )
    return rows


def plan(n_runs: int) -> list[tuple]:
    """(machine index, device, dtype, torch version, seed) for each run, spread over the 20
    machines, their devices and dtypes, two torch versions and seeds."""
    ms = machines()
    cells = [(k, dev, dtype) for k, m in enumerate(ms) for dev in m["devices"] for dtype in dev[2]]
    out = []
    for n in range(n_runs):
        k, dev, dtype = cells[n % len(cells)]
        rnd = n // len(cells)
        out.append((k, dev, dtype, TORCH_VERSIONS[rnd % 2], 1000 + rnd // 2))
    return out


def write_run(folder: Path, n: int, n_rows: int, cell: tuple, ms: list[dict] | None = None) -> Path:
    """Run number n of the plan, written through RunWriter. Every 20th run is recorded noisy;
    torch 2.13 runs are 5% faster than 2.12 ones (the per-version history has a change to find)."""
    ms = ms or machines()
    k, dev, dtype, torch_version, seed = cell
    rng = np.random.default_rng(n)
    step_s = dev[2][dtype] * (0.95 if torch_version == "2.13.0" else 1.0)
    meta = _meta(ms[k], dev, dtype, torch_version, seed, noisy=n % 20 == 19)
    energy_w = 300.0 if dev[0] == "cuda" else None
    w = RunWriter(folder, f"bench-{n:05d}", meta, flush_every_iters=n_rows + 2)
    w.append(_rows(rng, n_rows, step_s, energy_w, 0.002 * (seed % 5)))
    return w.finish("completed")


def make_runs(folder: Path, n_runs: int, n_rows: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ms = machines()
    cells = plan(start + n_runs)
    return [write_run(folder, n, n_rows, cells[n], ms) for n in range(start, start + n_runs)]
