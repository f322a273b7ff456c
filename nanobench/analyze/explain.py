"""`nanobench explain A B`: any two configurations, the gap between them split into one
contribution per factor that differs, with the runs that are missing named.

A *point* is one configuration at one length: the recipe (analyze/config.recipe_of), the
iterations, device, dtype, compile, CPU threads and torch version. The factors in which A and
B differ are put in an order, and a *ladder* of points leads from A to B changing one factor
(or one inseparable group: the device with its threads and torch) per rung. Each quantity
(final val loss, time per iteration, train time to a common target, train time of the whole
run) is known at every point that has runs, and each rung contributes the difference between
its point and the one before. The contributions telescope: they sum to B - A exactly (in the
arithmetic; `rounded_parts` keeps the printed column summing to the printed total).

The split depends on the order of the rungs (changing the device first, on the small model,
is not the same as changing it last, on the large one): `explain` says so and shows another
order where its results exist.

A point with no run is *measured* nowhere. When it is too slow here but a short truncated run
of the same recipe on the same platform exists (a *probe*), its times are *projected* from the
probe's steady step times and its losses from the curve of the same recipe in the same dtype on
another device: marked "projected" wherever they appear, with a band, never pooled with
measured runs. Otherwise explain names the `nanobench run` command that makes it, where it can
run and its estimated time (run/estimate.py: FLOPs over a peak and an MFU).

The parts: analyze/ladder.py (points, factors, the ladder), analyze/attribution.py (the values
at each point, measured or projected, and the parts), analyze/missing.py (commands, where they run,
estimates, the order to run them in); this module puts them together, writes the paragraph and
the JSON. Nothing here probes hardware or runs anything: the CLI passes what this machine has
(`Here`) and a peak function in a `Planning`, and for `--run` makes the chosen commands one
run plan (run/plan.py) that the local executor runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from nanobench.analyze import equivalence
from nanobench.analyze.attribution import (
    QUANTITIES,
    Attribution,
    Part,
    PointResult,
    Value,
    attribute,
    covers,
    point_result,
    rounded_parts,
)
from nanobench.analyze.config import recipe_of, show_value
from nanobench.analyze.format import fmt_time
from nanobench.analyze.ladder import (
    DEFAULT_ORDER,
    FACTOR_LABELS,
    ORDERS,
    Point,
    Rung,
    differing,
    ladder,
    name_point,
    parse_order,
    point_of,
)
from nanobench.analyze.missing import Here, MissingRun, missing_runs, runs_here
from nanobench.analyze.runs import RunStats
from nanobench.errors import InputError


@dataclass(frozen=True)
class Planning:
    """How explain plans the runs its ladder lacks (analyze/missing.py): the folder their commands
    write to, what this machine offers and its measured peak (None: commands are named, where
    they run and how long they take are not judged), the longest run planned here before a
    short probe replaces it, and the seeds (empty: those A and B share, else either's)."""

    out: str = "results"
    here: Here | None = None
    here_peak: Callable[[str, str], tuple[float, str]] | None = None  # (kind, dtype) -> peak
    budget_s: float | None = None
    seeds: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.out:
            raise InputError("--out: give the folder the missing runs write to")
        if self.here is not None and self.here_peak is None:
            raise ValueError("Planning: a machine (here) needs its peak function (here_peak)")
        if self.budget_s is not None and not self.budget_s >= 0:
            raise InputError(f"--budget {self.budget_s:g} s: must be 0 or more")
        if any(s < 0 for s in self.seeds):
            raise InputError(f"seeds {list(self.seeds)}: must be non-negative")


# ---- endpoints and targets ---------------------------------------------------------------------


def endpoint(runs: list[RunStats], name: str) -> Point:
    """The one point that a path's runs make (their seeds); several is bad input, naming them."""
    points = {}
    for r in runs:
        points.setdefault(point_of(r), []).append(r)
    if len(points) != 1:
        listed = "; ".join(
            f"{p.label()} ({len(rs)} run{'s' * (len(rs) > 1)})" for p, rs in points.items()
        )
        raise InputError(
            f"{name}: holds {len(points)} configurations ({listed}); name one file, a folder of "
            f"one configuration's seeds, or a selector SCENARIO:DEVICE:DTYPE"
        )
    return next(iter(points))


def selector_point(text: str, scenario_dict: dict) -> Point:
    """SCENARIO:DEVICE[:DTYPE[:compile]] with the scenario's recorded or loaded dict: its recipe
    at its full length, any device of that type, any threads and torch version."""
    parts = text.split(":")
    device = parts[1] if len(parts) > 1 and parts[1] else "cpu"
    dtype = parts[2] if len(parts) > 2 and parts[2] else "fp32"
    compiled = len(parts) > 3 and parts[3] == "compile"
    if len(parts) > 4 or (len(parts) > 3 and parts[3] not in ("compile", "")):
        raise InputError(
            f"{text}: a selector is SCENARIO:DEVICE:DTYPE[:compile], e.g. shakespeare_char:cuda:bf16"
        )
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise InputError(f"{text}: unknown device {device!r} (cpu, cuda or mps)")
    iters = int((scenario_dict.get("train") or {}).get("max_iters") or 0)
    return Point(
        recipe_of(scenario_dict),
        iters,
        device,
        None,
        dtype,
        compiled,
        None,
        None,
        scenario=str(scenario_dict.get("name", parts[0])),
        base=scenario_dict,
    )


def dataset_check(a: Point, b: Point, a_sha: str | None, b_sha: str | None) -> None:
    """Refuse, in one line, two endpoints trained on different data."""
    da, db = a.key("data.dataset"), b.key("data.dataset")
    if (a_sha and b_sha and a_sha != b_sha) or (not (a_sha and b_sha) and da != db):
        name = lambda d, s: f"{show_value(d) if d else '?'}" + (f" ({s[:8]})" if s else "")  # noqa: E731
        raise InputError(
            f"A and B were trained on different data ({name(da, a_sha)} vs {name(db, b_sha)}): "
            f"the gap would be the data; explain compares runs of one dataset"
        )


def common_target(
    a: PointResult, b: PointResult, targets: tuple[float, ...]
) -> tuple[float | None, str]:
    """The lowest scenario target every seed of A and B reached (projections included); else the
    loss every one of them reached (the highest of their best losses); None if neither is known."""
    bests = []
    for res in (a, b):
        v = res.values.get("val_loss")
        if v is not None:
            bests.append(v.high if v.projected else max(s for _, s in v.per_seed))
    if not bests:
        return None, "no val loss known on either side"
    reachable = [t for t in sorted(set(targets)) if all(t >= best for best in bests)]
    if reachable:
        return reachable[0], "the lowest scenario target both reach"
    return round(
        max(bests) + 5e-5, 4
    ), "no scenario target both reach: the loss every seed of both reached"


# ---- the explanation ---------------------------------------------------------------------------


@dataclass
class Ladder:
    order: tuple[str, ...]
    rungs: list[Rung]
    results: list[PointResult]  # A, then one per rung (the last is B)
    attribution: dict[str, Attribution]


@dataclass
class Explanation:
    a: PointResult
    b: PointResult
    differences: list[str]  # one line per differing factor
    ladder: Ladder
    alternatives: list[Ladder]  # other orders whose val-loss split is complete
    target: float | None
    target_how: str
    missing: list[MissingRun]
    margin: float
    sentences: list[str] = field(default_factory=list)
    ends: tuple | None = (
        None  # explain_endpoints' resolved A and B: (point, own runs, dataset sha) each
    )


def _seeds(r: PointResult) -> list[int]:
    v = r.values.get("val_loss")
    return (
        sorted(s for s, _ in v.per_seed if s is not None)
        if v is not None and not v.projected
        else []
    )


def build_ladder(
    a: Point,
    b: Point,
    order: tuple[str, ...],
    pool: list[RunStats],
    target: float | None,
    margin: float,
    known: dict | None = None,
    recipes: dict | None = None,
    project_ok=lambda p: True,
) -> Ladder:
    known = {} if known is None else known
    rungs = [replace(r, point=name_point(r.point, recipes or {})) for r in ladder(a, b, order)]
    points = [a] + [r.point for r in rungs]
    for p in points:
        if p not in known:
            known[p] = point_result(p, pool, target, margin, project_ok(p))
    results = [known[p] for p in points]
    return Ladder(order, rungs, results, attribute(results))


def explain(
    a: Point,
    b: Point,
    pool: list[RunStats],
    targets: tuple[float, ...] = (),
    order: tuple[str, ...] | None = None,
    margin: float = equivalence.DEFAULT_MARGIN,
    recipes: dict[str, tuple] | None = None,
    planning: Planning | None = None,
) -> Explanation:
    """The gap between a and b, split along a ladder, from the runs in `pool`. recipes: the
    scenarios a point is named after and its command built from (scenario name -> recipe);
    planning: how commands for the missing points are made (None: none are)."""
    order = order or ORDERS[DEFAULT_ORDER]
    recipes = recipes or {}
    a, b = name_point(a, recipes), name_point(b, recipes)

    def project_ok(p: Point) -> bool:
        # a point this machine can run within the budget is run, not projected
        return (
            planning is None
            or planning.here is None
            or not runs_here(p, pool, planning.here, planning.here_peak, planning.budget_s)
        )

    first_a, first_b = (
        point_result(a, pool, None, margin, project_ok(a)),
        point_result(b, pool, None, margin, project_ok(b)),
    )
    target, how = common_target(first_a, first_b, targets)
    known: dict = {}
    main = build_ladder(a, b, order, pool, target, margin, known, recipes, project_ok)
    alternatives, seen = [], {tuple(r.factors for r in main.rungs)}
    for other in (
        ORDERS["device-last"],
        ORDERS["device-first"],
        tuple(reversed([f for r in main.rungs for f in r.factors])),
    ):
        alt = build_ladder(a, b, other, pool, target, margin, known, recipes, project_ok)
        shape = tuple(r.factors for r in alt.rungs)
        if shape not in seen and alt.attribution["val_loss"].complete:
            alternatives.append(alt)
        seen.add(shape)
    if planning is not None:
        seeds = (
            list(planning.seeds)
            or sorted(set(_seeds(first_a)) & set(_seeds(first_b)))
            or _seeds(first_a)
            or _seeds(first_b)
        )
        missing = missing_runs(
            main.results,
            seeds,
            planning.out,
            recipes,
            pool,
            planning.here,
            planning.here_peak,
            planning.budget_s,
        )
    else:
        missing = []
    e = Explanation(
        main.results[0],
        main.results[-1],
        [r.description for r in ladder(a, b, ORDERS[DEFAULT_ORDER])],
        main,
        alternatives,
        target,
        how,
        missing,
        margin,
    )
    e.sentences = sentences(e)
    return e


def _band(p: Part | None, fmt_value) -> str:
    if p is None or p.low is None:
        return ""
    return f" [{fmt_value(p.low)}, {fmt_value(p.high)}]"


def _loss(x: float) -> str:
    return f"{x:+.4f}"


def _proj(projected: bool) -> str:
    return " (projected)" if projected else ""


def sentences(e: Explanation) -> list[str]:
    """The paragraph in words."""
    lad, out = e.ladder, []
    va, vb = e.a.values.get("val_loss"), e.b.values.get("val_loss")
    att = lad.attribution["val_loss"]
    if va is not None and vb is not None:
        t, a_mean, b_mean, on = att.total, va.mean, vb.mean, ""
        if t.split is not None and t.split.shared and t.split.differ:
            a_mean, b_mean = va.mean - t.split.a_extra, vb.mean - t.split.b_extra
            on = f" {t.split.on()}"
        out.append(
            f"B ({e.b.point.label()}) ended at val {b_mean:.4f}{_proj(vb.projected)}, A ({e.a.point.label()}) at "
            f"{a_mean:.4f}{on}: a gap of {_loss(t.value)}{_band(t, _loss)}{_proj(t.projected)}."
            + (f" {t.seeds[0].upper()}{t.seeds[1:]}." if t.seeds else "")
        )
        if t.split is not None and not t.split.shared and not t.projected:
            out.append(
                "A and B share no seed: the gap is a difference of seed means, which cannot be told "
                "from the choice of seeds unless it exceeds their seed-to-seed spread."
            )
    elif vb is None:
        out.append(
            f"B ({e.b.point.label()}) has no result yet: the split below waits for the runs named."
        )
    if not lad.rungs:
        out.append("A and B do not differ in any factor nanobench records: the gap is seed noise.")
        return out
    if att.complete:
        # as the table prints them (the last: the rungs' own seed sets, usually 0)
        shown = rounded_parts([p.value for p in att.parts] + [att.seed_sets], att.total.value, 4)
        parts = sorted(zip(lad.rungs, att.parts, shown), key=lambda rp: -abs(rp[1].value))
        rung, big, big_shown = parts[0]
        out.append(
            f"Changing one factor at a time ({', '.join(FACTOR_LABELS[f] for r in lad.rungs for f in r.factors)}), "
            f"the largest part is {FACTOR_LABELS[rung.factors[0]]}: {_loss(big_shown)}{_band(big, _loss)}"
            f"{_proj(big.projected)} of {_loss(att.total.value)}"
            + "".join(
                f"; {FACTOR_LABELS[r.factors[0]]} {_loss(x)}{_proj(p.projected)}"
                for r, p, x in parts[1:]
            )
            + (
                f"; which seeds ran at the rungs {_loss(shown[-1])}"
                if abs(att.seed_sets) >= 5e-5
                else ""
            )
            + (". The parts sum to the gap." if len(parts) > 1 else ".")
        )
    else:
        missing = [i + 1 for i, p in enumerate(att.parts) if p is None]
        out.append(
            f"The val-loss split is incomplete: rung{'s' * (len(missing) > 1)} {', '.join(map(str, missing))} "
            f"lack{'s' * (len(missing) == 1)} results on one side."
        )
    step = lad.attribution["step_s"]
    if step.complete:
        shown = rounded_parts(
            [p.value * 1e3 for p in step.parts] + [step.seed_sets * 1e3], step.total.value * 1e3, 2
        )
        out.append(
            f"Time per iteration goes from {e.a.values['step_s'].mean * 1e3:.2f} to "
            f"{e.b.values['step_s'].mean * 1e3:.2f} ms"
            f"{_proj(step.projected)}: "
            + "; ".join(
                f"{FACTOR_LABELS[r.factors[0]]} {x:+.2f} ms{_proj(p.projected)}"
                + (
                    " (the same runs cut shorter: drift within them, not an effect)"
                    if p.same_runs
                    else ""
                )
                for r, p, x in zip(lad.rungs, step.parts, shown)
            )
            + "."
        )
    if e.target is not None and lad.attribution["time_to_target_s"].complete:
        t = lad.attribution["time_to_target_s"]
        out.append(
            f"Train time to val {e.target:g} ({e.target_how}) changes by {fmt_time(abs(t.total.value))} "
            f"({'less' if t.total.value < 0 else 'more'}){_proj(t.projected)}."
        )
    if len(lad.rungs) > 1:
        if e.alternatives:
            alt = e.alternatives[0]
            alt_att = alt.attribution["val_loss"]
            shown = rounded_parts(
                [p.value for p in alt_att.parts] + [alt_att.seed_sets], alt_att.total.value, 4
            )
            out.append(
                "The split depends on the order of the rungs: in another order ("
                + " -> ".join(FACTOR_LABELS[r.factors[0]] for r in alt.rungs)
                + ") the parts are "
                + "; ".join(
                    f"{FACTOR_LABELS[r.factors[0]]} {_loss(x)}{_proj(p.projected)}"
                    for r, p, x in zip(alt.rungs, alt_att.parts, shown)
                )
                + "."
            )
        else:
            out.append(
                "The split depends on the order of the rungs: a factor's part is measured with the factors before it "
                "already changed; no other order has its results yet "
                f"(`--order {'device-first' if lad.order == ORDERS['device-last'] else 'device-last'}` plans one)."
            )
    projected = [i + 1 for i, r in enumerate(lad.results[1:]) if r.kind == "projected"]
    if projected:
        out.append(
            f"Rung{'s' * (len(projected) > 1)} {', '.join(map(str, projected))} "
            f"{'are' if len(projected) > 1 else 'is'} "
            f"projected from a short run here, never averaged with measured runs."
        )
    if e.missing:
        here_n = sum(p.here for p in e.missing)
        gpu_n = sum(p.where == "needs a GPU" for p in e.missing)
        out.append(
            f"{len(e.missing)} run{'s' * (len(e.missing) > 1)} would complete the ladder: {here_n} can run here"
            + (f", {gpu_n} need{'s' * (gpu_n == 1)} a GPU" if gpu_n else "")
            + " (commands below)."
        )
    return out


def _value_json(v: Value | None):
    if v is None:
        return None
    return {
        "mean": v.mean,
        "low": v.low,
        "high": v.high,
        "projected": v.projected,
        "per_seed": {str(s): x for s, x in v.per_seed},
        **({"note": v.note} if v.note else {}),
    }


def _part_json(p: Part | None):
    return (
        None
        if p is None
        else {
            "value": p.value,
            "low": p.low,
            "high": p.high,
            "band": p.method,
            "projected": p.projected,
            # where the two points' seed sets differ: value is on the shared seeds, and
            # composition the rest of the difference of means
            "composition": p.composition,
            "seeds": p.seeds,
            "same_runs": p.same_runs,
        }
    )


def _point_json(r: PointResult) -> dict:
    p = r.point
    return {
        "label": p.label(),
        "scenario": p.scenario,
        "iters": p.iters,
        "device_type": p.device_type,
        "device_name": p.device_name,
        "dtype": p.dtype,
        "compile": p.compile,
        "threads": p.threads,
        "torch": p.torch,
        "recipe": {k: json.loads(v) for k, v in p.recipe},
        "kind": r.kind,
        "runs": list(r.run_ids),
        "probes": list(r.probe_ids),
        "references": list(r.reference_ids),
        "notes": list(r.notes),
        "values": {q: _value_json(r.values.get(q)) for q, _, _ in QUANTITIES},
        "projected_wall_s": _value_json(r.projected_wall_s),
        "stopped_short": [
            {"run": i, "status": st, "last_iter": last, "last_eval_iter": at, "val_loss": v}
            for i, st, last, at, v in r.stopped
        ],
    }


def _ladder_json(lad: Ladder) -> dict:
    return {
        "order": list(lad.order),
        "rungs": [
            {"factors": list(r.factors), "change": r.description, "point": _point_json(res)}
            for r, res in zip(lad.rungs, lad.results[1:])
        ],
        "attribution": {
            q: {
                "total": _part_json(a.total),
                "parts": [_part_json(p) for p in a.parts],
                "complete": a.complete,
                "projected": a.projected,
                "seed_sets": a.seed_sets,
            }
            for q, a in lad.attribution.items()
        },
    }


def to_json(e: Explanation) -> dict:
    return {
        "a": _point_json(e.a),
        "b": _point_json(e.b),
        "differences": e.differences,
        "target": e.target,
        "target_how": e.target_how,
        "margin": e.margin,
        "ladder": _ladder_json(e.ladder),
        "other_orders": [_ladder_json(x) for x in e.alternatives],
        "order_note": (
            "each rung's part is measured with the rungs before it already changed: "
            "another order splits differently"
        ),
        "missing": [
            {
                "point": p.point.label(),
                "command": p.command(),
                "where": p.where,
                "estimate_s": p.estimate_s,
                "estimate": p.estimate_how,
                "probe": p.probe,
                "also_makes": [c.label() for c in p.covers],
            }
            for p in e.missing
        ],
        "sentences": e.sentences,
    }


# ---- from the command line's words to points ----------------------------------------------------


def _scenario_dict(name: str) -> dict | None:
    """A shipped (or .toml) scenario as a recorded-style dict; None when it cannot be loaded."""
    from nanobench.run.scenario import load

    try:
        return json.loads(json.dumps(load(name).to_dict()))
    except InputError:
        return None


def resolve(
    given: str, role: str, pool: list[RunStats]
) -> tuple[Point, list[RunStats], str | None]:
    """A path (file or folder of one configuration's seeds) or a selector SCENARIO:DEVICE:DTYPE
    -> (point, its own runs, dataset sha256 or None)."""
    import os

    from nanobench.analyze.runs import load_runs, run_stats

    if os.path.exists(given):
        runs = [run_stats(r) for r in load_runs([given])[0]]
        return endpoint(runs, f"{role} {given}"), runs, runs[0].dataset_sha256
    name = given.split(":")[0]
    scen = _scenario_dict(name)
    if scen is None:
        raise InputError(
            f"{role} {given}: no such file or folder, and {name!r} is no scenario "
            f"(give result files, a folder, or SCENARIO:DEVICE:DTYPE)"
        )
    p = selector_point(given, scen)
    mine = [r for r in pool if covers(r, p)]
    shas = {r.dataset_sha256 for r in mine}
    return p, mine, (shas.pop() if len(shas) == 1 else None)


def recipes_and_targets(a: Point, b: Point) -> tuple[dict[str, tuple], tuple[float, ...]]:
    """The recipes of a's and b's scenarios (the shipped one where it loads, else the one their
    runs recorded), which name points and build commands; and both scenarios' val-loss targets."""
    recipes = {}
    for p in (a, b):
        scen = _scenario_dict(p.scenario)
        recipes[p.scenario] = recipe_of(scen) if scen is not None else recipe_of(p.base)
    targets = tuple(
        t for p in (a, b) for t in ((p.base.get("targets") or {}).get("val_loss") or ())
    )
    return recipes, targets


def explain_endpoints(
    a_given: str,
    b_given: str,
    pool_paths: list[str],
    order: str | None = None,
    margin: float = equivalence.DEFAULT_MARGIN,
    planning: Planning | None = None,
    ends: tuple | None = None,
) -> Explanation:
    """`nanobench explain A B`: resolve both ends, gather every run of the pool, explain.
    planning: how the missing runs are planned (default: named, not judged for this machine).
    `ends`: the ends an earlier call resolved (Explanation.ends), so that `--run`, whose runs
    land in a folder A may be, explains the same A and B afterwards."""
    from nanobench.analyze.runs import load_runs, run_stats

    pool = []
    for given in pool_paths:  # where rungs may be: an empty or absent folder is simply no runs yet
        try:
            pool += [run_stats(r) for r in load_runs([given], skip_bad=True)[0]]
        except InputError:
            continue
    if ends is None:
        ends = (resolve(a_given, "A", pool), resolve(b_given, "B", pool))
    (a, a_runs, a_sha), (b, b_runs, b_sha) = ends
    dataset_check(a, b, a_sha, b_sha)
    by_path = {r.path: r for r in pool + a_runs + b_runs}
    pool = list(by_path.values())
    recipes, targets = recipes_and_targets(a, b)
    e = explain(a, b, pool, targets, parse_order(order), margin, recipes, planning or Planning())
    e.ends = ends
    return e


def _pair_points(a_runs: list[RunStats], b_runs: list[RunStats]) -> tuple[Point, Point]:
    """The two points the report explains for two configurations. A configuration of compare
    may hold runs of several lengths or thread counts; of all pairs of points the two made,
    the one differing in the fewest factors (so the gap is the configurations' own
    difference, not a length the user did not mean), then the one with the most runs, then
    the longest."""
    a_counts, b_counts = Counter(map(point_of, a_runs)), Counter(map(point_of, b_runs))
    return min(
        ((a, b) for a in a_counts for b in b_counts),
        key=lambda ab: (
            len(differing(*ab)),
            -(a_counts[ab[0]] + b_counts[ab[1]]),
            -ab[0].iters,
            -ab[1].iters,
            ab[0].label(),
            ab[1].label(),
        ),
    )


def explain_comparison(
    comparison, endpoints: list[tuple[str, str]] = (), margin: float = equivalence.DEFAULT_MARGIN
):
    """The report's explanations: each pair of a group (baseline -> other), each other group of
    the same dataset from the first group's baseline, and any (A, B) named on the command line.
    Returns [((group key, other label) or None, Explanation)]; commands are named, nothing is
    estimated (the report does not ask this machine anything)."""
    pool = comparison.runs
    out = []

    def one(a: Point, b: Point) -> Explanation | None:
        recipes, targets = recipes_and_targets(a, b)
        return explain(a, b, pool, targets, None, margin, recipes, Planning())

    for given_a, given_b in endpoints:
        a, a_runs, a_sha = resolve(given_a, "A", pool)
        b, b_runs, b_sha = resolve(given_b, "B", pool)
        dataset_check(a, b, a_sha, b_sha)
        out.append((None, one(a, b)))
    for g in comparison.groups:
        for p in g.pairs:
            out.append(((g.key, p.other.label), one(*_pair_points(p.base.runs, p.other.runs))))
    firsts = {}
    for g in comparison.groups:
        first = firsts.setdefault(g.dataset_sha256, g)
        if first is not g:
            out.append((None, one(*_pair_points(first.baseline.runs, g.baseline.runs))))
    return out
