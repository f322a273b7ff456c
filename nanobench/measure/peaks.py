"""Peak FLOP rates per device and dtype: the datasheet figure (spec) and a measured one.

MFU is model FLOPs per second over a peak. nanoGPT divides every device by an A100's
312 TFLOP/s, which is how a laptop shows "MFU 0.01%". Here each device gets its own peak:

- spec, GPUs: dense (no 2:4 sparsity) datasheet figures keyed by the name that
  `torch.cuda.get_device_name` reports. fp32 is the non-tensor-core rate (fp32 runs switch
  TF32 off), tf32/bf16/fp16 the tensor-core rates with fp32 accumulation (what autocast uses).
- spec, CPUs: cores x clock x FLOPs per cycle per core, from the SIMD flags.
- measured: the best rate of a square matmul in the run's dtype, timed on the device and
  cached per machine (see `measured_peak`).

A device with no known figure gets `Peak(None, why)`: a null MFU, never a wrong number.
Devices come in as `Device` values (device.py) and dtypes as `Precision` values
(precision.py); the CPU's facts come from host.py. The only device `if`s here choose the
table (GPU datasheet or CPU formula) and the calibration's size.
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nanobench import files
from nanobench.measure import host

T = 1e12


@dataclass(frozen=True)
class Peak:
    flops: float | None  # FLOP/s, or None when unknown
    source: str  # where the number came from, or why it is unknown


# ---- GPUs: datasheet table ----------------------------------------------------------------
# (name pattern, matched in full against torch.cuda.get_device_name; dense TFLOP/s per dtype,
#  None = the GPU has no such tensor-core mode). The comment on each row names its source.
# Sparse figures on datasheets carry an asterisk and are exactly twice the dense ones.
GPU_PEAKS_TFLOPS: list[tuple[str, dict[str, float | None]]] = [
    # NVIDIA A100 Tensor Core GPU datasheet (SXM4 and PCIe, 40 and 80 GB: same compute figures)
    (r"NVIDIA A100-SXM4-(40|80)GB", {"fp32": 19.5, "tf32": 156, "bf16": 312, "fp16": 312}),
    (
        r"NVIDIA A100-PCIE-(40|80)GB|NVIDIA A100 80GB PCIe",
        {"fp32": 19.5, "tf32": 156, "bf16": 312, "fp16": 312},
    ),
    # NVIDIA H100 Tensor Core GPU architecture whitepaper, table 3 (H100 SXM5, dense)
    (
        r"NVIDIA H100 80GB HBM3|NVIDIA H100 SXM5 80GB|NVIDIA H100",
        {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    ),
    # same whitepaper, H100 PCIe column (dense)
    (r"NVIDIA H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    # NVIDIA H100 NVL datasheet: 60 FP32, 835* TF32, 1,671* BF16/FP16 (* sparse)
    (r"NVIDIA H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    # NVIDIA H200 datasheet, H200 SXM: 67 FP32, 989* TF32, 1,979* BF16/FP16 (H100 SXM compute)
    (r"NVIDIA H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    # NVIDIA H200 datasheet, H200 NVL: 60 FP32, 835* TF32, 1,671* BF16/FP16
    (r"NVIDIA H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    # NVIDIA L4 datasheet: 30.3 FP32, 120* TF32, 242* BF16/FP16
    (r"NVIDIA L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    # NVIDIA L40S datasheet: 91.6 FP32, 366* TF32, 733* BF16/FP16
    (r"NVIDIA L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 366.0, "fp16": 366.0}),
    # NVIDIA A10 datasheet: 31.2 FP32, 62.5 | 125* TF32, 125 | 250* BF16/FP16
    (r"NVIDIA A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    # A10G (AWS G5): NVIDIA publishes no datasheet; AWS lists it as the A10's GA102 part with
    # the same 250 dense INT8 TOPS, so the A10 row's dense rates are used
    (r"NVIDIA A10G", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    # NVIDIA L40 datasheet: 90.5 FP32, 90.5 | 181* TF32, 181 | 362* BF16/FP16
    (r"NVIDIA L40", {"fp32": 90.5, "tf32": 90.5, "bf16": 181.0, "fp16": 181.0}),
    # NVIDIA GH200 Grace Hopper datasheet: the Hopper GPU has H100 SXM's compute
    # (67 FP32, 494 | 989* TF32, 990 | 1,979* BF16/FP16)
    (r"NVIDIA GH200.*", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    # H800: the export variant of H100 with H100's compute and reduced NVLink (SXM and PCIe)
    (r"NVIDIA H800", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"NVIDIA H800 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    # NVIDIA HGX B200 datasheet (8 GPUs): 600 FP32, 18* PF TF32, 36* PF BF16/FP16, per GPU
    # and dense: 75 FP32, 1,125 TF32, 2,250 BF16/FP16
    (r"NVIDIA B200", {"fp32": 75.0, "tf32": 1125.0, "bf16": 2250.0, "fp16": 2250.0}),
    # NVIDIA RTX A6000 datasheet: 38.7 FP32, 309.7* tensor (sparse FP16): dense 154.8 BF16/FP16
    # with FP32 accumulate (professional cards: full rate), TF32 half of that
    (r"NVIDIA RTX A6000", {"fp32": 38.7, "tf32": 77.4, "bf16": 154.8, "fp16": 154.8}),
    # NVIDIA T4 datasheet: 8.1 FP32, 65 FP16 mixed precision (Turing: no TF32, no BF16)
    (r"Tesla T4", {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0}),
    # NVIDIA V100 datasheet: SXM2 15.7 FP32 / 125 tensor; PCIe 14 / 112; V100S PCIe 16.4 / 130
    (r"Tesla V100-SXM2-(16|32)GB", {"fp32": 15.7, "tf32": None, "bf16": None, "fp16": 125.0}),
    (r"Tesla V100-PCIE-(16|32)GB", {"fp32": 14.0, "tf32": None, "bf16": None, "fp16": 112.0}),
    (r"Tesla V100S-PCIE-32GB", {"fp32": 16.4, "tf32": None, "bf16": None, "fp16": 130.0}),
    # NVIDIA Ampere GA102 whitepaper, appendix A (RTX 3090): 35.6 FP32; tensor with FP32
    # accumulate (GeForce runs it at half the FP16-accumulate rate): 35.6 TF32, 71 BF16/FP16
    (r"NVIDIA GeForce RTX 3090", {"fp32": 35.6, "tf32": 35.6, "bf16": 71.0, "fp16": 71.0}),
    # GA102/GA104/GA106 GeForce (same whitepaper's per-SM ratios: TF32 = FP32, BF16/FP16 with FP32
    # accumulate = 2 x FP32) at NVIDIA's listed boost clocks: RTX 3080 29.8, 3070 20.3, 3060 12.7 FP32
    (r"NVIDIA GeForce RTX 3080( Ti)?", {"fp32": 29.8, "tf32": 29.8, "bf16": 59.5, "fp16": 59.5}),
    (r"NVIDIA GeForce RTX 3070", {"fp32": 20.3, "tf32": 20.3, "bf16": 40.6, "fp16": 40.6}),
    (r"NVIDIA GeForce RTX 3060", {"fp32": 12.7, "tf32": 12.7, "bf16": 25.5, "fp16": 25.5}),
    # NVIDIA Ada Lovelace whitepaper, appendix (RTX 4090): 82.6 FP32, 82.6 TF32, 165.2 BF16 and
    # FP16 with FP32 accumulate
    (r"NVIDIA GeForce RTX 4090", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2}),
    # Ada whitepaper appendix (RTX 4080): 48.7 FP32, 48.7 TF32, 97.5 BF16/FP16 with FP32 accumulate
    (r"NVIDIA GeForce RTX 4080", {"fp32": 48.7, "tf32": 48.7, "bf16": 97.5, "fp16": 97.5}),
    # RTX 4080 SUPER: 52.2 FP32 (NVIDIA spec page), tensor rates by the whitepaper's ratios
    (r"NVIDIA GeForce RTX 4080 SUPER", {"fp32": 52.2, "tf32": 52.2, "bf16": 104.4, "fp16": 104.4}),
    # RTX 4090 Laptop GPU: 9,728 CUDA cores at the highest boost NVIDIA lists (2.04 GHz; laptops
    # set lower power limits, so a given laptop reads lower): 39.7 FP32, same ratios
    (
        r"NVIDIA GeForce RTX 4090 Laptop GPU",
        {"fp32": 39.7, "tf32": 39.7, "bf16": 79.4, "fp16": 79.4},
    ),
    # RTX 4070 Ti: 40.1 FP32 (NVIDIA spec page); tensor rates by the Ada whitepaper's per-SM
    # ratios (FP16/BF16 with FP32 accumulate = 2 x FP32, TF32 = FP32): 60 SMs at 2.61 GHz
    (r"NVIDIA GeForce RTX 4070 Ti", {"fp32": 40.1, "tf32": 40.1, "bf16": 80.2, "fp16": 80.2}),
]


def gpu_spec_peak(name: str, dtype: str) -> Peak:
    """The datasheet peak for a GPU named as torch reports it, or why there is none."""
    for pattern, row in GPU_PEAKS_TFLOPS:
        if re.fullmatch(pattern, name.strip()):
            tflops = row.get(dtype)
            if tflops is None:
                return Peak(None, f"{name} has no {dtype} tensor-core rate on its datasheet")
            return Peak(tflops * T, f"datasheet, dense: {tflops:g} TFLOP/s {dtype} for '{name}'")
    return Peak(
        None, f"no datasheet entry for '{name}' (add it to nanobench/peaks.py GPU_PEAKS_TFLOPS)"
    )


# ---- Apple GPUs (MPS): FP32 TFLOP/s per GPU core, by chip generation --------------------------
# Apple states whole-chip FP32 figures for M1 and M2 (M1 8-core 2.6, M1 Max 32-core 10.4,
# M1 Ultra 64-core 21; M2 10-core 3.6, M2 Max 38-core 13.6, M2 Ultra 76-core 27.2): per core
# 0.325 and 0.36. For M3 and M4 Apple publishes no figure: 128 FP32 lanes x 2 (FMA) x the GPU
# clock reported by public measurements (about 1.38 and 1.47 GHz), marked "derived" below.
# Apple GPUs run fp16 at the fp32 rate; bf16 has no documented hardware rate (None).
APPLE_GPU_TFLOPS_PER_CORE: dict[str, tuple[float, str]] = {
    "M1": (0.325, "Apple's M1-family figures (2.6 TFLOP/s for 8 GPU cores)"),
    "M2": (0.36, "Apple's M2-family figures (3.6 TFLOP/s for 10 GPU cores)"),
    "M3": (0.353, "derived: 128 FP32 lanes x 2 x ~1.38 GHz per GPU core (Apple publishes none)"),
    "M4": (0.376, "derived: 128 FP32 lanes x 2 x ~1.47 GHz per GPU core (Apple publishes none)"),
}


def apple_gpu_spec_peak(chip: str, gpu_cores: int | None, dtype: str) -> Peak:
    """The GPU peak of an Apple chip named as the OS reports it ("Apple M2 Pro"), given its
    GPU core count (variants of one chip differ: an M1 Pro has 14 or 16)."""
    m = re.match(r"Apple (M[1-9])\b", chip.strip())
    if not m or m.group(1) not in APPLE_GPU_TFLOPS_PER_CORE:
        return Peak(None, f"no figure for Apple GPU '{chip}'")
    if not gpu_cores:
        return Peak(None, f"{chip}: GPU core count unknown, so no peak (variants differ)")
    if dtype not in ("fp32", "fp16"):
        return Peak(None, f"{chip}: no documented {dtype} rate for Apple GPUs")
    per_core, source = APPLE_GPU_TFLOPS_PER_CORE[m.group(1)]
    tflops = per_core * gpu_cores
    return Peak(
        tflops * T, f"{source}: {gpu_cores} GPU cores x {per_core:g} = {tflops:.2f} TFLOP/s {dtype}"
    )


# ---- CPUs: cores x clock x FLOPs per cycle -------------------------------------------------


def cpu_flops_per_cycle(
    flags: set[str],
    dtype: str,
    *,
    vendor: str = "",
    family: int | None = None,
    machine: str = "",
    system: str = "",
) -> tuple[float | None, str]:
    """FLOPs per cycle per core for dense matmul in `dtype`, from the CPU's flags.

    An FMA counts 2 FLOPs. Assumptions, stated because flags cannot tell them apart:
    - AVX-512: two 512-bit FMA units (Xeon Gold/Platinum, AMD Zen 5 server): 2 x 16 x 2 = 64
      fp32. AMD family 25 (Zen 4) splits 512-bit ops over 256-bit units: 32. Xeons with a
      single 512-bit FMA port reach half of 64, so there the spec MFU reads low.
    - AVX2 + FMA: two 256-bit FMA units (Haswell and later, Zen 2 and later): 2 x 8 x 2 = 32.
    - NEON: two 128-bit FMA pipes: 2 x 4 x 2 = 16 (Apple M-series have four: 32).
    - bf16: AMX tiles 1024 per cycle (Intel's figure for Sapphire Rapids); AVX-512 BF16's
      dot products (VDPBF16PS: two products per fp32 lane) twice the fp32 rate. Without either,
      bf16 matmuls go through fp32 conversions and have no honest spec figure: unknown.
    """
    if dtype in ("tf32", "fp16"):
        return None, f"{dtype} is not a CPU training dtype"
    if "avx512f" in flags:
        zen4 = vendor == "AuthenticAMD" and family == 25
        fp32, what = (
            (32, "AVX-512 on 256-bit units (AMD Zen 4)")
            if zen4
            else (64, "AVX-512, two 512-bit FMA units assumed")
        )
    elif "avx2" in flags and "fma" in flags:
        fp32, what = 32, "AVX2+FMA, two 256-bit FMA units"
    elif "asimd" in flags or "neon" in flags or machine in ("arm64", "aarch64"):
        fp32, what = (
            (32, "NEON, four 128-bit FMA pipes (Apple)")
            if system == "Darwin"
            else (16, "NEON, two 128-bit FMA pipes")
        )
    else:
        return None, "no AVX-512, AVX2+FMA or NEON flags: no FLOPs-per-cycle figure for this CPU"
    if dtype == "fp32":
        return float(fp32), what
    if "amx_bf16" in flags:
        return 1024.0, "AMX-BF16 tiles (Intel: 1024 bf16 FLOPs/cycle/core)"
    if "avx512_bf16" in flags:
        return 2.0 * fp32, f"AVX-512 BF16 dot products, 2 x the fp32 rate ({what})"
    return None, "no AMX or AVX-512 BF16: bf16 runs through fp32 conversions here, no spec figure"


def cpu_spec_peak(dtype: str, *, threads: int | None = None) -> Peak:
    """cores x clock x FLOPs/cycle for this machine's CPU. Cores = min(physical cores, torch
    threads): a run limited to 1 thread can use one core's peak, not the socket's."""
    per_cycle, what = cpu_flops_per_cycle(
        set(host.cpu_flags()),
        dtype,
        vendor=host.cpu_vendor(),
        family=host.cpu_family(),
        machine=platform.machine().lower(),
        system=platform.system(),
    )
    if per_cycle is None:
        return Peak(None, what)
    clock, clock_note = host.cpu_clock_hz()
    if clock is None:
        return Peak(None, clock_note)
    physical, which = host.compute_cores()
    if not physical:
        return Peak(None, "physical core count unknown")
    cores = min(physical, threads) if threads else physical
    return Peak(
        cores * clock * per_cycle,
        f"spec: {cores} cores (of {physical} {which}; torch threads {threads}) x {clock_note} x "
        f"{per_cycle:g} {dtype} FLOPs/cycle ({what})",
    )


def spec_peak(device, precision) -> Peak:
    """The datasheet/spec peak for `device` (a Device) running `precision` (a Precision)."""
    import torch

    if device.kind == "cuda":
        return gpu_spec_peak(device.name, precision.name)
    if device.kind == "cpu":
        return cpu_spec_peak(precision.name, threads=torch.get_num_threads())
    if (
        device.kind == "mps"
    ):  # the chip as the CPU brand names it ("Apple M2 Pro"); cores probed only here
        return apple_gpu_spec_peak(host.cpu_model(), host.apple_gpu_cores(), precision.name)
    return Peak(None, f"no datasheet table for {device.kind} devices ({device.name})")


# ---- measured: a short matmul calibration, cached per machine --------------------------------

CALIBRATION_N = {"cuda": 8192, "mps": 4096}  # square matmul side; the CPU's is chosen by speed
CPU_REP_TARGET_S = 0.02  # CPU: the largest n (1024 ... 4096) whose matmul takes about this long
CALIBRATION_BUDGET_S = 0.5  # one round's timed repetitions stop after this (at least 5)
CALIBRATION_ROUNDS = (
    4  # at most; two consecutive rounds within 10% end it (best-of rides out neighbours)
)
CALIBRATION_CAP_S = (
    3.0  # hard cap on one calibration, all rounds: a slow dtype gets fewer repetitions
)


def cache_path() -> Path:
    return files.cache_dir() / "peaks.json"


def _cache_key(device, precision) -> str:
    """device name + dtype + torch version (+ threads on the CPU, where they set the rate).

    A GPU's key also holds its ordinal and UUID: two GPUs of one machine, even of one model,
    never share an entry, so a figure taken on one (or a bad one, timed on the wrong
    device) cannot stand for another."""
    import torch

    key = f"{device.name}|{precision.name}|torch {torch.__version__}"
    if device.kind == "cuda":
        return key + f"|{device}|{device.uuid or 'uuid unknown'}"
    return key + f"|threads {torch.get_num_threads()}" if device.kind == "cpu" else key


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or damaged: re-measure and rewrite


def _usable(entry) -> bool:
    """A cache entry with a positive rate (a damaged or hand-edited one is measured again)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("flops"), (int, float))
        and entry["flops"] > 0
    )


def _store(path: Path, key: str, entry: dict) -> None:
    data = _load_cache(path)
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only home still gets its measurement, just not cached


def _cpu_calibration_n(torch, dtype) -> int:
    """The CPU matmul side for `dtype`, sized by that dtype's own speed here: the largest n
    (256 ... 4096, doubling) whose matmul takes about CPU_REP_TARGET_S or less. Big enough to
    reach the BLAS's full rate (on this 2-core VM the fp32 rate is flat from 256^2 to 2048^2),
    small enough that a 0.5 s round holds dozens of repetitions, so that the best of them is
    one no noisy neighbour interrupted. An emulated dtype (bf16 without AVX-512 BF16 or AMX:
    ~1 GFLOP/s against ~140 in fp32) stays at 256, where one repetition is ~35 ms, not the 15 s
    of fp32's 2048."""
    n = 256
    while n < 4096:
        a = torch.ones(n, n, dtype=dtype)
        torch.matmul(a, a)  # first touch, library init
        t0 = time.perf_counter()
        torch.matmul(a, a)
        if (
            time.perf_counter() - t0
        ) * 8 > CPU_REP_TARGET_S:  # twice the side: eight times the work
            break
        n *= 2
    return n


def calibrate(
    device,
    precision,
    n: int | None = None,
    budget_s: float | None = None,
    cap_s: float | None = None,
) -> dict:
    """Time (n, n) @ (n, n) matmuls in `precision` on `device`; return the best rate seen.

    The precision's matmul flags hold during the timing (fp32: TF32 off, tf32: on) and are
    restored afterwards; bf16/fp16 multiply tensors of that dtype, which is what autocast
    does for the model's linear layers. At least 5 repetitions, unless `cap_s` (default
    CALIBRATION_CAP_S) runs out first; then at least 2.
    """
    import torch

    t_cap = time.perf_counter() + (CALIBRATION_CAP_S if cap_s is None else cap_s)
    n = n or CALIBRATION_N.get(device.kind) or _cpu_calibration_n(torch, precision.dtype)
    budget_s = CALIBRATION_BUDGET_S if budget_s is None else budget_s
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device.torch, dtype=precision.dtype)  # (n, n)
    b = torch.randn(n, n, generator=gen).to(device=device.torch, dtype=precision.dtype)
    c = torch.empty_like(a)  # written in place: no allocation (page faults) inside the timing
    with precision.matmul_flags():
        timer = device.step_timer()
        per_call = 10 if device.kind in ("cuda", "mps") else 1  # GPU: amortise launch gaps
        for _ in range(2):  # warm-up: library init, kernel selection, thread pool start
            torch.matmul(a, b, out=c)
        device.sync()
        best_s, reps, t_end = float("inf"), 0, time.perf_counter() + budget_s
        while (reps < 5 and (reps < 2 or time.perf_counter() < t_cap)) or (
            time.perf_counter() < t_end and reps < 100
        ):
            timer.start()
            for _ in range(per_call):
                torch.matmul(a, b, out=c)
            best_s = min(best_s, timer.seconds([timer.stop()])[0] / per_call)
            reps += 1
    return {
        "flops": 2 * n**3 / best_s,
        "n": n,
        "reps": reps,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _calibrate_until_stable(device, precision) -> dict:
    """Rounds of `calibrate` until two in a row agree within 10% (a shared machine's
    neighbours can halve one round); the best round is kept."""
    t_cap = time.perf_counter() + CALIBRATION_CAP_S
    rounds = [calibrate(device, precision)]
    while len(rounds) < CALIBRATION_ROUNDS and time.perf_counter() < t_cap:
        rounds.append(
            calibrate(device, precision, n=rounds[0]["n"], cap_s=t_cap - time.perf_counter())
        )
        a, b = rounds[-2]["flops"], rounds[-1]["flops"]
        if abs(a - b) <= 0.1 * max(a, b):
            break
    best = max(rounds, key=lambda r: r["flops"])
    return dict(best, reps=sum(r["reps"] for r in rounds), rounds=len(rounds))


def measured_peak(device, precision, recalibrate: bool = False) -> Peak:
    """The best matmul rate for `precision` on `device`, from the per-machine cache or measured
    now (well under a second on a CPU; `nanobench env --calibrate` re-measures)."""
    import torch

    name, dtype = device.name, precision.name
    key, path = _cache_key(device, precision), cache_path()
    entry = None if recalibrate else _load_cache(path).get(key)
    how = "cached"
    if not _usable(entry):
        try:
            entry = _calibrate_until_stable(device, precision)
        except (RuntimeError, TypeError) as exc:  # dtype unsupported by the device's kernels
            return Peak(
                None, f"calibration failed for {dtype} on {name}: {str(exc).splitlines()[0]}"
            )
        _store(path, key, entry)
        how = "measured now"
    threads = f", {torch.get_num_threads()} threads" if device.kind == "cpu" else ""
    return Peak(
        float(entry["flops"]),
        f"measured: best {entry['n']}^2 {dtype} matmul of {entry['reps']} in "
        f"{entry.get('rounds', 1)} round(s){threads} "
        f"({how}, {entry['measured_at']}; {path})",
    )


def cached_peak(device, precision) -> Peak:
    """The cached calibration of (device, precision), never measuring: for readers of another
    program's log (ingest), which must not start a calibration."""
    entry = _load_cache(cache_path()).get(_cache_key(device, precision))
    if _usable(entry):
        return Peak(
            float(entry["flops"]),
            f"measured: cached, {entry.get('measured_at', '?')}; {cache_path()}",
        )
    return Peak(
        None,
        f"no cached calibration of {precision.name} on {device.name} (`nanobench env --calibrate`)",
    )


def emulated_slowdown(device, precision) -> float | None:
    """How many times slower `precision`'s matmuls run than fp32's on `device`, where the
    device computes it without hardware of its own (bf16 on a CPU without AVX-512 BF16, AMX
    or Arm BF16: `Device.native_bf16` False); None where it is native, not a CPU dtype
    question, or a calibration failed. From the cached calibrations (measured now if absent,
    a few seconds at most). One answer for `run`'s warning and for device matrices."""
    pair = _emulated_pair(device, precision)
    return pair[0].flops / pair[1].flops if pair else None


def _emulated_pair(device, precision) -> tuple[Peak, Peak] | None:
    """(fp32's measured peak, precision's) on a device that emulates `precision`, else None."""
    from nanobench.measure.precision import Precision

    if device.kind != "cpu" or precision.name != "bf16" or device.native_bf16:
        return None
    fast, slow = measured_peak(device, Precision("fp32")), measured_peak(device, precision)
    return (fast, slow) if fast.flops and slow.flops else None


def emulation_warning(device, precision) -> str | None:
    """One line for the start of a run whose dtype this device emulates, with the measured
    ratio; None where the dtype is native (or nothing could be measured)."""
    pair = _emulated_pair(device, precision)
    if not pair:
        return None
    fast, slow = pair[0].flops / 1e9, pair[1].flops / 1e9
    return (
        f"warning: {precision.name} on this CPU is emulated (no AVX-512 BF16, AMX or Arm BF16): matmul "
        f"{slow:.3g} vs {fast:.3g} GFLOP/s in fp32, about {fast / slow:.0f}x slower; expect every step "
        f"several times slower than in fp32 (--dtype fp32 is the fast choice here)"
    )


def forget_measured(device, precision) -> None:
    """Drop the cached calibration of (device, precision): the next run measures again. For a
    peak that a training run beat, i.e. one calibrated while something else had the cores."""
    path = cache_path()
    data = _load_cache(path)
    if data.pop(_cache_key(device, precision), None) is not None:
        try:
            files.write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
        except OSError:
            pass


def spec_for_mfu(spec: Peak, measured: Peak) -> Peak:
    """The spec peak the `mfu` column divides by: none when a measurement beats it.

    A datasheet or formula figure that this machine's own matmul exceeds is provably too
    low, and an MFU against it would read high; a null MFU is better than a wrong one.
    """
    if spec.flops and measured.flops and measured.flops > spec.flops:
        return Peak(
            None,
            f"spec {spec.flops / 1e9:.0f} GFLOP/s is below the measured "
            f"{measured.flops / 1e9:.0f} GFLOP/s ({spec.source}); see mfu_measured",
        )
    return spec


def consistency_note(spec: Peak, measured: Peak) -> str | None:
    """A warning when the measured matmul beats the spec figure: then the spec's inputs are
    off (most often a VM showing its base clock, not the boost clock) and its MFU reads high."""
    if spec.flops and measured.flops and measured.flops > spec.flops:
        return (
            f"measured peak {measured.flops / 1e9:.0f} GFLOP/s exceeds the spec {spec.flops / 1e9:.0f} GFLOP/s: "
            f"the spec's clock or FLOPs/cycle is too low here; trust mfu_measured"
        )
    return None
