"""Regression gates: `--fail-on ms_per_iter:5%,val_loss:0.02` parsed, and each configuration
of the current runs checked against the same configuration in the baseline runs.

A timing gate (TIMING_METRICS) whose current or baseline runs include a noisy one (its
recorded noise verdict, analyze/noise.py) is *refused*: it neither passes nor fails
(`passed` is None) unless `allow_noisy`, and then it is judged and says it rests on them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace

from nanobench.analyze.compare import Comparison
from nanobench.analyze.config import recipe_diff
from nanobench.analyze.noise import noisy_note
from nanobench.errors import InputError

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
# what a busy machine falsifies
TIMING_METRICS = frozenset({"ms_per_iter", "tokens_per_s", "train_time_s"})


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
    passed: bool | None  # None: refused, a timing gate on noisy runs
    noisy: str | None = None  # the noisy runs it rests on, and why

    def describe(self) -> str:
        word = {True: "ok", False: "FAILED", None: "REFUSED"}[self.passed]
        thr = f"{self.gate.threshold:g}%" if self.gate.relative else f"{self.gate.threshold:g}"
        text = (
            f"{word}: {self.scenario} {self.config} {self.gate.metric} {self.value:.6g} vs baseline "
            f"{self.baseline:.6g} (limit {self.limit:.6g}, {thr})"
        )
        if self.passed is None:
            return (
                f"{text}: timings of noisy runs, neither passed nor failed: {self.noisy}; "
                f"re-run on a quiet machine (`nanobench env --check`) or give --allow-noisy"
            )
        return f"{text}; rests on noisy runs: {self.noisy}" if self.noisy else text


def parse_gates(text: str) -> list[Gate]:
    """`ms_per_iter:5%,val_loss:0.02` -> gates. Raises InputError naming the bad part."""
    gates = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        metric, sep, thr = part.partition(":")
        if not sep or metric not in GATE_METRICS:
            raise InputError(
                f"--fail-on {part}: expected METRIC:THRESHOLD with METRIC one of {', '.join(GATE_METRICS)}"
            )
        rel = thr.endswith("%")
        try:
            value = float(thr[:-1] if rel else thr)
        except ValueError:
            raise InputError(
                f"--fail-on {part}: threshold {thr!r} is not a number (e.g. 5% or 0.02)"
            ) from None
        if value < 0 or not math.isfinite(value):
            raise InputError(f"--fail-on {part}: threshold must be a non-negative number")
        gates.append(Gate(metric, value, rel))
    if not gates:
        raise InputError(f"--fail-on {text!r}: no gate given (e.g. ms_per_iter:5%,val_loss:0.02)")
    return gates


def check_gates(
    current: Comparison, baseline: Comparison, gates: list[Gate], allow_noisy: bool = False
) -> tuple[list[GateResult], list[str]]:
    """Each configuration of the current runs against the same configuration (same scenario,
    dataset, device/dtype/compile and recipe) in the baseline runs. Unmatched ones are
    reported; a baseline of the same device and dtype but another recipe is named, never used.
    A timing gate on noisy runs is refused (passed None) unless allow_noisy."""
    base_index = {(g.key, c.config): c for g in baseline.groups for c in g.configs}
    out, unmatched = [], []
    for g in current.groups:
        for c in g.configs:
            b = base_index.get((g.key, c.config))
            if b is None:
                unmatched.append(
                    f"{g.scenario} {c.label}: " + _why_unmatched(c.config, g.key, base_index)
                )
                continue
            for gate in gates:
                read, higher_is_worse = GATE_METRICS[gate.metric]
                bv, cv = read(b), read(c)
                if bv is None or cv is None:
                    unmatched.append(
                        f"{g.scenario} {c.label} {gate.metric}: not recorded; not gated"
                    )
                    continue
                delta = abs(bv) * gate.threshold / 100 if gate.relative else gate.threshold
                limit = bv + delta if higher_is_worse else bv - delta
                passed = cv <= limit if higher_is_worse else cv >= limit
                noisy = noisy_note(b.runs + c.runs) if gate.metric in TIMING_METRICS else None
                if noisy and not allow_noisy:
                    passed = None
                out.append(GateResult(gate, g.scenario, c.label, bv, cv, limit, passed, noisy))
    return out, unmatched


def _why_unmatched(config, key, base_index) -> str:
    other_recipes = [
        b
        for (k, bc), b in sorted(base_index.items(), key=lambda kv: kv[1].label)
        if k == key
        and bc.recipe != config.recipe
        and bc == dataclass_replace(config, recipe=bc.recipe)
    ]
    if not other_recipes:
        return "no baseline run of this configuration; not gated"
    b = other_recipes[0]
    keys = ", ".join(recipe_diff(config.recipe, b.config.recipe))
    return f"the baseline's {b.label} runs have another recipe (differing in {keys}); not gated across recipes"
