"""Several devices and dtypes in one command: `nanobench run SCENARIO --device all --dtype
fp32,bf16 --seeds 1337,1338`. The matrix is every (device, dtype) combination; one the device
cannot run is skipped with one line, bf16 on a CPU that only emulates it is announced with its
measured slowdown and skipped unless asked for. Every run of the matrix (entries x seeds) writes
its own result file, all sharing one group_id, so `compare` reads them as one experiment.

A one-entry matrix (`--device cpu --dtype fp32`) is the plain run. run/plan.py makes every
entry of the matrix a cell of the run's plan, once per seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nanobench.errors import InputError
from nanobench.measure.device import Device, devices_here, parse_device
from nanobench.measure.precision import DTYPES, Precision


@dataclass(frozen=True)
class DeviceDtype:
    """One (device, dtype) combination of the matrix; a plan's cell (run/plan.py) adds the seed
    and the rest."""

    device: str  # as RunOptions takes it: "cpu", "cuda:1", "mps" (or the user's own spelling)
    dtype: str

    @property
    def label(self) -> str:
        return f"{self.device} {self.dtype}"


@dataclass(frozen=True)
class Matrix:
    """What `--device D1,D2|all --dtype T1,T2` gives on this machine."""

    entries: list[DeviceDtype]
    skipped: list[str]  # one line per cell left out, saying why
    notes: list[str]  # said before anything runs (an emulated dtype that runs anyway)


def wants_matrix(device: str | None, dtype: str | None) -> bool:
    """`--device all`, or a list of devices or dtypes."""
    return device == "all" or "," in (device or "") or "," in (dtype or "")


def parse_dtypes(text: str) -> list[str]:
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise InputError(f"--dtype {text}: expected a comma-separated list of {', '.join(DTYPES)}")
    for name in names:
        Precision(name)  # an unknown one: "--dtype fp8: unknown (use fp32, tf32, bf16, fp16)"
    return list(dict.fromkeys(names))


def emulated_bf16_slowdown(device: Device) -> float | None:
    """How much slower bf16 is than fp32 on this CPU when emulated: measure/peaks.py's one
    answer (the ratio of the cached measured matmul peaks), also behind `run`'s warning."""
    from nanobench.measure import peaks

    return peaks.emulated_slowdown(device, Precision("bf16"))


def expand(
    device_text: str,
    dtype_text: str,
    *,
    allow_slow: bool = False,
    speed: dict | None = None,
    scenario=None,
    devices: Callable[[], list[Device]] = devices_here,
    slowdown: Callable[[Device], float | None] = emulated_bf16_slowdown,
    compile_problem: Callable[[Device], str | None] | None = None,
) -> Matrix:
    """The (device, dtype) entries of `--device D1,D2|all --dtype T1,T2`, in device then dtype
    order.

    devices: the devices `all` means (this machine's; tests pass their own). slowdown: the
    measured cost of emulated bf16 on a CPU (tests pass a figure). A device named explicitly
    is resolved (an absent one is bad input); bf16 on a CPU without native support runs only
    when the CPU was named explicitly or with allow_slow. speed: the run's speed flags
    (optimizer, sdpa, compile, compile_mode; RunOptions' names), checked per cell with the
    scenario's grad_accum and dropout: a flag one device cannot take (`--sdpa cudnn` on the
    CPU) skips that cell with one line, like a dtype. compile_problem: why torch.compile
    cannot work on a device (environment.compile_problem; tests pass their own).
    """
    from nanobench.measure.environment import compile_problem as compile_check
    from nanobench.run import settings

    speed = speed or {}
    compile_problem = compile_problem or compile_check
    recipe = (
        {"grad_accum": scenario.train.grad_accum, "dropout": scenario.model.dropout}
        if scenario
        else {}
    )
    dtypes = parse_dtypes(dtype_text)
    if device_text == "all":
        found, explicit = [(str(d), d) for d in devices()], False
    else:
        named = [s.strip() for s in device_text.split(",") if s.strip()]
        if not named:
            raise InputError(
                f"--device {device_text}: expected all or a comma-separated list of devices"
            )
        found, explicit = [(s, parse_device(s).resolve()) for s in dict.fromkeys(named)], True
    entries, skipped, notes = [], [], []
    # a plain run: its error is bad input
    single = explicit and len(found) == 1 and len(dtypes) == 1
    for spec, device in found:
        for dtype in dtypes:
            entry = DeviceDtype(spec, dtype)
            try:
                Precision.for_device(dtype, device)
            except InputError as exc:
                if single:
                    raise
                skipped.append(
                    f"{entry.label}: skipped ({str(exc).removeprefix(f'--dtype {dtype}: ')})"
                )
                continue
            try:
                settings.check(
                    device,
                    speed.get("optimizer") or "auto",
                    speed.get("sdpa") or "auto",
                    bool(speed.get("compile")),
                    speed.get("compile_mode"),
                    dtype,
                    **recipe,
                )
                problem = compile_problem(device) if speed.get("compile") else None
                if problem:
                    raise InputError(f"--compile: {problem}")
            except InputError as exc:
                if single:
                    raise
                skipped.append(f"{entry.label}: skipped ({exc})")
                continue
            if dtype == "bf16" and device.kind == "cpu" and not device.native_bf16:
                ratio = slowdown(device)
                cost = (
                    f"its measured bf16 matmul peak is {ratio:.1f}x below fp32's"
                    if ratio
                    else "its bf16 speed is unknown"
                )
                why = (
                    f"{device.name} has no native bf16 (no avx512_bf16, amx_bf16 or Arm bf16): "
                    f"bf16 is emulated, {cost}"
                )
                if not (explicit or allow_slow):
                    skipped.append(
                        f"{entry.label}: skipped: {why}; add --allow-slow (or --device cpu) to run it"
                    )
                    continue
                notes.append(f"{entry.label}: {why}; running it as asked")
            entries.append(entry)
    if not entries:
        raise InputError(
            f"--device {device_text} --dtype {dtype_text}: no cell of the matrix can run here "
            f"({'; '.join(skipped)})"
        )
    return Matrix(entries, skipped, notes)
