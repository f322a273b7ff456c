"""Speed settings of a run: how a step is executed, never what it computes (beyond the last
bits of floating-point sums, which kernel choice and reduction order move).

Their one definition is `Settings` (store/meta.py: a result is read back as it); RunOptions
takes them under the same names and records them in each result's `options`. train.py and the
lockstep trainers of parity.py/tune.py apply them through the functions here, so a setting
means the same thing wherever it is used. `nanobench tune` (run/tune.py) searches them.

- optimizer: torch's three AdamW implementations: `fused` (one kernel over all parameters),
  `foreach` (one kernel per operation over the parameter list), `for-loop` (one parameter
  at a time: torch's default where it has no foreach kernels, nanoGPT's path on a CPU);
  `auto` is the device's choice (Device.fused_adamw). A device is offered what torch has for
  it (`optimizers_on`), and a result records the implementation that ran (`implementation`).
- sdpa: the scaled_dot_product_attention backend: `auto` (torch's dispatch), `math` (the
  reference composition of matmuls and softmax), `flash` (on the CPU: its fused flash kernel),
  `efficient` and `cudnn` (CUDA only). torch checks a forced backend's limits only at the first
  call that needs it ("No available kernel"); `unsupported` asks the same questions before the
  run, from torch's own checks (aten/src/ATen/native/transformers/cuda/sdp_utils.cpp).
- compile_mode: torch.compile's mode when compiling; `reduce-overhead` replays CUDA graphs
  of the compiled forward and backward (CUDA only).
"""

from __future__ import annotations

import contextlib
import functools

from nanobench.errors import InputError
from nanobench.store.meta import Settings  # noqa: F401 (run/tune.py imports it from here)

OPTIMIZERS = ("auto", "fused", "foreach", "for-loop")
SDPA_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# what each device kind runs; `flash` on the CPU is torch's fused CPU kernel
SDPA_ON = {"cpu": ("auto", "math", "flash"), "cuda": SDPA_BACKENDS, "mps": ("auto", "math")}
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs
# CUDA flash and cuDNN attention: sm80 to sm121 only (sdp_utils.cpp,
# check_flash_attention_hardware_support and check_cudnn_hardware_support), in fp16 or bf16 only
# (check_dtypes_low_precision, check_dtypes_flash_attention)
HALF_ONLY_SDPA = ("flash", "cudnn")
SDPA_MIN_CAPABILITY = (8, 0)
# cuDNN's attention draws dropout in steps of 1/16 (sdp_utils.cpp, check_cudnn_dropout), and
# runtime cuDNN 9.11 to 9.13 take none at all (can_use_cudnn_attention: 91100 < v < 91400)
CUDNN_DROPOUT_STEPS = 16
CUDNN_NO_DROPOUT = (91100, 91400)  # exclusive bounds of torch.backends.cudnn.version()


def unsupported(
    device,
    sdpa: str = "auto",
    compile_mode: str | None = None,
    dtype: str = "fp32",
    grad_accum: int = 1,
    dropout: float = 0.0,
    cudnn_version=None,
) -> str | None:
    """Why `device` cannot run this combination, in one line naming the flag (None: it can).
    These are limits torch only hits at the first step, or mid-run. `dropout` is the
    scenario's (0.0 when not known yet: checked again once it is); `cudnn_version` the runtime
    cuDNN's number, as torch.backends.cudnn.version() gives it (a callable is asked only when
    the answer matters; None: unknown)."""
    if device.kind == "cuda" and sdpa in HALF_ONLY_SDPA:
        cc = device.compute_capability or (0, 0)
        if cc < SDPA_MIN_CAPABILITY:
            # torch would find no kernel at the first forward (the check passes on a T4 or V100
            # otherwise: fp16 is a dtype they run)
            return (
                f"--sdpa {sdpa}: {device.name} has compute capability {cc[0]}.{cc[1]}; torch's "
                f"{sdpa} attention kernel needs 8.0+ (Ampere or later); use efficient or math there"
            )
        if dtype not in ("bf16", "fp16"):
            # with the backend forced, fp32 attention finds no kernel at all
            return f"--sdpa {sdpa}: on CUDA this kernel takes fp16 or bf16 only, not {dtype}"
    if device.kind == "cuda" and sdpa == "cudnn" and dropout > 0:
        # evaluation runs without dropout and passes; the first training step would then fail
        if dropout * CUDNN_DROPOUT_STEPS != int(dropout * CUDNN_DROPOUT_STEPS):
            return (
                f"--sdpa cudnn: the scenario's model.dropout = {dropout:g} is not a multiple of "
                f"1/{CUDNN_DROPOUT_STEPS}, the only dropout cuDNN attention draws; use flash or "
                f"efficient, or --set model.dropout=0"
            )
        version = cudnn_version() if callable(cudnn_version) else cudnn_version
        if version is not None and CUDNN_NO_DROPOUT[0] < version < CUDNN_NO_DROPOUT[1]:
            return (
                f"--sdpa cudnn: cuDNN {version} takes no attention dropout (9.11 to 9.13) and the "
                f"scenario's model.dropout is {dropout:g}; use flash or efficient, or another cuDNN"
            )
    if device.kind == "cuda" and compile_mode in CUDA_GRAPH_MODES and grad_accum > 1:
        # the first micro-step's gradients live in the CUDA graphs' memory pool, which the
        # next micro-step's replay reclaims before its backward adds into them
        return (
            f"--compile-mode {compile_mode}: CUDA graphs overwrite the gradients accumulated over "
            f"train.grad_accum = {grad_accum} micro-steps (pytorch/pytorch#169545); use another mode or grad_accum 1"
        )
    return None


def cudnn_version() -> int | None:
    """The runtime cuDNN's version number (91300 for 9.13.0), None without cuDNN."""
    import torch

    return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None


def optimizers_on(kind: str) -> list[str]:
    """The AdamW implementations torch has for a device kind, from torch's own lists (fused:
    cpu, cuda and mps in torch 2.13; foreach: cuda, not cpu or mps); for-loop runs anywhere."""
    from torch.utils._foreach_utils import (
        _get_foreach_kernels_supported_devices,
        _get_fused_kernels_supported_devices,
    )

    found = [
        name
        for name, kinds in (
            ("fused", _get_fused_kernels_supported_devices()),
            ("foreach", _get_foreach_kernels_supported_devices()),
        )
        if kind in kinds
    ]
    return found + ["for-loop"]


def check(
    device,
    optimizer: str,
    sdpa: str,
    compile: bool,
    compile_mode: str | None,
    dtype: str = "fp32",
    grad_accum: int = 1,
    dropout: float = 0.0,
) -> None:
    """InputError naming the option if `device` (a Device) cannot run these settings."""
    if optimizer not in OPTIMIZERS:
        raise InputError(f"--optimizer {optimizer}: unknown (use {', '.join(OPTIMIZERS)})")
    if optimizer != "auto" and optimizer not in optimizers_on(device.kind):
        import torch

        raise InputError(
            f"--optimizer {optimizer}: torch {torch.__version__} has no {optimizer} AdamW on "
            f"{device.kind} (there: auto, {', '.join(optimizers_on(device.kind))})"
        )
    if sdpa not in SDPA_BACKENDS:
        raise InputError(f"--sdpa {sdpa}: unknown (use {', '.join(SDPA_BACKENDS)})")
    if sdpa not in SDPA_ON.get(device.kind, ("auto",)):
        raise InputError(
            f"--sdpa {sdpa}: not a backend of {device.kind} (there: {', '.join(SDPA_ON[device.kind])})"
        )
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise InputError(f"--compile-mode {compile_mode}: unknown (use {', '.join(COMPILE_MODES)})")
    if compile_mode is not None and not compile:
        raise InputError(f"--compile-mode {compile_mode}: needs --compile")
    if compile_mode == "reduce-overhead" and device.kind != "cuda":
        raise InputError(
            f"--compile-mode reduce-overhead: CUDA graphs need a CUDA device, not {device.kind}"
        )
    problem = unsupported(device, sdpa, compile_mode, dtype, grad_accum, dropout, cudnn_version)
    if problem:
        raise InputError(problem)


def auto_optimizer(device) -> str:
    """The AdamW implementation `--optimizer auto` runs on `device`: fused where
    Device.fused_adamw asks for it, else torch's own default (foreach where torch has foreach
    kernels for the device, else the for-loop)."""
    if device.fused_adamw:
        return "fused"
    return "foreach" if "foreach" in optimizers_on(device.kind) else "for-loop"


def adamw_choice(optimizer: str, device) -> dict:
    """torch.optim.AdamW's `fused` and `foreach` arguments for a setting (`auto`: the device's)."""
    if optimizer == "auto":
        optimizer = "fused" if device.fused_adamw else "auto"
    return {
        "fused": {"fused": True, "foreach": None},
        "foreach": {"fused": None, "foreach": True},
        "for-loop": {"fused": None, "foreach": False},
    }.get(optimizer, {"fused": None, "foreach": None})  # torch's own default


def implementation(optimizer) -> str:
    """The AdamW implementation a torch optimizer runs: fused, foreach or for-loop. Where
    neither was asked for, torch's own default decides (the function AdamW itself asks)."""
    from torch.optim.optimizer import _default_to_fused_or_foreach

    group = optimizer.param_groups[0]
    if group.get("fused"):
        return "fused"
    foreach = group.get("foreach")
    if foreach is None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
    return "foreach" if foreach else "for-loop"


def compile_model(model, compile: bool, compile_mode: str | None):
    """The module that runs forward: `model` itself, or torch.compile of it in `compile_mode`."""
    import torch

    if not compile:
        return model
    return (
        torch.compile(model)
        if compile_mode in (None, "default")
        else torch.compile(model, mode=compile_mode)
    )


class StepContext:
    """Autocast plus the chosen SDPA backend, re-entrable: one object is entered at every
    step and every evaluation (torch's sdpa_kernel is a one-shot generator context)."""

    def __init__(self, autocast, sdpa: str):
        self.autocast = autocast
        self.sdpa = sdpa
        self._stack: list[contextlib.ExitStack] = []

    def __enter__(self):
        stack = contextlib.ExitStack()
        stack.enter_context(self.autocast)
        if self.sdpa != "auto":
            from torch.nn.attention import sdpa_kernel

            stack.enter_context(sdpa_kernel(sdpa_backend(self.sdpa)))
        self._stack.append(stack)
        return self

    def __exit__(self, *exc):
        return self._stack.pop().__exit__(*exc)


def sdpa_backend(name: str):
    """The torch SDPBackend of a setting other than `auto`."""
    from torch.nn.attention import SDPBackend

    return {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[name]


def keeps_process_state(fn):
    """Decorator: torch's thread count, its global CPU random stream and the matmul precision
    flags, which a run sets for itself, are as they were before `fn` once it returns or
    raises. A process that trains more than once (the device x dtype matrix, tune, parity,
    the tests) must not hand one run's settings to the next: a run without --threads would
    otherwise inherit the previous run's."""

    @functools.wraps(fn)
    def keeping(*args, **kwargs):
        import torch

        from nanobench.measure.precision import kept_matmul_flags

        threads, random_state = torch.get_num_threads(), torch.random.get_rng_state()
        try:
            with kept_matmul_flags():
                return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
            torch.random.set_rng_state(random_state)

    return keeping
