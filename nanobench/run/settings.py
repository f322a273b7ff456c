"""Speed settings of a run: how a step is executed, never what it computes (beyond the last
bits of floating-point sums, which kernel choice and reduction order move).

RunOptions carries them as strings (recorded in each result's `options`); train.py and the
lockstep trainers of parity.py/tune.py apply them through the functions here, so a setting
means the same thing wherever it is used. `nanobench tune` (run/tune.py) searches them.

- optimizer: `fused` (one AdamW kernel over all parameters), `foreach` (one kernel per
  operation over the parameter list: nanoGPT's path), `auto` (the device's choice,
  Device.fused_adamw).
- sdpa: the scaled_dot_product_attention backend: `auto` (torch's dispatch), `math` (the
  reference composition of matmuls and softmax), `flash` (on the CPU: its fused flash kernel),
  `efficient` and `cudnn` (CUDA only).
- compile_mode: torch.compile's mode when compiling; `reduce-overhead` replays CUDA graphs
  of the compiled forward and backward (CUDA only).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass

from nanobench.errors import InputError

OPTIMIZERS = ("auto", "fused", "foreach")
SDPA_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# what each device kind runs; `flash` on the CPU is torch's fused CPU kernel
SDPA_ON = {"cpu": ("auto", "math", "flash"), "cuda": SDPA_BACKENDS, "mps": ("auto", "math")}
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that capture CUDA graphs


@dataclass(frozen=True, order=True)
class Settings:
    """One combination of the settings a run may be tuned over, with RunOptions' names and
    defaults: `Settings()` is what `nanobench run` does when given no option."""

    dtype: str = "fp32"
    compile: bool = False
    compile_mode: str | None = None
    threads: int | None = None  # None: torch's choice
    optimizer: str = "auto"
    sdpa: str = "auto"

    def options(self) -> dict:
        """As RunOptions keyword arguments (and as recorded in a result's `options`)."""
        return asdict(self)

    def changed(self) -> dict:
        """The settings that differ from the defaults."""
        default = Settings()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    def label(self) -> str:
        """'default', or the changed settings as flags: '--threads 1 --optimizer foreach'."""
        flags = []
        for key, value in self.changed().items():
            flag = "--" + key.replace("_", "-")
            flags.append(
                flag if value is True else f"--no-{key}" if value is False else f"{flag} {value}"
            )
        return " ".join(flags) or "default"


def unsupported(
    device,
    sdpa: str = "auto",
    compile_mode: str | None = None,
    dtype: str = "fp32",
    grad_accum: int = 1,
) -> str | None:
    """Why `device` cannot run this combination, in one line naming the flag (None: it can).
    These are limits torch only hits at the first step, or mid-run."""
    if device.kind == "cuda" and sdpa in ("flash", "cudnn") and dtype not in ("bf16", "fp16"):
        # torch's CUDA flash and cuDNN attention kernels take half precision only; with the
        # backend forced, fp32 attention finds no kernel at all
        return f"--sdpa {sdpa}: on CUDA this kernel takes fp16 or bf16 only, not {dtype}"
    if device.kind == "cuda" and compile_mode in CUDA_GRAPH_MODES and grad_accum > 1:
        # the first micro-step's gradients live in the CUDA graphs' memory pool, which the
        # next micro-step's replay reclaims before its backward adds into them
        return (
            f"--compile-mode {compile_mode}: CUDA graphs overwrite the gradients accumulated over "
            f"train.grad_accum = {grad_accum} micro-steps (pytorch/pytorch#169545); use another mode or grad_accum 1"
        )
    return None


def check(
    device,
    optimizer: str,
    sdpa: str,
    compile: bool,
    compile_mode: str | None,
    dtype: str = "fp32",
    grad_accum: int = 1,
) -> None:
    """InputError naming the option if `device` (a Device) cannot run these settings."""
    if optimizer not in OPTIMIZERS:
        raise InputError(f"--optimizer {optimizer}: unknown (use {', '.join(OPTIMIZERS)})")
    if optimizer == "fused" and device.kind == "mps":
        raise InputError("--optimizer fused: no fused AdamW on mps; use foreach or auto")
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
    problem = unsupported(device, sdpa, compile_mode, dtype, grad_accum)
    if problem:
        raise InputError(problem)


def fused_adamw(optimizer: str, device) -> bool:
    """Whether AdamW uses its fused kernel: the setting, or the device's default for `auto`."""
    return device.fused_adamw if optimizer == "auto" else optimizer == "fused"


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


def describe(options: dict) -> str:
    """A short text of the speed settings in a recorded `options` dict (old files: defaults)."""
    compiled = options.get("compile")
    mode = options.get("compile_mode")
    threads = options.get("threads")
    parts = [
        str(options.get("dtype", "fp32")),
        ("compiled" + (f" ({mode})" if mode and mode != "default" else ""))
        if compiled
        else "eager",
        f"{threads} threads" if threads else "default threads",
        f"AdamW {options.get('optimizer') or 'auto'}",
        f"SDPA {options.get('sdpa') or 'auto'}",
    ]
    return ", ".join(parts)


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
