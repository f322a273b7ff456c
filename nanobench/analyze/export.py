"""`nanobench compare --json`: a comparison (and gate results) as plain JSON-ready dicts."""

from __future__ import annotations

import json

from nanobench.analyze import references
from nanobench.analyze.compare import Comparison
from nanobench.analyze.config import recipe_diff
from nanobench.analyze.gates import GateResult
from nanobench.analyze.runs import Hit, RunStats, time_to_target


def _hit_json(h: Hit | None):
    return (
        None
        if h is None
        else {
            "iter": h.iter,
            "train_time_s": h.train_time_s,
            "wall_time_s": h.wall_time_s,
            "energy_j": h.energy_j,
        }
    )


def _run_json(r: RunStats) -> dict:
    return {
        "run_id": r.run_id,
        "path": r.path,
        "scenario": r.scenario,
        "dataset_sha256": r.dataset_sha256,
        "device_type": r.config.device_type,
        "device_name": r.config.device_name,
        "dtype": r.config.dtype,
        "compile": r.config.compile,
        "overrides": list(r.overrides),
        "seed": r.seed,
        "threads": r.threads,
        "torch": r.torch_version,
        "status": r.status,
        "iterations": r.iterations,
        "final_train_loss": r.final_train_loss,
        "final_val_loss": r.final_val_loss,
        "best_val_loss": r.best_val_loss,
        "median_ms_per_iter": r.median_step_s * 1e3 if r.median_step_s else None,
        "p90_ms_per_iter": r.p90_step_s * 1e3 if r.p90_step_s else None,
        "tokens_per_s": r.tokens_per_s,
        "tokens_per_iter": r.tokens_per_iter,
        "flops_per_iter": r.flops_per_iter,
        "mfu": r.mfu,
        "mem_peak_bytes": r.mem_peak_bytes,
        "energy_j": r.energy_j,
        "train_time_s": r.train_time_s,
        "wall_time_s": r.wall_time_s,
        "noise": {
            "verdict": r.noise.verdict,
            "reasons": list(r.noise.reasons),
            "share_affected": r.noise.share_affected,
        },
        "slow_outliers": r.slow_outliers,
        "time_to_target": {
            f"{t:g}": _hit_json(time_to_target(r.evaluations, t)) for t in r.targets
        },
    }


def _equivalence_json(eq: dict | None):
    if eq is None:
        return None
    return {
        "method": eq["method"],
        "margin": eq["margin"],
        "first_iter_beyond_noise": eq["first_iter_beyond_noise"],
        "too_short": eq.get("too_short", False),
        "diverged_base": {str(k): v for k, v in eq.get("diverged_a", {}).items()},
        "diverged_other": {str(k): v for k, v in eq.get("diverged_b", {}).items()},
        "points": [
            {
                "iter": p.iter,
                "n_base": p.n_a,
                "n_other": p.n_b,
                "design": p.design,
                "n_pairs": p.n_pairs,
                "diff": p.diff,
                "ci90": p.ci90,
                "ci95": p.ci95,
                "p": p.p,
                "p_holm": p.p_holm,
                "verdict": p.verdict,
                "seeds": _split_json(p.split),
                "diverged": [
                    {"seed": s, "in": "other" if side == "b" else "base", "iter": at}
                    for s, side, at in p.diverged
                ],
            }
            for p in eq["points"]
        ],
    }


def _split_json(split):
    """The seed sets of a difference: shared, each side's own, and what those move each mean by."""
    if split is None:
        return None
    return {
        "shared": [str(s) for s in split.shared],
        "base_only": [str(s) for s in split.only_a],
        "other_only": [str(s) for s in split.only_b],
        "diff_of_means": split.total,
        "base_only_moves_mean_by": split.a_extra,
        "other_only_moves_mean_by": split.b_extra,
    }


def _equal_json(e, at: str):
    """diff: other - base on the shared seeds where there are any (else of the means)."""
    return (
        None
        if e is None
        else {
            at: e.at,
            "base_val_loss": e.base_val,
            "other_val_loss": e.other_val,
            "diff": e.diff,
            "seeds": _split_json(e.split),
        }
    )


def _config_json(cs, baseline) -> dict:
    return {
        "label": cs.label,
        "seeds": cs.seeds,
        # recipe keys whose value differs from the baseline's (null: not recorded)
        "recipe_vs_baseline": {
            k: None if v == "?" else json.loads(v)
            for k, v in recipe_diff(cs.config.recipe, baseline.config.recipe).items()
        },
        "median_ms_per_iter": cs.median_step_s * 1e3 if cs.median_step_s else None,
        "final_val_loss": cs.final_val_loss,
        "best_val_loss": cs.best_val_loss,
        "noisy_runs": [r.run_id for r in cs.runs if r.noise.verdict == "noisy"],
    }


def _pair_json(p) -> dict:
    return {
        "base": p.base.label,
        "other": p.other.label,
        "speedup": None
        if p.speedup is None
        else {
            "ratio": p.speedup.ratio,
            "low": p.speedup.low,
            "high": p.speedup.high,
            "method": "ratio of medians; range from quartiles",
        },
        "targets": [
            {
                "val_loss": t.target,
                "base": _hit_json(t.base),
                "other": _hit_json(t.other),
                "base_reached": t.base_reached,
                "other_reached": t.other_reached,
                "iter_ratio": t.iter_ratio,
                "train_time_ratio": t.train_time_ratio,
                "wall_time_ratio": t.wall_time_ratio,
            }
            for t in p.targets
        ],
        "equal_iteration": _equal_json(p.equal_iter, "iter"),
        "equal_train_time": _equal_json(p.equal_time, "train_time_s"),
        "equal_tokens": _equal_json(p.equal_tokens, "tokens"),
        "equal_flops": _equal_json(p.equal_flops, "flops"),
        "verdict": p.verdict,
        "equivalence": _equivalence_json(p.equivalence),
        "explanation": p.explanation,
    }


def _group_json(g) -> dict:
    return {
        "scenario": g.scenario,
        "dataset": g.dataset,
        "dataset_sha256": g.dataset_sha256,
        "baseline": g.baseline.label,
        "baseline_why": g.baseline_why,
        "targets": list(g.targets),
        "confounds": g.confounds,
        "notes": g.notes,
        "runs": [_run_json(r) for r in g.runs],
        "configurations": [_config_json(cs, g.baseline) for cs in g.configs],
        "comparisons": [_pair_json(p) for p in g.pairs],
        # device against device: "same settings" and "best vs best" (empty without `run --best` runs)
        "device_speedups": [
            {
                "kind": d.kind,
                "base": d.base.label,
                "other": d.other.label,
                "ratio": d.speedup.ratio,
                "low": d.speedup.low,
                "high": d.speedup.high,
                "base_settings": d.base_settings,
                "other_settings": d.other_settings,
            }
            for d in g.device_speedups
        ],
    }


def _gate_json(r: GateResult) -> dict:
    return {
        "metric": r.gate.metric,
        "scenario": r.scenario,
        "configuration": r.config,
        "baseline": r.baseline,
        "value": r.value,
        "limit": r.limit,
        "passed": r.passed,
        "noisy_runs": r.noisy,
        "refused": r.passed is None,
    }


def to_json(
    c: Comparison, gates: list[GateResult] | None = None, ungated: list[str] | None = None
) -> dict:
    out = {
        "groups": [_group_json(g) for g in c.groups],
        "warnings": c.warnings,
        "skipped": c.skipped,
        "references": [references.to_json(ch) for ch in c.references],
    }
    if gates is not None:
        out["gates"] = [_gate_json(r) for r in gates]
        out["ungated"] = ungated or []
    return out
