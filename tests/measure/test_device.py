"""The one reader of device strings and the resolved Device, without a GPU: CUDA devices
here are stand-ins built directly, saying so."""

import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure import host
from nanobench.measure.device import Device, DeviceSpec, parse_device


@pytest.mark.parametrize("text, kind, index", [
    ("cpu", "cpu", None), ("cuda", "cuda", None), ("cuda:1", "cuda", 1), ("mps", "mps", None), ("auto", "auto", None),
])
def test_device_strings_parse_to_kind_and_index(text, kind, index):
    assert parse_device(text) == DeviceSpec(text, kind, index)


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "CPU", "cuda:0:1", ""])
def test_anything_else_is_refused_naming_the_device(text):
    with pytest.raises(InputError, match=f"--device {text}: not a device"):
        parse_device(text)


def test_cpu_resolves_to_the_host_cpu():
    cpu = parse_device("cpu").resolve()
    assert cpu == Device("cpu", None, host.cpu_model())
    assert cpu.torch == torch.device("cpu") and str(cpu) == "cpu"
    assert cpu.for_rank(1) is cpu and cpu.ddp_device_ids is None and cpu.ddp_backend == "gloo"
    assert cpu.devices_in_job(4) == 1 and cpu.host_read_interval == 1 and cpu.fused_adamw


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_absent_cuda_is_refused_listing_what_is_here():
    with pytest.raises(InputError, match=r"--device cuda:1: CUDA is not available on this machine \(devices here: cpu"):
        parse_device("cuda:1").resolve()


def test_a_gpu_counts_one_device_per_rank_and_reads_in_windows():
    gpu = Device("cuda", 2, "NVIDIA stand-in (no GPU here)", (9, 0), True)  # stands for a GPU: nothing probed
    assert str(gpu) == "cuda:2" and gpu.ddp_device_ids == [2] and gpu.ddp_backend == "nccl"
    assert gpu.devices_in_job(4) == 4 and gpu.host_read_interval == 10 and gpu.supports_tf32
    assert not Device("cuda", 0, "Tesla V100 stand-in", (7, 0)).supports_tf32
