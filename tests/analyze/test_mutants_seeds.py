"""analyze/seeds.py by hand (issue 30): several seeds of one configuration aggregated, time to
target over the seeds, the keys seeds pair under, where a seed diverged. Runs are built by
hand (run=None), their numbers exact in binary so each expected value is written out."""

import math
from dataclasses import replace

from test_compare import _stats

from nanobench.analyze import seeds
from nanobench.analyze.config import Config
from nanobench.analyze.runs import Evaluation

CPU = Config("cpu", "EPYC", "fp32", False)
LOG = Config("cpu", "EPYC", "fp32", False, imported="nanogpt")


def ev(it, val, energy=None):
    """An evaluation at `it`: train time it/8 s, wall time it/4 s."""
    return Evaluation(it, val, None, it / 8, it / 4, energy_j=energy)


def run(seed, evs, steps=(0.25,), run_id=None, status="completed", **kw):
    """test_compare's hand-built run, with the fields these tests set."""
    return replace(_stats(CPU, seed, evs, steps), run_id=run_id or f"r{seed}", status=status, **kw)


def test_aggregate_pools_the_steps_and_averages_the_rest():
    a = run(
        1,
        [ev(0, 4.0), ev(8, 2.0)],
        steps=[0.25] * 4,
        tokens_per_s=100.0,
        train_time_s=1.0,
        wall_time_s=2.0,
        mem_peak_bytes=10,
        final_train_loss=3.0,
    )
    b = run(
        2,
        [ev(0, 4.0), ev(8, 1.0)],
        steps=[0.75] * 4,
        tokens_per_s=None,
        train_time_s=3.0,
        wall_time_s=6.0,
        mem_peak_bytes=30,
        final_train_loss=None,
    )
    cs = seeds.aggregate(CPU, "cpu fp32", [a, b])
    assert cs.label == "cpu fp32" and cs.config == CPU and cs.seeds == [1, 2]
    # eight pooled steps, four of 0.25 and four of 0.75: numpy's linear quartiles at
    # positions 1.75, 3.5, 5.25 -> 0.25, 0.5, 0.75
    assert cs.step_times_s.size == 8
    assert (cs.q1_step_s, cs.median_step_s, cs.q3_step_s) == (0.25, 0.5, 0.75)
    assert (cs.final_val_loss, cs.best_val_loss) == (1.5, 1.5)
    assert cs.final_train_loss == 3.0 and cs.tokens_per_s == 100.0  # the seeds that have one
    assert (cs.mem_peak_bytes, cs.train_time_s, cs.wall_time_s) == (20.0, 2.0, 4.0)
    assert seeds.mean_or_none([None, None]) is None and seeds.mean_or_none([1, None, 4]) == 2.5


def test_time_to_target_is_the_mean_over_seeds_only_when_every_seed_reached_it():
    # seed 1 reaches 2.0 at 8 (exactly the target), seed 2 at 16
    a = run(1, [ev(0, 4.0, 0.0), ev(8, 2.0, 10.0), ev(16, 1.5, 20.0)])
    b = run(2, [ev(0, 4.0, 0.0), ev(8, 2.5, 12.0), ev(16, 2.0, 30.0)])
    cs = seeds.aggregate(CPU, "cpu", [a, b])
    hit, n = seeds.config_hit(cs, 2.0)
    assert n == 2
    assert (hit.iter, hit.train_time_s, hit.wall_time_s, hit.energy_j) == (12.0, 1.5, 3.0, 20.0)
    # 1.5: only seed 1 -> no time to target, one seed reached it
    assert seeds.config_hit(cs, 1.5) == (None, 1)
    assert seeds.config_hit(cs, 1.0) == (None, 0)
    # a seed without an energy counter: no energy, the times still given
    c = run(3, [ev(0, 4.0), ev(8, 2.0)])
    hit, n = seeds.config_hit(seeds.aggregate(CPU, "cpu", [a, c]), 2.0)
    assert (hit.iter, hit.energy_j, n) == (8.0, None, 2)


def test_the_key_a_seed_pairs_under():
    a, b = run(1, [ev(0, 4.0)]), run(2, [ev(0, 4.0)], run_id="b")
    twin = run(1, [ev(0, 4.0)], run_id="twin")
    none = run(None, [ev(0, 4.0)], run_id="n")
    cs = seeds.aggregate(CPU, "cpu", [a, b, twin, none])
    assert seeds.seed_key(cs, b) == 2
    # seed 1 ran twice here: neither run pairs; a run without a seed never pairs
    assert seeds.seed_key(cs, a) == ("unknown", "r1") and seeds.seed_key(cs, twin) == (
        "unknown",
        "twin",
    )
    assert seeds.seed_key(cs, none) == ("unknown", "n")
    log = run(1337, [ev(0, 4.0)], config=LOG)
    assert seeds.seed_key(seeds.aggregate(LOG, "log", [log]), log) == ("nanogpt", 1337)


def test_seed_curves_stop_at_the_first_loss_that_is_not_a_number():
    a = run(1, [ev(0, 4.0), ev(8, 2.0), ev(16, math.nan), ev(24, 1.0)])
    b = run(2, [ev(0, 4.0), ev(8, 2.5), ev(16, 2.25), ev(24, math.inf)])
    cs = seeds.aggregate(CPU, "cpu", [a, b])
    assert seeds.seed_curves(cs) == {0: {1: 4.0, 2: 4.0}, 8: {1: 2.0, 2: 2.5}, 16: {2: 2.25}}
    assert seeds.diverged_seeds(cs) == {1: 16, 2: 24}
    # mean curve: the iterations every seed evaluated with a finite loss
    curve = seeds.mean_curve(cs)
    assert curve.label == "cpu" and curve.points == {0: (4.0, 0.0), 8: (2.25, 1.0)}
    assert curve.seeds == {0: {1: 4.0, 2: 4.0}, 8: {1: 2.0, 2: 2.5}}


def test_a_run_recorded_as_diverged_diverged_at_its_last_iteration():
    # no NaN among its evaluations (the NaN loss stopped it between two): its last evaluation
    # (no rows to read: a hand-built run), else its iteration count
    d = run(1, [ev(0, 4.0), ev(8, 3.0)], status="diverged")
    ok = run(2, [ev(0, 4.0), ev(8, 3.0)])
    bare = run(3, [], status="diverged", iterations=7)
    cs = seeds.aggregate(CPU, "cpu", [d, ok, bare])
    assert seeds.diverged_seeds(cs) == {1: 8, 3: 7}


def test_a_lone_seed_finite_again_after_a_nan_has_no_seed_values_there():
    # the mean curve keeps 16 (every run, here one, has a finite loss there) but the seed's
    # curve ended at its NaN: no per-seed values at 16, an empty mapping
    a = run(1, [ev(0, 4.0), ev(8, math.nan), ev(16, 2.0)])
    curve = seeds.mean_curve(seeds.aggregate(CPU, "cpu", [a]))
    assert curve.points == {0: (4.0, 0.0), 16: (2.0, 2.0)}
    assert curve.seeds == {0: {1: 4.0}, 16: {}}


def test_a_diverged_run_on_file_diverged_at_its_last_row(tmp_path):
    from test_explain import load, write_run

    # recorded as diverged, its evaluations all finite: the last row's iteration (20)
    write_run(tmp_path / "a", 1, [4.0, 3.0, 2.5], status="diverged")
    [r] = load(tmp_path / "a")
    assert seeds.diverged_seeds(seeds.aggregate(r.config, "cpu", [r])) == {1: 20}
