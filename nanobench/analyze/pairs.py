"""A pair of configurations of one group, the baseline and another: speedup, time to each
target, val loss at equal iteration and at equal train time, the equivalence test over the
seeds and the explanation of the gap. A new way to compare two configurations goes here:
a function over two ConfigSummary, a field on PairComparison, set in `compare_pair`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanobench.analyze import equivalence
from nanobench.analyze.config import Config, recipe_diff
from nanobench.analyze.runs import Hit, val_loss_at, val_loss_at_iter
from nanobench.analyze.seeds import (
    ConfigSummary,
    config_hit,
    diverged_seeds,
    mean_curve,
    mean_or_none,
    seed_curves,
    seed_key,
)
from nanobench.analyze.verdicts import verdict


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
        target,
        bh,
        oh,
        bn,
        on,
        _ratio(bh.iter, oh.iter) if both else None,
        _ratio(bh.train_time_s, oh.train_time_s) if both else None,
        _ratio(bh.wall_time_s, oh.wall_time_s) if both else None,
    )


@dataclass(frozen=True)
class EqualPoint:
    """Val loss of both configurations at one iteration or one train time (each the mean of its
    seeds) and `split`, the difference other - base on the seeds both ran with what the seeds
    of one side only do to its mean (equivalence.SeedSplit)."""

    at: float
    base_val: float
    other_val: float
    split: equivalence.SeedSplit | None = None

    @property
    def diff(self) -> float:
        """other - base: on the shared seeds where there are any, else of the means."""
        return self.split.diff if self.split is not None else self.other_val - self.base_val


def _split(base: ConfigSummary, other: ConfigSummary, bv: list, ov: list):
    return equivalence.split_seeds(
        {seed_key(base, r): v for r, v in zip(base.runs, bv)},
        {seed_key(other, r): v for r, v in zip(other.runs, ov)},
    )


def equal_iteration(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """The last evaluation iteration that every run of both configurations has."""
    sets = [{e.iter for e in r.evaluations} for r in base.runs + other.runs]
    common = set.intersection(*sets) if sets else set()
    if not common:
        return None
    it = max(common)
    bv = [val_loss_at_iter(r.evaluations, it) for r in base.runs]
    ov = [val_loss_at_iter(r.evaluations, it) for r in other.runs]
    return EqualPoint(it, mean_or_none(bv), mean_or_none(ov), _split(base, other, bv, ov))


def equal_at(base: ConfigSummary, other: ConfigSummary, axis) -> EqualPoint | None:
    """Val loss at the point of `axis` (train time, tokens, FLOPs of an Evaluation) that the
    shortest run reached at its last evaluation, each run interpolated linearly between its
    evaluations, then averaged over seeds. None where a run lacks evaluations or the axis."""
    runs = base.runs + other.runs
    if not all(r.evaluations and axis(r.evaluations[-1]) is not None for r in runs):
        return None
    x = min(axis(r.evaluations[-1]) for r in runs)
    bv = [val_loss_at(r.evaluations, x, axis) for r in base.runs]
    ov = [val_loss_at(r.evaluations, x, axis) for r in other.runs]
    if any(v is None for v in bv + ov):
        return None
    return EqualPoint(x, mean_or_none(bv), mean_or_none(ov), _split(base, other, bv, ov))


def equal_train_time(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """Val loss at the shorter run's train time (time of its last evaluation)."""
    return equal_at(base, other, lambda e: e.train_time_s)


def equal_tokens(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """Val loss at equal training tokens seen: what lets recipes with other batches or contexts share an axis."""
    return equal_at(base, other, lambda e: e.tokens)


def equal_flops(base: ConfigSummary, other: ConfigSummary) -> EqualPoint | None:
    """Val loss at equal model FLOPs spent: what lets models of other sizes share an axis."""
    return equal_at(base, other, lambda e: e.flops)


@dataclass
class PairComparison:
    base: ConfigSummary
    other: ConfigSummary
    speedup: Speedup | None
    targets: list[TargetResult]
    equal_iter: EqualPoint | None
    equal_time: EqualPoint | None
    equal_tokens: EqualPoint | None = None
    equal_flops: EqualPoint | None = None
    verdict: str = ""
    equivalence: dict | None = None  # equivalence.compare_curves over the seeds
    explanation: dict | None = None  # equivalence.explain_gap of the mean curves

    @property
    def imported(self) -> str:
        """The format of an imported side's log ("nanogpt"), "" when both are nanobench's runs."""
        return self.base.config.imported or self.other.config.imported


def compare_pair(
    base: ConfigSummary,
    other: ConfigSummary,
    targets: tuple[float, ...],
    precision_ref: ConfigSummary | None = None,
    margin: float = equivalence.DEFAULT_MARGIN,
) -> PairComparison:
    p = PairComparison(
        base,
        other,
        speedup(base.step_times_s, other.step_times_s),
        [compare_targets(base, other, t) for t in targets],
        equal_iteration(base, other),
        equal_train_time(base, other),
        equal_tokens(base, other),
        equal_flops(base, other),
    )
    p.verdict = verdict(p)
    p.equivalence = equivalence.compare_curves(
        seed_curves(base), seed_curves(other), margin, diverged_seeds(base), diverged_seeds(other)
    )
    # an imported log ran another program: never "the same device" in the explanation's sense
    same_name = (base.config.device_type, base.config.device_name) == (
        other.config.device_type,
        other.config.device_name,
    )
    same_device = same_name and not p.imported
    same_precision = (base.config.dtype, base.config.compile) == (
        other.config.dtype,
        other.config.compile,
    )
    p.explanation = equivalence.explain_gap(
        mean_curve(base),
        mean_curve(other),
        mean_curve(precision_ref) if precision_ref else None,
        same_device,
        tuple(recipe_diff(other.config.recipe, base.config.recipe)),
        same_precision,
        p.imported if same_name and same_precision else None,
    )
    if (
        p.imported
    ):  # the two programs differ too: nothing above can tell that from device or precision
        p.explanation["sentences"].append(
            f"One side is an imported {p.imported} log: its trainer draws its own batches and evaluation "
            f"text, so the gap at equal iterations also holds the difference between the two programs."
        )
    return p


def precision_reference(
    base: ConfigSummary, other: ConfigSummary, configs: list[ConfigSummary]
) -> ConfigSummary | None:
    """A run on the baseline's device in the other's dtype: it separates precision from device."""
    if (other.config.device_type, other.config.device_name) == (
        base.config.device_type,
        base.config.device_name,
    ):
        return None  # same device: the whole difference is already precision (or compile)
    if other.config.recipe != base.config.recipe:
        return None  # a run in the other's dtype would still differ from the other in its recipe
    wanted = Config(
        base.config.device_type,
        base.config.device_name,
        other.config.dtype,
        base.config.compile,
        recipe=base.config.recipe,
    )
    return next((c for c in configs if c.config == wanted), None)
