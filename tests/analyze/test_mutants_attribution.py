"""analyze/attribution.py at the edges a one-line change would move (issue 30): bands of a
difference, the projection's arithmetic, probes, targets. Expected values are worked out by
hand here (or by scipy.stats on the raw numbers), on result files written by the real writer
(test_explain.write_run) with step times exact in binary (0.25 s, 0.75 s)."""

import math
from dataclasses import replace

import pytest
from scipy import stats
from test_explain import load, write_run

from nanobench.analyze import attribution as at
from nanobench.analyze.ladder import point_of

V = at.Value


def test_a_projected_band_is_the_widest_difference_of_the_two_bands():
    prev = V(2.0, 1.5, 2.5, projected=True)
    cur = V(3.0, 2.75, 3.5)
    # from cur's lowest minus prev's highest to cur's highest minus prev's lowest
    assert at.difference_band(prev, cur) == (0.25, 2.0, at.PROJECTED_BAND, None)
    assert at.difference_band(V(2.0, 1.5, 2.5), replace(cur, projected=True))[:2] == (0.25, 2.0)
    p = at.part(prev, cur)
    assert (p.value, p.low, p.high, p.projected, p.composition) == (1.0, 0.25, 2.0, True, 0.0)


def test_shared_seeds_give_a_paired_band():
    # seeds 1, 2 on both: differences 0.5, 1.0: mean 0.75, se 0.25, df 1
    prev = V(1.5, 1.0, 2.0, ((1, 1.0), (2, 2.0)))
    cur = V(2.25, 1.5, 3.0, ((1, 1.5), (2, 3.0)))
    lo, hi, method, split = at.difference_band(prev, cur)
    half = stats.t.ppf(0.975, 1) * 0.25  # 12.706 x 0.25
    assert (lo, hi) == pytest.approx((0.75 - half, 0.75 + half))
    assert method == "paired 95% t interval over 2 shared seeds" and split.shared == (1, 2)
    p = at.part(prev, cur)
    assert (p.value, p.composition, p.seeds, p.method) == (0.75, 0.0, "", method)
    assert (p.low, p.high) == pytest.approx((lo, hi)) and not p.projected


def test_unpaired_seeds_give_a_welch_band_of_cur_minus_prev():
    # prev 1, 2, 3 (seeds 1-3), cur 5, 7 (seeds 4, 5): cur - prev = 4, se sqrt(1/3 + 1), df 32/19
    prev = V(2.0, 1.0, 3.0, ((1, 1.0), (2, 2.0), (3, 3.0)))
    cur = V(6.0, 5.0, 7.0, ((4, 5.0), (5, 7.0)))
    lo, hi, method, _ = at.difference_band(prev, cur)
    half = stats.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert (lo, hi) == pytest.approx((4 - half, 4 + half))
    assert method == "Welch 95% t interval over seeds (they do not pair)"
    # unknown seeds (None) never pair, even when both sides have them
    nones = at.difference_band(
        V(2.0, 1.0, 3.0, ((None, 1.0), (None, 2.0), (None, 3.0))),
        V(6.0, 5.0, 7.0, ((None, 5.0), (None, 7.0))),
    )
    assert nones[:2] == pytest.approx((4 - half, 4 + half)) and nones[3] is None


def test_one_seed_on_a_side_has_no_band():
    lo, hi, method, split = at.difference_band(
        V(1.0, 1.0, 1.0, ((1, 1.0),)), V(2.5, 2.0, 3.0, ((2, 2.0), (3, 3.0)))
    )
    assert (lo, hi, method, split.shared) == (None, None, "one seed: no band", ())
    lo, hi, method, _ = at.difference_band(
        V(1.5, 1.0, 2.0, ((1, 1.0), (2, 2.0))), V(2.0, 2.0, 2.0, ((3, 2.0),))
    )
    assert (lo, hi, method) == (None, None, "one seed: no band")


def test_one_shared_seed_among_others_gives_the_shared_value_without_a_band():
    # seed 1 on both (1.0 -> 1.5), seed 2 in prev only (3.0), seed 3 in cur only (4.5)
    prev = V(2.0, 1.0, 3.0, ((1, 1.0), (2, 3.0)))
    cur = V(3.0, 1.5, 4.5, ((1, 1.5), (3, 4.5)))
    p = at.part(prev, cur, labels=("cpu", "gpu"))
    # the shared seed's difference 0.5; the means differ by 1.0: the other 0.5 is which seeds ran
    assert (p.value, p.low, p.high, p.composition) == (0.5, None, None, 0.5)
    assert p.method == "1 shared seed: no band"
    assert p.seeds == (
        "seed sets differ: 1 shared seed; gpu's other seed 3 moves its mean by +1.5000; "
        "cpu's other seed 2 moves its mean by +1.0000, so the means differ by +1.0000"
    )
    # the same runs cut at two lengths: drift, no band at all
    s = at.part(
        V(1.5, 1.0, 2.0, ((1, 1.0), (2, 2.0))), V(2.25, 1.5, 3.0, ((1, 1.5), (2, 3.0))), True
    )
    assert (s.low, s.high, s.method, s.same_runs, s.value) == (None, None, at.SAME_RUNS, True, 0.75)
    assert at.part(None, cur) is None and at.part(prev, None) is None


def test_the_number_of_evaluations_of_a_run():
    # every `interval` from 0, and at the end when the end is not on the interval
    assert at.n_evaluations(30, 10) == 4  # 0, 10, 20, 30
    assert at.n_evaluations(25, 10) == 4  # 0, 10, 20, 25
    assert at.n_evaluations(5, 10) == 2  # 0, 5
    assert at.n_evaluations(20, 3) == 8  # 0, 3, ..., 18, 20


def test_rounded_parts_by_largest_remainder():
    # to 1 decimal: 2.7 and 2.2 tenths floor to 2 + 2 = 4; a total of 0.6 is 6: two more,
    # one each; of 0.5, one more, to the larger remainder (0.7); of 0.3, one fewer, from the
    # smaller remainder (0.2)
    assert at.rounded_parts([0.27, 0.22], 0.6, 1) == pytest.approx([0.3, 0.3])
    assert at.rounded_parts([0.27, 0.22], 0.5, 1) == pytest.approx([0.3, 0.2])
    assert at.rounded_parts([0.22, 0.27], 0.5, 1) == pytest.approx([0.2, 0.3])
    assert at.rounded_parts([0.27, 0.22], 0.3, 1) == pytest.approx([0.2, 0.1])
    assert at.rounded_parts([0.22, 0.27], 0.3, 1) == pytest.approx([0.1, 0.2])
    assert at.rounded_parts([0.27, 0.22], 0.4, 1) == pytest.approx([0.2, 0.2])
    assert at.rounded_parts([0.0123, 0.0456], 0.058, 2) == pytest.approx([0.01, 0.05])
    assert at.rounded_parts([], 0.0, 2) == []


def test_measured_value_is_the_seeds_mean_and_range():
    v = at._measured([(1, 2.0), (2, 6.0), (3, 1.0)], "n")
    assert (v.mean, v.low, v.high, v.per_seed, v.projected, v.note) == (
        3.0,
        1.0,
        6.0,
        ((1, 2.0), (2, 6.0), (3, 1.0)),
        False,
        "n",
    )
    assert at._measured([]) is None and at._measured([(1, 2.0), (2, None)]) is None


def test_attribution_sums_and_flags():
    a = at.Attribution("val_loss", at.part(V(1.0, 1.0, 1.0), V(2.0, 2.0, 2.0)), (None,))
    assert not a.complete and a.seed_sets == 0.0 and not a.projected
    proj = at.part(V(1.0, 1.0, 1.0, projected=True), V(2.0, 2.0, 2.0))
    assert at.Attribution("val_loss", None, (proj,)).projected


# ---- on result files ----------------------------------------------------------------------------


def test_a_probe_needs_five_steady_steps(tmp_path):
    write_run(tmp_path / "full", 1, [4.0, 3.0, 2.5, 2.0])  # 30 iterations: the point
    write_run(tmp_path / "five", 1, [4.0, 3.0], interval=5)  # 5 steps
    write_run(tmp_path / "four", 1, [4.0, 3.0], interval=4)  # 4 steps
    [full] = load(tmp_path / "full")
    [five] = load(tmp_path / "five")
    [four] = load(tmp_path / "four")
    p = point_of(full)
    assert (five.step_times_s.size, four.step_times_s.size) == (5, 4)
    assert at.MIN_PROBE_STEPS == 5
    assert at.is_probe(five, p) and not at.is_probe(four, p)
    assert not at.is_probe(full, p)  # as long as the point: no probe of it
    # a shorter run of the very recipe (evaluation keys too) stopped short of the point
    write_run(tmp_path / "short", 1, [4.0, 3.0])
    [short] = load(tmp_path / "short")
    assert at.is_shorter_run(short, p) and not at.is_shorter_run(full, p)
    assert not at.is_shorter_run(five, p)  # another evaluation interval: not the same recipe


def test_time_to_target_counts_a_loss_equal_to_the_target(tmp_path):
    # evaluations at 0, 10, 20, 30 with every step 0.125 s: the evaluation at 10 scores the
    # model after 10 steps, 1.25 s of training; its loss is the target exactly
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5, 2.0], step_s=0.125)
    write_run(tmp_path / "a", 2, [4.0, 3.5, 3.25, 2.5], step_s=0.125)
    pool = load(tmp_path / "a")
    p = point_of(pool[0])
    res = at.point_result(p, pool, 3.0)
    assert res.kind == "measured" and len(res.run_ids) == 2
    t = res.values["time_to_target_s"]  # seed 1 at 10 (1.25 s), seed 2 at 30 (3.75 s)
    assert (t.mean, t.low, t.high) == (2.5, 1.25, 3.75)
    v = res.values["val_loss"]
    assert (v.mean, v.low, v.high) == (2.25, 2.0, 2.5)
    assert res.values["step_s"].mean == 0.125 and res.values["train_time_s"].mean == 3.75
    # a target one seed never reaches: no time, and a note saying how many did
    short = at.point_result(p, pool, 2.25)
    assert short.values["time_to_target_s"] is None
    assert short.notes == ("target 2.25 reached by 1 of 2 seeds",)
    assert at.point_result(p, pool, None).notes == ()


@pytest.fixture
def projected(tmp_path):
    """B's point: `smoke` at 30 iterations on this CPU, with only two 10-iteration probes here
    (steps 0.25 s and 0.75 s; evaluation at 0 and 10, eval.iters 2) and two GPU runs of the
    same recipe to 30 iterations for the losses."""
    write_run(tmp_path / "p1", 1, [4.0, 3.9], step_s=0.25, eval_iters=2)
    write_run(tmp_path / "p2", 2, [4.0, 3.9], step_s=0.75, eval_iters=2)
    gpu = dict(device="cuda", name="NVIDIA H100", threads=16, torch="2.13.0+cu128", step_s=0.01)
    write_run(tmp_path / "g", 1, [4.0, 3.0, 2.5, 2.0], **gpu)  # reaches 3.0 at 10
    write_run(tmp_path / "g", 2, [4.0, 3.5, 3.0, 2.25], **gpu)  # reaches 3.0 at 20
    pool = load(tmp_path)
    probe = next(r for r in pool if r.step_times_s[0] == 0.25)
    return replace(point_of(probe), iters=30), pool


def test_a_projection_by_hand(projected):
    p, pool = projected
    res = at.point_result(p, pool, 3.0)
    assert res.kind == "projected" and len(res.probe_ids) == 2 and len(res.reference_ids) == 2
    # 20 pooled steps, ten of 0.25 and ten of 0.75: quartiles 0.25, 0.5, 0.75 (numpy's linear
    # interpolation: the median falls between the 10th and 11th)
    s = res.values["step_s"]
    assert (s.mean, s.low, s.high, s.projected) == (0.5, 0.25, 0.75, True)
    t = res.values["train_time_s"]
    assert (t.mean, t.low, t.high) == (15.0, 7.5, 22.5)  # x 30 iterations
    # losses: the GPU runs' at 30, 2.0 and 2.25: mean 2.125, range widened by the 0.02 margin
    v = res.values["val_loss"]
    assert (v.mean, v.low, v.high) == pytest.approx((2.125, 1.98, 2.27))
    # iterations to the target 3.0 (reached at exactly 3.0): 10 and 20, mean 15; x the steps
    h = res.values["time_to_target_s"]
    assert (h.mean, h.low, h.high) == (15 * 0.5, 10 * 0.25, 20 * 0.75)
    # evaluations: each probe spent 0.01 s a step outside training (writer's wall clock):
    # 0.1 s over 2 evaluations x 2 splits x 2 batches = 8 batches, 0.0125 s a batch. The
    # point evaluates 4 times (0, 10, 20, 30): 4 x 2 x 2 = 16 batches, 0.2 s
    assert [at.eval_batch_s(r) for r in pool if r.run_id in res.probe_ids] == pytest.approx(
        [0.0125, 0.0125]
    )
    w = res.projected_wall_s
    assert (w.mean, w.low, w.high) == pytest.approx((15.2, 7.7, 22.7))
    assert "plus 16 evaluation batches" in w.note
    assert res.notes == (
        "projected from 2 probe run(s), 20 steady steps; losses from 2 run(s) of the same "
        "recipe on another device, +/- the 0.02-nat equivalence margin",
    )


def test_a_projection_without_a_target_reached_within_the_point(projected):
    p, pool = projected
    # 2.25 is reached by the second GPU run only at 30, the first at 30 too (2.0): both hit
    assert at.point_result(p, pool, 2.25).values["time_to_target_s"].mean == 30 * 0.5
    # 2.1: the second never reaches it: no time to target
    assert at.point_result(p, pool, 2.1).values["time_to_target_s"] is None
    assert at.point_result(p, pool, None).values["time_to_target_s"] is None
    # a shorter point (20 iterations): the hits must fall within it; 2.5 only seed 1 reaches by 20
    p20 = replace(p, iters=20)
    assert at.point_result(p20, pool, 2.5).values["time_to_target_s"] is None
    # no projection asked: missing
    assert at.point_result(p, pool, 3.0, project_ok=False).kind == "missing"


def test_which_runs_hold_a_point(tmp_path):
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5, 2.0])  # cpu EPYC fp32, 2 threads, 30 iterations
    [run] = load(tmp_path / "a")
    p = point_of(run)
    assert at.covers(run, p)
    # a longer run holds a shorter point of its recipe (an evaluation at 20), not a longer one
    assert at.covers(run, replace(p, iters=20)) and not at.covers(run, replace(p, iters=25))
    assert not at.covers(run, replace(p, iters=40))
    for other in (
        dict(threads=4),  # another thread count on the cpu
        dict(torch="2.12.0+cpu"),
        dict(dtype="bf16"),
        dict(compile=True),
        dict(device_name="Xeon"),
        dict(device_type="cuda", threads=None),
        dict(recipe=p.recipe[1:]),
    ):
        assert not at.covers(run, replace(p, **other)), other
    # None stands for "any": a point that names no thread count or torch
    assert at.covers(run, replace(p, threads=None, torch=None))
    # a reference: the same recipe and dtype on another device, as far as the point
    assert not at.is_reference(run, p)
    assert at.is_reference(run, replace(p, device_name="Xeon"))
    assert at.is_reference(run, replace(p, device_type="cuda", threads=None))
    assert not at.is_reference(run, replace(p, device_name="Xeon", dtype="bf16"))
    assert not at.is_reference(run, replace(p, device_name="Xeon", iters=40))


def test_a_longer_run_measures_a_shorter_point_from_its_first_steps(tmp_path):
    # 30 iterations of 0.125 s; the point at 20: 20 steps, 2.5 s, the target reached at 20 only
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5, 2.0], step_s=0.125)
    [run] = load(tmp_path / "a")
    p20 = replace(point_of(run), iters=20)
    res = at.point_result(p20, [run], 2.5)
    assert res.kind == "measured" and res.values["val_loss"].mean == 2.5
    assert res.values["train_time_s"].mean == 2.5 and res.values["step_s"].mean == 0.125
    assert res.values["time_to_target_s"].mean == 2.5
    # 2.0 is reached only at 30, beyond the point
    assert at.point_result(p20, [run], 2.0).values["time_to_target_s"] is None
    steps = at._steps_until(run, 20)
    assert steps.size == 20 and set(steps) == {0.125}
    assert at._steps_until(run, 30).size == 30
    # its first 3 steps warm-up: not steady, left out of the 20 before the point (17 remain)
    write_run(tmp_path / "w", 1, [4.0, 3.0, 2.5, 2.0], step_s=0.125, warmup_steps=3)
    [warm] = load(tmp_path / "w")
    assert at._steps_until(warm, 20).size == 17 and at._steps_until(warm, 30).size == 27


def test_a_run_stopped_short_of_the_point_is_named_where_the_point_is_missing(tmp_path):
    # interrupted at 20 of 30 iterations: no run holds the point, no probe (project_ok False)
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5], status="interrupted")
    write_run(tmp_path / "b", 2, [4.0, 3.0, 2.5, 2.0])
    pool = load(tmp_path)
    stopped_run = next(r for r in pool if r.status == "interrupted")
    p = replace(point_of(stopped_run), iters=30)
    res = at.point_result(p, [stopped_run], 2.0, project_ok=False)
    assert res.kind == "missing" and res.values["val_loss"] is None
    assert res.stopped == ((stopped_run.run_id, "interrupted", 20, 20, 2.5),)
    # a completed run of the point holds it: measured, nothing missing
    assert at.point_result(p, pool, 2.0).kind == "measured"
