"""`nanobench tune`: the fastest settings of one device that stay loss-equivalent to its fp32
eager reference, recorded per (device name, torch version, scenario) for `run --best`.

How a tune runs:

1. Candidates: the default settings (the reference: fp32, eager, torch's threads, the
   device's AdamW, torch's SDPA dispatch) and each one-setting change of them that this
   device can run (`candidates`): every other dtype it runs natively, compile and its
   modes, CPU thread counts, fused vs foreach AdamW, each SDPA backend.
2. A round is a plan (run/plan.py) of one cell per candidate: a `nanobench run` of the
   scenario's seed for `iters` iterations with the candidate's settings, so every candidate
   trains the same batches from the same initial weights. The plan is handed to an executor
   (the local one: one cell after another in this process) and its result files, in the
   tune's --out, are read back (`run_round`): the median step time after the warm-up (which
   holds compilation) is each candidate's step time; its loss curve against the
   reference's is its equivalence figure: the largest |loss - reference loss| over the
   iterations must stay within the margin, and every loss must be finite. The candidates run
   one after another, each once per pass, every pass in the reverse order of the one before
   (A B C, C B A: `pass_order`), and a candidate's step time is the median over its runs, so
   a load that grows or fades evenly through the round weighs on all of them alike; a
   neighbour that comes and goes does not, so the host's load before and after is kept with
   the result.
3. On a CPU the thread count is chosen first (it sets how fast everything else runs; under
   load a 2-thread step can be many times slower than a 1-thread one), and the other
   one-change candidates are then measured on that count (the base). Each setting whose
   best equivalent value beats the base by more than `min_gain` is kept; the kept values
   are combined, and the combination is measured again in a round with the reference, the
   base and the best single change. The fastest equivalent of those that beats the
   reference by more than `min_gain` is recorded; otherwise the defaults are.

The selection (`select_singles`, `combine`, `choose`) is pure: tests feed it timings and drifts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nanobench import files
from nanobench.errors import InputError
from nanobench.measure import environment, host
from nanobench.run import plan as plans
from nanobench.run.plan import Cell, Plan
from nanobench.run.settings import (
    HALF_ONLY_SDPA,
    SDPA_ON,
    Settings,
    auto_optimizer,
    cudnn_version,
    optimizers_on,
    unsupported,
)
from nanobench.store import results
from nanobench.store.results import utc_now

DEFAULT_ITERS = 60  # iterations of each candidate's run
DEFAULT_PASSES = 2  # runs of each candidate per round: forward, then in reverse order
DEFAULT_WARMUP = 10  # first iterations not timed: allocator growth, compilation
DEFAULT_MARGIN = 0.02  # nats: largest |loss - reference loss| an equivalent candidate may show
DEFAULT_MIN_GAIN = 0.03  # a change is kept only if at least 3% faster than the reference
AXES = ("dtype", "compile", "threads", "optimizer", "sdpa")
# 2: AdamW's for-loop is named as such (version 1 recorded it as `foreach` on CPU and MPS,
# where torch has no foreach kernels); older records are tuned again
RECORD_VERSION = 2
# CPU flags of a native bf16 matmul (AVX-512 BF16 dot products, AMX tiles); without them torch
# converts bf16 to fp32 in software around every matmul
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


# ---- which settings a device can be tuned over ---------------------------------------------


def native_dtypes(device) -> tuple[list[str], dict[str, str]]:
    """(dtypes `device` computes natively, {dtype: why not} for the others)."""
    if device.kind == "cpu":
        flags = set(host.cpu_flags())
        if flags & set(CPU_BF16_FLAGS):
            return ["fp32", "bf16"], {"fp16": "fp16 training needs a GPU"}
        return ["fp32"], {
            "bf16": f"{device.name} has no native bf16 matmul (none of {', '.join(CPU_BF16_FLAGS)} "
            f"among its CPU flags): torch emulates it in fp32, slower than fp32 itself",
            "fp16": "fp16 training needs a GPU",
        }
    if device.kind == "cuda":
        dtypes, why = ["fp32"], {}
        for dtype, ok, reason in (
            ("tf32", device.supports_tf32, "TF32 needs compute capability 8.0+"),
            ("bf16", device.native_bf16, "no native bf16"),
            (
                "fp16",
                (device.compute_capability or (0, 0)) >= (7, 0),
                "no fp16 tensor cores (< 7.0)",
            ),
        ):
            if ok:
                dtypes.append(dtype)
            else:
                why[dtype] = reason
        return dtypes, why
    return ["fp32", "fp16"], {"bf16": f"not tuned on {device.kind}"}


def thread_counts(default: int, logical: int, physical: int | None) -> list[int]:
    """CPU thread counts worth trying besides `default`: 1, powers of two, the physical and
    the logical core counts, none above the logical count."""
    counts = {1, logical, physical or logical}
    n = 2
    while n < logical:
        counts.add(n)
        n *= 2
    return sorted(c for c in counts if 1 <= c <= logical and c != default)


def _usable_cpus() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def candidates(
    device, axes=AXES, default_threads: int | None = None, logical_cpus: int | None = None
) -> list[Settings]:
    """The reference (Settings()) first, then every one-setting change of it that `device` runs."""
    out = [Settings()]
    if "dtype" in axes:
        out += [Settings(dtype=d) for d in native_dtypes(device)[0] if d != "fp32"]
    if "compile" in axes:
        modes = {
            "cuda": ["reduce-overhead", "max-autotune"],
            "cpu": ["max-autotune-no-cudagraphs"],
        }.get(device.kind, [])
        out += [Settings(compile=True)] + [Settings(compile=True, compile_mode=m) for m in modes]
    if "threads" in axes and device.kind == "cpu":
        import torch

        default = default_threads or torch.get_num_threads()
        logical = logical_cpus or _usable_cpus()
        out += [Settings(threads=n) for n in thread_counts(default, logical, host.physical_cores())]
    if "optimizer" in axes:  # every AdamW torch has here besides the one `auto` runs
        auto = auto_optimizer(device)
        out += [Settings(optimizer=o) for o in optimizers_on(device.kind) if o != auto]
    if "sdpa" in axes:
        out += [sdpa_candidate(device, b) for b in SDPA_ON.get(device.kind, ()) if b != "auto"]
    return out


def sdpa_candidate(device, backend: str) -> Settings:
    """An attention backend in a dtype it runs: CUDA's flash and cuDNN kernels take half
    precision only, so they are tried in the device's native half dtype (bf16, else fp16),
    never against fp32 where they cannot run; the others in fp32, as a plain change."""
    if device.kind == "cuda" and backend in HALF_ONLY_SDPA:
        half = [d for d in native_dtypes(device)[0] if d in ("bf16", "fp16")]
        if half:
            return Settings(dtype=half[0], sdpa=backend)
    return Settings(sdpa=backend)


def screen(
    found: list[Settings],
    device,
    grad_accum: int = 1,
    dropout: float = 0.0,
    compile_problem=None,
) -> tuple[list[Settings], dict[str, str]]:
    """The candidates this device can run for a scenario with `grad_accum` micro-steps and
    model `dropout`, and why each other one is left out: settings.unsupported (a limit torch
    hits at the first step) and, for compiled candidates, `compile_problem(device)` (the check
    `run --compile` makes: environment.compile_problem), asked once."""
    kept, refused = [], {}
    compile_why = None
    if compile_problem and any(s.compile for s in found):
        compile_why = compile_problem(device)
    for s in found:
        why = unsupported(
            device, s.sdpa, s.compile_mode, s.dtype, grad_accum, dropout, cudnn_version
        )
        if why:
            refused[s.label()] = why.split(": ", 1)[1]
        elif s.compile and compile_why:
            refused[s.label()] = compile_why
        else:
            kept.append(s)
    return kept, refused


def apart(kept: dict[str, Measured]) -> tuple[dict[str, Measured], str | None]:
    """Kept changes that can share one process: compile and an SDPA backend cannot. Two
    compiled models of one mode share dynamo's cached graph, which does not guard on the
    attention backend, so a compiled candidate with a backend of its own could be timed with
    another's. Of the two, the faster is kept; the note says so."""
    if "compile" not in kept or "sdpa" not in kept:
        return kept, None
    slower = max(("compile", "sdpa"), key=lambda axis: kept[axis].median_step_s)
    faster = "sdpa" if slower == "compile" else "compile"
    note = (
        f"not combined: {kept[slower].settings.label()} (slower than {kept[faster].settings.label()}); "
        f"compiled candidates in one process share a graph that ignores the attention backend"
    )
    return {k: v for k, v in kept.items() if k != slower}, note


def axis_of(settings: Settings, base: Settings = Settings()) -> str:
    """The setting a one-change candidate changes from `base` ('base' for `base` itself)."""
    changed = changes(settings, base)
    if not changed:
        return "base"
    # a backend tried in its half dtype (sdpa_candidate) is an attention candidate
    return next((a for a in ("compile", "sdpa") if a in changed), next(iter(changed)))


def changes(settings: Settings, base: Settings) -> dict:
    """The settings of `settings` that differ from `base`."""
    return {k: v for k, v in asdict(settings).items() if v != getattr(base, k)}


# ---- measuring: one plan per round, read back from its result files -------------------------


@dataclass(frozen=True)
class Measured:
    """A candidate measured against the reference: its median step time and how far its loss
    curve went from the reference's (the same iterations, batches and initial weights)."""

    settings: Settings
    median_step_s: float
    max_abs_loss_diff: float
    max_diff_iter: int
    final_loss_diff: float
    finite: bool = True

    def equivalent(self, margin: float) -> bool:
        return self.finite and self.max_abs_loss_diff <= margin


def loss_figures(reference: list[float], losses: list[float]) -> dict:
    """max |loss - reference|, where it was, the final difference, and whether all were finite."""
    diffs = [b - a for a, b in zip(reference, losses)]
    finite = all(math.isfinite(v) for v in losses)
    if not finite or not diffs:
        return {
            "max_abs_loss_diff": math.inf,
            "max_diff_iter": -1,
            "final_loss_diff": math.nan,
            "finite": False,
        }
    worst = max(range(len(diffs)), key=lambda i: abs(diffs[i]))
    return {
        "max_abs_loss_diff": abs(diffs[worst]),
        "max_diff_iter": worst,
        "final_loss_diff": diffs[-1],
        "finite": True,
    }


@dataclass(frozen=True)
class TuneRuns:
    """Where a tune's runs go and who runs them: each round is one plan (run/plan.py) of one
    cell per candidate, stored in `out_dir` and handed to `execute(plan, cells)` (the local
    executor, run/executors.py), then read back from the result files. scenario and
    overrides: as the cells name them (a shipped name or .toml path, the --set strings).
    continue_: a round whose plan is stored in out_dir already runs only its cells without a
    completed result (`tune --continue`). passes: how many times each candidate runs in a
    round, the order reversed every pass (pass_order)."""

    scenario: str
    overrides: tuple[str, ...]
    out_dir: str
    execute: Callable[[Plan, list[Cell]], list]
    continue_: bool = False
    passes: int = DEFAULT_PASSES

    def __post_init__(self):
        if self.passes < 1:
            raise InputError(f"--passes {self.passes}: must be >= 1")


def runs_dir() -> Path:
    """Where tune's runs go unless told (never results/: `compare results/` would take them
    for runs of the scenario)."""
    return files.cache_dir() / "tune-runs"


def pass_order(n: int, passes: int) -> list[int]:
    """The candidates' order over the passes of a round: forward, then backward, and so on
    (A B C, then C B A): a load that grows or fades through the round weighs on every
    candidate alike, as far as it changes evenly."""
    return [i for p in range(passes) for i in (range(n) if p % 2 == 0 else reversed(range(n)))]


def round_cells(runs: TuneRuns, device_text: str, settings: list[Settings], iters: int, seed):
    """One cell per candidate and pass (pass_order): the same scenario, seed and length, the
    candidate's settings."""
    return [
        Cell(
            id=f"c{k:03d}",
            scenario=runs.scenario,
            overrides=tuple(runs.overrides),
            device=device_text,
            seed=seed,
            max_iters=iters,
            **settings[i].options(),
        )
        for k, i in enumerate(pass_order(len(settings), runs.passes))
    ]


def run_round(
    runs: TuneRuns,
    scenario,
    device_text: str,
    settings: list[Settings],
    iters: int = DEFAULT_ITERS,
    warmup: int = DEFAULT_WARMUP,
    log=None,
) -> list[Measured]:
    """Run one round (settings[0] is the reference) as a plan and measure each candidate from
    its result files: its median step time after `warmup` iterations, over its runs of every
    pass, and its loss curves against the reference's first (the worst of its runs). Every
    candidate trains the scenario's seed: the same initial weights and batches."""
    if iters <= warmup:
        raise InputError(f"--iters {iters}: must exceed the {warmup} warm-up iterations")
    cells = round_cells(runs, device_text, settings, iters, scenario.train.seed)
    plan = plans.matching(runs.out_dir, cells) if runs.continue_ else None
    todo = plans.to_run(plan) if plan is not None else cells
    if plan is None:
        plan = Plan(
            plans.new_plan_id(f"tune-{scenario.name}"),
            runs.out_dir,
            tuple(cells),
            created_utc=utc_now(),
        )
        plan.save()
    if log:
        done = len(cells) - len(todo)
        log(
            f"plan {plan.plan_id} in {runs.out_dir}: {len(settings)} candidates x {runs.passes} "
            f"pass{'es' * (runs.passes > 1)}, {iters} iterations each"
            + (f" ({done} of {len(cells)} runs completed before, not run again)" if done else "")
        )
    outcomes = runs.execute(plan, todo) if todo else []
    if any(o.status == "interrupted" or o.stop_requested for o in outcomes):
        raise KeyboardInterrupt  # its finished candidates are kept: `tune --continue` goes on
    order = pass_order(len(settings), runs.passes)
    curves = [_curve(settings[i], st, warmup) for i, st in zip(order, plans.cell_states(plan))]
    reference = curves[0][0]  # the reference's first run
    measured = []
    for n, s in enumerate(settings):
        mine = [curve for i, curve in zip(order, curves) if i == n]
        timed = [t for _, times in mine for t in times]
        worst = max(
            (loss_figures(reference, losses) for losses, _ in mine),
            key=lambda f: (not f["finite"], f["max_abs_loss_diff"]),
        )
        measured.append(Measured(s, statistics.median(timed) if timed else math.inf, **worst))
    return measured


def _curve(settings: Settings, state, warmup: int) -> tuple[list[float], list[float]]:
    """A candidate's losses per iteration and its step times after `warmup`, from its cell's
    result file (a diverged run's included: its last loss is not finite)."""
    if state.path is None or not state.path.endswith(".parquet"):
        raise InputError(
            f"tune: candidate {settings.label()} ({state.cell.id}) left no result "
            f"({state.state}: {state.reason}); `nanobench status` of the tune's --out shows "
            f"its round"
        )
    columns = ("iter", "loss", "step_time_s")
    rows = results.read_run_columns(Path(state.path), columns).rows
    steps = sorted(
        (i, loss, t)
        for i, loss, t in zip(*(rows.column(c).to_pylist() for c in columns))
        if loss is not None
    )
    return [loss for _, loss, _ in steps], [t for i, _, t in steps if i >= warmup and t is not None]


# ---- choosing -------------------------------------------------------------------------------


def gain(reference: Measured, other: Measured) -> float:
    """How much faster `other` steps than the reference: 0.10 is 10% less time per step."""
    return 1.0 - other.median_step_s / reference.median_step_s


def select_singles(
    measured: list[Measured], margin: float, min_gain: float, base: Settings = Settings()
) -> dict[str, Measured]:
    """Per setting, its fastest equivalent one-change candidate (a change of `base`), if that
    beats `base`'s own time by more than `min_gain`. measured[0] is the fp32 eager reference
    (equivalence is always against it); `base` is measured too."""
    base_m = next(m for m in measured if m.settings == base)
    best: dict[str, Measured] = {}
    for m in measured:
        if (
            m.settings in (base, Settings())
            or not m.equivalent(margin)
            or gain(base_m, m) <= min_gain
        ):
            continue
        axis = axis_of(m.settings, base)
        if axis not in best or m.median_step_s < best[axis].median_step_s:
            best[axis] = m
    return best


def combine(kept: dict[str, Measured], base: Settings = Settings()) -> Settings:
    """`base` with every kept change applied at once. An attention backend's own dtype
    (sdpa_candidate) gives way to a kept dtype: applied first, overwritten by it."""
    applied = {}
    for axis in sorted(kept, key=lambda a: a != "sdpa"):
        applied.update(changes(kept[axis].settings, base))
    return replace(base, **applied)


def choose(measured: list[Measured], margin: float, min_gain: float) -> Measured:
    """The fastest equivalent candidate beating the reference (measured[0]) by more than
    `min_gain`; the reference when none does."""
    ref = measured[0]
    winners = [m for m in measured[1:] if m.equivalent(margin) and gain(ref, m) > min_gain]
    return min(winners, key=lambda m: m.median_step_s, default=ref)


def on_base(found: list[Settings], base: Settings) -> list[Settings]:
    """Each one-change candidate of the defaults, applied to `base` instead; `base` first."""
    out = [base]
    for s in found:
        moved = replace(base, **s.changed())
        if moved not in out and moved != Settings():
            out.append(moved)
    return out


@dataclass
class TuneResult:
    scenario: str
    device: str  # the device's name
    torch: str
    iters: int
    margin: float
    min_gain: float
    rounds: list[
        tuple[str, list[Measured]]
    ]  # (what the round tried, its measurements: the reference first)
    final: list[Measured]  # the round the choice was made from
    best: Measured
    refused: dict[str, str]  # settings not tried, and why
    load: dict | None = None  # the host's 1-minute load average before and after, and its CPUs


def host_load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def tune(
    scenario,
    device_text: str,
    runs: TuneRuns,
    iters: int = DEFAULT_ITERS,
    margin: float = DEFAULT_MARGIN,
    min_gain: float = DEFAULT_MIN_GAIN,
    axes=AXES,
    log=None,
) -> TuneResult:
    """Measure the candidates, then the combination of the kept changes; choose, never record.
    Each round is a plan of `runs` (run_round).

    On a CPU the thread count is settled first (its own round): it sets how fast everything else
    runs (on a loaded machine, a 2-thread step is many times slower than a 1-thread one), so
    the other settings are then measured at the chosen count."""
    import torch

    from nanobench.measure.device import resolve

    device = resolve(device_text)
    load_before = host_load()
    runs_here = dict(
        grad_accum=scenario.train.grad_accum,
        dropout=scenario.model.dropout,
    )
    found, unrunnable = screen(
        candidates(device, axes), device, **runs_here, compile_problem=environment.compile_problem
    )
    ref = Settings()
    say = log or (lambda text: None)
    threads = [s for s in found if s.threads]
    base, rounds = ref, []
    if threads:
        say(f"round 1 (threads): {len(threads) + 1} candidates, {iters} iterations each")
        rounds.append(
            (
                "threads first: they set how fast everything else runs",
                run_round(runs, scenario, device_text, [ref] + threads, iters, log=log),
            )
        )
        kept = select_singles(rounds[0][1], margin, min_gain)
        base = kept["threads"].settings if "threads" in kept else ref
    others = on_base([s for s in found if not s.threads and s != ref], base)
    say(
        f"round {len(rounds) + 1}: {len(others) + (base != ref)} candidates on {base.label()}: "
        + "; ".join(s.label() for s in others)
    )
    singles_round = run_round(
        runs, scenario, device_text, ([ref] if base != ref else []) + others, iters, log=log
    )
    rounds.append(
        (
            f"one setting changed at a time{'' if base == ref else ' on ' + base.label()}",
            singles_round,
        )
    )
    kept, note = apart(select_singles(singles_round, margin, min_gain, base))
    if note:
        say(note)
    final = singles_round[:1] + ([m for m in singles_round if m.settings == base and base != ref])
    if kept:
        best_single = min(kept.values(), key=lambda m: m.median_step_s).settings
        combined = combine(kept, base)
        c = combined
        clash = unsupported(device, c.sdpa, c.compile_mode, c.dtype, **runs_here)
        if clash and "sdpa" in kept:  # e.g. a kept tf32 under a backend that takes half only
            say(f"not combined: {kept.pop('sdpa').settings.label()} ({clash.split(': ', 1)[1]})")
            combined = combine(kept, base)
        round2 = list(dict.fromkeys([ref, base, best_single, combined]))
        say(f"round {len(rounds) + 1}: {'; '.join(s.label() for s in round2)}")
        final = run_round(runs, scenario, device_text, round2, iters, log=log)
        rounds.append(
            ("the best single change and the combination of kept changes, measured again", final)
        )
    # what was not tried on this device, of the axes asked for
    refused = (
        {f"--dtype {d}": why for d, why in native_dtypes(device)[1].items()}
        if "dtype" in axes
        else {}
    )
    if device.kind == "cpu" and "compile" in axes:
        refused["--compile-mode reduce-overhead"] = "CUDA graphs need a CUDA device"
    refused.update(unrunnable)
    load = {"before": load_before, "after": host_load(), "cpus": _usable_cpus()}
    return TuneResult(
        scenario.name,
        device.name,
        torch.__version__,
        iters,
        margin,
        min_gain,
        rounds,
        final,
        choose(final, margin, min_gain),
        refused,
        load,
    )


# ---- the record: per user, keyed by device name, torch version and scenario ------------------


def record_path() -> Path:
    return files.cache_dir() / "tune.json"


# what the tuned step depends on: the corpus, the model and the training recipe; not the seed,
# the length of the run, its evaluations, targets or sample (`--set eval.interval=...` keeps the record)
STEP_KEYS = {"data": None, "model": None, "train": {"seed", "max_iters"}}


def scenario_digest(scenario) -> str:
    """12 hex digits of what the scenario's training step depends on (STEP_KEYS): a `--set`
    that changes the model or the recipe makes another key."""
    full = scenario.to_dict()
    step = {
        section: {k: v for k, v in (full.get(section) or {}).items() if k not in (left_out or ())}
        for section, left_out in STEP_KEYS.items()
    }
    return hashlib.sha256(json.dumps(step, sort_keys=True, default=str).encode()).hexdigest()[:12]


def record_key(device_name: str, torch_version: str, scenario) -> str:
    return f"{device_name}|torch {torch_version}|{scenario.name}|{scenario_digest(scenario)}"


def load_records(path: Path | None = None) -> dict:
    """Every record in the file; {} when it is missing or unreadable (then tuning runs again)."""
    try:
        data = json.loads((path or record_path()).read_text())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != RECORD_VERSION
        or not isinstance(data.get("records"), dict)
    ):
        return {}
    return data["records"]


def _measured_dict(m: Measured) -> dict:
    return {
        "settings": m.settings.options(),
        "label": m.settings.label(),
        **{k: v for k, v in asdict(m).items() if k != "settings"},
    }


def save(result: TuneResult, scenario, path: Path | None = None) -> str:
    """Write the result's choice under its key (other keys kept); returns the key."""
    path = path or record_path()
    key = record_key(result.device, result.torch, scenario)
    records = load_records(path)
    records[key] = {
        "device": result.device,
        "torch": result.torch,
        "scenario": scenario.name,
        "scenario_sha": scenario_digest(scenario),
        "settings": result.best.settings.options(),
        "label": result.best.settings.label(),
        "iters": result.iters,
        "margin": result.margin,
        "min_gain": result.min_gain,
        "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": [
            {"title": title, "measured": [_measured_dict(m) for m in r]}
            for title, r in result.rounds
        ],
        "refused": result.refused,
        "load": result.load,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(
        path, json.dumps({"version": RECORD_VERSION, "records": records}, indent=1, sort_keys=True)
    )
    return key


def find(
    device_name: str, torch_version: str, scenario, path: Path | None = None
) -> Settings | None:
    """The recorded best settings for this device, torch and scenario, or None."""
    entry = load_records(path).get(record_key(device_name, torch_version, scenario))
    if not entry:
        return None
    try:
        return Settings(**entry["settings"])
    except (KeyError, TypeError):
        return None  # written by another version: tune again


def best_settings(
    scenario, device_text: str, runs: TuneRuns, log=None, path: Path | None = None
) -> Settings:
    """`run --best`: the recorded settings of this device and scenario; tuned (and recorded)
    first when there is no record, its rounds run as `runs` says."""
    import torch

    from nanobench.measure.device import resolve

    device = resolve(device_text)
    found = find(device.name, torch.__version__, scenario, path)
    if found is not None:
        return found
    if log:
        log(
            f"no tune record for {scenario.name} on {device.name} (torch {torch.__version__}): tuning first"
        )
    result = tune(scenario, device_text, runs, log=log)
    save(result, scenario, path)
    return result.best.settings


def per_rank(scenario, world: int):
    """The scenario as each rank of a `world`-rank data-parallel job steps it: its share of
    the global batch (distributed.Dist.shard), so a tune of it measures what a rank runs."""
    share = scenario.train.batch_size // world
    return replace(scenario, train=replace(scenario.train, batch_size=share))


def rank_share(world: int, scenario) -> str:
    """per_rank as a --set override, for the cells of a tune of one rank's share."""
    return f"train.batch_size={scenario.train.batch_size // world}"


def best_settings_for_ranks(
    scenario,
    device_text: str,
    world: int,
    runs: TuneRuns,
    verbose: bool = True,
    path: Path | None = None,
) -> Settings:
    """`run --nproc N --best`: best_settings of one rank's share of the batch, looked up (and
    tuned when there is no record) in a child process. The launcher stays without a CUDA
    context of its own: the child's context and cached memory are gone, with it, before the
    ranks start, so rank 0's GPU has all its memory and its `mem_device_bytes` is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        share = replace(runs, overrides=(*runs.overrides, rank_share(world, scenario)))
        job = child.submit(
            _best_settings_here, per_rank(scenario, world), device_text, share, verbose, path
        )
        return job.result()


def _best_settings_here(
    scenario, device_text: str, runs: TuneRuns, verbose: bool, path: Path | None
) -> Settings:
    """best_settings in the child process of best_settings_for_ranks (its log on stderr)."""
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if verbose else None
    return best_settings(scenario, device_text, runs, log=say, path=path)
