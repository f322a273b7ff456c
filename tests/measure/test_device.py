"""The one reader of device strings and the resolved Device, without a GPU: CUDA devices
here are stand-ins built directly, saying so."""

import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure import host
from nanobench.measure.device import Device, DeviceRequest, parse_device


@pytest.mark.parametrize(
    "text, kind, index",
    [
        ("cpu", "cpu", None),
        ("cuda", "cuda", None),
        ("cuda:1", "cuda", 1),
        ("mps", "mps", None),
        ("auto", "auto", None),
    ],
)
def test_device_strings_parse_to_kind_and_index(text, kind, index):
    assert parse_device(text) == DeviceRequest(text, kind, index)


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "CPU", "cuda:0:1", ""])
def test_anything_else_is_refused_naming_the_device(text):
    with pytest.raises(InputError, match=f"--device {text}: not a device"):
        parse_device(text)


def test_cpu_resolves_to_the_host_cpu():
    cpu = parse_device("cpu").resolve()
    assert cpu == Device("cpu", None, host.cpu_model(), native_bf16=host.cpu_native_bf16())
    assert cpu.torch == torch.device("cpu") and str(cpu) == "cpu"
    assert cpu.for_rank(1) is cpu and cpu.ddp_device_ids is None and cpu.ddp_backend == "gloo"
    assert cpu.devices_in_job(4) == 1 and cpu.host_read_interval == 1 and cpu.fused_adamw


def test_absent_cuda_is_refused_listing_what_is_here(monkeypatch):
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: False
    )  # a machine without CUDA, on any host
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(
        InputError,
        match=r"--device cuda:1: CUDA is not available on this machine \(devices here: cpu",
    ):
        parse_device("cuda:1").resolve()


def test_a_gpu_counts_one_device_per_rank_and_reads_in_windows():
    gpu = Device(
        "cuda", 2, "NVIDIA stand-in (no GPU here)", (9, 0), True
    )  # stands for a GPU: nothing probed
    assert str(gpu) == "cuda:2" and gpu.ddp_device_ids == [2] and gpu.ddp_backend == "nccl"
    assert gpu.devices_in_job(4) == 4 and gpu.host_read_interval == 10 and gpu.supports_tf32
    assert not Device("cuda", 0, "Tesla V100 stand-in", (7, 0)).supports_tf32


@pytest.mark.parametrize(
    "flags, native",
    [
        (["avx2", "fma"], False),  # this project's AVX2 host: bf16 is emulated through fp32
        (["avx512f", "avx512_bf16"], True),
        (["amx_bf16", "amx_tile"], True),
        (["asimd", "bf16", "i8mm"], True),
        (["asimd", "fphp"], False),  # aarch64 Features
    ],
)
def test_native_bf16_reads_the_cpu_flags(monkeypatch, flags, native):
    monkeypatch.setattr(host, "cpu_flags", lambda: flags)  # stands for /proc/cpuinfo of such a CPU
    assert host.cpu_native_bf16() is native


class FakeCudaEvents:
    """Stands for torch.cuda's Event and current_stream (no GPU here): each event remembers
    the stream it was recorded on, each stream the device it belongs to."""

    class Event:
        def __init__(self, enable_timing=False):
            self.stream = "never recorded"

        def record(self, stream=None):
            self.stream = stream  # None: torch's default, the *current device's* current stream

    @staticmethod
    def current_stream(device=None):
        return ("current stream of", device)


def test_cuda_event_timer_records_on_the_runs_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeCudaEvents.Event)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeCudaEvents.current_stream)
    timer = Device(
        "cuda", 1, "NVIDIA stand-in (no GPU here)", (9, 0), True
    ).step_timer()  # --device cuda:1
    timer.start()
    start, end = timer.stop()
    assert start.stream == end.stream == ("current stream of", torch.device("cuda", 1))


def test_a_cuda_device_is_read_from_its_own_ordinal(monkeypatch):
    """A T4 as cuda:1: torch.cuda.is_bf16_supported() says True (emulation, and of the current
    device); the Device asks cuda:1's compute capability, and bf16 is refused there."""
    from nanobench.measure.precision import Precision

    asked = []
    caps = {0: (9, 0), 1: (7, 5)}  # stands for torch.cuda on a machine with an H100 and a T4
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda d: asked.append(d) or caps[d.index]
    )
    monkeypatch.setattr(
        torch.cuda,
        "get_device_name",
        lambda d: {0: "NVIDIA H100 80GB HBM3", 1: "Tesla T4"}[d.index],
    )
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda d: type("Props", (), {"uuid": f"GPU-{d.index}"})(),
    )
    t4, h100 = Device.cuda(1), Device.cuda(0)
    assert asked[0] == torch.device("cuda", 1)
    assert (t4.name, t4.compute_capability, t4.native_bf16, t4.uuid) == (
        "Tesla T4",
        (7, 5),
        False,
        "GPU-1",
    )
    assert h100.native_bf16 and h100.uuid == "GPU-0"
    with pytest.raises(
        InputError,
        match=r"--dtype bf16: Tesla T4 \(cuda:1, compute capability 7.5\) has no native bfloat16",
    ):
        Precision.for_device("bf16", t4)
    assert Precision.for_device("bf16", h100) == Precision("bf16")


def test_a_batch_is_contiguous_before_it_is_pinned(monkeypatch):
    """A rank's slice x[:, shard] of a (grad_accum, B, T) batch is a strided view; pinned as
    such, the copy to the GPU would be staged through pageable memory and the host would wait
    every step. pin_memory and the copy need CUDA: small stand-ins record what they get."""
    pinned, copied = [], []

    def pin_memory(self):  # stands for the pinned allocator's copy
        pinned.append(self.is_contiguous())
        return self

    def to(self, *args, **kwargs):  # stands for the host-to-device copy
        copied.append(kwargs.get("non_blocking"))
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", to)
    batch = torch.arange(2 * 4 * 8).view(2, 4, 8)[:, 2:4]  # rank 1 of 2: (grad_accum 2, B 2, T 8)
    assert not batch.is_contiguous()
    out = Device("cuda", 0, "NVIDIA stand-in (no GPU here)", (9, 0), True).to_device(batch)
    assert pinned == [True] and copied == [True] and torch.equal(out, batch)


class FakeCachingAllocator:
    """Stands for CUDA's caching allocator (no GPU here): freed blocks stay reserved until
    empty_cache; reset_peak_memory_stats restarts both peaks from the current values; a block
    held only by a reference cycle is freed by gc.collect. Sizes in MiB."""

    def __init__(self):
        self.blocks, self.cyclic = {}, set()
        self.reserved = self.peak_allocated = self.peak_reserved = 0

    @property
    def allocated(self):
        return sum(self.blocks.values())

    def allocate(self, name, mib, cyclic=False):
        self.blocks[name] = mib
        self.cyclic |= {name} if cyclic else set()
        self.reserved = max(self.reserved, self.allocated)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def free(self, name):
        del self.blocks[name]  # the block stays in the cache: reserved unchanged

    def collect(self):
        for name in self.cyclic & set(self.blocks):
            self.free(name)

    def empty_cache(self):
        self.reserved = self.allocated

    def reset_peak_memory_stats(self, device=None):
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def memory_stats_as_nested_dict(self, device=None):
        return {
            "allocated_bytes": {"all": {"current": self.allocated, "peak": self.peak_allocated}},
            "reserved_bytes": {"all": {"current": self.reserved, "peak": self.peak_reserved}},
        }


def test_a_runs_memory_starts_from_what_it_holds_itself(monkeypatch):
    """Issue 25, defect 6: the calibration's 768 MiB (three 8192^2 fp32 matrices) and a
    previous seed's model (200 MiB, kept only by a cycle) must not show in the next run's
    reserved memory or peaks; its own model and batches (100 MiB) must."""
    import gc

    fake = FakeCachingAllocator()
    for name in ("empty_cache", "reset_peak_memory_stats", "memory_stats_as_nested_dict"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(gc, "collect", fake.collect)
    gpu = Device("cuda", 0, "NVIDIA stand-in (no GPU here)", (9, 0), True)
    fake.allocate("previous seed's model", 200, cyclic=True)
    fake.allocate("this run's model and batches", 100)
    fake.allocate("calibration matrices", 768)
    fake.free("calibration matrices")
    assert gpu.memory_sample() == (300, 1068, 1068)  # what the first rows read before the fix
    gpu.release_memory()
    assert gpu.memory_sample() == (100, 100, 100)  # in use, peak, reserved: this run's own
    assert fake.peak_reserved == 100
