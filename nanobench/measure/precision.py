"""The precision a run computes in, resolved once: its torch dtype, autocast, loss scaler
and the global matmul flags (TF32). Validated against the device when it is made.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from nanobench.errors import InputError

DTYPES = ("fp32", "tf32", "bf16", "fp16")
_TORCH_DTYPES = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}  # fp32 and tf32 keep float32 tensors


@dataclass(frozen=True)
class Precision:
    """One of DTYPES. fp32 means true fp32 (TF32 off, so that 'fp32' on an Ampere GPU is not
    silently TF32); tf32 switches TF32 on for matmuls and cuDNN; bf16 and fp16 autocast the
    model's matmuls to that dtype, and fp16 scales its loss (its gradients underflow
    without)."""

    name: str

    def __post_init__(self):
        if self.name not in DTYPES:
            raise InputError(f"--dtype {self.name}: unknown (use {', '.join(DTYPES)})")

    @classmethod
    def for_device(cls, name: str, device) -> Precision:
        """The precision `name` on `device` (a Device); InputError if the device cannot run
        it, before anything is trained."""
        precision = cls(name)
        if name == "tf32" and not device.supports_tf32:
            raise InputError(
                f"--dtype tf32: TF32 needs an NVIDIA GPU of compute capability 8.0+ (Ampere); not {device}"
            )
        if name == "fp16" and device.kind == "cpu":
            raise InputError(
                "--dtype fp16: fp16 training needs a GPU (cuda or mps); on cpu use bf16"
            )
        if name == "bf16" and device.kind == "cuda" and not device.native_bf16:
            # torch would run it (is_bf16_supported() says True on a T4 or V100), emulated and
            # far slower: a benchmark of that measures the emulation, not the GPU
            cc = ".".join(map(str, device.compute_capability or ())) or "unknown"
            raise InputError(
                f"--dtype bf16: {device.name} ({device}, compute capability {cc}) has no native "
                f"bfloat16 (needs 8.0+, Ampere or later); use fp16 or fp32 there"
            )
        return precision

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the tensors a matmul in this precision multiplies."""
        return _TORCH_DTYPES.get(self.name, torch.float32)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _TORCH_DTYPES.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    @property
    def tf32(self) -> bool:
        return self.name == "tf32"

    def autocast(self, device):
        """Autocast for bf16/fp16 on `device` (a Device); a no-op context for fp32 and tf32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.kind, dtype=self.autocast_dtype)

    def grad_scaler(self, device) -> torch.amp.GradScaler:
        """A loss scaler for fp16; disabled (a pass-through) otherwise."""
        return torch.amp.GradScaler(device.kind, enabled=self.needs_scaler)

    def apply_matmul_flags(self) -> dict:
        """Set torch's global matmul precision for this precision; return the flags, for
        metadata. They stay set: a run keeps them; see `matmul_flags` to restore them."""
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        return current_matmul_flags()

    @contextlib.contextmanager
    def matmul_flags(self):
        """The flags of `apply_matmul_flags` inside the block, the previous ones after it."""
        with kept_matmul_flags():
            yield self.apply_matmul_flags()


@contextlib.contextmanager
def kept_matmul_flags():
    """torch's global matmul precision flags, whatever the block sets, as they were after it."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, previous = saved
        torch.set_float32_matmul_precision(previous)


def current_matmul_flags() -> dict:
    """torch's global matmul precision flags as they are now."""
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }
