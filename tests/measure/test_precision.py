"""The Precision value: its dtypes, its checks against a device, and torch's global matmul
flags set and restored. CUDA devices are stand-ins built directly (no GPU here)."""

import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure.device import Device
from nanobench.measure.precision import Precision

AMPERE = Device("cuda", 0, "NVIDIA A100 stand-in", (8, 0), True)  # stands for a GPU: nothing probed
VOLTA = Device("cuda", 0, "Tesla V100 stand-in", (7, 0), False)


def test_dtypes_autocast_and_scaler():
    assert [Precision(n).dtype for n in ("fp32", "tf32", "bf16", "fp16")] == [
        torch.float32,
        torch.float32,
        torch.bfloat16,
        torch.float16,
    ]
    assert (
        Precision("fp32").autocast_dtype is None
        and Precision("bf16").autocast_dtype is torch.bfloat16
    )
    assert [Precision(n).needs_scaler for n in ("fp32", "bf16", "fp16")] == [False, False, True]
    cpu = Device.cpu()
    assert not Precision("fp32").grad_scaler(cpu).is_enabled()
    with Precision("bf16").autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16


def test_unknown_dtype_is_refused():
    with pytest.raises(InputError, match="--dtype fp8: unknown"):
        Precision("fp8")


@pytest.mark.parametrize(
    "name, device, message",
    [
        ("tf32", VOLTA, "TF32 needs an NVIDIA GPU of compute capability 8.0"),
        (
            "bf16",
            VOLTA,
            r"Tesla V100 stand-in \(cuda:0, compute capability 7.0\) has no native bfloat16",
        ),
    ],
)
def test_the_device_decides_what_runs(name, device, message):
    with pytest.raises(InputError, match=message):
        Precision.for_device(name, device)
    assert Precision.for_device(name, AMPERE) == Precision(name)


def test_matmul_flags_are_set_inside_and_restored_after():
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    with Precision("tf32").matmul_flags() as flags:
        assert flags == {
            "float32_matmul_precision": "high",
            "cuda_matmul_allow_tf32": True,
            "cudnn_allow_tf32": True,
        }
        assert torch.get_float32_matmul_precision() == "high"
    assert (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    ) == before
