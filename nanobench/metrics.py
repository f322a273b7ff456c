"""Measurement: step timers, model FLOPs, and the buffer that turns per-step device values
into rows with a single host read per window.

Timers share one shape: `start()`, `stop() -> handle`, `seconds(handles) -> [float]`.
The CUDA timer's handles are event pairs, read only when `seconds` is called, so timing
adds no host synchronisation per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


class PerfCounterTimer:
    """Wall-clock time around a step on a device whose work is finished when `sync` returns."""

    def __init__(self, sync):
        self._sync = sync
        self._t0 = 0.0

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self._sync()
        return time.perf_counter() - self._t0

    def seconds(self, handles: list) -> list[float]:
        return list(handles)


class CudaEventTimer:
    """CUDA events around a step: the GPU's own clock, read later in a batch."""

    def __init__(self, device):
        import torch

        self._torch = torch
        self._device = device
        self._start = None

    def _event(self):
        return self._torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start = self._event()
        self._start.record()

    def stop(self):
        end = self._event()
        end.record()
        return (self._start, end)

    def seconds(self, handles: list) -> list[float]:
        if handles:
            handles[-1][1].synchronize()  # events complete in order: the last one covers all
        return [start.elapsed_time(end) / 1e3 for start, end in handles]  # ms -> s


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_size: int, block_size: int) -> int:
    """Training FLOPs per token, nanoGPT/PaLM appendix B: 6N + 12·L·H·Q·T.

    6N: forward (2N) and backward (4N) matmuls over the non-embedding parameters N (the tied
    token embedding counts once: it is the LM head's matmul). 12·L·H·Q·T: attention scores
    and weighted values, forward and backward, at the full context T. Causal masking is not
    discounted, as in nanoGPT, so MFU figures stay comparable with its own.
    """
    return 6 * n_params + 12 * n_layer * n_head * head_size * block_size


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


def to_host(pending: list[PendingStep], timer) -> list[dict]:
    """Read a window of steps to host values: one transfer for losses and norms together."""
    if not pending:
        return []
    import torch

    values = torch.stack([torch.stack([p.loss.float(), p.grad_norm.float()]) for p in pending]).tolist()
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
        }
        for p, (loss, norm), step_s in zip(pending, values, seconds)
    ]


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
