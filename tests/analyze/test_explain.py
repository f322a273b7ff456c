"""`nanobench explain` (issue 14): the ladder between two configurations, each rung's part of the
gap, projections kept apart from measurements, and the runs still missing.

Result files are written through the real writer with the `smoke` scenario resolved by the real
loader (overrides and all); their rows are small and hand-made, so every number below is known."""

import json
import math
import re
import shutil

import pytest
from scipy import stats

from nanobench.analyze import attribution, compare, explain, ladder, missing
from nanobench.analyze.ladder import Point
from nanobench.analyze.runs import load_runs, run_stats
from nanobench.errors import InputError
from nanobench.run import scenario as scen
from nanobench.store.results import PARTIAL_DIR, RunWriter

SHA = "d" * 64


def write_run(
    folder,
    seed,
    vals,
    overrides=(),
    device="cpu",
    name="EPYC",
    dtype="fp32",
    threads=2,
    step_s=0.1,
    sha=SHA,
    interval=10,
    torch="2.13.0+cpu",
    eval_iters=None,
    status="completed",
    warmup_steps=0,
):
    """A run of `smoke` with one evaluation every `interval` iterations: vals[k] at iteration
    k * interval, so len(vals) - 1 intervals long; every step takes step_s."""
    overrides = (
        list(overrides)
        + [f"eval.interval={interval}"]
        + ([f"eval.iters={eval_iters}"] if eval_iters else [])
    )
    s = scen.load("smoke", overrides)
    iters = (len(vals) - 1) * interval
    folder.mkdir(parents=True, exist_ok=True)
    run_id = f"smoke-{folder.name}-{device}-{dtype}-s{seed}-{len(list(folder.glob('*.parquet')))}"
    meta = {
        "scenario": s.to_dict(),
        "dataset": {"name": "synthetic", "sha256": sha, "vocab_size": 27},
        "options": {
            "device": device,
            "dtype": dtype,
            "compile": False,
            "seed": seed,
            "threads": threads,
            "max_iters": iters,
            "overrides": overrides,
        },
        "device": {"spec": device, "type": device, "name": name},
        "environment": {"torch": torch, "torch_num_threads": threads},
    }
    rows, t = [], 0.0
    for i in range(iters):
        t += step_s
        rows.append(
            {
                "iter": i,
                "loss": 3.0,
                "step_time_s": step_s,
                "train_time_s": t,
                "wall_time_s": t + 0.01 * i,
                "tokens": 64 * (i + 1),
                "warmup": i < warmup_steps,
                "eval_val_loss": vals[i // interval] if i % interval == 0 else None,
            }
        )
    rows.append(
        {
            "iter": iters,
            "train_time_s": t,
            "wall_time_s": t + 0.01 * iters,
            "tokens": 64 * iters,
            "eval_val_loss": vals[-1],
            "warmup": False,
        }
    )
    w = RunWriter(folder, run_id, meta)
    w.append(rows)
    w.finish(status, None)
    shutil.rmtree(folder / PARTIAL_DIR, ignore_errors=True)


def load(*folders):
    runs, _ = load_runs([str(f) for f in folders])
    return [run_stats(r) for r in runs]


def pt(**kw) -> Point:
    base = dict(
        recipe=(("model.n_embd", "32"), ("model.n_head", "2"), ("train.learning_rate", "0.003")),
        iters=30,
        device_type="cpu",
        device_name="EPYC",
        dtype="fp32",
        compile=False,
        threads=2,
        torch="2.13.0+cpu",
    )
    return Point(**{**base, **kw})


def with_keys(p: Point, **keys) -> tuple:
    recipe = dict(p.recipe)
    recipe.update({k.replace("__", "."): json.dumps(v) for k, v in keys.items()})
    return tuple(sorted(recipe.items()))


# ---- the ladder ---------------------------------------------------------------------------------


def check_rungs(a: Point, b: Point, rungs, factors):
    assert [r.factors for r in rungs] == [(f,) for f in factors]
    assert rungs[-1].point == b
    prev = a
    for rung in rungs:  # each rung differs from the one before in its own factor only
        assert ladder.differing(prev, rung.point) == list(rung.factors)
        prev = rung.point


def test_one_differing_factor_is_one_rung():
    a = pt()
    b = pt(dtype="bf16")
    rungs = ladder.ladder(a, b)
    check_rungs(a, b, rungs, ["precision"])
    assert rungs[0].description == "precision: fp32 -> bf16"


def test_two_differing_factors_in_the_default_and_the_other_order():
    a = pt()
    b = pt(iters=60, recipe=with_keys(pt(), train__lr_decay_iters=60))
    check_rungs(
        a, b, ladder.ladder(a, b), ["iterations"]
    )  # the schedule goes with the iterations: one rung
    b = pt(threads=1, recipe=with_keys(pt(), model__n_embd=64))
    check_rungs(a, b, ladder.ladder(a, b), ["threads", "model"])
    check_rungs(a, b, ladder.ladder(a, b, ladder.ORDERS["device-last"]), ["model", "threads"])


def test_four_differing_factors_and_the_device_carries_its_threads_and_torch():
    a = pt()
    b = pt(
        device_type="cuda",
        device_name="NVIDIA H100 80GB HBM3",
        dtype="bf16",
        threads=16,
        torch="2.13.0+cu128",
        iters=60,
        recipe=with_keys(pt(), model__n_embd=64, model__n_head=4, train__learning_rate=0.001),
    )
    assert ladder.differing(a, b) == ["device", "precision", "iterations", "model", "recipe"]
    rungs = ladder.ladder(a, b)
    check_rungs(a, b, rungs, ["device", "precision", "iterations", "model", "recipe"])
    assert (
        rungs[0].point.threads == 16 and rungs[0].point.torch == "2.13.0+cu128"
    )  # the machine, as one change
    assert rungs[3].description == "model shape: n_embd 32 -> 64, n_head 2 -> 4"
    rungs = ladder.ladder(a, b, ladder.parse_order("recipe,model,iterations,precision"))
    check_rungs(
        a, b, rungs, ["recipe", "model", "iterations", "precision", "device"]
    )  # unnamed factors follow
    # four factors without a device: threads and torch are rungs of their own
    b = pt(threads=1, torch="2.12.0+cpu", compile=True, iters=40)
    check_rungs(a, b, ladder.ladder(a, b), ["compile", "threads", "torch", "iterations"])


def test_a_selector_matches_any_machine_of_its_kind():
    a = pt()
    b = pt(device_type="cuda", device_name=None, threads=None, torch=None)
    assert ladder.differing(a, b) == ["device"]
    assert ladder.differing(b, pt(device_type="cuda", device_name="NVIDIA A100", threads=8)) == []


def test_an_unknown_factor_in_an_order_is_bad_input():
    with pytest.raises(InputError, match="--order device,speed: unknown factor speed"):
        ladder.parse_order("device,speed")


# ---- attribution ---------------------------------------------------------------------------------


@pytest.fixture
def two_rungs(tmp_path):
    """A (n_embd 32, 20 iters), the middle (n_embd 32, 30 iters: covered by runs of 30) and
    B (n_embd 64, 30 iters); three seeds each, with hand-picked final losses and step times."""
    for seed, (fa, fb, fm) in zip(
        (1, 2, 3), ((2.60, 2.20, 2.50), (2.70, 2.30, 2.52), (2.62, 2.10, 2.48))
    ):
        write_run(tmp_path / "a", seed, [4.0, 3.0, fa], step_s=0.010)
        write_run(tmp_path / "mid", seed, [4.0, 3.0, 2.9, fm], step_s=0.012 + seed * 0.001)
        write_run(
            tmp_path / "b",
            seed,
            [4.0, 2.9, 2.5, fb],
            overrides=["model.n_embd=64", "model.n_head=4"],
            step_s=0.020 + seed * 0.002,
        )
    return tmp_path


def test_the_parts_sum_exactly_to_the_gap(two_rungs):
    pool = load(two_rungs)
    a, b = ladder.point_of(load(two_rungs / "a")[0]), ladder.point_of(load(two_rungs / "b")[0])
    e = explain.explain(a, b, pool)
    assert [r.factors for r in e.ladder.rungs] == [("iterations",), ("model",)]
    assert [r.kind for r in e.ladder.results] == ["measured"] * 3
    val = e.ladder.attribution["val_loss"]
    mean = lambda xs: sum(xs) / 3  # noqa: E731
    assert val.total.value == pytest.approx(mean([2.20, 2.30, 2.10]) - mean([2.60, 2.70, 2.62]))
    assert [p.value for p in val.parts] == pytest.approx(
        [
            mean([2.50, 2.52, 2.48]) - mean([2.60, 2.70, 2.62]),
            mean([2.20, 2.30, 2.10]) - mean([2.50, 2.52, 2.48]),
        ]
    )
    for q in ("val_loss", "step_s", "train_time_s"):
        att = e.ladder.attribution[q]
        assert att.complete and math.fsum(p.value for p in att.parts) == pytest.approx(
            att.total.value, abs=1e-12
        )
    # the band of a part: seeds 1-3 ran on both sides, so a paired 95% t interval of the
    # per-seed differences, by hand
    first = val.parts[0]
    diffs = [m - a for a, m in zip([2.60, 2.70, 2.62], [2.50, 2.52, 2.48])]
    half = stats.t.ppf(0.975, 2) * math.sqrt(stats.tvar(diffs) / 3)
    assert (first.low, first.high) == pytest.approx(
        (first.value - half, first.value + half), rel=1e-6
    )
    assert first.method == "paired 95% t interval over 3 shared seeds"
    # time per iteration: A's steps 10 ms, the middle's 13/14/15 ms, B's 22/24/26 ms
    step = e.ladder.attribution["step_s"]
    assert [p.value for p in step.parts] == pytest.approx([0.004, 0.010])


def test_the_printed_explanation_has_the_ladder_and_its_parts(two_rungs):
    """The terminal rendering, in process: both tables with their rows, the val loss part of
    each rung and the total as the means of the fixture's final losses give them by hand."""
    from rich.console import Console

    from nanobench.present.explain import render_explanation

    pool = load(two_rungs)
    a, b = ladder.point_of(load(two_rungs / "a")[0]), ladder.point_of(load(two_rungs / "b")[0])
    console = Console(record=True, width=250, color_system=None)
    render_explanation(explain.explain(a, b, pool), console)
    text = console.export_text()
    mean = lambda xs: sum(xs) / 3  # noqa: E731
    first = mean([2.50, 2.52, 2.48]) - mean([2.60, 2.70, 2.62])  # -0.1400
    second = mean([2.20, 2.30, 2.10]) - mean([2.50, 2.52, 2.48])  # -0.3000
    assert "The ladder: A -> iterations and schedule -> model shape -> B" in text
    parts = next(line for line in text.splitlines() if "sum of the parts" in line)
    assert f"{first + second:+.4f}" in parts
    rungs = [line for line in text.splitlines() if re.match(r"\s+[12]\s+\S", line)]
    assert any(f"{first:+.4f}" in line and "iterations" in line for line in rungs)
    assert any(f"{second:+.4f}" in line and "model shape" in line for line in rungs)


def test_printed_parts_add_up_to_the_printed_total():
    parts = [0.33335, 0.33335, 0.33330]  # naive rounding to 4 places: 0.3334 * 2 + 0.3333 = 1.0001
    assert [round(p, 4) for p in parts] != [0.3333, 0.3334, 0.3333] and round(
        sum(round(p, 4) for p in parts), 4
    ) != 1.0
    shown = attribution.rounded_parts(parts, 1.0, 4)
    assert round(sum(shown), 4) == 1.0 and all(abs(s - p) < 1e-4 for s, p in zip(shown, parts))
    neg = [-0.12345, -0.12345, 0.0469]
    shown = attribution.rounded_parts(neg, sum(neg), 4)
    assert round(sum(shown), 4) == round(sum(neg), 4) and all(
        abs(s - p) < 1e-4 for s, p in zip(shown, neg)
    )


def test_another_order_is_shown_when_its_runs_exist(two_rungs):
    write_run(
        two_rungs / "b20", 1, [4.0, 2.9, 2.4], overrides=["model.n_embd=64", "model.n_head=4"]
    )
    pool = load(two_rungs)
    a, b = ladder.point_of(load(two_rungs / "a")[0]), ladder.point_of(load(two_rungs / "b")[0])
    e = explain.explain(a, b, pool)
    # model first, then iterations: the middle is B's recipe at 20 iterations, which B's own runs hold
    [alt] = e.alternatives
    assert [r.factors for r in alt.rungs] == [("model",), ("iterations",)]
    assert alt.results[1].kind == "measured" and len(alt.results[1].run_ids) == 3
    # the same A and B, so the same total: B's seeds' mean minus A's, by hand
    assert alt.attribution["val_loss"].total.value == pytest.approx(
        (2.20 + 2.30 + 2.10) / 3 - (2.60 + 2.70 + 2.62) / 3
    )
    assert any("depends on the order" in s for s in e.sentences)


# ---- projections ----------------------------------------------------------------------------------


def test_projected_values_are_never_mixed_with_measured_ones(tmp_path):
    # A: the small recipe on the cpu, measured. B: the big recipe on the cpu, 30 iterations: only a
    # 10-iteration probe here (step 0.5 s), and B's recipe measured to 30 iterations on a GPU.
    big = ["model.n_embd=64", "model.n_head=4"]
    for seed in (1, 2):
        write_run(tmp_path / "a", seed, [4.0, 3.0, 2.6, 2.5 + seed / 100], step_s=0.01)
        write_run(
            tmp_path / "gpu",
            seed,
            [4.0, 2.8, 2.3, 2.0 + seed / 100],
            overrides=big,
            device="cuda",
            name="NVIDIA H100 80GB HBM3",
            threads=16,
            torch="2.13.0+cu128",
            step_s=0.002,
        )
    write_run(tmp_path / "probe", 1, [4.0, 2.9], overrides=big, step_s=0.5, eval_iters=2)
    pool = load(tmp_path)
    a = ladder.point_of(load(tmp_path / "a")[0])
    b = explain.selector_point(
        "smoke:cpu:fp32",
        json.loads(json.dumps(scen.load("smoke", big + ["eval.interval=10"]).to_dict())),
    )
    b = Point(
        b.recipe, 30, "cpu", "EPYC", "fp32", False, 2, "2.13.0+cpu", scenario="smoke", base=b.base
    )
    e = explain.explain(a, b, pool)
    res = e.b
    assert (
        res.kind == "projected"
        and res.run_ids == ()
        and len(res.probe_ids) == 1
        and len(res.reference_ids) == 2
    )
    assert all(v is None or v.projected for v in res.values.values())
    assert res.values["step_s"].mean == pytest.approx(0.5)
    assert res.values["train_time_s"].mean == pytest.approx(0.5 * 30)
    assert res.values["val_loss"].mean == pytest.approx(
        2.015
    )  # the GPU curve's, not averaged with anything
    assert (res.values["val_loss"].low, res.values["val_loss"].high) == pytest.approx(
        (2.01 - 0.02, 2.02 + 0.02)
    )
    val = e.ladder.attribution["val_loss"]
    assert val.projected and val.parts[-1].projected and val.total.projected
    assert val.total.value == pytest.approx(2.015 - 2.515)
    # A stays measured: its two seeds only, no probe, no projection in its mean
    assert e.a.kind == "measured" and e.a.values["val_loss"].mean == pytest.approx(2.515)
    assert not e.a.values["val_loss"].projected
    # a measured run of B's point, once it exists, replaces the projection entirely
    write_run(tmp_path / "full", 1, [4.0, 2.9, 2.5, 2.2], overrides=big, step_s=0.4)
    e2 = explain.explain(a, b, load(tmp_path))
    assert e2.b.kind == "measured" and e2.b.values["val_loss"].mean == pytest.approx(2.2)
    assert e2.b.values["step_s"].mean == pytest.approx(0.4) and not e2.b.values["step_s"].projected
    # and the terminal table says "projected" in every projected cell
    from nanobench.present.explain import attribution_table, ladder_table

    [b_row] = [r for r in ladder_table(e).rows if r[0].endswith("= B")]
    assert all(c.endswith("projected") for c in b_row[4:] if c != "-")
    assert all(
        c.endswith("projected") for c in attribution_table(e.ladder).rows[-1][2:] if c != "-"
    )


# ---- dataset, plans ---------------------------------------------------------------------------------


def test_a_dataset_mismatch_is_refused_in_one_line(tmp_path):
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5])
    write_run(tmp_path / "b", 1, [4.0, 3.0, 2.4], sha="e" * 64)
    with pytest.raises(InputError) as exc:
        explain.explain_endpoints(str(tmp_path / "a"), str(tmp_path / "b"), [])
    assert str(exc.value) == (
        "A and B were trained on different data (synthetic (dddddddd) vs synthetic (eeeeeeee)): "
        "the gap would be the data; explain compares runs of one dataset"
    )


def test_a_folder_of_two_configurations_is_bad_input(tmp_path):
    write_run(tmp_path, 1, [4.0, 3.0, 2.5])
    write_run(tmp_path, 1, [4.0, 3.0, 2.4], dtype="bf16")
    with pytest.raises(InputError, match="holds 2 configurations"):
        explain.explain_endpoints(str(tmp_path), "smoke:cpu:fp32", [])


def test_missing_rungs_get_their_command_place_and_estimate(two_rungs):
    shutil.rmtree(two_rungs / "mid")
    pool = load(two_rungs)
    a = ladder.point_of(load(two_rungs / "a")[0])
    b = explain.selector_point(
        "smoke:cuda:bf16",
        json.loads(json.dumps(scen.load("smoke", ["eval.interval=10"]).to_dict())),
    )
    here = missing.Here({"cpu": "EPYC"}, "2.13.0+cpu")
    recipes = {"smoke": explain.recipe_of(json.loads(json.dumps(scen.load("smoke").to_dict())))}
    e = explain.explain(
        a,
        b,
        pool,
        (),
        None,
        0.02,
        recipes,
        explain.Planning(
            out="out",
            here=here,
            here_peak=lambda kind, dtype: (1e11, "test peak"),
            budget_s=600,
        ),
    )
    assert [r.factors for r in e.ladder.rungs] == [("device",), ("precision",), ("iterations",)]
    by_point = {p.point: p for p in e.missing}
    device_rung = by_point[e.ladder.rungs[0].point]
    assert device_rung.where == "needs a GPU"
    # smoke's own recipe (eval.interval is 10 already): no --set; the length and A's seeds given
    assert (
        device_rung.command()
        == "nanobench run smoke --device cuda --dtype fp32 --max-iters 20 --seeds 1,2,3 --out out"
    )
    assert device_rung.estimate_s is not None and "NVIDIA A100" in device_rung.estimate_how
    assert e.b.kind == "missing" and by_point[b].where == "needs a GPU"
    assert (
        missing.run_order(e.missing, e.ladder.results, 600) == []
    )  # nothing here: every missing rung is on a GPU


def test_run_order_prefers_what_completes_a_part_then_the_cheapest():
    a, m1, m2, b = pt(iters=10), pt(iters=20), pt(iters=30), pt(iters=40)
    known = lambda p, kind: attribution.PointResult(p, kind, (), {})  # noqa: E731
    results = [
        known(a, "measured"),
        known(m1, "missing"),
        known(m2, "missing"),
        known(b, "measured"),
    ]
    plans = [
        missing.MissingRun(m1, ("x",), "here", 50.0, ""),
        missing.MissingRun(m2, ("y",), "here", 20.0, ""),
        missing.MissingRun(b, ("z",), "needs a GPU", 1.0, ""),
    ]
    # each completes one part alone; m2 is cheaper; both fit in 100 s, only m2 in 40 s
    assert [p.point for p in missing.run_order(plans, results, 100)] == [m2, m1]
    assert [p.point for p in missing.run_order(plans, results, 40)] == [m2]
    # a run of m2 that also makes m1 completes three parts at once
    plans[1] = missing.MissingRun(m2, ("y",), "here", 60.0, "", covers=(m1,))
    assert [p.point for p in missing.run_order(plans, results, 100)][0] == m2


def test_a_point_too_slow_here_gets_a_probe(two_rungs):
    pool = load(two_rungs)
    a = ladder.point_of(load(two_rungs / "a")[0])
    b = pt(
        recipe=with_keys(a, model__n_embd=128, model__n_head=4),
        iters=5000,
        device_name="EPYC",
        threads=2,
        scenario="smoke",
        base=a.base,
    )
    recipes = {"smoke": explain.recipe_of(json.loads(json.dumps(scen.load("smoke").to_dict())))}
    e = explain.explain(
        a,
        b,
        pool,
        (),
        None,
        0.02,
        recipes,
        explain.Planning(
            out="out",
            here=missing.Here({"cpu": "EPYC"}, "2.13.0+cpu"),
            here_peak=lambda kind, dtype: (1e6, "a slow test peak"),
            budget_s=60,
        ),
    )
    # A's recipe at 5000 iterations is projected from the shorter runs of it (A's and the middle's);
    # B's recipe has no run at all: a probe is planned rather than a run of hours
    assert [r.kind for r in e.ladder.results] == ["measured", "projected", "missing"]
    assert (
        set(e.a.run_ids) < set(e.ladder.results[1].probe_ids)
        and len(e.ladder.results[1].probe_ids) == 6
    )  # A and the middle
    [p] = e.missing
    assert (
        p.point == b
        and p.probe
        and "--max-iters 20" in p.command()
        and "eval.iters=2" in p.command()
        and "probe" in p.estimate_how
    )
    # at this peak even the 20-iteration probe outlasts the 60 s budget: said so, never "runs here"
    assert (
        p.estimate_s > 60
        and not p.here
        and p.where.startswith("too slow here even as a probe (over the 60")
    )
    assert missing.run_order(e.missing, e.ladder.results, 60) == []
    # a budget the probe fits in: it runs here
    roomy = explain.explain(
        a,
        b,
        pool,
        (),
        None,
        0.02,
        recipes,
        explain.Planning(
            out="out",
            here=missing.Here({"cpu": "EPYC"}, "2.13.0+cpu"),
            here_peak=lambda kind, dtype: (1e6, "a slow test peak"),
            budget_s=p.estimate_s + 1,
        ),
    )
    [q] = roomy.missing
    assert q.probe and q.here


def test_the_reports_pair_explanation_takes_the_closest_points(tmp_path):
    """compare's cpu fp32 holds three seeds of 20 iterations and one of 40; bf16 ran 40. The
    report explains fp32 at 40 against bf16 at 40 (precision alone), not the commoner 20
    against 40 (precision and iterations)."""
    for seed in (1, 2, 3):
        write_run(tmp_path, seed, [3.0, 2.8, 2.6])
    write_run(tmp_path, 4, [3.0, 2.8, 2.6, 2.5, 2.4])
    write_run(tmp_path, 1, [3.0, 2.9, 2.7, 2.6, 2.5], dtype="bf16")
    comparison = compare.compare_runs(load(tmp_path))
    [(key, e)] = explain.explain_comparison(comparison)
    assert key[1] == "cpu bf16"
    assert (e.a.point.iters, e.a.point.dtype, e.b.point.iters, e.b.point.dtype) == (
        40,
        "fp32",
        40,
        "bf16",
    )
    assert [r.factors for r in e.ladder.rungs] == [("precision",)]
    assert e.a.run_ids and len(e.a.run_ids) == 1


# ---- the command line ----------------------------------------------------------------


@pytest.mark.slow  # fast in the default suite: the in-process explain tests above (ladder, sums, projection, refusal)
def test_explain_on_the_command_line(two_rungs, nb):
    a, b = two_rungs / "a", two_rungs / "b"
    (two_rungs / "other").mkdir()
    write_run(two_rungs / "other", 1, [4.0, 3.0, 2.5], sha="e" * 64)
    bad = nb("explain", a, two_rungs / "other", "--results", two_rungs / "a")
    assert (
        bad.returncode == 2
        and bad.stderr.count("\n") == 1
        and "trained on different data" in bad.stderr
    )
    assert "Traceback" not in bad.stderr
    out = nb(
        "explain",
        a,
        b,
        "--results",
        two_rungs / "a",
        two_rungs / "mid",
        two_rungs / "b",
        "--json",
        env={"COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["factors"] for r in data["ladder"]["rungs"]] == [["iterations"], ["model"]]
    val = data["ladder"]["attribution"]["val_loss"]
    assert val["complete"] and math.fsum(p["value"] for p in val["parts"]) == pytest.approx(
        val["total"]["value"], abs=1e-12
    )
    text = nb(
        "explain", a, b, "--results", two_rungs / "mid", env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    assert (
        text.returncode == 0
        and "sum of the parts" in text.stdout
        and "The parts sum to the gap." in text.stdout
    )
