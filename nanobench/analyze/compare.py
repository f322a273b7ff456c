"""Pure statistics over loaded runs: per-run numbers, grouping, time-to-target, speedups,
loss at equal iteration and at equal train time, confounds, verdicts and regression gates.

Nothing here prints or draws; `tables.py`, `plots.py` and `report.py` present what these
functions return. Every statistic is computed from the rows (docs/results.md), never from
the metadata's `summary`, so a hand-built or recovered file is measured the same way.

Row semantics used throughout: an evaluation on row i scores the model after i steps, so
the train time at which it was reached is `train_time_s - step_time_s` of that row (the
final row has no step: its own train_time_s); likewise for wall time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanobench.analyze import equivalence, references
from nanobench.store import results
from nanobench.errors import InputError

# ---- one run ------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Config:
    """A configuration: what may differ between runs of one scenario on purpose."""

    device_type: str
    device_name: str
    dtype: str
    compile: bool
    continues: str = ""  # a resumed run: "cpu fp32 @1000", the configuration and iteration it took over
    imported: str = ""  # a run imported from another trainer's log ("nanogpt"): its own configuration

    def label(self, with_name: bool = False) -> str:
        text = f"{self.device_type} {self.dtype}" + (" compiled" if self.compile else "")
        text = f"{text} ({self.device_name})" if with_name else text
        text = f"{text} from {self.imported} log" if self.imported else text
        return f"{text} continuing {self.continues}" if self.continues else text


def _continues(meta: dict) -> str:
    """'cpu fp32 @1000' for a run resumed from a checkpoint of a cpu fp32 run at iteration 1000.

    A continuation is its own configuration: its history is its parent's, so it is never
    averaged with runs that trained from scratch; plots draw it on from its parent's curve.
    """
    parent = meta.get("resumed_from") or None
    if not parent:
        return ""
    device = parent.get("device")
    kind = device.get("type", "?") if isinstance(device, dict) else str(device)
    return f"{kind} {parent.get('dtype', '?')} @{parent.get('iter', '?')}"


@dataclass(frozen=True)
class Evaluation:
    iter: int
    val_loss: float
    train_loss: float | None
    train_time_s: float  # train time at which the evaluated model existed
    wall_time_s: float


@dataclass(eq=False)
class RunStats:
    run_id: str
    path: str
    scenario: str
    dataset: str
    dataset_sha256: str
    config: Config
    seed: int | None
    threads: int | None
    torch_version: str | None
    status: str
    targets: tuple[float, ...]
    iterations: int
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    median_step_s: float | None
    p90_step_s: float | None
    tokens_per_s: float | None
    mfu: float | None
    mem_peak_bytes: int | None
    energy_j: float | None
    train_time_s: float
    wall_time_s: float
    evaluations: tuple[Evaluation, ...]
    step_times_s: np.ndarray = field(repr=False)  # warm-up excluded, (n_steps,)


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between order statistics
    (numpy's default, Hyndman-Fan type 7). None for no values."""
    values = np.asarray(values, dtype=float)
    return float(np.percentile(values, q)) if values.size else None


def _col(rows, name: str) -> np.ndarray:
    """A column as float64 with NaN for null (or all NaN when the column is absent): plain
    numpy, because pandas indexing per column costs more than the statistics here."""
    if name not in rows:
        return np.full(len(rows), np.nan)
    return rows[name].to_numpy(dtype=float, na_value=np.nan)


def _warmup(rows) -> np.ndarray:
    if "warmup" not in rows:
        return np.zeros(len(rows), dtype=bool)
    col = rows["warmup"]
    if col.dtype == bool:
        return col.to_numpy()
    return col.to_numpy(dtype=object) == True  # noqa: E712  (a null counts as not warm-up)


def _untimed(rows) -> np.ndarray:
    """Rows left out of step-time statistics: warm-up, and imported steps whose printed time
    includes an evaluation (column `step_includes_eval`)."""
    if "step_includes_eval" not in rows:
        return _warmup(rows)
    return _warmup(rows) | (rows["step_includes_eval"].to_numpy(dtype=object) == True)  # noqa: E712


def step_times(rows) -> np.ndarray:
    """Timed steps with warm-up rows excluded; the final evaluation-only row has no step."""
    step = _col(rows, "step_time_s")
    return step[~np.isnan(step) & ~_untimed(rows)]


def evaluations(rows) -> tuple[Evaluation, ...]:
    """Evaluation points in iteration order, each with the time its model was reached."""
    val = _col(rows, "eval_val_loss")
    at = ~np.isnan(val)
    if not at.any():
        return ()
    step = np.nan_to_num(_col(rows, "step_time_s")[at], nan=0.0)
    train_t = _col(rows, "train_time_s")[at] - step
    wall_t = _col(rows, "wall_time_s")[at] - step
    tl = _col(rows, "eval_train_loss")[at]
    its = rows["iter"].to_numpy()[at]
    return tuple(
        Evaluation(int(i), float(v), None if math.isnan(t) else float(t), float(a), float(w))
        for i, v, t, a, w in zip(its, val[at], tl, train_t, wall_t)
    )


def _last(values: np.ndarray) -> float | None:
    ok = values[~np.isnan(values)]
    return float(ok[-1]) if ok.size else None


def _max(values: np.ndarray) -> float | None:
    return float(np.nanmax(values)) if (~np.isnan(values)).any() else None


def run_stats(run: results.Run) -> RunStats:
    """The per-run numbers of the compare table, from the rows."""
    meta, rows = run.meta, run.rows
    scen = meta.get("scenario") or {}
    opts = meta.get("options") or {}
    dev = meta.get("device") or {}
    env = meta.get("environment") or {}
    data = meta.get("dataset") or {}
    # a step has a time or a loss (an imported log may print no times); the final row neither
    is_step = ~np.isnan(_col(rows, "step_time_s")) | ~np.isnan(_col(rows, "loss"))
    timed = ~np.isnan(_col(rows, "step_time_s")) & ~_untimed(rows)
    times = _col(rows, "step_time_s")[timed]
    evs = evaluations(rows)
    median_s = percentile(times, 50)
    # tokens is cumulative, from the parent's count in a resumed run: take a step's increment
    tokens = _col(rows, "tokens")[is_step]
    tokens = tokens[~np.isnan(tokens)]
    if tokens.size >= 2:
        tokens_per_iter = float(tokens[1] - tokens[0])
    elif tokens.size == 1 and int(rows["iter"].to_numpy()[is_step][0]) == 0:
        tokens_per_iter = float(tokens[0])
    else:
        tokens_per_iter = None
    mfu = _col(rows, "mfu")[timed]
    mfu = mfu[~np.isnan(mfu)]
    mem_peak = _max(_col(rows, "mem_peak_bytes"))
    return RunStats(
        run_id=str(meta.get("run_id", Path(run.path).stem)),
        path=str(run.path),
        scenario=str(scen.get("name", "?")),
        dataset=str(data.get("name", "?")),
        dataset_sha256=str(data.get("sha256", "?")),
        config=Config(str(dev.get("type", opts.get("device", "?"))), str(dev.get("name", "?")),
                      str(opts.get("dtype", "?")), bool(opts.get("compile", False)), _continues(meta),
                      str((meta.get("imported") or {}).get("format", ""))),
        seed=opts.get("seed"),
        threads=env.get("torch_num_threads"),
        torch_version=env.get("torch"),
        status=results.display_status(meta),
        targets=tuple(sorted((float(t) for t in (scen.get("targets") or {}).get("val_loss", [])), reverse=True)),
        iterations=int(is_step.sum()),
        final_train_loss=_last(_col(rows, "loss")[is_step]),
        final_val_loss=evs[-1].val_loss if evs else None,
        best_val_loss=min(e.val_loss for e in evs) if evs else None,
        median_step_s=median_s,
        p90_step_s=percentile(times, 90),
        tokens_per_s=tokens_per_iter / median_s if tokens_per_iter and median_s else None,
        mfu=float(np.median(mfu)) if mfu.size else None,
        mem_peak_bytes=int(mem_peak) if mem_peak is not None else None,
        energy_j=_last(_col(rows, "energy_j")),
        train_time_s=_max(_col(rows, "train_time_s")) or 0.0,
        wall_time_s=_max(_col(rows, "wall_time_s")) or 0.0,
        evaluations=evs,
        step_times_s=times,
    )


# ---- time to target, equal iteration, equal time ---------------------------------------------


@dataclass(frozen=True)
class Hit:
    """When a val-loss target was first reached (the first evaluation with val <= target)."""

    iter: float
    train_time_s: float
    wall_time_s: float


def time_to_target(evals: tuple[Evaluation, ...], target: float) -> Hit | None:
    """The first evaluation at which val loss <= target; None when never reached."""
    for e in evals:
        if e.val_loss <= target:
            return Hit(e.iter, e.train_time_s, e.wall_time_s)
    return None


def val_loss_at_iter(evals: tuple[Evaluation, ...], it: int) -> float | None:
    return next((e.val_loss for e in evals if e.iter == it), None)


def val_loss_at_time(evals: tuple[Evaluation, ...], t_s: float) -> float | None:
    """Val loss at train time t_s, linearly interpolated between evaluation points.
    None before the first evaluation or after the last (no extrapolation)."""
    if not evals:
        return None
    ts = np.array([e.train_time_s for e in evals])
    vs = np.array([e.val_loss for e in evals])
    if t_s < ts[0] - 1e-12 or t_s > ts[-1] + 1e-12:
        return None
    return float(np.interp(t_s, ts, vs))


# ---- a configuration: several seeds ------------------------------------------------------------


@dataclass(eq=False)
class ConfigSummary:
    """The runs (seeds) of one configuration in one group, aggregated."""

    config: Config
    label: str
    runs: list[RunStats]
    step_times_s: np.ndarray  # all seeds' timed steps pooled
    median_step_s: float | None
    q1_step_s: float | None
    q3_step_s: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    final_train_loss: float | None
    tokens_per_s: float | None
    mem_peak_bytes: float | None
    train_time_s: float
    wall_time_s: float

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def aggregate(config: Config, label: str, runs: list[RunStats]) -> ConfigSummary:
    """Several seeds of one configuration: step times pooled, everything else the mean."""
    pooled = np.concatenate([r.step_times_s for r in runs]) if runs else np.array([])
    return ConfigSummary(
        config=config, label=label, runs=runs, step_times_s=pooled,
        median_step_s=percentile(pooled, 50), q1_step_s=percentile(pooled, 25), q3_step_s=percentile(pooled, 75),
        final_val_loss=_mean(r.final_val_loss for r in runs),
        best_val_loss=_mean(r.best_val_loss for r in runs),
        final_train_loss=_mean(r.final_train_loss for r in runs),
        tokens_per_s=_mean(r.tokens_per_s for r in runs),
        mem_peak_bytes=_mean(r.mem_peak_bytes for r in runs),
        train_time_s=float(np.mean([r.train_time_s for r in runs])),
        wall_time_s=float(np.mean([r.wall_time_s for r in runs])),
    )


def config_hit(cs: ConfigSummary, target: float) -> tuple[Hit | None, int]:
    """Mean time-to-target over the seeds, only when every seed reached it; and how many did."""
    hits = [time_to_target(r.evaluations, target) for r in cs.runs]
    reached = [h for h in hits if h is not None]
    if not reached or len(reached) < len(hits):
        return None, len(reached)
    return Hit(*(float(np.mean(x)) for x in zip(*((h.iter, h.train_time_s, h.wall_time_s) for h in reached)))), len(reached)


# ---- a pair of configurations ----------------------------------------------------------------


@dataclass(frozen=True)
class Speedup:
    """base median / other median (> 1: other is faster), with the quartile range
    [base Q1 / other Q3, base Q3 / other Q1]: the ratio when both runs' steps move
    within their interquartile ranges."""

    ratio: float
    low: float
    high: float


def speedup(base_s, other_s) -> Speedup | None:
    base_s, other_s = np.asarray(base_s, float), np.asarray(other_s, float)
    if not base_s.size or not other_s.size:
        return None
    bq1, bm, bq3 = np.percentile(base_s, [25, 50, 75])
    oq1, om, oq3 = np.percentile(other_s, [25, 50, 75])
    if om <= 0 or oq1 <= 0:
        return None
    return Speedup(float(bm / om), float(bq1 / oq3), float(bq3 / oq1))


@dataclass(frozen=True)
class TargetResult:
    target: float
    base: Hit | None
    other: Hit | None
    base_reached: int
    other_reached: int
    # base / other: how many times sooner `other` got there (> 1: sooner); None unless both reached
    iter_ratio: float | None
    train_time_ratio: float | None
    wall_time_ratio: float | None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def compare_targets(base: ConfigSummary, other: ConfigSummary, target: float) -> TargetResult:
    bh, bn = config_hit(base, target)
    oh, on = config_hit(other, target)
    both = bh is not None and oh is not None
    return TargetResult(
        target, bh, oh, bn, on,
        _ratio(bh.iter, oh.iter) if both else None,
        _ratio(bh.train_time_s, oh.train_time_s) if both else None,
        _ratio(bh.wall_time_s, oh.wall_time_s) if both else None,
    )


@dataclass(frozen=True)
class EqualPoint:
    """Val loss of both configurations at one iteration or one train time; diff = other - base."""

    at: float
    base_val: float
    other_val: float

    @property
    def diff(self) -> float:
        return self.other_val - self.base_val


def equal_iteration(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """The last evaluation iteration that every run of both configurations has."""
    sets = [{e.iter for e in r.evaluations} for r in base.runs + other.runs]
    common = set.intersection(*sets) if sets else set()
    if not common:
        return None
    it = max(common)
    bv = _mean(val_loss_at_iter(r.evaluations, it) for r in base.runs)
    ov = _mean(val_loss_at_iter(r.evaluations, it) for r in other.runs)
    return EqualPoint(it, bv, ov)


def equal_train_time(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """Val loss at the shorter run's train time (time of its last evaluation), each run
    interpolated linearly between its evaluations, then averaged over seeds."""
    ends = [r.evaluations[-1].train_time_s for r in base.runs + other.runs if r.evaluations]
    if len(ends) < len(base.runs) + len(other.runs):
        return None
    t = min(ends)
    bv = [val_loss_at_time(r.evaluations, t) for r in base.runs]
    ov = [val_loss_at_time(r.evaluations, t) for r in other.runs]
    if any(v is None for v in bv + ov):
        return None
    return EqualPoint(t, _mean(bv), _mean(ov))


@dataclass
class PairComparison:
    base: ConfigSummary
    other: ConfigSummary
    speedup: Speedup | None
    targets: list[TargetResult]
    equal_iter: EqualPoint | None
    equal_time: EqualPoint | None
    verdict: str = ""
    equivalence: dict | None = None  # equivalence.compare_curves over the seeds
    explanation: dict | None = None  # equivalence.explain_gap of the mean curves


# ---- groups ------------------------------------------------------------------------------------


@dataclass
class Group:
    """Runs that may be compared: one scenario on one dataset."""

    scenario: str
    dataset: str
    dataset_sha256: str
    runs: list[RunStats]
    configs: list[ConfigSummary]  # the baseline first
    baseline: ConfigSummary
    pairs: list[PairComparison]
    targets: tuple[float, ...]
    confounds: list[str]

    @property
    def key(self) -> tuple[str, str]:
        return (self.scenario, self.dataset_sha256)


@dataclass
class Comparison:
    groups: list[Group]
    warnings: list[str]
    skipped: list[str] = field(default_factory=list)
    references: list[references.Check] = field(default_factory=list)  # "is my run normal?", per run


def choose_baseline(configs: list[ConfigSummary]) -> ConfigSummary:
    """cpu fp32 (not compiled) if present, else the slowest by median ms/iter; ties and
    missing timings broken by label, so the choice never depends on file order."""
    slowest_first = sorted(configs, key=lambda c: (-(c.median_step_s or 0.0), c.label, c.config))
    for c in slowest_first:
        if (c.config.device_type == "cpu" and c.config.dtype == "fp32" and not c.config.compile
                and not c.config.continues and not c.config.imported):
            return c
    # a continuation is never the baseline; an imported log only when nothing else is there
    fresh = sorted((c for c in slowest_first if not c.config.continues), key=lambda c: bool(c.config.imported))
    return (fresh or slowest_first)[0]


def _labels(configs: list[Config]) -> dict[Config, str]:
    """Short labels ('cuda bf16'); the device name is added only where short ones clash."""
    short = {c: c.label() for c in configs}
    clash = {lab for lab in short.values() if list(short.values()).count(lab) > 1}
    return {c: c.label(with_name=short[c] in clash) for c in configs}


def confounds(runs: list[RunStats]) -> list[str]:
    """What differs between runs of one group besides the device itself."""

    def spread(name: str, value_of, why: str) -> str | None:
        counts: dict = {}
        for r in runs:
            counts[value_of(r)] = counts.get(value_of(r), 0) + 1
        if len(counts) < 2:
            return None
        listed = ", ".join(f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        return f"{name} differs: {listed}; {why}"

    items = [
        spread("dtype", lambda r: r.config.dtype, "precision, not the device, may explain loss differences"),
        spread("compile", lambda r: "compiled" if r.config.compile else "eager", "compilation changes speed and kernel order"),
        spread("threads", lambda r: r.threads, "CPU thread count changes speed and reduction order"),
        spread("torch", lambda r: r.torch_version, "kernels differ between torch versions"),
    ]
    by_config: dict = {}
    for r in runs:
        by_config.setdefault(r.config, set()).add(r.evaluations[-1].iter if r.evaluations else 0)
    for config, lengths in sorted(by_config.items()):
        if len(lengths) > 1:
            items.append(f"{config.label()} runs end at different iterations ({', '.join(map(str, sorted(lengths)))}): "
                         f"their mean curve and the equivalence verdict use only the evaluations all of them reached")
    return [i for i in items if i]


def _fmt_s(s: float) -> str:
    return f"{s:.3g} s" if s < 100 else f"{s:.0f} s"


def _times(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def verdict(p: PairComparison) -> str:
    """One sentence per pair, in the spirit of hyperfine's summary."""
    o, b = p.other.label, p.base.label
    parts = []
    if p.speedup:
        s = p.speedup
        if s.ratio >= 1:
            way, lo, hi = f"{_times(s.ratio)} faster", s.low, s.high
        else:  # say "slower" with the range inverted, so the numbers read the same way
            way, lo, hi = f"{_times(1 / s.ratio)} slower", 1 / s.high, 1 / s.low
        parts.append(f"{o} ran {way} per iteration than {b} (quartile range {lo:.2f}-{hi:.2f}x)")
    both = [t for t in p.targets if t.train_time_ratio is not None]
    if both:
        t = min(both, key=lambda t: t.target)  # the hardest target both reached
        r = t.train_time_ratio
        way = f"{_times(r)} sooner" if r >= 1 else f"{_times(1 / r)} later"
        parts.append(f"{o} reached val {t.target:.2f} {way} than {b} (train time {_fmt_s(t.other.train_time_s)} "
                     f"vs {_fmt_s(t.base.train_time_s)})")
    else:
        one = [t for t in p.targets if (t.base is None) != (t.other is None)]
        if one:
            t = min(one, key=lambda t: t.target)
            who, hit, never, never_cs = (o, t.other, b, p.base) if t.other else (b, t.base, o, p.other)
            parts.append(f"{who} reached val {t.target:.2f} after {_fmt_s(hit.train_time_s)} of training; "
                         f"{never} never did (best {never_cs.best_val_loss:.4f})")
        elif p.targets:
            t = min(p.targets, key=lambda t: t.target)
            parts.append(f"neither reached val {t.target:.2f}")
    if p.equal_iter:
        e = p.equal_iter
        parts.append(f"at equal iterations ({int(e.at)}) their val loss differs by {e.diff:+.4f} ({o} minus {b})")
    if p.equal_time:
        e = p.equal_time
        parts.append(f"at equal train time ({_fmt_s(e.at)}) by {e.diff:+.4f}")
    return "; ".join(parts) + "."


def seed_curves(cs: ConfigSummary) -> dict[int, list[float]]:
    """Evaluation iteration -> the val loss of every seed evaluated there."""
    out: dict[int, list[float]] = {}
    for r in cs.runs:
        for ev in r.evaluations:
            out.setdefault(ev.iter, []).append(ev.val_loss)
    return out


def mean_curve(cs: ConfigSummary) -> equivalence.Curve:
    """The seeds' mean val loss and mean train time at each evaluation all of them reached."""
    by_iter: dict[int, list[Evaluation]] = {}
    for r in cs.runs:
        for ev in r.evaluations:
            by_iter.setdefault(ev.iter, []).append(ev)
    n = len(cs.runs)
    return equivalence.Curve(cs.label, {
        it: (float(np.mean([e.val_loss for e in evs])), float(np.mean([e.train_time_s for e in evs])))
        for it, evs in sorted(by_iter.items()) if len(evs) == n
    })


def equivalence_sentence(eq: dict, base: str, other: str) -> str:
    """The equivalence verdict in words: where the two leave the seed noise, and at the end."""
    final = eq["final"]
    if final is None:
        return f"{other} and {base} share no evaluation iteration."
    if final.ci95 is None:
        return (f"Equivalence of {other} and {base}: undecided, {final.n_b} and {final.n_a} seed(s); "
                f"run 2 or more seeds of each (--seeds) to compare the difference with the seed-to-seed spread.")
    counts = {v: sum(1 for p in eq["points"] if p.verdict == v) for v in ("equivalent", "different", "undecided")}
    leaves = eq["first_iter_beyond_noise"]
    where = f"they leave the seed noise at iteration {leaves}" if leaves is not None else "they never leave the seed noise"
    return (f"Equivalence of {other} and {base} ({final.n_b} vs {final.n_a} seeds, margin {eq['margin']:g}): "
            f"{final.verdict} at iteration {final.iter} (difference {final.diff:+.4f}, 95% CI "
            f"{final.ci95[0]:+.4f} to {final.ci95[1]:+.4f}); {where}; "
            f"{counts['equivalent']} evaluations equivalent, {counts['different']} different, {counts['undecided']} undecided.")


def compare_pair(base: ConfigSummary, other: ConfigSummary, targets: tuple[float, ...],
                 precision_ref: ConfigSummary | None = None,
                 margin: float = equivalence.DEFAULT_MARGIN) -> PairComparison:
    p = PairComparison(base, other, speedup(base.step_times_s, other.step_times_s),
                       [compare_targets(base, other, t) for t in targets],
                       equal_iteration(base, other), equal_train_time(base, other))
    p.verdict = verdict(p)
    p.equivalence = equivalence.compare_curves(seed_curves(base), seed_curves(other), margin)
    same_device = (base.config.device_type, base.config.device_name) == (other.config.device_type, other.config.device_name)
    imported = base.config.imported or other.config.imported
    p.explanation = equivalence.explain_gap(mean_curve(base), mean_curve(other),
                                            mean_curve(precision_ref) if precision_ref else None,
                                            same_device and not imported)
    if imported:
        p.explanation["sentences"].append(
            f"One side is an imported {imported} log: its trainer draws its own batches and evaluation "
            f"text, so the gap at equal iterations also holds the difference between the two programs.")
    return p


def precision_reference(base: ConfigSummary, other: ConfigSummary, configs: list[ConfigSummary]) -> ConfigSummary | None:
    """A run on the baseline's device in the other's dtype: it separates precision from device."""
    if (other.config.device_type, other.config.device_name) == (base.config.device_type, base.config.device_name):
        return None  # same device: the whole difference is already precision (or compile)
    return next((c for c in configs if c.config == Config(base.config.device_type, base.config.device_name,
                                                          other.config.dtype, base.config.compile)), None)


def build_group(runs: list[RunStats], margin: float = equivalence.DEFAULT_MARGIN) -> Group:
    by_config: dict[Config, list[RunStats]] = {}
    for r in sorted(runs, key=lambda r: (r.config, r.seed if r.seed is not None else -1, r.run_id)):
        by_config.setdefault(r.config, []).append(r)
    labels = _labels(list(by_config))
    summaries = [aggregate(c, labels[c], rs) for c, rs in by_config.items()]
    base = choose_baseline(summaries)
    ordered = [base] + sorted((c for c in summaries if c is not base), key=lambda c: c.label)
    targets = runs[0].targets
    first = runs[0]
    return Group(first.scenario, first.dataset, first.dataset_sha256, runs, ordered, base,
                 [compare_pair(base, c, targets, precision_reference(base, c, ordered), margin) for c in ordered[1:]],
                 targets, confounds(runs))


def compare_runs(runs: list[RunStats], margin: float = equivalence.DEFAULT_MARGIN) -> Comparison:
    """Group by (scenario, dataset sha256): groups are never mixed; compare within each."""
    groups: dict[tuple[str, str], list[RunStats]] = {}
    for r in runs:
        groups.setdefault((r.scenario, r.dataset_sha256), []).append(r)
    warnings = []
    if len(groups) > 1:
        listed = ", ".join(f"{s} on {g[0].dataset} ({h[:8]})" for (s, h), g in sorted(groups.items()))
        warnings.append(f"runs of {len(groups)} scenario/dataset pairs ({listed}) are compared separately, never mixed")
    for r in sorted(runs, key=lambda r: r.run_id):
        if r.status not in results.COMPLETE_STATUSES:
            warnings.append(f"{r.run_id}: status {r.status}; its numbers cover only what it recorded")
        if not r.evaluations:
            warnings.append(f"{r.run_id}: no evaluation recorded; val-loss comparisons leave it out")
    out = [build_group(g, margin) for _, g in sorted(groups.items())]
    checks = (references.check(r.run_id, r.scenario, [(e.iter, e.val_loss) for e in r.evaluations])
              for r in sorted(runs, key=lambda r: r.run_id))
    return Comparison(out, warnings, references=[c for c in checks if c is not None])


# ---- loading (the one place that reads files) --------------------------------------------------


def load_runs(specs: list[str], skip_bad: bool = False) -> tuple[list[results.Run], list[str]]:
    """Expand paths and read each run. Without skip_bad the first unreadable file raises
    InputError; with it, such files are listed (one line each) and left out."""
    runs, skipped = [], []
    for path in results.expand_paths(specs):
        try:
            runs.append(results.read_run(path))
        except InputError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    if not runs:
        raise InputError(f"{' '.join(specs)}: no readable result file" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return runs, skipped


def compare_files(specs: list[str], skip_bad: bool = False,
                  margin: float = equivalence.DEFAULT_MARGIN) -> tuple[Comparison, list[results.Run]]:
    runs, skipped = load_runs(specs, skip_bad)
    comparison = compare_runs([run_stats(r) for r in runs], margin)
    comparison.skipped = skipped
    return comparison, runs


# ---- regression gates ------------------------------------------------------------------------

# metric -> (how to read it from a ConfigSummary, True if higher is worse)
GATE_METRICS = {
    "ms_per_iter": (lambda c: c.median_step_s * 1e3 if c.median_step_s else None, True),
    "val_loss": (lambda c: c.final_val_loss, True),
    "best_val_loss": (lambda c: c.best_val_loss, True),
    "train_loss": (lambda c: c.final_train_loss, True),
    "tokens_per_s": (lambda c: c.tokens_per_s, False),
    "mem_peak_bytes": (lambda c: c.mem_peak_bytes, True),
    "train_time_s": (lambda c: c.train_time_s, True),
}


@dataclass(frozen=True)
class Gate:
    metric: str
    threshold: float
    relative: bool  # "5%": relative to the baseline; "0.02": absolute, in the metric's unit


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    scenario: str
    config: str
    baseline: float
    value: float
    limit: float
    passed: bool

    def describe(self) -> str:
        word = "ok" if self.passed else "FAILED"
        thr = f"{self.gate.threshold:g}%" if self.gate.relative else f"{self.gate.threshold:g}"
        return (f"{word}: {self.scenario} {self.config} {self.gate.metric} {self.value:.6g} vs baseline "
                f"{self.baseline:.6g} (limit {self.limit:.6g}, {thr})")


def parse_gates(text: str) -> list[Gate]:
    """`ms_per_iter:5%,val_loss:0.02` -> gates. Raises InputError naming the bad part."""
    gates = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        metric, sep, thr = part.partition(":")
        if not sep or metric not in GATE_METRICS:
            raise InputError(f"--fail-on {part}: expected METRIC:THRESHOLD with METRIC one of {', '.join(GATE_METRICS)}")
        rel = thr.endswith("%")
        try:
            value = float(thr[:-1] if rel else thr)
        except ValueError:
            raise InputError(f"--fail-on {part}: threshold {thr!r} is not a number (e.g. 5% or 0.02)") from None
        if value < 0 or not math.isfinite(value):
            raise InputError(f"--fail-on {part}: threshold must be a non-negative number")
        gates.append(Gate(metric, value, rel))
    if not gates:
        raise InputError(f"--fail-on {text!r}: no gate given (e.g. ms_per_iter:5%,val_loss:0.02)")
    return gates


def check_gates(current: Comparison, baseline: Comparison, gates: list[Gate]) -> tuple[list[GateResult], list[str]]:
    """Each configuration of the current runs against the same configuration (same scenario,
    dataset and device/dtype/compile) in the baseline runs. Unmatched ones are reported."""
    base_index = {(g.key, c.config): c for g in baseline.groups for c in g.configs}
    out, unmatched = [], []
    for g in current.groups:
        for c in g.configs:
            b = base_index.get((g.key, c.config))
            if b is None:
                unmatched.append(f"{g.scenario} {c.label}: no baseline run of this configuration; not gated")
                continue
            for gate in gates:
                read, higher_is_worse = GATE_METRICS[gate.metric]
                bv, cv = read(b), read(c)
                if bv is None or cv is None:
                    unmatched.append(f"{g.scenario} {c.label} {gate.metric}: not recorded; not gated")
                    continue
                delta = abs(bv) * gate.threshold / 100 if gate.relative else gate.threshold
                limit = bv + delta if higher_is_worse else bv - delta
                passed = cv <= limit if higher_is_worse else cv >= limit
                out.append(GateResult(gate, g.scenario, c.label, bv, cv, limit, passed))
    return out, unmatched


# ---- machine output ------------------------------------------------------------------------


def _hit_json(h: Hit | None):
    return None if h is None else {"iter": h.iter, "train_time_s": h.train_time_s, "wall_time_s": h.wall_time_s}


def _run_json(r: RunStats) -> dict:
    return {
        "run_id": r.run_id, "path": r.path, "scenario": r.scenario, "dataset_sha256": r.dataset_sha256,
        "device_type": r.config.device_type, "device_name": r.config.device_name, "dtype": r.config.dtype,
        "compile": r.config.compile, "seed": r.seed, "threads": r.threads, "torch": r.torch_version,
        "status": r.status, "iterations": r.iterations, "final_train_loss": r.final_train_loss,
        "final_val_loss": r.final_val_loss, "best_val_loss": r.best_val_loss,
        "median_ms_per_iter": r.median_step_s * 1e3 if r.median_step_s else None,
        "p90_ms_per_iter": r.p90_step_s * 1e3 if r.p90_step_s else None,
        "tokens_per_s": r.tokens_per_s, "mfu": r.mfu, "mem_peak_bytes": r.mem_peak_bytes, "energy_j": r.energy_j,
        "train_time_s": r.train_time_s, "wall_time_s": r.wall_time_s,
        "time_to_target": {f"{t:g}": _hit_json(time_to_target(r.evaluations, t)) for t in r.targets},
    }


def _equivalence_json(eq: dict | None):
    if eq is None:
        return None
    return {"method": eq["method"], "margin": eq["margin"], "first_iter_beyond_noise": eq["first_iter_beyond_noise"],
            "points": [{"iter": p.iter, "n_base": p.n_a, "n_other": p.n_b, "diff": p.diff, "ci90": p.ci90,
                        "ci95": p.ci95, "verdict": p.verdict} for p in eq["points"]]}


def to_json(c: Comparison, gates: list[GateResult] | None = None, ungated: list[str] | None = None) -> dict:
    groups = []
    for g in c.groups:
        groups.append({
            "scenario": g.scenario, "dataset": g.dataset, "dataset_sha256": g.dataset_sha256,
            "baseline": g.baseline.label, "targets": list(g.targets), "confounds": g.confounds,
            "runs": [_run_json(r) for r in g.runs],
            "configurations": [{"label": cs.label, "seeds": cs.seeds,
                                "median_ms_per_iter": cs.median_step_s * 1e3 if cs.median_step_s else None,
                                "final_val_loss": cs.final_val_loss, "best_val_loss": cs.best_val_loss}
                               for cs in g.configs],
            "comparisons": [{
                "base": p.base.label, "other": p.other.label,
                "speedup": None if p.speedup is None else {"ratio": p.speedup.ratio, "low": p.speedup.low, "high": p.speedup.high,
                                                           "method": "ratio of medians; range from quartiles"},
                "targets": [{"val_loss": t.target, "base": _hit_json(t.base), "other": _hit_json(t.other),
                             "base_reached": t.base_reached, "other_reached": t.other_reached,
                             "iter_ratio": t.iter_ratio, "train_time_ratio": t.train_time_ratio,
                             "wall_time_ratio": t.wall_time_ratio} for t in p.targets],
                "equal_iteration": None if p.equal_iter is None else {"iter": p.equal_iter.at, "base_val_loss": p.equal_iter.base_val,
                                                                     "other_val_loss": p.equal_iter.other_val, "diff": p.equal_iter.diff},
                "equal_train_time": None if p.equal_time is None else {"train_time_s": p.equal_time.at, "base_val_loss": p.equal_time.base_val,
                                                                      "other_val_loss": p.equal_time.other_val, "diff": p.equal_time.diff},
                "verdict": p.verdict,
                "equivalence": _equivalence_json(p.equivalence),
                "explanation": p.explanation,
            } for p in g.pairs],
        })
    out = {"groups": groups, "warnings": c.warnings, "skipped": c.skipped,
           "references": [references.to_json(ch) for ch in c.references]}
    if gates is not None:
        out["gates"] = [{"metric": r.gate.metric, "scenario": r.scenario, "configuration": r.config, "baseline": r.baseline,
                         "value": r.value, "limit": r.limit, "passed": r.passed} for r in gates]
        out["ungated"] = ungated or []
    return out
