"""Do two configurations converge alike beyond seed noise? Pure statistics, no I/O.

Input: for each configuration, the val loss of each seed at each evaluation iteration
(seed -> value). Method (stated in the report), at every evaluation:

- **paired** when two or more seeds ran in both configurations: the same seed means the same
  initial weights and the same batches, so seed s of A and seed s of B are a pair. The
  statistic is the mean of the per-seed differences (B - A) with its t interval; seeds that
  ran in one configuration only are left out of it (the output says how many).
- **unpaired** (Welch) otherwise: the difference of the seed means, with a Welch t interval
  from the seed-to-seed spread inside each configuration.

Two one-sided tests (TOST) at alpha = 0.05 with a stated margin decide equivalence; the test
of a zero difference decides "different", with the p-values of all evaluations of a pair
corrected for the many looks by Holm's step-down method:

- equivalent: the 90% interval lies inside (-margin, +margin);
- different:  not equivalent, and the Holm-adjusted p of "no difference" is below 0.05;
- undecided:  neither, or fewer than 2 seeds (2 pairs) to measure a spread with.

"Leaves the noise floor" is the first evaluation whose Holm-adjusted p is below 0.05. With 5
or more seeds (pairs) a percentile bootstrap 95% interval of the same statistic is given
beside the t interval. Distributions and tests are scipy.stats'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

DEFAULT_MARGIN = 0.02  # nats of val loss: about the seed-to-seed spread of the CPU recipe
ALPHA = 0.05
BOOTSTRAP_MIN_SEEDS = 5  # below this a bootstrap interval is too coarse to report
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # a fixed stream: the same files give the same interval


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (normal when df is infinite)."""
    return float(stats.norm.ppf(p) if math.isinf(df) else stats.t.ppf(p, df))


def mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, sd


@dataclass(frozen=True)
class Interval:
    """An estimate of a difference (B - A) with its standard error and t degrees of freedom."""

    diff: float
    se: float
    df: float

    def ci(self, confidence: float) -> tuple[float, float]:
        if self.se == 0:  # identical seeds (e.g. bit-identical runs): no spread at all
            return self.diff, self.diff
        half = t_quantile(1 - (1 - confidence) / 2, self.df) * self.se
        return self.diff - half, self.diff + half

    @property
    def p_zero(self) -> float:
        """Two-sided p-value of the test of a zero difference."""
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.diff) / self.se, self.df))


def welch(a: list[float], b: list[float]) -> Interval:
    """mean(b) - mean(a) with Welch's standard error and Welch-Satterthwaite df."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(mb - ma, 0.0, math.inf)
    return Interval(mb - ma, se, (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1)))


def paired(diffs: list[float]) -> Interval:
    """The mean of per-seed differences with its one-sample t standard error, df = n - 1."""
    mean, sd = mean_sd(diffs)
    return Interval(mean, sd / math.sqrt(len(diffs)), len(diffs) - 1)


def welch_interval(
    a: list[float], b: list[float], confidence: float
) -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), low, high, df) with a Welch t interval at `confidence`."""
    w = welch(a, b)
    return (w.diff, *w.ci(confidence), w.df)


def bootstrap_ci(a: list[float], b: list[float] | None = None) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of mean(a) (one sample: the paired differences) or
    of mean(b) - mean(a) (two samples resampled independently), from a fixed random stream."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    if b is None:
        data, stat = (np.asarray(a, float),), lambda x, axis: np.mean(x, axis=axis)
    else:
        data, stat = (
            (np.asarray(a, float), np.asarray(b, float)),
            lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
        )
    res = stats.bootstrap(
        data,
        stat,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        rng=rng,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down): the i-th smallest of m is multiplied by m - i + 1,
    made monotone and capped at 1. Rejecting where the adjusted p < alpha controls the chance
    of any false "different" over all the looks at alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _by_seed(values) -> dict:
    """seed -> value; a plain list stands for seeds that are not known (they never pair)."""
    if isinstance(values, Mapping):
        return dict(values)
    return {("unknown", i): v for i, v in enumerate(values)}


@dataclass(frozen=True)
class PointVerdict:
    iter: int
    n_a: int
    n_b: int
    diff: float  # paired: mean of per-seed differences B - A; unpaired: mean(B) - mean(A)
    ci90: tuple[float, float] | None
    ci95: tuple[float, float] | None
    verdict: str  # equivalent | different | undecided
    design: str = "unpaired"  # "paired" or "unpaired" (Welch)
    n_pairs: int = 0  # seeds in both configurations
    p: float | None = None  # two-sided p of a zero difference, this evaluation alone
    p_holm: float | None = None  # the same, Holm-adjusted over the pair's evaluations
    boot95: tuple[float, float] | None = None  # percentile bootstrap 95% interval (5+ seeds)

    @property
    def n_unpaired(self) -> int:
        """Seeds left out of a paired statistic (they ran in one configuration only)."""
        return self.n_a + self.n_b - 2 * self.n_pairs if self.design == "paired" else 0


def point_statistic(it: int, a, b, margin: float, bootstrap: bool = True) -> PointVerdict:
    """The verdict at one evaluation taken alone: paired on the shared seeds when there are 2
    or more, else Welch over all seeds. compare_curves re-decides "different" with the
    Holm-adjusted p of all the pair's evaluations. Without `bootstrap` no bootstrap interval
    is drawn (the verdict never uses it; the board shows none)."""
    a, b = _by_seed(a), _by_seed(b)
    shared = sorted(
        (s for s in a if s in b and not (isinstance(s, tuple) and s[0] == "unknown")), key=str
    )
    va, vb = list(a.values()), list(b.values())
    if len(shared) >= 2:
        diffs = [b[s] - a[s] for s in shared]
        est, design, n_boot, boot = (
            paired(diffs),
            "paired",
            len(shared),
            lambda: bootstrap_ci(diffs),
        )
    elif len(va) >= 2 and len(vb) >= 2:
        est, design, n_boot, boot = (
            welch(va, vb),
            "unpaired",
            min(len(va), len(vb)),
            lambda: bootstrap_ci(va, vb),
        )
    else:  # a single seed on a side: no spread to compare the difference with
        diff = (sum(vb) / len(vb) - sum(va) / len(va)) if va and vb else math.nan
        return PointVerdict(
            it, len(va), len(vb), diff, None, None, "undecided", "unpaired", len(shared)
        )
    point = PointVerdict(
        it,
        len(va),
        len(vb),
        est.diff,
        est.ci(0.90),
        est.ci(0.95),
        "",
        design,
        len(shared),
        est.p_zero,
        est.p_zero,
        boot() if bootstrap and n_boot >= BOOTSTRAP_MIN_SEEDS else None,
    )
    return _decide(point, margin)


def _decide(p: PointVerdict, margin: float) -> PointVerdict:
    lo90, hi90 = p.ci90
    if -margin < lo90 and hi90 < margin:
        verdict = "equivalent"
    elif p.p_holm < ALPHA:
        verdict = "different"
    else:
        verdict = "undecided"
    return replace(p, verdict=verdict)


def verdict_at(it: int, a, b, margin: float) -> PointVerdict:
    """One evaluation as a single look (no correction)."""
    return point_statistic(it, a, b, margin)


def compare_curves(
    a: dict, b: dict, margin: float = DEFAULT_MARGIN, bootstrap: bool = True
) -> dict:
    """Per common evaluation iteration, the verdict with the p-values Holm-adjusted over all
    of them; the first iteration that leaves the noise floor and the verdict at the last
    common evaluation. a, b: iteration -> {seed: val loss} (or a list: seeds unknown)."""
    points = [
        point_statistic(it, a[it], b[it], margin, bootstrap) for it in sorted(set(a) & set(b))
    ]
    tested = [i for i, p in enumerate(points) if p.p is not None]
    for i, adj in zip(tested, holm([points[i].p for i in tested])):
        points[i] = _decide(replace(points[i], p_holm=adj), margin)
    leaves = next((p.iter for p in points if p.p_holm is not None and p.p_holm < ALPHA), None)
    designs = {p.design for p in points if p.ci95 is not None}
    return {
        "method": (
            f"{' and '.join(sorted(designs)) or 'no'} t intervals over the seeds; TOST at alpha {ALPHA:g} with margin "
            f"{margin:g} nats; Holm-adjusted tests of a zero difference over {len(tested)} evaluations"
        ),
        "margin": margin,
        "points": points,
        "first_iter_beyond_noise": leaves,
        "final": points[-1] if points else None,
    }


def band(values: list[float]) -> tuple[float, float, float, str]:
    """(mean, low, high, kind) for one evaluation's seeds: a 95% t interval of the mean when
    there are 5 or more seeds, else the min-max range (an interval from 2-4 seeds is too
    wide to draw usefully and too unstable to trust)."""
    mean, sd = mean_sd(values)
    if len(values) >= 5:
        half = t_quantile(0.975, len(values) - 1) * sd / math.sqrt(len(values))
        return mean, mean - half, mean + half, "95% CI"
    return mean, min(values), max(values), "min-max"


@dataclass(frozen=True)
class Curve:
    """One configuration's evaluations: iteration -> (val loss, train seconds to get there)."""

    label: str
    points: dict[int, tuple[float, float]]

    @property
    def last_iter(self) -> int:
        return max(self.points)


def explain_gap(
    a: Curve,
    b: Curve,
    precision_ref: Curve | None = None,
    same_device: bool = False,
    recipe_keys: tuple[str, ...] = (),
    same_precision: bool = False,
    other_program: str | None = None,
) -> dict:
    """Split the val-loss gap between A's and B's final evaluations into iterations, precision
    and device, and say how long each took to reach the same iteration.

    gap = [B(i) - A(i)] + [B(final) - B(i)] - [A(final) - A(i)], i = the last evaluation
    both have: the first bracket is what the hardware and precision change at equal
    iterations, the others what each run's iterations beyond i bought. When `precision_ref` is a run on A's device in
    B's dtype, the first bracket splits further into precision (ref(i) - A(i)) and device
    (the rest: kernels, reduction order, dropout masks).
    """
    common = sorted(set(a.points) & set(b.points))
    if not common:
        return {
            "sentences": [
                f"{a.label} and {b.label} share no evaluation iteration; nothing to compare."
            ]
        }
    i = common[-1]
    la, ta = a.points[i]
    lb_i, tb = b.points[i]
    lb_final = b.points[b.last_iter][0]
    la_final = a.points[a.last_iter][0]
    out = {
        "iter": i,
        "total_gap": lb_final - la_final,
        "at_equal_iters": lb_i - la,
        "from_iterations": (lb_final - lb_i) - (la_final - la),
        "precision": None,
        "device": None,
        "train_time_s_to_iter": {a.label: ta, b.label: tb},
        "speedup_to_iter": ta / tb if tb > 0 else None,
    }
    if recipe_keys:
        recipe = f"the recipe ({', '.join(recipe_keys)})"
        cause = (
            f"{recipe}: both ran on the same device in the same precision."
            if same_device and same_precision
            else f"{recipe}, hardware and precision together."
        )
    elif other_program:  # an imported log of the same recipe, device name and precision
        cause = (
            f"the two programs ({other_program} and nanobench: their batches, evaluation text and kernels): "
            f"both ran on a device of the same name in the same precision."
        )
    else:
        cause = (
            "precision (or compilation): both ran on the same device."
            if same_device
            else "hardware and precision."
        )
    sentences = [
        f"{b.label} ended at val {lb_final:.4f} (iteration {b.last_iter}), {a.label} at {la_final:.4f} "
        f"(iteration {a.last_iter}): a gap of {lb_final - la_final:+.4f}.",
        f"At equal iterations ({i}) the gap is {lb_i - la:+.4f}: that much is {cause}",
    ]
    beyond = [
        (c.label, c.last_iter, sign * (final - at_i))
        for c, sign, final, at_i in ((b, 1, lb_final, lb_i), (a, -1, la_final, la))
        if c.last_iter != i
    ]
    if beyond:
        sentences.append(
            "The other {:+.4f} comes from iterations beyond {}: {}.".format(
                out["from_iterations"],
                i,
                "; ".join(
                    f"{label}'s {i}-{last} contribute {part:+.4f}" for label, last, part in beyond
                ),
            )
        )
    if precision_ref is not None and i in precision_ref.points:
        out["precision"] = precision_ref.points[i][0] - la
        out["device"] = (lb_i - la) - out["precision"]
        sentences.append(
            f"Of the equal-iteration gap, {out['precision']:+.4f} is precision ({precision_ref.label} vs {a.label}) "
            f"and {out['device']:+.4f} the device itself (kernels, reduction order, dropout masks)."
        )
    if out["speedup_to_iter"]:
        faster, slower = (b.label, a.label) if tb < ta else (a.label, b.label)
        ratio = max(ta, tb) / min(ta, tb) if min(ta, tb) > 0 else float("inf")
        sentences.append(
            f"{faster} reached iteration {i} in {min(ta, tb):.1f} s of training, "
            f"{ratio:.2f}x sooner than {slower} ({max(ta, tb):.1f} s)."
        )
    out["sentences"] = sentences
    return out
