"""Is my run normal? Reference points per shipped scenario, and where a run falls against them.

Two kinds of reference, both val loss at an evaluation iteration:

- the project's committed seed runs (results/examples): at each evaluation, the prediction
  interval for one more run of the recipe, mean ± t(q, n−1)·sd·√(1 + 1/n) over the n seeds
  (normal seed-to-seed variation assumed). A run is never held to a band made from itself:
  a run of one of the reference seeds is checked against the band of the *other* seeds (the
  same seed gives the same weights and batches, so its numbers are not a fresh draw even on
  another machine). A run meets about ten bands, one per evaluation; each is at level
  1 − 0.05/k for the k seed bands the run meets (Bonferroni), so a normal run is flagged by
  any of them with probability at most 5%, not the ~37% of ten 95% bands taken one by one.
  Few seeds make a wide band: it narrows as seeds are added, and never claims more than the
  seeds show.
- figures published by nanoGPT's README, each a point with a stated tolerance: the value *at*
  an iteration, or the *best* val loss up to it (nanoGPT's GPU figure is its best over the
  run, which overfits before the end), compared with the run's value at, or lowest up to,
  that iteration. A tolerance has no stated false-alarm rate.

Like MLPerf's reference convergence points, a run is flagged at the first evaluation where
it leaves a band. Pure functions over numbers; `SEED_RUNS` is data, and
tests/analyze/test_references.py recomputes it from the committed example files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

# nanoGPT's README gives one rounded figure per recipe; seeds of the CPU recipe span about
# 0.03 nats at iteration 2000 (1.877-1.904 below), so ±0.05 holds seed noise and rounding.
PUBLISHED_TOLERANCE = 0.05
LEVEL = 0.95  # of all the seed bands of one run together (Bonferroni)

# scenario -> [(iter, val loss, source, kind)]; kind "at": the val loss at that iteration,
# "best": the lowest val loss up to it
PUBLISHED = {
    "shakespeare_char_cpu": [
        (
            2000,
            1.88,
            "nanoGPT README, CPU recipe: 'a loss of only 1.88' after 2000 iterations",
            "at",
        )
    ],
    "shakespeare_char": [
        (
            5000,
            1.4697,
            "nanoGPT README, GPU recipe: best validation loss 1.4697 (5000 iterations, A100)",
            "best",
        )
    ],
}

# scenario -> (where the runs are, their seeds, {iter: val loss of each seed, in that order})
SEED_RUNS = {
    "shakespeare_char_cpu": (
        "results/examples/cpu-fp32-vs-bf16 (cpu fp32)",
        (1337, 1338, 1339),
        {
            0: (4.195825, 4.177634, 4.204833),
            250: (2.419101, 2.441944, 2.426625),
            500: (2.306506, 2.270468, 2.274294),
            750: (2.171207, 2.124645, 2.160984),
            1000: (2.056638, 2.031992, 2.062155),
            1250: (2.002452, 1.987184, 2.000296),
            1500: (1.955619, 1.933904, 1.943235),
            1750: (1.917677, 1.896035, 1.915691),
            2000: (1.903803, 1.876808, 1.895966),
        },
    ),
}


@dataclass(frozen=True)
class Band:
    iter: int
    low: float
    high: float
    source: str
    kind: str = "at"  # "at": the val loss at `iter`; "best": the lowest val loss up to `iter`


@dataclass(frozen=True)
class Check:
    """A run against its scenario's references: the bands it was held to and the first it left."""

    run_id: str
    scenario: str
    checked: tuple[tuple[int, float, Band], ...]  # (iter, the run's val loss, band), in order
    first_outside: tuple[int, float, Band] | None

    def sentence(self) -> str:
        if not self.checked:
            return f"{self.run_id}: no evaluation at an iteration with a reference point of {self.scenario}."
        if self.first_outside is None:
            its = sorted({it for it, _, _ in self.checked})
            at = f"all {len(self.checked)} checks" if len(self.checked) > 1 else "its one check"
            seeds = next((b.source for _, _, b in self.checked if b.kind == "seeds"), None)
            how = f"; seed bands: {seeds}" if seeds else ""
            return (
                f"{self.run_id}: normal, inside the reference bands of {self.scenario} at {at} "
                f"(iterations {its[0]}-{its[-1]}{how})."
            )
        it, val, band = self.first_outside
        way = "above" if val > band.high else "below"
        what = f"its best val loss up to {it}" if band.kind == "best" else "val loss"
        return (
            f"{self.run_id}: NOT NORMAL from iteration {it}: {what} {val:.4f} is {way} the band "
            f"{band.low:.4f}-{band.high:.4f} ({band.source})."
        )


def prediction_band(values, level: float = LEVEL) -> tuple[float, float] | None:
    """mean ± t(level, n−1)·sd·√(1 + 1/n): where one more draw falls with probability `level`
    if the values are normal draws. None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def seed_bands(
    per_iter: dict, seeds: tuple, where: str, iters=None, exclude_seed=None
) -> list[Band]:
    """The seed bands at the iterations `iters` (all of per_iter's when None), made without
    `exclude_seed` (the run's own seed), each at level 1 − (1 − LEVEL)/k for the k bands
    made: together they flag a normal run with probability at most 1 − LEVEL."""
    keep = [i for i, s in enumerate(seeds) if s != exclude_seed]
    chosen = {
        it: [vals[i] for i in keep]
        for it, vals in per_iter.items()
        if (iters is None or it in iters) and len(keep) >= 2
    }
    k = len(chosen)
    level = 1 - (1 - LEVEL) / k if k else LEVEL
    others = ", ".join(str(seeds[i]) for i in keep)
    left_out = f" (its own seed {exclude_seed} left out)" if len(keep) < len(seeds) else ""
    source = (
        f"prediction bands of seeds {others}{left_out}, {level:.2%} each, {LEVEL:.0%} together "
        f"over {k}, {where}"
    )
    out = []
    for it, values in sorted(chosen.items()):
        low, high = prediction_band(values, level)
        out.append(Band(it, low, high, source, "seeds"))
    return out


def published_bands(scenario: str) -> list[Band]:
    return [
        Band(
            it,
            val - PUBLISHED_TOLERANCE,
            val + PUBLISHED_TOLERANCE,
            f"{source}, ±{PUBLISHED_TOLERANCE:g}"
            + (f"; held against the run's lowest val loss up to {it}" if kind == "best" else ""),
            kind,
        )
        for it, val, source, kind in PUBLISHED.get(scenario, [])
    ]


def bands(scenario: str, iters=None, exclude_seed=None) -> list[Band]:
    """Every reference band of a scenario, in iteration order (none for an unknown scenario):
    the seed bands at `iters` (every reference iteration when None), without `exclude_seed`."""
    out = []
    if scenario in SEED_RUNS:
        where, seeds, per_iter = SEED_RUNS[scenario]
        out += seed_bands(per_iter, seeds, where, iters, exclude_seed)
    out += published_bands(scenario)
    return sorted(out, key=lambda b: b.iter)


def _value(band: Band, vals: dict) -> float | None:
    """The run's number for a band: its val loss at the band's iteration, or (kind "best") its
    lowest val loss up to it, when it evaluated that far."""
    if band.kind != "best":
        return vals.get(band.iter)
    if not vals or max(vals) < band.iter:
        return None
    return min(v for it, v in vals.items() if it <= band.iter)


def check(run_id: str, scenario: str, evaluations, seed=None) -> Check | None:
    """`evaluations`: (iter, val loss) pairs of one run; `seed`: its seed (a reference seed is
    left out of the bands it is held to). None when the scenario has no references."""
    vals = dict(evaluations)
    refs = bands(scenario, set(vals), seed)
    if not refs:
        return None
    checked = tuple((b.iter, v, b) for b in refs if (v := _value(b, vals)) is not None)
    outside = next(((it, v, b) for it, v, b in checked if not b.low <= v <= b.high), None)
    return Check(run_id, scenario, checked, outside)


def to_json(c: Check) -> dict:
    def point(it, val, band):
        return {
            "iter": it,
            "val_loss": val,
            "low": band.low,
            "high": band.high,
            "source": band.source,
            "kind": band.kind,
        }

    return {
        "run_id": c.run_id,
        "scenario": c.scenario,
        "normal": c.first_outside is None,
        "first_outside": None if c.first_outside is None else point(*c.first_outside),
        "checked": [point(*x) for x in c.checked],
        "sentence": c.sentence(),
    }
