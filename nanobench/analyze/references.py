"""Is my run normal? Reference points per shipped scenario, and where a run falls against them.

Two kinds of reference, both val loss at an evaluation iteration:

- the project's committed seed runs (results/examples): at each evaluation, the 95%
  prediction interval for one more run of the recipe, mean ± t(0.975, n−1)·sd·√(1 + 1/n)
  over the n seeds (normal seed-to-seed variation assumed). Few seeds make a wide band:
  it narrows as seeds are added, and never claims more than the seeds show.
- figures published by nanoGPT's README, each a point with a stated tolerance.

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
LEVEL = 0.95

# scenario -> [(iter, val loss, source)]
PUBLISHED = {
    "shakespeare_char_cpu": [
        (2000, 1.88, "nanoGPT README, CPU recipe: 'a loss of only 1.88' after 2000 iterations")
    ],
    "shakespeare_char": [
        (
            5000,
            1.4697,
            "nanoGPT README, GPU recipe: best validation loss 1.4697 (5000 iterations, A100)",
        )
    ],
}

# scenario -> (where the runs are, {iter: val loss of each seed}); cpu fp32, seeds 1337-1339
SEED_RUNS = {
    "shakespeare_char_cpu": (
        "results/examples/cpu-fp32-vs-bf16 (cpu fp32, seeds 1337, 1338, 1339)",
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
            return (
                f"{self.run_id}: normal, inside the reference bands of {self.scenario} at {at} "
                f"(iterations {its[0]}-{its[-1]})."
            )
        it, val, band = self.first_outside
        way = "above" if val > band.high else "below"
        return (
            f"{self.run_id}: NOT NORMAL from iteration {it}: val loss {val:.4f} is {way} the band "
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


def bands(scenario: str) -> list[Band]:
    """Every reference band of a scenario, in iteration order (none for an unknown scenario)."""
    out = []
    if scenario in SEED_RUNS:
        where, per_iter = SEED_RUNS[scenario]
        for it, values in sorted(per_iter.items()):
            band = prediction_band(values)
            if band:
                out.append(Band(it, *band, f"95% prediction band of {len(values)} seeds, {where}"))
    for it, val, source in PUBLISHED.get(scenario, []):
        out.append(
            Band(
                it,
                val - PUBLISHED_TOLERANCE,
                val + PUBLISHED_TOLERANCE,
                f"{source}, ±{PUBLISHED_TOLERANCE:g}",
            )
        )
    return sorted(out, key=lambda b: b.iter)


def check(run_id: str, scenario: str, evaluations) -> Check | None:
    """`evaluations`: (iter, val loss) pairs of one run. None when the scenario has no references."""
    refs = bands(scenario)
    if not refs:
        return None
    vals = dict(evaluations)
    checked = tuple((b.iter, vals[b.iter], b) for b in refs if b.iter in vals)
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
        }

    return {
        "run_id": c.run_id,
        "scenario": c.scenario,
        "normal": c.first_outside is None,
        "first_outside": None if c.first_outside is None else point(*c.first_outside),
        "checked": [point(*x) for x in c.checked],
        "sentence": c.sentence(),
    }
