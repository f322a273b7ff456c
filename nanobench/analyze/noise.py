"""Whether a run's timings can be trusted: the noise verdict it recorded (measure/noise.py,
metadata `noise`) and its slow step-time outliers, counted from its rows.

Outliers: a timed (non-warm-up) step is a *slow outlier* when it took longer than
Q3 + OUTLIER_IQR_K x IQR of the run's timed steps (Tukey's "far out" fence, k = 3). Only the
slow side counts: interference (another process, a page fault, a throttled clock) makes a step
slower, never faster. Like hyperfine's outlier warning, a count shown beside the median; it
does not change the median, which is robust to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTLIER_IQR_K = 3.0
VERDICTS = ("quiet", "noisy", "unknown")
TIMING_RULE = f"slow outliers: steps above Q3 + {OUTLIER_IQR_K:g} x IQR of the run's timed steps"


@dataclass(frozen=True)
class RunNoise:
    verdict: str  # quiet | noisy | unknown (not sampled: an older file, or nothing readable)
    reasons: tuple[
        str, ...
    ]  # the recorded sentences, e.g. "other processes used 1.8 of 2 cores for 92% ..."
    share_affected: float | None  # share of the sampled steps any detector affected


def recorded(meta: dict) -> RunNoise:
    """The verdict a run recorded in its metadata; unknown where it recorded none."""
    section = meta.get("noise") if isinstance(meta.get("noise"), dict) else {}
    verdict = section.get("verdict")
    if verdict not in VERDICTS:
        return RunNoise("unknown", (), None)
    reasons = tuple(
        str(r.get("text", r.get("detector", "?")))
        for r in section.get("reasons") or []
        if isinstance(r, dict)
    )
    share = section.get("share_affected")
    return RunNoise(verdict, reasons, float(share) if isinstance(share, (int, float)) else None)


def slow_outliers(step_times_s, quartiles: tuple[float, float] | None = None) -> int:
    """How many steps lie above Q3 + OUTLIER_IQR_K x IQR (numpy's default percentiles; the
    caller's `quartiles` (Q1, Q3) where it computed them already)."""
    times = np.asarray(step_times_s, dtype=float)
    if times.size < 4:  # quartiles of fewer steps say nothing about a tail
        return 0
    q1, q3 = quartiles if quartiles is not None else np.percentile(times, [25, 75])
    return int((times > q3 + OUTLIER_IQR_K * (q3 - q1)).sum())


def noisy_note(runs) -> str | None:
    """A clause naming the noisy runs among `runs` (RunStats) and why, or None when none is."""
    noisy = [r for r in runs if r.noise.verdict == "noisy"]
    if not noisy:
        return None
    return "; ".join(f"{r.run_id} ({', '.join(r.noise.reasons) or 'noisy'})" for r in noisy)
