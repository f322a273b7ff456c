"""Issue 24: answers that hold when the data is untidy (uneven seed sets, diverged seeds, a run
too short to judge, a reference that must not be built from the run it checks). Each expected
value comes from the raw numbers: read from the committed parquet files with pyarrow, worked by
hand, or computed here with scipy.stats directly."""

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from nanobench import cli
from nanobench.analyze import (
    attribution,
    compare,
    equivalence,
    explain,
    missing,
    references,
    runs,
    verdicts,
)
from nanobench.analyze.config import Config
from nanobench.analyze.noise import RunNoise
from nanobench.errors import InputError
from nanobench.present import explain as present_explain
from nanobench.present import tables
from nanobench.run import scenario as scen
from nanobench.store.results import PARTIAL_DIR, RunWriter

EXAMPLES = Path(__file__).parents[2] / "results" / "examples"
FP32_BF16 = EXAMPLES / "cpu-fp32-vs-bf16"


def _val_at(path: Path, it: int) -> float:
    """The val loss a result file recorded at iteration `it`, read with pyarrow alone."""
    t = pq.read_table(path, columns=["iter", "eval_val_loss"]).to_pydict()
    return next(v for i, v in zip(t["iter"], t["eval_val_loss"]) if i == it and v is not None)


@pytest.fixture
def fp32_three_bf16_one(tmp_path):
    """The committed fp32 runs (seeds 1337-1339) and the committed bf16 run of seed 1337 only."""
    a, b = tmp_path / "fp32", tmp_path / "bf16"
    a.mkdir()
    b.mkdir()
    for f in FP32_BF16.glob("*-cpu-fp32-*.parquet"):
        shutil.copy(f, a)
    [one] = FP32_BF16.glob("*-cpu-bf16-s1337-*.parquet")
    shutil.copy(one, b)
    return a, b


# ---- item 1: seed composition is not hardware or precision ------------------------------------


def test_item1_compare_puts_the_gap_on_the_shared_seed(fp32_three_bf16_one):
    a, b = fp32_three_bf16_one
    fp32 = {int(p.name.split("-s")[1][:4]): _val_at(p, 2000) for p in a.glob("*.parquet")}
    bf16_1337 = _val_at(next(b.glob("*.parquet")), 2000)
    shared_diff = bf16_1337 - fp32[1337]  # bit-identical here: 1.9038 on both
    means_diff = bf16_1337 - sum(fp32.values()) / 3  # +0.0116: which seeds ran
    assert f"{shared_diff:+.4f}" == "+0.0000" and f"{means_diff:+.4f}" == "+0.0116"

    [g] = compare.compare_files([str(a), str(b)]).groups
    [p] = g.pairs
    assert p.equal_iter.diff == pytest.approx(shared_diff, abs=1e-12)
    assert p.equal_iter.split.a_extra == pytest.approx(sum(fp32.values()) / 3 - fp32[1337])
    assert (
        "their val loss differs by +0.0000 (cpu bf16 minus cpu fp32) on the 1 shared seed, 1337"
        in (p.verdict)
    )
    assert (
        "seed sets differ: 1 shared seed; cpu fp32's other seeds 1338, 1339 move its mean by -0.0116"
        in (p.verdict)
    )
    gap = p.explanation
    assert gap["at_equal_iters"] == pytest.approx(shared_diff, abs=1e-12)
    said = " ".join(gap["sentences"])
    assert "At equal iterations (2000) the gap is +0.0000 on the 1 shared seed, 1337" in said
    assert "+0.0116: that much" not in said and "Seed sets differ" in said


def test_item1_the_device_by_dtype_table_shows_the_shared_seed_difference(fp32_three_bf16_one):
    a, b = fp32_three_bf16_one
    [g] = compare.compare_files([str(a), str(b)]).groups
    rows = {r[1]: r[2:] for r in tables.matrix_table(g).rows}
    assert (
        rows["val loss @2000"][1] == "+0.0000 vs baseline (on the 1 shared seed, 1337): undecided"
    )


def test_item1_explain_puts_the_precision_part_on_the_shared_seed(fp32_three_bf16_one):
    a, b = fp32_three_bf16_one
    e = explain.explain_endpoints(str(a), str(b), [str(a)])
    [rung] = e.ladder.rungs
    assert rung.factors == ("precision",)
    val = e.ladder.attribution["val_loss"]
    [part] = val.parts
    bf16_1337 = _val_at(next(b.glob("*.parquet")), 2000)
    fp32_1337 = _val_at(next(a.glob("*-s1337-*.parquet")), 2000)
    assert f"{part.value:+.4f}" == f"{bf16_1337 - fp32_1337:+.4f}" == "+0.0000"
    assert f"{val.total.value:+.4f}" == "+0.0000" and f"{part.composition:+.4f}" == "+0.0116"
    said = " ".join(e.sentences)
    assert "a gap of +0.0000" in said and "Seed sets differ: 1 shared seed" in said
    assert "largest part is precision: +0.0000" in said


def test_item1_without_a_shared_seed_the_gap_says_it_cannot_be_told_from_seed_choice():
    split = equivalence.split_seeds({1: 2.0, 2: 2.1}, {7: 2.3})
    assert split.shared == () and split.diff == pytest.approx(2.3 - 2.05)
    assert "cannot be told from the choice of seeds" in split.words("A", "B")


# ---- item 2: a seed that diverged on one side --------------------------------------------------

A3 = {1: 2.0, 2: 2.1, 3: 2.2}
B3 = {1: 2.001, 2: 2.102, 3: 2.2}


def test_item2_a_diverged_seed_is_named_and_never_equivalent():
    a = {it: dict(A3) for it in (100, 200, 300, 400)}
    b = {it: dict(B3) for it in (100, 200)} | {it: {1: 2.001, 3: 2.2} for it in (300, 400)}
    out = equivalence.compare_curves(a, b, 0.02, {}, {2: 250})
    v = {p.iter: p for p in out["points"]}
    assert v[100].verdict == v[200].verdict == "equivalent"
    assert v[300].verdict == v[400].verdict == "diverged"
    assert v[400].diverged == ((2, "b", 250),) and v[400].n_unpaired == 0
    text = verdicts.equivalence_sentence(out, "cpu fp32", "cpu bf16")
    assert "seed 2 diverged in cpu bf16 at iteration 250 (not in cpu fp32)" in text
    assert "left out" not in text and text.count("diverged on one side") == 1


def test_item2_holm_never_turns_a_missing_p_into_rejections_lost():
    # a p that is not a number counts as p = 1 (one look, never rejected); by hand, m = 4:
    # 0.001 x 4 = 0.004; 0.01 x 3 = 0.03; 0.02 x 2 = 0.04; 1 x 1 = 1
    assert equivalence.holm([0.01, math.nan, 0.001, 0.02]) == pytest.approx(
        [0.03, 1.0, 0.004, 0.04]
    )


UNSAMPLED = RunNoise("unknown", (), None)


def _stats(cfg, seed, evs, status="completed", noise=UNSAMPLED, step=0.1):
    return runs.RunStats(
        run_id=f"{cfg.label(with_name=True)}-{seed}",
        path=f"/x/{cfg.device_name}-{cfg.dtype}-{seed}",
        scenario="s",
        dataset="d",
        dataset_sha256="h",
        config=cfg,
        seed=seed,
        threads=2,
        torch_version="2",
        status=status,
        targets=(),
        iterations=evs[-1].iter,
        final_train_loss=None,
        final_val_loss=evs[-1].val_loss,
        best_val_loss=min(e.val_loss for e in evs),
        median_step_s=step,
        p90_step_s=None,
        tokens_per_s=None,
        mfu=None,
        mem_peak_bytes=None,
        energy_j=None,
        train_time_s=1.0,
        wall_time_s=2.0,
        evaluations=tuple(evs),
        step_times_s=np.asarray([step] * 5, float),
        noise=noise,
    )


def _ev(it, val):
    return runs.Evaluation(it, val, None, it / 100, it / 50)


CPU = Config("cpu", "EPYC", "fp32", False)
BF16 = Config("cpu", "EPYC", "bf16", False)


def test_item2_an_inf_loss_through_compare_gives_no_nan_p():
    a = [_stats(CPU, s, [_ev(0, 4.0), _ev(100, v), _ev(200, v - 0.1)]) for s, v in A3.items()]
    b = [
        _stats(BF16, s, [_ev(0, 4.0), _ev(100, v), _ev(200, v - 0.1)])
        for s, v in B3.items()
        if s != 2
    ]
    b.append(_stats(BF16, 2, [_ev(0, 4.0), _ev(100, 2.102), _ev(200, math.inf)], status="diverged"))
    [p] = compare.compare_runs(a + b).groups[0].pairs
    points = p.equivalence["points"]
    assert all(x.p is None or not math.isnan(x.p) for x in points)
    assert all(x.p_holm is None or not math.isnan(x.p_holm) for x in points)
    last = points[-1]
    assert last.iter == 200 and last.verdict == "diverged" and last.diverged == ((2, "b", 200),)


# ---- item 3 and 4: the reference check ---------------------------------------------------------


def test_item3_a_best_val_reference_is_held_against_the_lowest_loss_up_to_it():
    # nanoGPT's GPU figure 1.4697 is its best val loss: an overfitting run at 1.53 by 5000 whose best
    # was 1.47 at 3500 is normal
    c = references.check("gpu", "shakespeare_char", [(0, 4.2), (3500, 1.47), (5000, 1.53)])
    assert c.first_outside is None and c.checked[0][1] == 1.47
    bad = references.check("gpu", "shakespeare_char", [(3500, 1.60), (5000, 1.62)])
    assert bad.first_outside[1] == 1.60
    assert "its best val loss up to 5000 1.6000 is above the band 1.4197-1.5197" in bad.sentence()


def test_item4_a_reference_seed_is_checked_against_the_other_seeds_only():
    where, seeds, per_iter = references.SEED_RUNS["shakespeare_char_cpu"]
    evals = [(it, v[0]) for it, v in per_iter.items()]  # seed 1337's own numbers
    c = references.check("s1337", "shakespeare_char_cpu", evals, seed=1337)
    band = next(b for it, _, b in c.checked if it == 750 and b.kind == "seeds")
    others = per_iter[750][1:]  # 1338, 1339: mean, sd, t(1 - 0.05 / (2 x 9), 1), sqrt(1 + 1/2)
    half = stats.t.ppf(1 - 0.05 / 18, 1) * np.std(others, ddof=1) * math.sqrt(1.5)
    assert (band.low, band.high) == pytest.approx((np.mean(others) - half, np.mean(others) + half))
    assert "its own seed 1337 left out" in band.source


def test_item4_an_imported_log_of_seed_1337_is_held_to_all_three_seeds():
    """nanoGPT's seed 1337 draws other weights and batches than nanobench's: not the same draw."""
    c = compare.compare_files([str(EXAMPLES / "nanogpt-cpu-recipe")])
    [imported] = [ch for ch in c.references if "imported" in ch.run_id]
    assert "prediction bands of seeds 1337, 1338, 1339," in imported.sentence()


def test_item4_the_checks_of_a_normal_run_false_alarm_at_most_5_percent_together():
    """Draws of normal runs (independent evaluations, 3 reference seeds, 9 evaluations): the run is
    flagged by any band with probability 1 - (1 - 0.05/9)^9 = 0.0489 (Bonferroni); taken one by one
    at 95% each it would be 1 - 0.95^9 = 0.37."""
    rng = np.random.default_rng(24)
    trials, iters = 1500, list(range(9))
    flagged = 0
    for _ in range(trials):
        ref = rng.normal(size=(9, 3))
        run = rng.normal(size=9)
        bands = references.seed_bands({i: tuple(ref[i]) for i in iters}, (1, 2, 3), "sim")
        flagged += any(not b.low <= run[b.iter] <= b.high for b in bands)
    expected = 1 - (1 - 0.05 / 9) ** 9
    assert abs(flagged / trials - expected) < 4 * math.sqrt(expected * (1 - expected) / trials)


# ---- items 5, 6, 7, 8: which interval, which correction, leaving the noise, one band ----------

D5 = [0.01, 0.02, 0.00, 0.015, 0.005]


def test_item5_and_6_the_verdict_shows_the_deciding_90_interval_and_says_what_holm_covers():
    a = {it: {s: 2.0 for s in range(5)} for it in (100, 200)}
    b = {it: {s: 2.0 + d for s, d in enumerate(D5)} for it in (100, 200)}
    out = equivalence.compare_curves(a, b, 0.02)
    lo90, hi90 = stats.t.interval(0.90, 4, loc=np.mean(D5), scale=stats.sem(D5))
    text = verdicts.equivalence_sentence(out, "A", "B")
    assert f"90% CI {lo90:+.4f} to {hi90:+.4f}, the interval TOST decides by" in text
    assert "Equivalence needs no correction" in text and "Holm-corrected over 2" in text
    assert (
        "intersection-union" in out["method"]
        and "Holm-adjusted over 2 evaluations" in out["method"]
    )


def test_item7_leaving_the_noise_means_staying_out():
    # differences 0.05 +- 0.001 (significant) at 100, 0 at 200 (back in the noise), then 0.05 again
    far = {1: 2.049, 2: 2.051, 3: 2.05}
    same = {1: 2.0, 2: 2.0, 3: 2.0}
    a = {it: dict(same) for it in (100, 200, 300, 400)}
    b = {100: far, 200: dict(same), 300: far, 400: far}
    out = equivalence.compare_curves(a, b, 0.02)
    v = {p.iter: p for p in out["points"]}
    assert v[100].verdict == "different" and v[200].p_holm == 1.0
    assert out["first_iter_beyond_noise"] == 300  # not 100: it came back at 200
    back = equivalence.compare_curves({**a}, {**b, 400: dict(same)}, 0.02)
    assert back["first_iter_beyond_noise"] is None
    assert "never leave the seed noise for good" in verdicts.equivalence_sentence(back, "A", "B")


def test_item8_intervals_hold_at_five_seeds_and_a_band_means_one_thing():
    a = {s: 2.0 for s in range(5)}
    b = {s: 2.0 + d for s, d in enumerate(D5)}
    p = equivalence.point_statistic(100, a, b, 0.02)
    assert p.ci95 == pytest.approx(stats.t.interval(0.95, 4, loc=np.mean(D5), scale=stats.sem(D5)))
    assert not hasattr(p, "boot95")  # the percentile bootstrap (about 85% at 5 seeds) is gone
    for values in ([1.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0], list(np.linspace(0, 1, 12))):
        assert equivalence.band(values) == (np.mean(values), min(values), max(values), "min-max")


# ---- item 9: time parts from the same runs -----------------------------------------------------


def test_item9_time_parts_of_the_same_runs_cut_shorter_are_marked_and_have_no_band(tmp_path):
    d = EXAMPLES / "explain"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for f in d.glob("smoke-20261129T06290*.parquet"):
        shutil.copy(f, a)
    for stamp in ("062918", "062930", "062945"):
        shutil.copy(next(d.glob(f"smoke-20261129T{stamp}Z-*.parquet")), b)
    e = explain.explain_endpoints(str(a), str(b), [str(d)])
    rungs = [r.factors[0] for r in e.ladder.rungs]
    it = rungs.index("iterations")
    before, after = e.ladder.results[it], e.ladder.results[it + 1]
    assert set(before.run_ids) == set(after.run_ids)  # the 30-iteration runs, cut at 20 and at 30
    step = e.ladder.attribution["step_s"].parts[it]
    assert step.same_runs and step.low is None and step.method == attribution.SAME_RUNS
    loss = e.ladder.attribution["val_loss"].parts[it]
    assert not loss.same_runs and loss.low is not None  # a loss part of the same runs is an effect
    table = present_explain.attribution_table(e.ladder)
    assert "(same runs)" in table.rows[it][3]
    assert any(
        line.startswith("band: the same runs cut at two lengths")
        for line in present_explain.band_notes(e.ladder)
    )


# ---- item 10: explain --run --------------------------------------------------------------------


def test_item10_the_runs_explain_makes_go_where_results_are_read():
    args = cli.build_parser().parse_args(["explain", "a", "b", "--results", "DIR", "--run"])
    assert args.out is None  # decided in cmd_explain: the first --results folder
    assert "first --results folder" in next(
        a.help
        for a in cli.build_parser()._subparsers._group_actions[0].choices["explain"]._actions
        if a.dest == "out"
    )


def _smoke_run(folder, seed, vals, status="completed", interval=10, last_iter=None, name=""):
    s = scen.load("smoke", [f"eval.interval={interval}"])
    iters = (len(vals) - 1) * interval
    folder.mkdir(parents=True, exist_ok=True)
    run_id = f"smoke-{name or status}-s{seed}"
    meta = {
        "scenario": s.to_dict(),
        "dataset": {"name": "synthetic", "sha256": "d" * 64, "vocab_size": 27},
        "options": {
            "device": "cpu",
            "dtype": "fp32",
            "compile": False,
            "seed": seed,
            "threads": 2,
            "max_iters": 30,
            "overrides": [f"eval.interval={interval}"],
        },
        "device": {"spec": "cpu", "type": "cpu", "name": "EPYC"},
        "environment": {"torch": "2.13.0+cpu", "torch_num_threads": 2},
    }
    rows = [
        {
            "iter": i,
            "loss": 3.0,
            "step_time_s": 0.1,
            "train_time_s": 0.1 * (i + 1),
            "wall_time_s": 0.1 * (i + 1),
            "tokens": 64 * (i + 1),
            "warmup": False,
            "eval_val_loss": vals[i // interval] if i % interval == 0 else None,
        }
        for i in range(last_iter if last_iter is not None else iters)
    ]
    if last_iter is None:  # a run that ended: its final evaluation after its last step
        rows.append(
            {
                "iter": iters,
                "train_time_s": 0.1 * iters,
                "wall_time_s": 0.1 * iters,
                "eval_val_loss": vals[-1],
            }
        )
    w = RunWriter(folder, run_id, meta)
    w.append(rows)
    w.finish(status, None)
    shutil.rmtree(folder / PARTIAL_DIR, ignore_errors=True)


def test_item10_after_run_the_same_ends_are_explained_from_the_results_folder(tmp_path):
    """explain --run writes into the --results folder, which may be A's own: the rebuild after
    the runs keeps the A and B resolved before them (fast counterpart of the CLI test below)."""
    d = tmp_path / "results"
    _smoke_run(d, 1, [3.0, 2.8, 2.7])  # A: 20 iterations
    first = explain.explain_endpoints(str(d), "smoke:cpu:fp32", [str(d)])
    assert first.ladder.results[-1].kind != "measured"
    _smoke_run(d, 1, [3.0, 2.8, 2.7, 2.6], name="made-by-run")  # what --run made, beside A
    with pytest.raises(InputError, match="holds 2 configurations"):
        explain.explain_endpoints(str(d), "smoke:cpu:fp32", [str(d)])
    after = explain.explain_endpoints(str(d), "smoke:cpu:fp32", [str(d)], ends=first.ends)
    assert after.ladder.results[-1].kind == "measured"
    assert after.ladder.attribution["val_loss"].total.value == pytest.approx(2.6 - 2.7)


@pytest.mark.slow  # fast counterpart: test_item10_after_run_the_same_ends_are_explained_from_the_results_folder
def test_item10_explain_run_on_the_command_line_feeds_its_own_answer(tmp_path, nb):
    d, cwd = tmp_path / "DIR", tmp_path / "cwd"
    cwd.mkdir()
    made = nb("run", "smoke", "--max-iters", "20", "--seeds", "1", "--out", d, "--quiet", cwd=cwd)
    assert made.returncode == 0, made.stderr
    out = nb(
        "explain",
        d,
        "smoke:cpu:fp32",
        "--results",
        d,
        "--run",
        "--budget",
        "3m",
        "--json",
        cwd=cwd,
        timeout=400,
    )
    assert out.returncode == 0, out.stderr
    assert not (cwd / "results").exists() and len(list(d.glob("*.parquet"))) == 2
    data = json.loads(out.stdout)
    assert data["b"]["kind"] == "measured" and data["missing"] == []


def test_item10_a_rung_stopped_by_the_budget_shows_what_it_reached(tmp_path):
    _smoke_run(tmp_path / "a", 1, [3.0, 2.8])  # A: 10 iterations
    _smoke_run(tmp_path / "r", 1, [3.0, 2.8, 2.6], status="interrupted", last_iter=24)
    e = explain.explain_endpoints(str(tmp_path / "a"), "smoke:cpu:fp32", [str(tmp_path / "r")])
    b = e.ladder.results[-1]
    assert b.kind in ("missing", "projected") and b.stopped == (
        ("smoke-interrupted-s1", "interrupted", 23, 20, 2.6),
    )
    status = present_explain.ladder_table(e).rows[-1][3]
    assert "smoke-interrupted-s1 stopped (interrupted) at iteration 23: val 2.6000 at 20" in status


def test_item10_the_estimate_says_how_sure_it_is(tmp_path):
    """Host facts are given (a device name, a peak): nothing is measured here."""
    here = missing.Here({"cpu": "AMD EPYC"}, None)
    peak = lambda kind, dtype: (200e9, "a peak given by the test")  # noqa: E731
    fp32 = sorted(FP32_BF16.glob("*-cpu-fp32-*.parquet"))
    for f in fp32:
        shutil.copy(f, tmp_path)
    e = explain.explain_endpoints(
        str(tmp_path),
        "shakespeare_char:cpu:fp32",
        [str(tmp_path)],
        planning=explain.Planning(here=here, here_peak=peak),
    )
    assert e.missing and all("(from 3 runs, MFU " in p.estimate_how for p in e.missing)
    bf16 = explain.explain_endpoints(
        str(tmp_path),
        "shakespeare_char_cpu:cpu:bf16",
        [str(tmp_path)],
        planning=explain.Planning(here=here, here_peak=peak),
    )
    [p] = bf16.missing  # no bf16 run to take an MFU from
    assert (
        "MFU 0.5 assumed (no run of this device and dtype to take it from: it may be several times off)"
        in (p.estimate_how)
    )
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(fp32[0], one)
    e1 = explain.explain_endpoints(
        str(one),
        "shakespeare_char:cpu:fp32",
        [str(one)],
        planning=explain.Planning(here=here, here_peak=peak),
    )
    assert all("(from one run: its spread is not known)" in p.estimate_how for p in e1.missing)


# ---- item 11: too short to judge ---------------------------------------------------------------


def test_item11_only_the_initial_weights_in_common_is_too_short_to_judge():
    out = equivalence.compare_curves({0: A3, 10: A3}, {0: B3}, 0.02)
    assert out["points"] == [] and out["too_short"] and out["final"] is None
    assert "too short to judge" in verdicts.equivalence_sentence(out, "A", "B")
    cut = equivalence.compare_curves({0: A3, 10: A3, 20: A3}, {0: B3, 10: B3}, 0.02)
    assert [p.iter for p in cut["points"]] == [10]
    assert "judged up to iteration 10 only: B's evaluations end at 10, A's at 20" in (
        verdicts.equivalence_sentence(cut, "A", "B")
    )


# ---- item 12: the reference configuration ------------------------------------------------------


def test_item12_a_noisy_configuration_is_never_the_baseline_over_a_quiet_one():
    slow_noisy = Config("cpu", "OLD", "fp32", False)
    quiet = Config("cpu", "NEW", "fp32", False)
    busy = RunNoise("noisy", ("other processes used the cores",), 0.9)
    evs = [_ev(0, 4.0), _ev(100, 2.0)]
    runs_ = [_stats(slow_noisy, 1, evs, noise=busy, step=0.3), _stats(quiet, 1, evs, step=0.1)]
    [g] = compare.compare_runs(runs_).groups
    assert g.baseline.config == quiet and "noisy run only when no quiet one" in g.baseline_why
    [g2] = compare.compare_runs(runs_, reference_config="cpu fp32 (OLD)").groups
    assert (
        g2.baseline.config == slow_noisy
        and g2.baseline_why == "named by --reference cpu fp32 (OLD)"
    )
    with pytest.raises(InputError, match="2 configurations match"):
        compare.compare_runs(runs_, reference_config="cpu fp32")
    with pytest.raises(InputError, match="no such configuration"):
        compare.compare_runs(runs_, reference_config="cuda bf16")
    import io

    from rich.console import Console

    buf = io.StringIO()
    tables.render_comparison(compare.compare_runs(runs_), Console(file=buf, width=300))
    assert "baseline: cpu fp32 (NEW) (by the rule: cpu fp32 eager" in buf.getvalue()


# ---- item 13: an empty list is not a default ---------------------------------------------------


@pytest.mark.parametrize(
    "flag,value", [("--seeds", ""), ("--seeds", "1,,2"), ("--dtype", "fp32,"), ("--device", ",")]
)
def test_item13_an_empty_list_is_bad_input(flag, value, capsys):
    assert cli.main(["run", "smoke", flag, value, "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "empty" in err and "Traceback" not in err


def test_parts_with_the_seed_sets_term_sum_to_the_total():
    # A {1, 2, 3}; the middle point ran seed 1 only; B {1, 2, 3}: the parts are on seed 1, the
    # total on all three, and the seed-sets term makes up the difference (by hand)
    va = attribution.Value(2.1, 2.0, 2.2, ((1, 2.0), (2, 2.1), (3, 2.2)))
    vm = attribution.Value(1.9, 1.9, 1.9, ((1, 1.9),))
    vb = attribution.Value(1.75, 1.7, 1.8, ((1, 1.7), (2, 1.75), (3, 1.8)))
    res = [
        replace(
            attribution.PointResult(
                None, "measured", (f"r{i}",), {q: None for q, _, _ in attribution.QUANTITIES}
            ),
            values={"val_loss": v, "step_s": None, "time_to_target_s": None, "train_time_s": None},
        )
        for i, v in enumerate((va, vm, vb))
    ]
    att = attribution.attribute(res)["val_loss"]
    assert [p.value for p in att.parts] == pytest.approx([1.9 - 2.0, 1.7 - 1.9])
    assert att.total.value == pytest.approx(1.75 - 2.1)
    assert sum(p.value for p in att.parts) + att.seed_sets == pytest.approx(att.total.value)
