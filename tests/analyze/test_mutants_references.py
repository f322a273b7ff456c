"""analyze/references.py by hand (issue 30): prediction bands from scipy's t on the raw
numbers, the Bonferroni level per band, a band's edges counted inside, nanoGPT's "best" figure
against the lowest loss so far, and the sentences said."""

import math

import pytest
from scipy import stats

from nanobench.analyze import references as ref

GPU_SOURCE = (
    "nanoGPT README, GPU recipe: best validation loss 1.4697 (5000 iterations, A100), ±0.05; "
    "held against the run's lowest val loss up to 5000"
)


def band_by_hand(values, level):
    n = len(values)
    mean = sum(values) / n
    sd = stats.tstd(values)
    half = stats.t.ppf(1 - (1 - level) / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def test_prediction_band_at_a_given_level():
    # 1, 2, 3: mean 2, sd 1; t(0.95, 2) = 2.919986 x sqrt(4/3) = 3.371709
    assert ref.prediction_band([1.0, 2.0, 3.0], 0.9) == pytest.approx(
        (2 - 3.371709, 2 + 3.371709), abs=1e-6
    )
    # 2, 4: mean 3, sd sqrt 2; t(0.975, 1) = 12.706205 x sqrt 2 x sqrt(3/2) = 12.706205 x sqrt 3
    assert ref.prediction_band([2.0, 4.0]) == pytest.approx(
        (3 - 12.706205 * math.sqrt(3), 3 + 12.706205 * math.sqrt(3)), abs=1e-5
    )
    assert ref.prediction_band([2.0]) is None and ref.prediction_band([]) is None


def test_seed_bands_share_the_false_alarm_rate_and_leave_the_runs_own_seed_out():
    per_iter = {10: (1.0, 2.0, 3.0, 9.0), 20: (2.0, 4.0, 3.0, 8.0), 30: (1.0, 1.0, 2.0, 7.0)}
    seeds = (1, 2, 3, 4)
    got = ref.seed_bands(per_iter, seeds, "here", iters={10, 20}, exclude_seed=4)
    # two bands made: each at 1 - 0.05 / 2 = 97.5%, from seeds 1-3 only
    assert [b.iter for b in got] == [10, 20] and all(b.kind == "seeds" for b in got)
    assert (got[0].low, got[0].high) == pytest.approx(band_by_hand([1.0, 2.0, 3.0], 0.975))
    assert (got[1].low, got[1].high) == pytest.approx(band_by_hand([2.0, 4.0, 3.0], 0.975))
    assert got[0].source == (
        "prediction bands of seeds 1, 2, 3 (its own seed 4 left out), 97.50% each, 95% together "
        "over 2, here"
    )
    # all three iterations, all four seeds: 1 - 0.05 / 3 each, nothing left out
    every = ref.seed_bands(per_iter, seeds, "here")
    assert len(every) == 3 and (every[2].low, every[2].high) == pytest.approx(
        band_by_hand([1.0, 1.0, 2.0, 7.0], 1 - 0.05 / 3)
    )
    assert every[0].source == (
        "prediction bands of seeds 1, 2, 3, 4, 98.33% each, 95% together over 3, here"
    )
    # one seed left after leaving the run's own out: no band to hold it to
    assert ref.seed_bands({10: (1.0, 2.0)}, (1, 2), "here", exclude_seed=2) == []


def test_nanogpts_gpu_figure_is_held_against_the_lowest_loss_so_far():
    [b] = ref.bands("shakespeare_char")
    assert (b.iter, b.low, b.high, b.kind) == (5000, 1.4697 - 0.05, 1.4697 + 0.05, "best")
    assert b.source == GPU_SOURCE
    # the best up to 5000 is 1.4697 + 0.05 exactly: the band's edge is inside it
    c = ref.check("r", "shakespeare_char", [(4000, 1.6), (5000, 1.4697 + 0.05), (6000, 1.0)])
    assert c.checked == ((5000, 1.4697 + 0.05, b),) and c.first_outside is None
    assert c.sentence() == (
        "r: normal, inside the reference bands of shakespeare_char at its one check "
        "(iterations 5000-5000)."
    )
    low = ref.check("r", "shakespeare_char", [(4000, 1.4697 - 0.05), (5000, 1.6)])
    assert low.first_outside is None  # 4000's loss is the lowest up to 5000, the low edge
    # above the band: said with its value, the band and where it comes from
    high = ref.check("r", "shakespeare_char", [(4000, 1.7), (5000, 1.6)])
    assert high.first_outside == (5000, 1.6, b)
    assert high.sentence() == (
        "r: NOT NORMAL from iteration 5000: its best val loss up to 5000 1.6000 is above the band "
        f"1.4197-1.5197 ({GPU_SOURCE})."
    )
    # a run that stopped before 5000 meets no band
    short = ref.check("r", "shakespeare_char", [(4000, 1.6)])
    assert short.checked == () and short.first_outside is None
    assert short.sentence() == (
        "r: no evaluation at an iteration with a reference point of shakespeare_char."
    )
    assert ref.check("r", "no_such_scenario", [(10, 1.0)]) is None


def test_the_cpu_recipe_at_2000_against_the_other_seeds_and_nanogpts_figure():
    cpu = ref.SEED_RUNS["shakespeare_char_cpu"][2][2000]  # seeds 1337, 1338, 1339
    # run of seed 1337: held to seeds 1338 and 1339 (one band: 95%) and to 1.88 +- 0.05
    low, high = band_by_hand(cpu[1:], 0.95)
    c = ref.check("r", "shakespeare_char_cpu", [(2000, 1.88 - 0.05)], seed=1337)
    seeds_band, published = [b for _, _, b in c.checked]
    assert (seeds_band.low, seeds_band.high) == pytest.approx((low, high))
    assert (published.low, published.high) == (1.88 - 0.05, 1.88 + 0.05)
    assert published.kind == "at" and published.source == (
        "nanoGPT README, CPU recipe: 'a loss of only 1.88' after 2000 iterations, ±0.05"
    )
    assert [it for it, _, _ in c.checked] == [2000, 2000] and c.first_outside is None
    assert c.sentence() == (
        "r: normal, inside the reference bands of shakespeare_char_cpu at all 2 checks "
        "(iterations 2000-2000; seed bands: prediction bands of seeds 1338, 1339 (its own seed "
        "1337 left out), 95.00% each, 95% together over 1, results/examples/cpu-fp32-vs-bf16 "
        "(cpu fp32))."
    )
    # just below nanoGPT's band: flagged there, below it
    below = ref.check("r", "shakespeare_char_cpu", [(2000, 1.82)], seed=1337)
    assert below.first_outside[2].kind == "at"
    assert below.sentence().startswith(
        "r: NOT NORMAL from iteration 2000: val loss 1.8200 is below the band 1.8300-1.9300"
    )
    j = ref.to_json(below)
    assert (j["run_id"], j["scenario"], j["normal"]) == ("r", "shakespeare_char_cpu", False)
    assert j["first_outside"] == {
        "iter": 2000,
        "val_loss": 1.82,
        "low": 1.88 - 0.05,
        "high": 1.88 + 0.05,
        "source": published.source,
        "kind": "at",
    }
    assert len(j["checked"]) == 2 and j["sentence"] == below.sentence()
    assert ref.to_json(c)["first_outside"] is None and ref.to_json(c)["normal"]
