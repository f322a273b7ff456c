"""The device a run trains on, resolved once: `parse_device` reads a device string,
`DeviceRequest.resolve` finds it on this machine, and the resulting `Device` answers every
question that differs between devices (synchronisation, timers, memory, energy, random
streams, optimizer choice). Every `if cuda` of the training path lives here or in the
measuring modules beside it (precision, peaks, environment); nothing re-parses a device
string or branches on a bare torch.device.

Nothing is probed at import time; `resolve` asks the hardware when called.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch

from nanobench import process
from nanobench.errors import InputError
from nanobench.measure import host, metrics, nvml

_SYNTAX = re.compile(r"(cpu|cuda|mps)(?::(\d+))?|auto")
_USE = "use cpu, cuda, cuda:N, mps or auto"
MPS_NAME = "Apple GPU (mps)"  # torch reports no model name for Apple GPUs


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_kinds() -> list[str]:
    kinds = ["cpu"]
    if torch.cuda.is_available():
        kinds.append("cuda")
    if _mps_available():
        kinds.append("mps")
    return kinds


@dataclass(frozen=True)
class DeviceRequest:
    """A device string as the user wrote it (`text`, what metadata records), read once:
    kind is cpu, cuda, mps or auto; index is N of cuda:N, else None."""

    text: str
    kind: str
    index: int | None = None

    def resolve(self) -> Device:
        """The device this request names on this machine; InputError naming it if absent."""
        if self.kind == "auto":
            if torch.cuda.is_available():
                return Device.cuda(None)  # the current CUDA device, as torch.device("cuda")
            return Device("mps", None, MPS_NAME) if _mps_available() else Device.cpu()
        if self.kind == "cpu":
            return Device.cpu()
        here = ", ".join(available_kinds())
        if self.kind == "cuda":
            if not torch.cuda.is_available():
                raise InputError(
                    f"--device {self.text}: CUDA is not available on this machine (devices here: {here})"
                )
            index = self.index or 0
            if index >= torch.cuda.device_count():
                raise InputError(
                    f"--device {self.text}: only {torch.cuda.device_count()} CUDA device(s) here"
                )
            return Device.cuda(index)
        if not _mps_available():
            raise InputError(
                f"--device {self.text}: MPS is not available on this machine (devices here: {here})"
            )
        return Device("mps", None, MPS_NAME)


def devices_here() -> list[Device]:
    """Every device of this machine, for `--device all`: the CPU, each CUDA GPU, the Apple GPU."""
    found = [Device.cpu()] + [Device.cuda(i) for i in range(cuda_device_count())]
    return found + ([Device("mps", None, MPS_NAME)] if _mps_available() else [])


def parse_device(text: str) -> DeviceRequest:
    """`cpu`, `cuda`, `cuda:N`, `mps` or `auto` -> a DeviceRequest (syntax only: nothing probed).
    The one reader of device strings: run, resume, parity and the torchrun launcher use it."""
    match = _SYNTAX.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InputError(f"--device {text}: not a device ({_USE})")
    kind = match.group(1) or "auto"
    return DeviceRequest(text, kind, int(match.group(2)) if match.group(2) is not None else None)


def resolve(text: str) -> Device:
    """parse_device(text).resolve(): a device string straight to the Device it names here."""
    return parse_device(text).resolve()


@dataclass(frozen=True)
class Device:
    """One device of this machine, with what it can do.

    kind: cpu, cuda or mps; index: the CUDA ordinal (None: the current device, or not CUDA);
    name: the GPU model or the CPU model; compute_capability (CUDA) and native_bf16 (bf16
    matmuls in hardware: CUDA 8.0+, a CPU with AMX, AVX-512 BF16 or Arm BF16) are what the
    precision checks and the peaks ask; uuid (CUDA) tells two GPUs of one model apart. Tests
    build a CUDA Device directly, to stand for a GPU that is not here: no field is probed
    after construction except through torch calls on use.
    """

    kind: str
    index: int | None
    name: str
    compute_capability: tuple[int, int] | None = None
    native_bf16: bool = False
    uuid: str | None = None

    @classmethod
    def cpu(cls) -> Device:
        return cls("cpu", None, host.cpu_model(), native_bf16=host.cpu_native_bf16())

    @classmethod
    def cuda(cls, index: int | None) -> Device:
        """CUDA device `index` (None: the current one) with its name and capabilities.

        native_bf16 comes from this device's own compute capability (8.0+: Ampere's bf16
        tensor cores), not `torch.cuda.is_bf16_supported()`, which asks the *current*
        device and answers True on a T4 or V100, where bf16 runs emulated."""
        where = torch.device("cuda") if index is None else torch.device("cuda", index)
        capability = tuple(torch.cuda.get_device_capability(where))
        uuid = getattr(torch.cuda.get_device_properties(where), "uuid", None)
        return cls(
            "cuda",
            index,
            torch.cuda.get_device_name(where),
            capability,
            capability >= (8, 0),
            str(uuid) if uuid is not None else None,
        )

    def __str__(self) -> str:
        return str(self.torch)

    @property
    def torch(self) -> torch.device:
        """The torch.device to put tensors on."""
        return (
            torch.device(self.kind) if self.index is None else torch.device(self.kind, self.index)
        )

    @property
    def supports_tf32(self) -> bool:
        """TF32 tensor cores: NVIDIA compute capability 8.0+ (Ampere and later)."""
        return (
            self.kind == "cuda"
            and self.compute_capability is not None
            and self.compute_capability[0] >= 8
        )

    # ---- data parallel ---------------------------------------------------------------------

    def for_rank(self, local_rank: int) -> Device:
        """A torchrun worker's device: its own GPU (cuda:LOCAL_RANK); the CPU is shared."""
        if self.kind != "cuda":
            return self
        torch.cuda.set_device(torch.device("cuda", local_rank))
        return Device.cuda(local_rank)

    @property
    def ddp_backend(self) -> str:
        """NCCL for CUDA ranks on Linux (NCCL is Linux-only); gloo elsewhere, CUDA on Windows included."""
        return "nccl" if self.kind == "cuda" and sys.platform.startswith("linux") else "gloo"

    @property
    def ddp_device_ids(self) -> list[int] | None:
        return [self.index] if self.kind == "cuda" else None

    def devices_in_job(self, world_size: int) -> int:
        """How many devices' peaks a data-parallel job can use: one GPU per rank; on the CPU
        all ranks share the one processor whose peak is already the whole machine's."""
        return world_size if self.kind == "cuda" else 1

    # ---- the training step -----------------------------------------------------------------

    @property
    def fused_adamw(self) -> bool:
        """Whether to ask AdamW for its fused kernel (one kernel over all parameters).

        CUDA and CPU have one (torch >= 2.4): on this project's 2-core reference machine it
        takes the CPU recipe from 31.2 to 29.9 ms/iter, side by side (docs/performance.md).
        MPS keeps torch's own default (the for-loop: torch 2.13 has no foreach kernels there;
        `--optimizer fused` asks for its fused one). What ran is recorded in each run's
        metadata (`optimizer.implementation`).
        """
        return self.kind in ("cuda", "cpu")

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a CPU batch to the device without stalling the host.

        A copy from pageable memory makes the host wait until the GPU has drained the work
        queued before it: a hidden sync point in every step. From pinned memory the copy is
        queued and the host runs ahead. Each step's batch is a fresh tensor, so no buffer is
        reused early.
        """
        if self.kind == "cuda":
            # A non-contiguous view (a rank's slice x[:, shard]) would be staged through
            # pageable memory by the copy, and the host would wait every step after all.
            return batch.contiguous().pin_memory().to(self.torch, non_blocking=True)
        return batch.to(self.torch)

    def sync(self) -> None:
        if self.kind == "cuda":
            torch.cuda.synchronize(self.torch)
        elif self.kind == "mps":
            torch.mps.synchronize()

    def step_timer(self):
        """CUDA events on CUDA (no host sync per step); perf_counter after a sync elsewhere."""
        if self.kind == "cuda":
            return metrics.CudaEventTimer(self.torch)
        return metrics.PerfCounterTimer(self.sync)

    @property
    def host_read_interval(self) -> int:
        """Iterations between host reads of losses and timings.

        On the CPU every value is already on the host, so read every step. On a GPU each read
        is a CPU-GPU sync that stalls the launch queue, so values are read in batches.
        """
        return 1 if self.kind == "cpu" else 10

    # ---- memory ----------------------------------------------------------------------------

    def memory_sample(self) -> tuple[int, int, int | None]:
        """(in use, peak so far, reserved): CPU process RSS and peak RSS; CUDA allocator
        allocated and max allocated; MPS current allocated (its peak is not exposed, so in use
        is reported); plus the CUDA caching allocator's reserved bytes (None elsewhere). On
        CUDA one nested allocator-stats call serves all three: `torch.cuda.memory_allocated`
        and friends each rebuild the whole stats dict."""
        if self.kind == "cuda":
            # no flattening: cheap per step
            stats = torch.cuda.memory_stats_as_nested_dict(self.torch)
            alloc, reserved = stats["allocated_bytes"]["all"], stats["reserved_bytes"]["all"]
            return alloc["current"], alloc["peak"], reserved["current"]
        if self.kind == "mps":
            now = torch.mps.current_allocated_memory()
            return now, now, None
        rss = _this_process(os.getpid()).memory_info().rss
        return rss, max(rss, process.peak_rss_bytes() or 0), None

    def release_memory(self) -> None:
        """Start a run's memory figures afresh, just before its first step: what this process
        still holds from earlier work (the peak calibration's 8192^2 matrices, the previous
        seed's or cell's model and optimizer) is collected and its cached blocks handed back,
        then the peaks restart from what is allocated now. Resetting the peaks alone would
        leave that cache in `mem_reserved_bytes` and NVML's device-wide use.

        CUDA: gc, empty_cache, then reset_peak_memory_stats (in that order: a reset before the
        release keeps the released bytes in the reserved peak). MPS: gc and empty_cache (it
        keeps no peak). The CPU has nothing cached to hand back; its peak RSS is the process's."""
        if self.kind == "cpu":
            return
        gc.collect()  # a previous run's tensors kept alive only by reference cycles
        if self.kind == "cuda":
            torch.cuda.synchronize(self.torch)  # blocks still in use by queued kernels stay
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.torch)
        elif self.kind == "mps":
            torch.mps.empty_cache()

    def memory_total_bytes(self) -> int:
        """Total memory: the GPU's own, or the machine's RAM for the CPU (and MPS, whose memory
        is the machine's)."""
        if self.kind == "cuda":
            return torch.cuda.get_device_properties(self.torch).total_memory
        import psutil

        return psutil.virtual_memory().total

    def nvml(self):
        """(pynvml, handle) of this CUDA device, opened once per Device; NvmlUnavailable (the
        same reason every time) where NVML cannot answer."""
        answer = self._nvml_answer
        if isinstance(answer, nvml.NvmlUnavailable):
            raise answer
        return answer

    @cached_property
    def _nvml_answer(self):
        try:
            return nvml.handle(self.index)
        except nvml.NvmlUnavailable as exc:
            return exc

    def device_memory_reader(self):
        """A callable -> bytes in use on the whole device (NVML: every process, plus the CUDA
        context), or None where there is no such counter. Read once per host-read window."""
        if self.kind != "cuda":
            return lambda: None
        try:
            pynvml, handle = self.nvml()
        except nvml.NvmlUnavailable:
            return lambda: None

        def used_bytes():
            try:
                return pynvml.nvmlDeviceGetMemoryInfo(handle).used
            except pynvml.NVMLError:  # a transient driver error costs one sample, not the run
                return None

        return used_bytes

    # ---- energy ----------------------------------------------------------------------------

    @property
    def energy_per_rank(self) -> bool:
        """Whether each data-parallel rank reads an energy counter of its own (one GPU each)
        rather than one its node's ranks share (the CPU package's RAPL counter): a job's
        energy sums the former over ranks, the latter once per node."""
        return self.kind == "cuda"

    def energy_meter(self):
        """NVML's energy counter on CUDA, RAPL package counters on the CPU, else a meter that
        reads None and says why (metrics.py holds the meters)."""
        if self.kind == "cuda":
            try:
                return metrics.NvmlEnergyMeter(*self.nvml())
            except nvml.NvmlUnavailable as exc:
                return metrics.NoEnergyMeter(str(exc))
            except Exception as exc:  # pynvml.NVMLError_NotSupported: before Volta
                return metrics.NoEnergyMeter(
                    f"NVML energy counter unavailable on {self.name}: {exc}"
                )
        if self.kind == "cpu":
            return metrics.rapl_meter()
        return metrics.NoEnergyMeter(f"no energy counter readable for {self.kind} devices")

    # ---- random streams --------------------------------------------------------------------

    def rng_state(self) -> torch.Tensor | None:
        """The device's own random generator state (dropout masks), or None on the CPU, whose
        global generator is saved separately (torch.get_rng_state)."""
        if self.kind == "cuda":
            return torch.cuda.get_rng_state(self.torch)
        if self.kind == "mps":
            return torch.mps.get_rng_state()
        return None

    def set_rng_state(self, state: torch.Tensor) -> None:
        if self.kind == "cuda":
            torch.cuda.set_rng_state(state, self.torch)
        elif self.kind == "mps":
            torch.mps.set_rng_state(state)


@lru_cache(maxsize=1)
def _this_process(pid: int):
    """psutil's handle of this process, made once per pid: making one reads /proc each time
    (0.1-0.4 ms on a 2-core VM), and memory_sample runs every CPU step."""
    import psutil

    return psutil.Process(pid)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, MPS's and the CPU allocator's ("can't allocate memory")."""
    text = str(exc).lower()
    return (
        isinstance(exc, torch.OutOfMemoryError)
        or "out of memory" in text
        or "can't allocate memory" in text
    )
