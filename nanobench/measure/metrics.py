"""Measurement: step timers, model FLOPs, and the buffer that turns per-step device values
into rows with a single host read per window.

Timers share one shape: `start()`, `stop() -> handle`, `seconds(handles) -> [float]`.
The CUDA timer's handles are event pairs, read only when `seconds` is called, so timing
adds no host synchronisation per step.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass


class PerfCounterTimer:
    """Wall-clock time around a step on a device whose work is finished when `sync` returns."""

    def __init__(self, sync, clock=time.perf_counter):
        self._sync = sync
        self._clock = clock  # seconds; a test passes its own
        self._t0 = 0.0

    def start(self) -> None:
        self._sync()
        self._t0 = self._clock()

    def stop(self) -> float:
        self._sync()
        return self._clock() - self._t0

    def seconds(self, handles: list) -> list[float]:
        return list(handles)


class CudaEventTimer:
    """CUDA events around a step: the GPU's own clock, read later in a batch.

    Events are recorded on the current stream of the run's device (`device`, a
    torch.device), not of whichever device is current in the process: a run on cuda:1
    queues its kernels on cuda:1's stream, and events on cuda:0's would time nothing."""

    def __init__(self, device):
        import torch

        self._torch = torch
        self._device = device
        self._start = None

    def _recorded(self):
        event = self._torch.cuda.Event(enable_timing=True)
        event.record(self._torch.cuda.current_stream(self._device))
        return event

    def start(self) -> None:
        self._start = self._recorded()

    def stop(self):
        return (self._start, self._recorded())

    def seconds(self, handles: list) -> list[float]:
        if handles:
            handles[-1][1].synchronize()  # events complete in order: the last one covers all
        return [start.elapsed_time(end) / 1e3 for start, end in handles]  # ms -> s


def flops_per_token(
    n_params: int, n_layer: int, n_head: int, head_size: int, block_size: int
) -> int:
    """Training FLOPs per token, nanoGPT/PaLM appendix B: 6N + 12·L·H·Q·T.

    6N: forward (2N) and backward (4N) matmuls over the non-embedding parameters N (the tied
    token embedding counts once: it is the LM head's matmul). 12·L·H·Q·T: attention scores
    and weighted values, forward and backward, at the full context T. Causal masking is not
    discounted, as in nanoGPT, so MFU figures stay comparable with its own.

    Cross-checked in tests/test_flops.py against torch.utils.flop_counter.FlopCounterMode
    under the MATH attention backend (within 0.7% for the shipped scenarios; the difference
    is LayerNorm weights, which N counts and no matmul uses). Under the default backend the
    counter undercounts: the fused CPU attention kernel
    (`_scaled_dot_product_flash_attention_for_cpu`) has no FLOP formula upstream and counts
    as 0 (pytorch/pytorch#195460).
    """
    return 6 * n_params + 12 * n_layer * n_head * head_size * block_size


def work_per_iter(train, model, n_params: int) -> tuple[int, int]:
    """(tokens, training FLOPs) of one optimizer step of the whole job, from the recipe.

    Tokens: batch_size x grad_accum x block_size. The recipe's batch is the job's: under
    `--nproc` every rank trains its share of each micro-batch, so the world size does not
    multiply it (a rank sees batch_size / world). `train` and `model` are a scenario's
    TrainConfig and ModelConfig (anything with those fields).
    """
    tokens = train.batch_size * train.grad_accum * model.block_size
    per_token = flops_per_token(
        n_params, model.n_layer, model.n_head, model.n_embd // model.n_head, model.block_size
    )
    return tokens, per_token * tokens


@dataclass
class PendingStep:
    """A step whose loss, norm and timing may still live on the device."""

    it: int
    lr: float
    loss: object  # 0-d tensor
    grad_norm: object  # 0-d tensor
    timing: object  # timer handle
    wall_time_s: float
    mem_bytes: int
    mem_peak_bytes: int
    mem_reserved_bytes: int | None = None  # CUDA caching allocator; None elsewhere


def to_host(pending: list[PendingStep], timer) -> list[dict]:
    """Read a window of steps to host values: one transfer for losses and norms together."""
    if not pending:
        return []
    import torch

    values = torch.stack(
        [torch.stack([p.loss.float(), p.grad_norm.float()]) for p in pending]
    ).tolist()
    seconds = timer.seconds([p.timing for p in pending])
    return [
        {
            "iter": p.it,
            "loss": loss,
            "lr": p.lr,
            "step_time_s": step_s,
            "grad_norm": norm,
            "wall_time_s": p.wall_time_s,
            "mem_bytes": p.mem_bytes,
            "mem_peak_bytes": p.mem_peak_bytes,
            "mem_reserved_bytes": p.mem_reserved_bytes,
        }
        for p, (loss, norm), step_s in zip(pending, values, seconds)
    ]


# ---- energy -----------------------------------------------------------------------------------
# Meters share one shape: `read_j()` -> joules since the meter was made (or None), plus
# `source` and `reason` for the metadata. They are read once per host-read window, not per
# step: a read is a driver call (NVML) or a sysfs read (RAPL).


class NoEnergyMeter:
    """No readable counter on this device; `reason` says why, for the metadata."""

    source = None

    def __init__(self, reason: str):
        self.reason = reason

    def read_j(self) -> float | None:
        return None

    def describe(self) -> dict:
        return {"source": None, "reason": self.reason}


class NvmlEnergyMeter:
    """NVML's total energy counter (mJ since the driver loaded; Volta and later), differenced."""

    source = "nvml"
    reason = None

    def __init__(self, nvml, handle):
        self._read = lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # mJ, 64-bit
        self._start_mj = self._read()

    def read_j(self) -> float | None:
        try:
            return (self._read() - self._start_mj) / 1e3
        except Exception:  # pynvml.NVMLError mid-run: this window's rows get null energy
            return None

    def describe(self) -> dict:
        return {
            "source": "nvml",
            "reason": None,
            "what": "GPU board energy (nvmlDeviceGetTotalEnergyConsumption)",
        }


class RaplEnergyMeter:
    """Intel/AMD RAPL package counters from powercap sysfs, summed over packages.

    Each `energy_uj` counts microjoules and wraps to 0 after `max_energy_range_uj` (about
    262 kJ, minutes at full load on a big socket): a read lower than the last one means one
    wrap, so reads must come more often than one wrap period (every host read does).
    """

    source = "rapl"
    reason = None

    def __init__(self, zones: list):
        self._zones = [
            (z / "energy_uj", int((z / "max_energy_range_uj").read_text())) for z in zones
        ]
        self._names = [z.name for z in zones]
        self._last = [int(path.read_text()) for path, _ in self._zones]
        self._total_uj = 0

    def read_j(self) -> float:
        for i, (path, max_range) in enumerate(self._zones):
            now = int(path.read_text())
            self._total_uj += rapl_delta_uj(self._last[i], now, max_range)
            self._last[i] = now
        return self._total_uj / 1e6

    def describe(self) -> dict:
        return {
            "source": "rapl",
            "reason": None,
            "zones": self._names,
            "what": "CPU package energy (powercap energy_uj)",
        }


def rapl_delta_uj(last: int, now: int, max_range_uj: int) -> int:
    """Energy between two reads of a counter that wraps to 0 past max_range_uj."""
    return now - last if now >= last else now + (max_range_uj - last)


# Where Linux's powercap is absent by design: why the CPU's energy is not read there.
NO_CPU_ENERGY = {
    "darwin": "macOS exposes CPU energy only through powermetrics, which needs root: not read",
    "win32": "Windows has no CPU energy counter readable without a kernel driver (RAPL is in MSRs): not read",
}


def rapl_meter(powercap_root="/sys/class/powercap"):
    """A RAPL meter over the package zones (`intel-rapl:N`, also AMD's), or a NoEnergyMeter
    that says why not (absent in VMs; root-only since Linux 5.10, CVE-2020-8694)."""
    from pathlib import Path

    root = Path(powercap_root)
    if sys.platform in NO_CPU_ENERGY:
        return NoEnergyMeter(NO_CPU_ENERGY[sys.platform])
    if not root.is_dir():
        return NoEnergyMeter(f"{root} is absent (no RAPL: a VM, or not Linux)")
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not zones:
        return NoEnergyMeter(f"no RAPL package zones (intel-rapl:N) under {root}")
    try:
        return RaplEnergyMeter(zones)
    except PermissionError:
        return NoEnergyMeter(
            f"{zones[0]}/energy_uj is readable only by root (Linux 5.10+); "
            f"run as root or `sudo chmod o+r {root}/intel-rapl:*/energy_uj`"
        )
    except (OSError, ValueError) as exc:
        return NoEnergyMeter(f"RAPL unreadable: {exc}")


def interpolate_energy(
    rows: list[dict], prev: tuple[float, float], now: tuple[float, float]
) -> None:
    """Fill rows' cumulative `energy_j` by linear interpolation in wall_time_s between two
    samples (wall_time_s, joules): the previous host read and this one. Exact at the sample
    points; in between it assumes constant power over one read window (10 steps on a GPU)."""
    (w0, e0), (w1, e1) = prev, now
    for row in rows:
        w = row.get("wall_time_s")
        frac = 1.0 if w is None or w1 <= w0 else min(1.0, max(0.0, (w - w0) / (w1 - w0)))
        row["energy_j"] = e0 + frac * (e1 - e0)


class Recorder:
    """Rows read from the device become result rows here: cumulative train time and tokens,
    tokens/s, MFU against both peaks, energy, device memory and the evaluation losses. The
    rows go to the writer (rank 0 only; None elsewhere), and the running totals that a
    summary and a checkpoint need are kept in `state`.

    Peaks are whole-job FLOP/s (one device's peak times the devices in the job), None when
    unknown: MFU is then null, never a guess.
    """

    TOTALS = ("train_time_s", "tokens", "vals", "last_loss")  # what a checkpoint carries on

    def __init__(
        self,
        *,
        writer,
        tokens_per_iter: int,
        flops_per_iter: float,
        spec_peak_flops: float | None,
        measured_peak_flops: float | None,
        warmup_iters: int,
        energy,
        device_memory,
        t0: float,
        ddp=None,
        totals: dict | None = None,
        noise=None,
        clock=time.perf_counter,
    ):
        self.writer = writer
        self.clock = clock  # the run's wall clock (t0 is on it); a test passes its own
        self.noise = (
            noise  # a noise.Sampler: marks a window's last row with a reading, ~1 per second
        )
        self.tokens_per_iter = tokens_per_iter
        self.flops_per_iter = flops_per_iter
        self.spec_peak_flops = spec_peak_flops
        self.measured_peak_flops = measured_peak_flops
        self.warmup_iters = warmup_iters
        self.energy = energy
        self.device_memory = device_memory
        self.t0 = t0
        self.ddp = ddp
        self.evals: dict[
            int, dict
        ] = {}  # iteration -> {"train": loss, "val": loss}, until recorded
        self.state = {
            "train_time_s": 0.0,
            "tokens": 0,
            "rows": 0,
            "step_times": [],
            "vals": [],
            "last_loss": None,
            "first_step_s": None,
            "energy_j": None,
        }
        # a resumed run's times and tokens continue its parent's
        self.state.update({k: v for k, v in (totals or {}).items() if k in self.TOTALS})
        self._energy_at = (clock() - t0, 0.0)  # the energy counter starts with this run

    def _mfu(self, step_s, peak_flops):
        return self.flops_per_iter / step_s / peak_flops if step_s and peak_flops else None

    def record(self, rows: list[dict]) -> list[dict]:
        state = self.state
        if self.ddp and rows and rows[0].get("step_time_s") is not None:
            # step times of every rank: (world, window)
            per_rank = self.ddp.gather_step_times([r["step_time_s"] for r in rows])
            for i, row in enumerate(rows):  # an iteration lasts as long as its slowest rank
                row["rank_step_time_s"] = [times[i] for times in per_rank]
                row["step_time_s"] = max(row["rank_step_time_s"])
        # one counter read per window
        energy_now = (
            self.clock() - self.t0,
            self.energy.read_j(),
        )
        if energy_now[1] is not None and rows:
            interpolate_energy(rows, self._energy_at, energy_now)
            self._energy_at, state["energy_j"] = energy_now, energy_now[1]
        mem_device = self.device_memory() if rows else None
        for row in rows:
            row["mem_device_bytes"] = mem_device
            step_s = row.get("step_time_s")
            if step_s is not None:
                state["train_time_s"] += step_s
                state["tokens"] += self.tokens_per_iter
            row["train_time_s"] = state["train_time_s"]
            row["tokens"] = state["tokens"]
            row["tokens_per_s"] = self.tokens_per_iter / step_s if step_s else None
            row["mfu"] = self._mfu(step_s, self.spec_peak_flops)
            row["mfu_measured"] = self._mfu(step_s, self.measured_peak_flops)
            row["warmup"] = row["iter"] < self.warmup_iters
            if step_s is not None:
                state["first_step_s"] = state["first_step_s"] or step_s
                state["last_loss"] = row["loss"]
                if not row["warmup"]:
                    state["step_times"].append(step_s)
            ev = self.evals.pop(row["iter"], None)
            if ev:
                row["eval_train_loss"], row["eval_val_loss"] = ev["train"], ev["val"]
                state["vals"].append((row["iter"], ev["val"]))
        if self.noise:
            self.noise.mark(rows)
        if self.writer:
            self.writer.append(rows)
        state["rows"] += len(rows)
        return rows

    def totals(self) -> dict:
        """What a checkpoint needs to continue the cumulative columns."""
        return {k: self.state[k] for k in self.TOTALS} | {"wall_time_s": self.clock() - self.t0}

    def summary(self, compiled: bool = False) -> dict:
        """Headline numbers for the metadata and the command line (warm-up steps excluded).

        compile_time_s (with --compile): the first step's time minus the median steady step,
        i.e. what tracing and compiling the training graph cost. Compiling the evaluation
        graph happens in the first evaluation, outside step times; it shows in wall_time_s.
        """
        import statistics

        state = self.state
        steps, vals = state["step_times"], state["vals"]
        median_s = statistics.median(steps) if steps else None
        first_s = state["first_step_s"]
        return {
            "iterations": state["tokens"] // self.tokens_per_iter,
            "final_loss": state["last_loss"],
            "final_val_loss": vals[-1][1] if vals else None,
            "final_val_iter": vals[-1][0] if vals else None,
            "best_val_loss": min(v for _, v in vals) if vals else None,
            "median_step_time_s": median_s,
            "median_tokens_per_s": self.tokens_per_iter / median_s if median_s else None,
            "train_time_s": state["train_time_s"],
            "first_step_time_s": first_s,
            "compile_time_s": max(0.0, first_s - median_s)
            if compiled and first_s and median_s
            else None,
            "energy_j": state["energy_j"],  # None: no counter was readable
            "mfu": self._mfu(median_s, self.spec_peak_flops),  # at the median step
            "mfu_measured": self._mfu(median_s, self.measured_peak_flops),
        }
