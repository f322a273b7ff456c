"""Do two configurations converge alike beyond seed noise? Pure statistics, no I/O.

Input: for each configuration, the val loss of each seed at each evaluation iteration
(seed -> value). Method (stated in the report and in docs/compare.md, "What the verdicts
mean"), at every evaluation after training began (iteration 0 scores the initial weights,
which the same seed makes identical everywhere: nothing to judge there):

- **paired** when two or more seeds ran in both configurations: the same seed means the same
  initial weights and the same batches, so seed s of A and seed s of B are a pair. The
  statistic is the mean of the per-seed differences (B - A) with its t interval; seeds that
  ran in one configuration only are left out of it (the output says how many).
- **unpaired** (Welch) otherwise: the difference of the seed means, with a Welch t interval
  from the seed-to-seed spread inside each configuration. With a single seed on a side there
  is no spread: the difference is still given, on the shared seed where there is one.

Two one-sided tests (TOST) at alpha = 0.05 with a stated margin decide equivalence: the 90%
t interval inside (-margin, +margin). Claiming equivalence at every evaluation of a pair is an
intersection-union test: each look at level alpha keeps the whole claim at alpha, so it needs
no correction. The test of a zero difference decides "different", and there the many looks do
matter: its p-values over all evaluations of a pair are corrected by Holm's step-down method.

- equivalent: the 90% interval lies inside (-margin, +margin);
- different:  not equivalent, and the Holm-adjusted p of "no difference" is below 0.05;
- diverged:   a seed diverged (NaN or inf) in one configuration and not in the other, at or
  before this evaluation: a difference in itself, never called equivalent (unless the
  surviving pairs already test "different");
- undecided:  none of these, or fewer than 2 seeds (2 pairs) to measure a spread with.

"Leaves the noise" is the first evaluation from which the difference stays significant: its
Holm-adjusted p and every later one's below 0.05. Intervals are Student t intervals (exact for
normal seed-to-seed variation at any number of seeds); distributions and tests are scipy.stats'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# scipy.special's distribution functions, not scipy.stats': t.sf, t.ppf and norm.ppf are these
# same functions (stdtr, stdtrit, ndtri) behind argument checks, and importing scipy.stats
# costs about a second, most of a `nanobench board`'s start.
from scipy import special

DEFAULT_MARGIN = 0.02  # nats of val loss: about the seed-to-seed spread of the CPU recipe
ALPHA = 0.05
DECIDING_LEVEL = 1 - 2 * ALPHA  # TOST at ALPHA is decided by the 90% interval
FIRST_JUDGED_ITER = 1  # iteration 0 is the initial weights: not judged


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (normal when df is infinite)."""
    return float(special.ndtri(p) if math.isinf(df) else special.stdtrit(df, p))


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
        """Two-sided p-value of the test of a zero difference (NaN when a value was not finite)."""
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * special.stdtr(self.df, -abs(self.diff) / self.se))


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


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down): the i-th smallest of m is multiplied by m - i + 1,
    made monotone and capped at 1. Rejecting where the adjusted p < alpha controls the chance
    of any false "different" over all the looks at alpha. A p that is not a number (a look
    that tested nothing) counts as a look with p = 1: it is never rejected and never lets
    another be rejected more easily."""
    ps = [1.0 if p is None or math.isnan(p) else p for p in pvalues]
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def is_known(seed) -> bool:
    """A recorded seed: only those pair (an unknown one is keyed ("unknown", ...))."""
    return seed is not None and not (isinstance(seed, tuple) and seed[:1] == ("unknown",))


def _by_seed(values) -> dict:
    """seed -> value; a plain list stands for seeds that are not known (they never pair)."""
    if isinstance(values, Mapping):
        return dict(values)
    return {("unknown", i): v for i, v in enumerate(values)}


def seed_names(seeds) -> str:
    """'1337, 1338'; an imported log's seed is its trainer's: 'nanogpt seed 1337'."""
    shown = [
        f"{s[0]} seed {s[1]}" if isinstance(s, tuple) else str(s) for s in seeds if is_known(s)
    ]
    return ", ".join(shown) or "unknown"


@dataclass(frozen=True)
class SeedSplit:
    """B - A where the two seed sets may differ. `diff` is the shared-seed (paired) difference
    when any seed ran in both, else the difference of all seeds' means; `a_extra` / `b_extra`
    is how far the seeds that ran on one side only move that side's mean (mean of all minus
    mean of the shared ones), so that diff + b_extra - a_extra = total, the difference of means."""

    shared: tuple
    only_a: tuple
    only_b: tuple
    diff: float
    total: float
    a_extra: float = 0.0
    b_extra: float = 0.0

    @property
    def differ(self) -> bool:
        return bool(self.only_a or self.only_b)

    @property
    def composition(self) -> float:
        """The part of the difference of means that is which seeds ran, not the configurations."""
        return self.total - self.diff

    def on(self) -> str:
        """'on the 1 shared seed, 1337' / 'on the 3 shared seeds' / 'between the means (no shared seed)'."""
        n = len(self.shared)
        if not n:
            return "between the seed means (no shared seed)"
        if n == 1:
            return f"on the 1 shared seed, {seed_names(self.shared)}"
        return f"on the {n} shared seeds"

    def words(self, a_label: str, b_label: str) -> str:
        """The seed sets in words, or '' when both ran the same seeds."""
        if not self.differ:
            return ""
        if not self.shared:
            return (
                f"no seed ran in both ({b_label}: {seed_names(self.only_b)}; {a_label}: "
                f"{seed_names(self.only_a)}): the difference of means cannot be told from the choice "
                f"of seeds unless it exceeds their seed-to-seed spread"
            )
        n = len(self.shared)
        extra = [
            f"{label}'s other seed{'s' * (len(only) > 1)} {seed_names(only)} move{'s' * (len(only) == 1)} "
            f"its mean by {move:+.4f}"
            for label, only, move in (
                (b_label, self.only_b, self.b_extra),
                (a_label, self.only_a, self.a_extra),
            )
            if only
        ]
        return (
            f"seed sets differ: {n} shared seed{'s' * (n > 1)}; {'; '.join(extra)}, "
            f"so the means differ by {self.total:+.4f}"
        )


def split_seeds(a, b) -> SeedSplit | None:
    """B - A at one point from seed -> value of each side; None when a side is empty."""
    a, b = _by_seed(a), _by_seed(b)
    if not a or not b:
        return None
    shared = tuple(sorted((s for s in a if s in b and is_known(s)), key=str))
    only_a = tuple(sorted((s for s in a if s not in shared), key=str))
    only_b = tuple(sorted((s for s in b if s not in shared), key=str))
    mean_a = sum(a.values()) / len(a)
    mean_b = sum(b.values()) / len(b)
    if not shared:
        return SeedSplit((), only_a, only_b, mean_b - mean_a, mean_b - mean_a)
    sa = sum(a[s] for s in shared) / len(shared)
    sb = sum(b[s] for s in shared) / len(shared)
    return SeedSplit(
        shared,
        only_a,
        only_b,
        sum(b[s] - a[s] for s in shared) / len(shared),
        mean_b - mean_a,
        mean_a - sa,
        mean_b - sb,
    )


@dataclass(frozen=True)
class PointVerdict:
    iter: int
    n_a: int
    n_b: int
    diff: float  # paired: mean of per-seed differences B - A; unpaired: mean(B) - mean(A)
    ci90: tuple[float, float] | None  # the interval TOST decides by (alpha 0.05)
    ci95: tuple[float, float] | None
    verdict: str  # equivalent | different | diverged | undecided
    design: str = "unpaired"  # "paired" or "unpaired" (Welch)
    n_pairs: int = 0  # seeds in both configurations
    p: float | None = None  # two-sided p of a zero difference, this evaluation alone
    p_holm: float | None = None  # the same, Holm-adjusted over the pair's evaluations
    split: SeedSplit | None = None  # the seed sets: shared, and each side's own
    # seeds that diverged in one configuration only, at or before this evaluation:
    # (seed, "a" or "b", the iteration it diverged at)
    diverged: tuple[tuple, ...] = ()

    @property
    def n_unpaired(self) -> int:
        """Seeds left out of a paired statistic because they ran in one configuration only (a
        seed that diverged on one side ran on both: it is counted in `diverged`, not here)."""
        if self.design != "paired":
            return 0
        return self.n_a + self.n_b - 2 * self.n_pairs - len(self.diverged)


def point_statistic(it: int, a, b, margin: float, diverged: tuple = ()) -> PointVerdict:
    """The verdict at one evaluation taken alone: paired on the shared seeds when there are 2
    or more, else Welch over all seeds. compare_curves re-decides "different" with the
    Holm-adjusted p of all the pair's evaluations. `diverged`: the seeds that diverged on one
    side only by this evaluation (compare_curves works them out)."""
    a, b = _by_seed(a), _by_seed(b)
    split = split_seeds(a, b)
    shared = split.shared if split else ()
    va, vb = list(a.values()), list(b.values())
    if len(shared) >= 2:
        est, design = paired([b[s] - a[s] for s in shared]), "paired"
    elif len(va) >= 2 and len(vb) >= 2:
        est, design = welch(va, vb), "unpaired"
    else:  # a single seed on a side: no spread to compare the difference with
        diff = split.diff if split else math.nan
        verdict = "diverged" if diverged else "undecided"
        return PointVerdict(
            it,
            len(va),
            len(vb),
            diff,
            None,
            None,
            verdict,
            "unpaired",
            len(shared),
            split=split,
            diverged=diverged,
        )
    point = PointVerdict(
        it,
        len(va),
        len(vb),
        est.diff,
        est.ci(DECIDING_LEVEL),
        est.ci(0.95),
        "",
        design,
        len(shared),
        est.p_zero,
        est.p_zero,
        split,
        diverged,
    )
    return _decide(point, margin)


def _decide(p: PointVerdict, margin: float) -> PointVerdict:
    lo90, hi90 = p.ci90
    if p.p_holm is not None and p.p_holm < ALPHA and not (-margin < lo90 and hi90 < margin):
        verdict = "different"
    elif p.diverged:
        verdict = "diverged"
    elif -margin < lo90 and hi90 < margin:
        verdict = "equivalent"
    else:
        verdict = "undecided"
    return replace(p, verdict=verdict)


def _one_sided(it: int, mine: dict, theirs: dict, their_seeds: set, side: str) -> list[tuple]:
    """Seeds that diverged in `mine` by iteration `it`, ran in the other configuration and had
    not diverged there by then."""
    return [
        (s, side, at)
        for s, at in mine.items()
        if at <= it and s in their_seeds and not (s in theirs and theirs[s] <= it)
    ]


def compare_curves(
    a: dict,
    b: dict,
    margin: float = DEFAULT_MARGIN,
    diverged_a: dict | None = None,
    diverged_b: dict | None = None,
) -> dict:
    """Per common evaluation iteration after training began, the verdict with the p-values
    Holm-adjusted over all of them; the first iteration from which the two stay apart, and
    the verdict at the last common evaluation. a, b: iteration -> {seed: val loss} (or a
    list: seeds unknown), finite values only; diverged_a/b: seed -> the iteration it diverged
    at (NaN or inf), for the seeds that did."""
    diverged_a, diverged_b = diverged_a or {}, diverged_b or {}
    seeds_a = {s for vals in a.values() for s in _by_seed(vals) if is_known(s)}
    seeds_b = {s for vals in b.values() for s in _by_seed(vals) if is_known(s)}
    common = sorted(set(a) & set(b))
    judged = [it for it in common if it >= FIRST_JUDGED_ITER]
    points = []
    for it in judged:
        gone = _one_sided(it, diverged_a, diverged_b, seeds_b, "a") + _one_sided(
            it, diverged_b, diverged_a, seeds_a, "b"
        )
        points.append(point_statistic(it, a[it], b[it], margin, tuple(sorted(gone, key=str))))
    tested = [i for i, p in enumerate(points) if p.p is not None]
    for i, adj in zip(tested, holm([points[i].p for i in tested])):
        points[i] = _decide(replace(points[i], p_holm=adj), margin)
    # the first evaluation from which every later one is significant too (it stays out)
    leaves = None
    for p in reversed(points):
        if p.p_holm is None or not p.p_holm < ALPHA:
            break
        leaves = p.iter
    designs = {p.design for p in points if p.ci95 is not None}
    return {
        "method": (
            f"{' and '.join(sorted(designs)) or 'no'} t intervals over the seeds; equivalent: TOST at alpha "
            f"{ALPHA:g} (the {DECIDING_LEVEL:.0%} interval inside +/-{margin:g} nats) at each evaluation, an "
            f"intersection-union test that needs no correction; different: the test of a zero difference, "
            f"Holm-adjusted over {len(tested)} evaluations"
        ),
        "margin": margin,
        "points": points,
        "first_iter_beyond_noise": leaves,
        "final": points[-1] if points else None,
        "too_short": bool(common) and not judged,  # only the initial weights in common
        "last_a": max(a) if a else None,
        "last_b": max(b) if b else None,
        "diverged_a": dict(diverged_a),
        "diverged_b": dict(diverged_b),
    }


def band(values: list[float]) -> tuple[float, float, float, str]:
    """(mean, low, high, kind) for one evaluation's seeds: the mean with the seeds' range
    (min to max), at every number of seeds. It describes what the seeds did; it is not a
    confidence interval (the equivalence test gives those, with their level)."""
    mean, _ = mean_sd(values)
    return mean, min(values), max(values), "min-max"


@dataclass(frozen=True)
class Curve:
    """One configuration's evaluations: iteration -> (val loss, train seconds to get there),
    the seeds' means where all of them evaluated; and per iteration seed -> val loss, so that
    a gap can be taken on the seeds two configurations share."""

    label: str
    points: dict[int, tuple[float, float]]
    seeds: dict[int, dict] = field(default_factory=dict)

    @property
    def last_iter(self) -> int:
        return max(self.points)

    def at(self, it: int, on: tuple = ()) -> float:
        """The val loss at `it`: the mean over the seeds `on` where given (and recorded), else
        over every seed."""
        vals = self.seeds.get(it) or {}
        if on and all(s in vals for s in on):
            return sum(vals[s] for s in on) / len(on)
        return self.points[it][0]


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
    iterations, the others what each run's iterations beyond i bought. Every term is taken on
    the seeds both ran (the same seed: the same weights and batches) where there are any; the
    seeds one side ran alone are reported apart, as what they move that side's mean by. When
    `precision_ref` is a run on A's device in B's dtype, the first bracket splits further into
    precision (ref(i) - A(i)) and device (B(i) - ref(i)), on the seeds all three ran.
    """
    common = sorted(set(a.points) & set(b.points))
    if not common:
        return {
            "sentences": [
                f"{a.label} and {b.label} share no evaluation iteration; nothing to compare."
            ]
        }
    i = common[-1]
    split = split_seeds(a.seeds.get(i) or {}, b.seeds.get(i) or {})
    on = split.shared if split else ()
    la, ta = a.at(i, on), a.points[i][1]
    lb_i, tb = b.at(i, on), b.points[i][1]
    lb_final = b.at(b.last_iter, on)
    la_final = a.at(a.last_iter, on)
    mean_gap = b.points[b.last_iter][0] - a.points[a.last_iter][0]
    out = {
        "iter": i,
        "total_gap": lb_final - la_final,
        "at_equal_iters": lb_i - la,
        "from_iterations": (lb_final - lb_i) - (la_final - la),
        "precision": None,
        "device": None,
        "shared_seeds": list(on),
        "seed_composition": mean_gap - (lb_final - la_final),
        "train_time_s_to_iter": {a.label: ta, b.label: tb},
        "speedup_to_iter": ta / tb if tb > 0 else None,
    }
    cause = _equal_iteration_cause(recipe_keys, same_device, same_precision, other_program)
    where = f" {split.on()}" if split is not None and split.differ else ""
    sentences = [
        f"{b.label} ended at val {lb_final:.4f} (iteration {b.last_iter}), {a.label} at {la_final:.4f} "
        f"(iteration {a.last_iter}){where}: a gap of {lb_final - la_final:+.4f}.",
        f"At equal iterations ({i}) the gap is {lb_i - la:+.4f}{where}: that much is {cause}",
    ]
    if split is not None and split.differ:
        words = split.words(a.label, b.label)
        sentences.append(words[0].upper() + words[1:] + ".")
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
        out["precision"], out["device"], sentence = _precision_and_device(
            a, b, precision_ref, i, on
        )
        sentences.append(sentence)
    if out["speedup_to_iter"]:
        faster, slower = (b.label, a.label) if tb < ta else (a.label, b.label)
        ratio = max(ta, tb) / min(ta, tb) if min(ta, tb) > 0 else float("inf")
        sentences.append(
            f"{faster} reached iteration {i} in {min(ta, tb):.1f} s of training, "
            f"{ratio:.2f}x sooner than {slower} ({max(ta, tb):.1f} s)."
        )
    out["sentences"] = sentences
    return out


def _equal_iteration_cause(
    recipe_keys: tuple[str, ...], same_device: bool, same_precision: bool, other_program
) -> str:
    """What the gap at equal iterations is due to, given what differs between the two sides."""
    if recipe_keys:
        recipe = f"the recipe ({', '.join(recipe_keys)})"
        return (
            f"{recipe}: both ran on the same device in the same precision."
            if same_device and same_precision
            else f"{recipe}, hardware and precision together."
        )
    if other_program:  # an imported log of the same recipe, device name and precision
        return (
            f"the two programs ({other_program} and nanobench: their batches, evaluation text and kernels): "
            f"both ran on a device of the same name in the same precision."
        )
    return (
        "precision (or compilation): both ran on the same device."
        if same_device
        else "hardware and precision."
    )


def _precision_and_device(a: Curve, b: Curve, ref: Curve, i: int, on: tuple) -> tuple:
    """(precision part, device part, the sentence) of the gap at iteration i, with `ref` a
    run on A's device in B's dtype, on the seeds all three ran; (None, None, why not) when
    `ref` ran none of the seeds A and B share."""
    ref_seeds = ref.seeds.get(i) or {}
    three = tuple(s for s in on if s in ref_seeds) if on else ()
    if on and not three:
        return (
            None,
            None,
            f"{ref.label} ran none of the seeds {a.label} and {b.label} share: "
            f"precision and device are not split.",
        )
    la3, lb3, lr3 = a.at(i, three), b.at(i, three), ref.at(i, three)
    precision, device = lr3 - la3, lb3 - lr3
    seeds_note = (
        f" (on the {len(three)} seed{'s' * (len(three) > 1)} all three ran: {seed_names(three)})"
        if three and three != on
        else ""
    )
    return (
        precision,
        device,
        f"Of the equal-iteration gap, {precision:+.4f} is precision ({ref.label} vs {a.label}) "
        f"and {device:+.4f} the device itself (kernels, reduction order, dropout masks){seeds_note}.",
    )
