"""Do two configurations converge alike beyond seed noise? Pure statistics, no I/O.

Input: for each configuration, the val loss of each seed at each evaluation iteration.
Method (stated in the report): at every evaluation, the difference of the mean val loss
(B - A) gets a Welch t interval from the seed-to-seed spread inside each configuration;
two one-sided tests (TOST) at alpha = 0.05 with a stated margin decide equivalence:

- equivalent: the 90% interval lies inside (-margin, +margin);
- different:  the 95% interval excludes 0 and is not inside the margin;
- undecided:  neither, or fewer than 2 seeds on a side (no spread to compare against).

"Leaves the noise floor" is the first evaluation whose 95% interval excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MARGIN = 0.02  # nats of val loss: about the seed-to-seed spread of the CPU recipe


def t_cdf(x: float, df: float) -> float:
    """Student's t CDF, by the regularized incomplete beta function (continued fraction)."""
    if math.isinf(df):
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))
    z = df / (df + x * x)
    tail = 0.5 * _betainc(df / 2, 0.5, z)
    return 1 - tail if x > 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (Numerical Recipes' Lentz continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # converge on the other side
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return front * h / a


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on t_cdf)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, sd


def welch_interval(a: list[float], b: list[float], confidence: float) -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), low, high, df) with a Welch t interval at `confidence`."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    diff = mb - ma
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # identical seeds on both sides (e.g. bit-identical runs): no spread at all
        return diff, diff, diff, math.inf
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    return diff, diff - half, diff + half, df


@dataclass(frozen=True)
class PointVerdict:
    iter: int
    n_a: int
    n_b: int
    diff: float  # mean(B) - mean(A)
    ci90: tuple[float, float] | None
    ci95: tuple[float, float] | None
    verdict: str  # equivalent | different | undecided


def verdict_at(it: int, a: list[float], b: list[float], margin: float) -> PointVerdict:
    diff = (sum(b) / len(b) - sum(a) / len(a)) if a and b else math.nan
    if len(a) < 2 or len(b) < 2:
        return PointVerdict(it, len(a), len(b), diff, None, None, "undecided")
    _, lo90, hi90, _ = welch_interval(a, b, 0.90)
    _, lo95, hi95, _ = welch_interval(a, b, 0.95)
    if -margin < lo90 and hi90 < margin:
        verdict = "equivalent"
    elif lo95 > 0 or hi95 < 0:
        verdict = "different"
    else:
        verdict = "undecided"
    return PointVerdict(it, len(a), len(b), diff, (lo90, hi90), (lo95, hi95), verdict)


def compare_curves(a: dict[int, list[float]], b: dict[int, list[float]], margin: float = DEFAULT_MARGIN) -> dict:
    """Per common evaluation iteration, the verdict; plus the first iteration that leaves
    the noise floor and an overall verdict (at the last common evaluation)."""
    points = [verdict_at(it, a[it], b[it], margin) for it in sorted(set(a) & set(b))]
    leaves = next((p.iter for p in points if p.ci95 and (p.ci95[0] > 0 or p.ci95[1] < 0)), None)
    return {
        "method": f"Welch t intervals on the seed means; TOST at alpha 0.05 with margin {margin:g} nats",
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


def explain_gap(a: Curve, b: Curve, precision_ref: Curve | None = None, same_device: bool = False,
                recipe_keys: tuple[str, ...] = (), same_precision: bool = False) -> dict:
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
        return {"sentences": [f"{a.label} and {b.label} share no evaluation iteration; nothing to compare."]}
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
        cause = (f"{recipe}: both ran on the same device in the same precision." if same_device and same_precision
                 else f"{recipe}, hardware and precision together.")
    else:
        cause = "precision (or compilation): both ran on the same device." if same_device else "hardware and precision."
    sentences = [
        f"{b.label} ended at val {lb_final:.4f} (iteration {b.last_iter}), {a.label} at {la_final:.4f} "
        f"(iteration {a.last_iter}): a gap of {lb_final - la_final:+.4f}.",
        f"At equal iterations ({i}) the gap is {lb_i - la:+.4f}: that much is {cause}",
    ]
    beyond = [(c.label, c.last_iter, sign * (final - at_i)) for c, sign, final, at_i in
              ((b, 1, lb_final, lb_i), (a, -1, la_final, la)) if c.last_iter != i]
    if beyond:
        sentences.append("The other {:+.4f} comes from iterations beyond {}: {}.".format(
            out["from_iterations"], i, "; ".join(f"{label}'s {i}-{last} contribute {part:+.4f}" for label, last, part in beyond)))
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
        sentences.append(f"{faster} reached iteration {i} in {min(ta, tb):.1f} s of training, "
                         f"{ratio:.2f}x sooner than {slower} ({max(ta, tb):.1f} s).")
    out["sentences"] = sentences
    return out
