"""The numbers at each point of a ladder, and each rung's part of the gap.

A point's values are *measured* from the runs that hold it (one per seed), or *projected* from a
short truncated run of its recipe on its platform (a probe) and the curve of the same recipe in
the same dtype on another device, or *missing*; the three are never mixed. Each rung contributes
its point's value minus the previous point's, so the parts telescope to B - A exactly (in the
arithmetic; `rounded_parts` keeps a printed column summing to its printed total). Pure functions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np

from nanobench.analyze import equivalence
from nanobench.analyze.ladder import EVAL_KEYS_PREFIX, Point, _same, point_of
from nanobench.analyze.runs import RunStats

# ---- values at a point -------------------------------------------------------------------------

QUANTITIES = (  # (key, words, unit)
    ("val_loss", "final val loss", "nats"),
    ("step_s", "time per iteration", "s"),
    ("time_to_target_s", "train time to target", "s"),
    ("train_time_s", "train time, whole run", "s"),
)


@dataclass(frozen=True)
class Value:
    """One quantity at one point: the mean of its seeds (measured) or a projection, with a band:
    the seeds' range (measured) or the projection's (projected)."""

    mean: float
    low: float
    high: float
    per_seed: tuple[tuple[int, float], ...] = ()  # measured only
    projected: bool = False
    note: str = ""


@dataclass(frozen=True)
class PointResult:
    point: Point
    kind: str  # measured | projected | missing
    run_ids: tuple[str, ...]
    values: dict  # quantity -> Value, or None where not known
    notes: tuple[str, ...] = ()
    probe_ids: tuple[str, ...] = ()
    reference_ids: tuple[str, ...] = ()  # the curve a projection's losses come from
    projected_wall_s: Value | None = (
        None  # projected: train time plus evaluations, for the whole run
    )
    # runs of this point's recipe and platform that stopped short of it (a budget, Ctrl-C):
    # (run id, status, last iteration, last evaluation iteration, its val loss)
    stopped: tuple[tuple, ...] = ()


def covers(stats: RunStats, p: Point) -> bool:
    """Does this run hold p's numbers? Same recipe and platform, and an evaluation at p.iters
    (a longer run of the same recipe holds a shorter one's: --max-iters truncates, docs/compare.md)."""
    q = point_of(stats)
    return (
        not stats.config.continues
        and q.recipe == p.recipe
        and _platform_matches(q, p)
        and any(e.iter == p.iters for e in stats.evaluations)
    )


def _platform_matches(q: Point, p: Point) -> bool:
    return (
        q.device_type == p.device_type
        and _same(p.device_name, q.device_name)
        and q.dtype == p.dtype
        and q.compile == p.compile
        and (p.device_type != "cpu" or _same(p.threads, q.threads))
        and _same(p.torch, q.torch)
    )


def _no_eval(recipe) -> tuple:
    return tuple(kv for kv in recipe if not kv[0].startswith(EVAL_KEYS_PREFIX))


MIN_PROBE_STEPS = 5  # steady (non-warm-up) steps a probe needs for a median and quartiles


def is_probe(stats: RunStats, p: Point) -> bool:
    """A shorter run of p's recipe (evaluation keys aside) on p's platform, with steady steps."""
    q = point_of(stats)
    return (
        not stats.config.continues
        and _no_eval(q.recipe) == _no_eval(p.recipe)
        and _platform_matches(q, p)
        and q.iters < p.iters
        and stats.step_times_s.size >= MIN_PROBE_STEPS
    )


def is_reference(stats: RunStats, p: Point) -> bool:
    """The same recipe (evaluation keys aside) in the same dtype on another device, as far as p."""
    q = point_of(stats)
    other_device = q.device_type != p.device_type or not _same(p.device_name, q.device_name)
    return (
        not stats.config.continues
        and _no_eval(q.recipe) == _no_eval(p.recipe)
        and q.dtype == p.dtype
        and other_device
        and any(e.iter == p.iters for e in stats.evaluations)
    )


def _steps_until(stats: RunStats, iters: int) -> np.ndarray:
    """The run's steady step times of iterations before `iters` (all of them for a run that ends there)."""
    if stats.run is None or (stats.evaluations and stats.evaluations[-1].iter == iters):
        return stats.step_times_s
    rows = stats.rows
    step = rows["step_time_s"].to_numpy(dtype=float, na_value=np.nan)
    warm = (
        rows["warmup"].to_numpy(dtype=object) == True  # noqa: E712
        if "warmup" in rows
        else np.zeros(len(rows), bool)
    )
    keep = (rows["iter"].to_numpy() < iters) & ~np.isnan(step) & ~warm
    return step[keep]


def _seed_values(stats: RunStats, p: Point, target: float | None) -> dict:
    evs = [e for e in stats.evaluations if e.iter <= p.iters]
    at = next(e for e in evs if e.iter == p.iters)
    steps = _steps_until(stats, p.iters)
    hit = next((e for e in evs if target is not None and e.val_loss <= target), None)
    return {
        "val_loss": at.val_loss,
        "step_s": float(np.median(steps)) if steps.size else None,
        "time_to_target_s": hit.train_time_s if hit else None,
        "train_time_s": at.train_time_s,
    }


def _measured(values: list[tuple[int, float | None]], note: str = "") -> Value | None:
    if not values or any(v is None for _, v in values):
        return None
    vs = [v for _, v in values]
    return Value(float(np.mean(vs)), min(vs), max(vs), tuple(values), note=note)


def point_result(
    p: Point,
    pool: list[RunStats],
    target: float | None,
    margin: float = equivalence.DEFAULT_MARGIN,
    project_ok: bool = True,
) -> PointResult:
    """p's values from the runs already in `pool` (nothing runs here): measured from the runs
    that cover it (one per seed), else projected from a probe (when `project_ok`: a point
    this machine can simply run is run, not projected), else missing. The three are never
    mixed."""
    runs, seen = [], set()
    for r in sorted(pool, key=lambda r: r.run_id):
        if covers(r, p) and r.seed not in seen:
            runs.append(r)
            seen.add(r.seed)
    if runs:
        # an imported log's seed is its trainer's, not nanobench's: it never pairs with ours
        per = [
            (
                (r.config.imported, r.seed) if r.config.imported else r.seed,
                _seed_values(r, p, target),
            )
            for r in runs
        ]
        values = {q: _measured([(s, v[q]) for s, v in per]) for q, _, _ in QUANTITIES}
        notes = ()
        if values["time_to_target_s"] is None and target is not None:
            reached = sum(v["time_to_target_s"] is not None for _, v in per)
            notes = (f"target {target:g} reached by {reached} of {len(per)} seeds",)
        return PointResult(p, "measured", tuple(r.run_id for r in runs), values, notes)
    probes = [r for r in pool if is_probe(r, p)]
    stopped = tuple(
        (r.run_id, r.status, _last_row_iter(r), r.evaluations[-1].iter, r.evaluations[-1].val_loss)
        for r in sorted(pool, key=lambda r: r.run_id)
        if r.status not in ("completed", "imported") and r.evaluations and is_shorter_run(r, p)
    )
    if probes and project_ok:
        res = project(p, probes, [r for r in pool if is_reference(r, p)], target, margin)
        return replace(res, stopped=stopped)
    return PointResult(p, "missing", (), {q: None for q, _, _ in QUANTITIES}, stopped=stopped)


def is_shorter_run(stats: RunStats, p: Point) -> bool:
    """A run of p's recipe on p's platform that ended before p's length."""
    q = point_of(stats)
    return (
        not stats.config.continues
        and q.recipe == p.recipe
        and _platform_matches(q, p)
        and q.iters < p.iters
    )


def _last_row_iter(stats: RunStats) -> int:
    if stats.run is not None and len(stats.rows):
        return int(stats.rows["iter"].max())
    return stats.evaluations[-1].iter


def eval_batch_s(stats: RunStats) -> float | None:
    """Seconds per evaluation batch in a run: its time outside the steps (evaluations, mostly)
    over the batches its evaluations scored (both splits)."""
    scen = stats.info.scenario if stats.run is not None else {}
    n_batches = len(stats.evaluations) * 2 * int((scen.get("eval") or {}).get("iters") or 0)
    outside = stats.wall_time_s - stats.train_time_s
    return outside / n_batches if n_batches and outside > 0 else None


def n_evaluations(iters: int, interval: int) -> int:
    """Evaluations of a run of `iters` iterations: every `interval`, from 0, and at the end."""
    return iters // interval + 1 + (0 if iters % interval == 0 else 1)


def project(
    p: Point,
    probes: list[RunStats],
    references: list[RunStats],
    target: float | None,
    margin: float = equivalence.DEFAULT_MARGIN,
) -> PointResult:
    """p's values projected: times from the probes' pooled steady steps (median, band the
    quartiles) times p's iterations; val loss and iterations to target from the curve of the
    same recipe in the same dtype on another device (references), with the band widened by the
    equivalence margin: convergence per iteration is device-independent within that margin
    (nanobench's own check, docs/compare.md), not identical."""
    steps = np.concatenate([_steps_until(r, point_of(r).iters) for r in probes])
    q1, med, q3 = (float(x) for x in np.percentile(steps, [25, 50, 75]))
    how = f"projected from {len(probes)} probe run(s), {steps.size} steady steps"
    values: dict = {q: None for q, _, _ in QUANTITIES}
    values["step_s"] = Value(med, q1, q3, projected=True, note=how)
    values["train_time_s"] = Value(
        med * p.iters, q1 * p.iters, q3 * p.iters, projected=True, note=how
    )
    notes = [
        f"{how}; losses "
        + (
            f"from {len(references)} run(s) of the same recipe on another device, "
            f"+/- the {margin:g}-nat equivalence margin"
            if references
            else "unknown: no run of this recipe reached that far on any device"
        )
    ]
    if references:
        finals = [next(e.val_loss for e in r.evaluations if e.iter == p.iters) for r in references]
        values["val_loss"] = Value(
            float(np.mean(finals)),
            min(finals) - margin,
            max(finals) + margin,
            projected=True,
            note=notes[0],
        )
        hits = [
            next(
                (
                    e.iter
                    for e in r.evaluations
                    if target is not None and e.iter <= p.iters and e.val_loss <= target
                ),
                None,
            )
            for r in references
        ]
        if hits and all(h is not None for h in hits):
            values["time_to_target_s"] = Value(
                float(np.mean(hits)) * med,
                min(hits) * q1,
                max(hits) * q3,
                projected=True,
                note=notes[0],
            )
    return PointResult(
        p,
        "projected",
        (),
        values,
        tuple(notes),
        tuple(r.run_id for r in probes),
        tuple(r.run_id for r in references),
        _projected_wall(p, probes, values["train_time_s"], how),
    )


def _projected_wall(p: Point, probes: list[RunStats], t: Value, how: str) -> Value | None:
    """p's wall time: its projected train time `t` plus its evaluations, each batch at the
    probes' median seconds per evaluation batch; None where p's recipe or the probes do not
    say how long its evaluations take."""
    interval = int(json.loads(p.key("eval.interval") or "0") or 0)
    per_batch = [b for b in (eval_batch_s(r) for r in probes) if b is not None]
    if not (interval and per_batch and p.key("eval.iters")):
        return None
    batches = n_evaluations(p.iters, interval) * 2 * int(json.loads(p.key("eval.iters")))
    e_s = float(np.median(per_batch)) * batches
    return Value(
        t.mean + e_s,
        t.low + e_s,
        t.high + e_s,
        projected=True,
        note=f"{how}; plus {batches} evaluation batches at the probes' {np.median(per_batch) * 1e3:.0f} ms each",
    )


# ---- attribution -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One rung's contribution to one quantity (or the total): cur - prev, with a band. Where
    the two points share seeds, `value` is taken on those seeds (the same seed: the same weights
    and batches) and `composition` is the rest of the difference of means: which seeds ran."""

    value: float
    low: float | None
    high: float | None
    method: str  # how the band was computed, in words
    projected: bool
    composition: float = 0.0  # difference of seed means minus `value`
    seeds: str = ""  # the seed sets in words where they differ ("" where they are the same)
    # a time part from the same runs cut at two lengths: drift, not an effect
    same_runs: bool = False
    split: equivalence.SeedSplit | None = None  # the two points' seed sets (measured only)


PROJECTED_BAND = (
    "from the projection's band: the probes' step-time quartiles times the iterations; losses: the "
    "other device's seeds' range widened by the margin (a range, not a confidence interval)"
)
SAME_RUNS = (
    "the same runs cut at two lengths: a time part is drift within those runs, not an effect of the "
    "change, and has no band"
)
TIME_QUANTITIES = ("step_s", "time_to_target_s", "train_time_s")


def difference_band(
    prev: Value, cur: Value
) -> tuple[float | None, float | None, str, equivalence.SeedSplit | None]:
    """The band of cur - prev, and the seed sets. Measured on both sides: where 2+ seeds ran on
    both (same seed: same initial weights and batches), a paired 95% t interval of the per-seed
    differences; else, with 2+ seeds a side, a Welch 95% interval of the difference of seed
    means. A projection on either side: the interval from the two bands' ends. One seed: no band."""
    if prev.projected or cur.projected:
        return cur.low - prev.high, cur.high - prev.low, PROJECTED_BAND, None
    pa = {s: v for s, v in prev.per_seed if s is not None}
    pb = {s: v for s, v in cur.per_seed if s is not None}
    split = equivalence.split_seeds(pa, pb) if pa and pb else None
    shared = split.shared if split else ()
    if len(shared) >= 2:
        lo, hi = equivalence.paired([pb[s] - pa[s] for s in shared]).ci(0.95)
        return lo, hi, f"paired 95% t interval over {len(shared)} shared seeds", split
    a, b = [v for _, v in prev.per_seed], [v for _, v in cur.per_seed]
    if len(a) < 2 or len(b) < 2:
        return None, None, "one seed: no band", split
    _, lo, hi, _ = equivalence.welch_interval(a, b, 0.95)
    return lo, hi, "Welch 95% t interval over seeds (they do not pair)", split


def part(
    prev: Value | None, cur: Value | None, same_runs: bool = False, labels=("A", "B")
) -> Part | None:
    if prev is None or cur is None:
        return None
    lo, hi, method, split = difference_band(prev, cur)
    projected = prev.projected or cur.projected
    if split is not None and split.shared and split.differ and len(split.shared) < 2:
        lo = hi = None  # a band from all seeds would not be a band of the shared-seed value
        method = f"{len(split.shared)} shared seed: no band"
    # the shared-seed difference where the seed sets differ; where they are the same it is the
    # difference of means (the same number, without its rounding)
    differ = split is not None and bool(split.shared) and split.differ
    value = split.diff if differ else cur.mean - prev.mean
    if same_runs:
        lo = hi = None
        method = SAME_RUNS
    return Part(
        value,
        lo,
        hi,
        method,
        projected,
        (cur.mean - prev.mean) - value if differ else 0.0,
        split.words(*labels) if split is not None and split.shared and split.differ else "",
        same_runs,
        split,
    )


@dataclass(frozen=True)
class Attribution:
    quantity: str
    total: Part | None
    parts: tuple[Part | None, ...]  # one per rung

    @property
    def complete(self) -> bool:
        return self.total is not None and all(p is not None for p in self.parts)

    @property
    def projected(self) -> bool:
        return any(p is not None and p.projected for p in (self.total, *self.parts))

    @property
    def seed_sets(self) -> float:
        """What the rungs' own seed sets add up to beyond the total's: the parts (each on the seeds
        its two points share) plus this sum to the total (on the seeds A and B share)."""
        if not self.complete:
            return 0.0
        return sum(p.composition for p in self.parts) - self.total.composition


def attribute(results: list[PointResult]) -> dict[str, Attribution]:
    """results[0] is A, results[-1] is B, one per rung between: each rung's part is its point
    minus the point before (on the seeds both hold), so the parts, with the seed-sets term,
    telescope to B - A."""
    out = {}
    names = ["A"] + [f"rung {i}" for i in range(1, len(results) - 1)] + ["B"]
    for q, _, _ in QUANTITIES:
        vals = [r.values.get(q) for r in results]
        same = [
            q in TIME_QUANTITIES and bool(set(x.run_ids) & set(y.run_ids))
            for x, y in zip(results, results[1:])
        ]
        out[q] = Attribution(
            q,
            part(vals[0], vals[-1], labels=("A", "B")),
            tuple(
                part(x, y, s, (n1, n2))
                for x, y, s, n1, n2 in zip(vals, vals[1:], same, names, names[1:])
            ),
        )
    return out


def rounded_parts(parts: list[float], total: float, digits: int) -> list[float]:
    """Round parts to `digits` decimals so that they sum exactly to the total rounded the same
    way (largest remainder): a printed column that adds up to the printed total."""
    scale = 10**digits
    goal = round(total * scale)
    floors = [math.floor(p * scale) for p in parts]
    short = goal - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: -(parts[i] * scale - floors[i]))
    if short < 0:
        order = sorted(range(len(parts)), key=lambda i: parts[i] * scale - floors[i])
    for i in order[: abs(short)] if order else []:
        floors[i] += 1 if short > 0 else -1
    return [f / scale for f in floors]
