"""The runs a ladder still needs: for each missing point, the `nanobench run` command that makes
it, where it can run and its estimated time (run/estimate.py: FLOPs over a peak and an MFU);
and which of them this machine should run first within a budget. A point that would outlast the
budget here gets a short probe instead, whose steps project it (analyze/attribution.project).

Nothing here probes hardware: the CLI passes what this machine has (`Here`) and a function for
its measured peak. An estimate is a plan, never a measurement.
"""

from __future__ import annotations

import copy
import json
import math
import shlex
from dataclasses import dataclass, replace

from nanobench.analyze.attribution import PointResult
from nanobench.analyze.format import fmt_time
from nanobench.analyze.ladder import Point, point_of
from nanobench.analyze.runs import RunStats
from nanobench.errors import InputError

# ---- planning the missing rungs -----------------------------------------------------------------


@dataclass(frozen=True)
class Here:
    """What this machine offers (the CLI asks the hardware; tests pass it in)."""

    devices: dict  # device type -> its name: {"cpu": "AMD EPYC"}
    torch: str | None


@dataclass(frozen=True)
class MissingRun:
    point: Point
    argv: tuple[str, ...]  # `nanobench run ...`, without the program
    where: str  # "here", or what it needs ("needs a GPU")
    estimate_s: float | None
    estimate_how: str
    probe: bool = False  # a short truncated run for a projection, not the point itself
    covers: tuple[
        Point, ...
    ] = ()  # further missing points this run also makes (shorter ones of its recipe)

    @property
    def here(self) -> bool:
        return self.where == "here"

    def command(self) -> str:
        return shlex.join(("nanobench", "run", *self.argv))


PROBE_ITERS = 20
PROBE_EVAL_ITERS = 2


def where(p: Point, here: Here | None) -> str:
    if here is None:
        return "unknown (not planned)"
    if p.device_type not in here.devices:
        return {"cuda": "needs a GPU", "mps": "needs an Apple GPU"}.get(
            p.device_type, f"needs a {p.device_type} device"
        )
    if p.device_name and p.device_name != here.devices[p.device_type]:
        return f"needs the {p.device_label()} machine"
    if p.torch and here.torch and p.torch != here.torch:
        return f"needs torch {p.torch}"
    return "here"


def command_args(
    p: Point,
    seeds: list[int],
    out: str,
    scenario_recipes: dict[str, tuple],
    iters: int | None = None,
    extra_sets: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """The `nanobench run` arguments that make p: the scenario (of those given) needing the fewest
    --set overrides, then the platform, the length and the seeds."""
    best = None
    for name, recipe in scenario_recipes.items():
        mine, base = dict(p.recipe), dict(recipe)
        if set(base) - set(mine):
            continue  # a key the point lacks cannot be unset with --set
        sets = [f"{k}={mine[k]}" for k in sorted(mine) if base.get(k) != mine[k]]
        if best is None or len(sets) < len(best[1]):
            best = (name, sets, recipe)
    if best is None:
        raise InputError(f"{p.label()}: no scenario to build its command from")
    name, sets, _ = best
    argv = [name, "--device", p.device_type, "--dtype", p.dtype]
    argv += ["--compile"] if p.compile else []
    argv += ["--threads", str(p.threads)] if p.threads and p.device_type == "cpu" else []
    argv += ["--max-iters", str(iters or p.iters)]
    argv += ["--seeds", ",".join(map(str, seeds))] if seeds else []
    extra_keys = {x.partition("=")[0] for x in extra_sets}
    for s in [x for x in sets if x.partition("=")[0] not in extra_keys] + list(extra_sets):
        argv += ["--set", s]
    return tuple(argv + ["--out", out])


def scenario_of(p: Point) -> dict:
    """p's scenario as a dict a Scenario can be built from: its base with the recipe set."""
    out = json.loads(json.dumps(copy.deepcopy(p.base) or {"name": p.scenario}))
    for k, v in p.recipe:
        section, _, key = k.partition(".")
        out.setdefault(section, {})[key] = json.loads(v)
    out.setdefault("train", {})["max_iters"] = p.iters
    return out


DEFAULT_GPU = (
    "NVIDIA A100-SXM4-80GB"  # GPU rungs with no GPU run to read a peak from: nanoGPT's card
)
DEFAULT_MFU = {
    "cpu": 0.5,
    "cuda": 0.06,
    "mps": 0.1,
}  # of the peak used, where no run shows one (scripts/gpu-check.sh)
STARTUP_S = (
    5.0  # a `nanobench run` process before its first step (imports, data, model), for plans only
)
GPU_FLOOR_S = (
    0.004  # least time an eager GPU iteration of these small models takes (kernel launches)
)


def _vocab(pool: list[RunStats]) -> int | None:
    for r in pool:
        if r.run is not None and isinstance(r.info.raw.get("dataset"), dict):
            v = r.info.raw["dataset"].get("vocab_size")
            if isinstance(v, int) and v > 0:
                return v
    return None


def _observed_mfu(
    p: Point, pool: list[RunStats], kind: str, vocab: int
) -> tuple[float | None, str]:
    """The fraction of a peak (`kind`: measured or spec, as recorded) that the run of p's device
    and dtype closest in FLOPs per iteration reached: flops_per_iter / median step / peak; and
    how sure that is: how many such runs there are, their spread, and whether they were
    recorded as noisy (a plan from one run on a busy machine can be far off)."""
    found, want = [], _flops_per_iter(p, vocab)
    for r in pool:
        q = point_of(r)
        if (
            r.run is None
            or q.device_type != p.device_type
            or q.dtype != p.dtype
            or not r.median_step_s
        ):
            continue
        if p.device_name and q.device_name != p.device_name:
            continue
        pf, fpi = r.info.peak_flops, r.info.flops_per_iter
        peak = getattr(pf, kind).flops if pf is not None else None
        if not (peak and fpi):
            continue
        closeness = abs(math.log(fpi / want)) if want else 0.0
        found.append((round(closeness, 6), fpi / r.median_step_s / peak, r))
    if not found:
        return None, ""
    nearest = min(c for c, _, _ in found)
    same = [(m, r) for c, m, r in found if c == nearest]
    closeness, mfu, run = min(found, key=lambda x: (x[0], x[2].run_id))
    mfus = [m for m, _ in same]
    noisy = sum(r.noise.verdict == "noisy" for _, r in same)
    sure = (
        f"from {len(same)} runs, MFU {min(mfus):.2f}-{max(mfus):.2f}"
        if len(same) > 1
        else "from one run: its spread is not known"
    )
    if noisy:
        sure += f"; {noisy} of them recorded as noisy: the machine was busy, the estimate may be far off"
    return mfu, f"MFU {mfu:.2f} as run {run.run_id} reached ({sure})"


def _flops_per_iter(p: Point, vocab: int) -> float | None:
    from nanobench.measure.metrics import work_per_iter
    from nanobench.run.estimate import n_params

    try:
        s = _scenario(p)
    except InputError:
        return None
    return work_per_iter(s.train, s.model, n_params(s.model, vocab))[1]


def _scenario(p: Point):
    from nanobench.run.scenario import from_dict

    return from_dict(scenario_of(p), [], p.label())


def estimate_point(
    p: Point,
    pool: list[RunStats],
    here: Here | None,
    here_peak,
    iters: int | None = None,
    eval_iters: int | None = None,
) -> tuple[float | None, str]:
    """Seconds to make p (or its first `iters` iterations, with `eval_iters` evaluation batches):
    run/estimate.py at a peak (this machine's measured one for a device here, a recorded or
    datasheet one otherwise) times an MFU (what the nearest run on that device reached, else a
    stated default). An estimate is a plan, never a measurement."""
    from nanobench.measure.peaks import gpu_spec_peak
    from nanobench.run.estimate import estimate

    vocab = _vocab(pool)
    if vocab is None:
        return None, "no vocabulary size recorded"
    if here is not None and where(p, here) == "here":
        peak, source, kind = (*here_peak(p.device_type, p.dtype), "measured")
    else:
        recorded = [
            r.info.peak_flops.spec
            for r in pool
            if r.run is not None
            and r.info.peak_flops is not None
            and point_of(r).device_type == p.device_type
            and point_of(r).dtype == p.dtype
            and r.info.peak_flops.spec.flops
        ]
        if recorded:
            peak, source = recorded[0].flops, f"{recorded[0].source}"
        elif p.device_type == "cuda":
            spec = gpu_spec_peak(DEFAULT_GPU, p.dtype)
            peak, source = spec.flops, f"{DEFAULT_GPU} datasheet (no GPU run to read one from)"
        else:
            peak, source = None, ""
        kind = "spec"
    if not peak:
        return None, f"no peak known for {p.device_type} {p.dtype}"
    mfu, mfu_how = _observed_mfu(p, pool, kind, vocab)
    if mfu is None or not 0 < mfu <= 1:
        mfu, mfu_how = (
            DEFAULT_MFU.get(p.device_type, 0.1),
            f"MFU {DEFAULT_MFU.get(p.device_type, 0.1):g} assumed (no run of this device and dtype to "
            f"take it from: it may be several times off)",
        )
    scen = _scenario(p)
    if eval_iters is not None:
        scen = replace(scen, eval=replace(scen.eval, iters=eval_iters))
    e = estimate(
        scen,
        vocab,
        peak,
        mfu,
        iters=iters or p.iters,
        floor_s_per_iter=GPU_FLOOR_S if p.device_type != "cpu" else 0.0,
    )
    return e.total_s, (
        f"{e.train_flops / max(e.iters, 1) / 1e12:.3g} TFLOP/iteration, {e.iters} iterations + "
        f"{e.n_evals} evaluations at {mfu_how} of {peak / 1e9:,.0f} GFLOP/s ({source.split(';')[0]})"
    )


def runs_here(
    p: Point, pool: list[RunStats], here: Here, here_peak, budget_s: float | None
) -> bool:
    """Can this machine make p (one seed) within the budget, by the estimate?"""
    if where(p, here) != "here":
        return False
    est, _ = estimate_point(p, pool, here, here_peak)
    return budget_s is None or (est is not None and est <= budget_s)


def missing_runs(
    results: list[PointResult],
    seeds: list[int],
    out: str,
    scenario_recipes: dict[str, tuple],
    pool: list[RunStats],
    here: Here | None,
    here_peak=None,
    budget_s: float | None = None,
) -> list[MissingRun]:
    """A MissingRun for every missing point: its command, where it runs and its estimated time; a point
    that runs here but would outlast `budget_s` gets a short probe instead (its numbers are then
    projected). A run that also makes a shorter missing point of its recipe covers it."""
    found = []
    for res in results:
        if res.kind != "missing":
            continue
        p = res.point
        place = where(p, here)
        est, how = (
            estimate_point(p, pool, here, here_peak)
            if place == "here" or here is not None
            else (None, "")
        )
        if place == "here" and budget_s is not None and est is not None and est > budget_s:
            eval_iters = min(PROBE_EVAL_ITERS, int(json.loads(p.key("eval.iters") or "1")))
            probe_est, probe_how = estimate_point(p, pool, here, here_peak, PROBE_ITERS, eval_iters)
            argv = command_args(
                p, seeds[:1], out, scenario_recipes, PROBE_ITERS, (f"eval.iters={eval_iters}",)
            )
            probe_s = None if probe_est is None else probe_est + STARTUP_S
            if (
                probe_s is not None and probe_s > budget_s
            ):  # not even the probe: planned, never picked by --run
                place = f"too slow here even as a probe (over the {fmt_time(budget_s)} budget)"
            found.append(
                MissingRun(
                    p,
                    argv,
                    place,
                    probe_s,
                    f"probe of {PROBE_ITERS} iterations; the full run: {fmt_time(est)} ({how})",
                    probe=True,
                )
            )
            continue
        n = max(1, len(seeds))
        total = None if est is None else n * (est + STARTUP_S)
        found.append(
            MissingRun(
                p,
                command_args(p, seeds, out, scenario_recipes),
                place,
                total,
                f"{n} seed{'s' * (n > 1)} x ({fmt_time(est)} + {STARTUP_S:g} s start-up): {how}",
            )
        )
    return _fold_shorter(found)


def _fold_shorter(found: list[MissingRun]) -> list[MissingRun]:
    """The runs less those a longer run of the same recipe makes too, each longer one saying
    which points it covers (probes neither fold nor are folded)."""

    def folds(short: MissingRun, long: MissingRun) -> bool:
        return (
            short is not long
            and not short.probe
            and not long.probe
            and _folds(short.point, long.point)
        )

    kept = [run for run in found if not any(folds(run, o) for o in found)]
    return [replace(p, covers=tuple(o.point for o in found if folds(o, p))) for p in kept]


def _folds(short: Point, long: Point) -> bool:
    """Does a run of `long` make `short` too (same recipe and platform, an evaluation at short.iters)?"""
    interval = int(json.loads(long.key("eval.interval") or "0") or 0)
    return (
        short != long
        and replace(short, iters=long.iters) == long
        and short.iters < long.iters
        and interval > 0
        and short.iters % interval == 0
    )


def run_order(
    wanted: list[MissingRun], results: list[PointResult], budget_s: float
) -> list[MissingRun]:
    """The runs this machine can finish within the budget, the most informative first: a run
    is worth the rung contributions it completes (both ends known afterwards), and among equals
    the cheapest goes first."""
    known = [r.kind != "missing" for r in results]
    index = {r.point: i for i, r in enumerate(results)}

    def completes(run: MissingRun) -> int:
        now = list(known)
        for pt in (run.point, *run.covers):
            if pt in index:
                now[index[pt]] = True
        return sum(now[i] and now[i + 1] for i in range(len(now) - 1)) - sum(
            known[i] and known[i + 1] for i in range(len(known) - 1)
        )

    chosen, left = [], budget_s
    for run in sorted(
        (p for p in wanted if p.here and p.estimate_s is not None),
        key=lambda p: (-completes(p), p.estimate_s),
    ):
        if run.estimate_s <= left:
            chosen.append(run)
            left -= run.estimate_s
    return chosen
