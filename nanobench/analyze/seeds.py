"""Several seeds of one configuration in one group: aggregated numbers, time to target over
the seeds, and the seeds' curves for the equivalence test."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from nanobench.analyze import equivalence
from nanobench.analyze.config import Config
from nanobench.analyze.runs import Evaluation, Hit, RunStats, percentile, time_to_target


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


def mean_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def aggregate(config: Config, label: str, runs: list[RunStats]) -> ConfigSummary:
    """Several seeds of one configuration: step times pooled, everything else the mean."""
    pooled = np.concatenate([r.step_times_s for r in runs]) if runs else np.array([])
    return ConfigSummary(
        config=config,
        label=label,
        runs=runs,
        step_times_s=pooled,
        median_step_s=percentile(pooled, 50),
        q1_step_s=percentile(pooled, 25),
        q3_step_s=percentile(pooled, 75),
        final_val_loss=mean_or_none(r.final_val_loss for r in runs),
        best_val_loss=mean_or_none(r.best_val_loss for r in runs),
        final_train_loss=mean_or_none(r.final_train_loss for r in runs),
        tokens_per_s=mean_or_none(r.tokens_per_s for r in runs),
        mem_peak_bytes=mean_or_none(r.mem_peak_bytes for r in runs),
        train_time_s=float(np.mean([r.train_time_s for r in runs])),
        wall_time_s=float(np.mean([r.wall_time_s for r in runs])),
    )


def config_hit(cs: ConfigSummary, target: float) -> tuple[Hit | None, int]:
    """Mean time-to-target over the seeds, only when every seed reached it; and how many did."""
    hits = [time_to_target(r.evaluations, target) for r in cs.runs]
    reached = [h for h in hits if h is not None]
    if not reached or len(reached) < len(hits):
        return None, len(reached)
    energy = (
        mean_or_none(h.energy_j for h in reached)
        if all(h.energy_j is not None for h in reached)
        else None
    )
    return Hit(
        *(
            float(np.mean(x))
            for x in zip(*((h.iter, h.train_time_s, h.wall_time_s) for h in reached))
        ),
        energy,
    ), len(reached)


def run_keys(runs, imported: str = "") -> list:
    """The key each run's values go under: its seed ((format, seed) for an imported log), or
    ("unknown", run_id) for a run without a recorded seed or one of several runs of one seed
    (it counts but never pairs). `runs`: anything with `seed` and `run_id` (RunStats, the
    board's rows)."""
    counts = Counter(r.seed for r in runs)
    # another trainer's seed 1337 draws other weights and batches than nanobench's: it pairs
    # only with logs of that trainer
    return [
        ("unknown", r.run_id)
        if r.seed is None or counts[r.seed] != 1
        else ((imported, r.seed) if imported else r.seed)
        for r in runs
    ]


def seed_key(cs: ConfigSummary, r: RunStats):
    """run_keys' key of one run of a configuration."""
    return run_keys(cs.runs, cs.config.imported)[cs.runs.index(r)]


def seed_curves(cs: ConfigSummary) -> dict[int, dict]:
    """Evaluation iteration -> {seed: val loss} of every seed evaluated there (seed_key), finite
    values only: a NaN or inf loss is the seed diverging (diverged_seeds), never a number to
    average or test."""
    return runs_curves(cs.runs, cs.config.imported)


def runs_curves(runs, imported: str = "") -> dict[int, dict]:
    """seed_curves of any runs with `seed`, `run_id` and `evaluations` (the board's rows)."""
    out: dict[int, dict] = {}
    for r, key in zip(runs, run_keys(runs, imported)):
        for ev in r.evaluations:
            if not math.isfinite(ev.val_loss):
                break
            out.setdefault(ev.iter, {})[key] = ev.val_loss
    return out


def diverged_seeds(cs: ConfigSummary) -> dict:
    """seed -> the iteration at which it diverged: the first evaluation with a NaN or inf val
    loss, else, for a run recorded as `diverged` (a NaN loss stopped it), its last iteration."""
    out = {}
    for r in cs.runs:
        bad = next((e.iter for e in r.evaluations if not math.isfinite(e.val_loss)), None)
        if bad is None and r.status == "diverged":
            bad = _last_iter(r)
        if bad is not None:
            out[seed_key(cs, r)] = bad
    return out


def _last_iter(r: RunStats) -> int:
    if r.run is not None and len(r.rows):
        return int(r.rows["iter"].max())
    return r.evaluations[-1].iter if r.evaluations else r.iterations


def mean_curve(cs: ConfigSummary) -> equivalence.Curve:
    """The seeds' mean val loss and mean train time at each evaluation all of them reached,
    with each seed's val loss there (for gaps on shared seeds)."""
    by_iter: dict[int, list[Evaluation]] = {}
    for r in cs.runs:
        for ev in r.evaluations:
            if math.isfinite(ev.val_loss):
                by_iter.setdefault(ev.iter, []).append(ev)
    n = len(cs.runs)
    kept = {it: evs for it, evs in sorted(by_iter.items()) if len(evs) == n}
    per_seed = seed_curves(cs)
    return equivalence.Curve(
        cs.label,
        {
            it: (
                float(np.mean([e.val_loss for e in evs])),
                float(np.mean([e.train_time_s for e in evs])),
            )
            for it, evs in kept.items()
        },
        {it: per_seed.get(it, {}) for it in kept},
    )
