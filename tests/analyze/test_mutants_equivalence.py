"""analyze/equivalence.py at the edges a one-line change would move (issue 30): each expected
value is worked out by hand here, or by scipy.stats on the raw numbers, never by the module.

Values are chosen exact in binary (0.25, 0.5, 1.0 ...) where a test sits on a bound, so that
`<` and `<=` part on an exact tie, not on rounding."""

import math

import pytest
from scipy import stats

from nanobench.analyze import equivalence as eq


def test_two_shared_seeds_are_enough_to_pair():
    # seeds 1 and 2 in both: B - A = 0.5 and 1.0, mean 0.75, sd sqrt(0.125) = 0.35355,
    # se = 0.35355 / sqrt 2 = 0.25, df 1; t(0.95, 1) = 6.3138, t(0.975, 1) = 12.7062
    p = eq.point_statistic(1, {1: 1.0, 2: 2.0}, {1: 1.5, 2: 3.0}, 0.02)
    assert (p.design, p.n_pairs, p.n_unpaired) == ("paired", 2, 0)
    assert p.diff == 0.75
    assert p.ci90 == pytest.approx((0.75 - 6.3138 * 0.25, 0.75 + 6.3138 * 0.25), abs=1e-4)
    assert p.ci95 == pytest.approx((0.75 - 12.7062 * 0.25, 0.75 + 12.7062 * 0.25), abs=1e-4)
    # t = 3 with 1 df: p = 1 - 2 atan(3) / pi (Cauchy)
    assert p.p == pytest.approx(1 - 2 * math.atan(3) / math.pi, abs=1e-12)  # 0.2048
    assert p.p == pytest.approx(stats.ttest_rel([1.5, 3.0], [1.0, 2.0]).pvalue, abs=1e-12)


def test_unpaired_difference_is_b_minus_a_with_welchs_df():
    # unequal sizes and spreads, so swapping A and B changes the sign and the df is not n - 1:
    # A = 1, 2, 3: mean 2, var 1, n 3 -> va = 1/3; B = 5, 7: mean 6, var 2, n 2 -> vb = 1
    # se = sqrt(4/3) = 1.1547; df = (4/3)^2 / ((1/3)^2 / 2 + 1^2 / 1) = (16/9) / (19/18) = 32/19
    p = eq.point_statistic(1, [1.0, 2.0, 3.0], [5.0, 7.0], 0.02)
    assert (p.design, p.n_a, p.n_b, p.n_pairs, p.n_unpaired) == ("unpaired", 3, 2, 0, 0)
    assert p.diff == 4.0
    diff, lo, hi, df = eq.welch_interval([1.0, 2.0, 3.0], [5.0, 7.0], 0.95)
    assert (diff, df) == (4.0, pytest.approx(32 / 19))
    half = stats.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert (lo, hi) == pytest.approx((4 - half, 4 + half))
    welch = stats.ttest_ind([5.0, 7.0], [1.0, 2.0, 3.0], equal_var=False)
    assert p.p == pytest.approx(welch.pvalue, abs=1e-12)
    assert p.ci95 == pytest.approx((lo, hi)) and p.ci90 == pytest.approx(
        (
            4 - stats.t.ppf(0.95, 32 / 19) * math.sqrt(4 / 3),
            4 + stats.t.ppf(0.95, 32 / 19) * math.sqrt(4 / 3),
        )
    )


def test_a_single_seed_on_either_side_is_undecided_with_no_interval():
    for a, b in (([1.0], [2.0, 3.0]), ([1.0, 2.0], [4.0])):
        p = eq.point_statistic(1, a, b, 0.02)
        assert (p.verdict, p.ci90, p.ci95, p.p, p.design) == (
            "undecided",
            None,
            None,
            None,
            "unpaired",
        )
    # the difference is still given: B's mean 2.5 minus A's 1.0
    assert eq.point_statistic(1, [1.0], [2.0, 3.0], 0.02).diff == 1.5
    # two seeds a side is enough for Welch: A var 0.5, B var 0.5, se = sqrt(0.25 + 0.25), df 2
    two = eq.point_statistic(1, [1.0, 2.0], [3.0, 4.0], 0.02)
    assert two.design == "unpaired" and two.ci95 == pytest.approx(
        (2 - 4.3027 * math.sqrt(0.5), 2 + 4.3027 * math.sqrt(0.5)), abs=1e-4
    )


def test_bit_identical_seeds_have_p_one_and_constant_differences_p_zero():
    same = eq.point_statistic(1, {1: 2.0, 2: 3.0}, {1: 2.0, 2: 3.0}, 0.02)
    assert (same.diff, same.ci90, same.ci95, same.p) == (0.0, (0.0, 0.0), (0.0, 0.0), 1.0)
    assert same.verdict == "equivalent"
    # every seed moved by exactly 0.5: no spread, a difference for certain
    moved = eq.point_statistic(1, {1: 2.0, 2: 3.0}, {1: 2.5, 2: 3.5}, 0.02)
    assert (moved.diff, moved.ci90, moved.p) == (0.5, (0.5, 0.5), 0.0)
    assert moved.verdict == "different"
    # unpaired with no spread on either side: Welch's se is 0, df infinite
    flat = eq.welch([2.0, 2.0], [2.5, 2.5])
    assert (flat.diff, flat.se, flat.df, flat.p_zero) == (0.5, 0.0, math.inf, 0.0)
    assert eq.welch([2.0, 2.0], [2.0, 2.0]).p_zero == 1.0


@pytest.mark.parametrize("shift", [0.25, -0.25])
def test_an_interval_ending_exactly_on_the_margin_is_not_inside_it(shift):
    # constant differences: the 90% interval is the single point `shift`, exactly +-margin
    a = {1: 1.0, 2: 2.0, 3: 3.0}
    b = {s: v + shift for s, v in a.items()}
    p = eq.point_statistic(1, a, b, 0.25)
    assert p.ci90 == (shift, shift) and p.p == 0.0
    assert p.verdict == "different"  # TOST needs strictly inside (-margin, +margin)
    # a hair inside the margin it is equivalent (the p of a zero difference is 0 all the same)
    assert eq.point_statistic(1, a, b, 0.2500001).verdict == "equivalent"


@pytest.mark.parametrize("shift", [0.5, -0.5])
def test_an_interval_spanning_zero_and_ending_on_the_margin_is_undecided(shift):
    # diffs 0 and +-0.5: mean +-0.25, se 0.25, df 1, p = 0.5 (not different); the margin is set
    # to the far end of the 90% interval itself, +-(0.25 + 6.3138 x 0.25) = 1.8284
    a = {1: 1.0, 2: 2.0}
    b = {1: 1.0, 2: 2.0 + shift}
    first = eq.point_statistic(1, a, b, 1.0)
    far = max(abs(first.ci90[0]), abs(first.ci90[1]))
    assert far == pytest.approx(0.25 + 6.3138 * 0.25, abs=1e-3)
    on = eq.point_statistic(1, a, b, far)
    assert on.p == pytest.approx(0.5) and on.verdict == "undecided"
    assert eq.point_statistic(1, a, b, far * 1.000001).verdict == "equivalent"


def test_an_interval_on_the_margin_with_no_significant_difference_is_undecided():
    # diffs 0.0 and 0.5: mean 0.25, se 0.25, df 1 -> the interval spans 0 (p = 0.5) and the margin
    a = {1: 1.0, 2: 2.0}
    p = eq.point_statistic(1, a, {1: 1.0, 2: 2.5}, 0.25)
    assert p.p == pytest.approx(0.5) and p.verdict == "undecided"  # t = 1, 1 df: 1 - 2 atan(1)/pi


def test_the_deciding_interval_is_the_90_percent_one():
    # diffs 0.00, 0.01, 0.02: mean 0.01, se 0.005774, df 2; 90%: +-2.920 se = +-0.01686 -> inside
    # 0.03; 95% would be +-4.303 se = +-0.02484 -> 0.0348, outside 0.03
    a = {1: 2.0, 2: 2.0, 3: 2.0}
    b = {1: 2.0, 2: 2.01, 3: 2.02}
    p = eq.point_statistic(1, a, b, 0.03)
    assert p.ci90[1] == pytest.approx(0.01 + 2.9200 * 0.01 / math.sqrt(3), abs=1e-4)
    assert p.ci95[1] == pytest.approx(0.01 + 4.3027 * 0.01 / math.sqrt(3), abs=1e-4)
    assert p.verdict == "equivalent"
    assert eq.DECIDING_LEVEL == pytest.approx(0.90) and eq.ALPHA == 0.05


def test_seeds_left_out_of_a_pairing_are_counted():
    # seeds 1-3 in both, 4 and 5 in A only, 9 in B only: 5 + 4 - 2 x 3 = 3 left out
    a = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0}
    b = {1: 1.5, 2: 2.5, 3: 3.75, 9: 0.0}
    p = eq.point_statistic(1, a, b, 0.02)
    assert (p.design, p.n_a, p.n_b, p.n_pairs, p.n_unpaired) == ("paired", 5, 4, 3, 3)
    # a seed that diverged on one side ran on both: counted there, not as left out
    d = eq.point_statistic(1, a, b, 0.02, diverged=((4, "b", 1),))
    assert d.n_unpaired == 2
    # unpaired designs leave none out
    assert eq.point_statistic(1, [1.0, 2.0], [1.0, 2.0, 3.0], 0.02).n_unpaired == 0


def test_holm_by_hand_with_ties_nan_and_the_cap():
    # m = 3: 0.01 x 3 = 0.03; 0.02 x 2 = 0.04; 0.5 x 1 = 0.5
    assert eq.holm([0.5, 0.01, 0.02]) == pytest.approx([0.5, 0.03, 0.04])
    # a NaN is a look with p = 1: m = 2, 0.02 x 2 = 0.04, then max(0.04, 1) = 1
    assert eq.holm([float("nan"), 0.02]) == pytest.approx([1.0, 0.04])
    assert eq.holm([None, 0.02]) == pytest.approx([1.0, 0.04])
    # capped at 1 and kept monotone: 0.4 x 3 = 1.2 -> 1; 0.45 x 2 = 0.9 -> max(1, 0.9) = 1
    assert eq.holm([0.4, 0.45, 0.9]) == [1.0, 1.0, 1.0]
    assert eq.holm([0.01]) == [0.01]


def test_mean_sd_and_the_normal_quantile_at_infinite_df():
    assert eq.mean_sd([1.0, 2.0, 3.0, 6.0]) == (3.0, pytest.approx(math.sqrt(14 / 3)))
    mean, sd = eq.mean_sd([4.0])
    assert mean == 4.0 and math.isnan(sd)
    assert eq.t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert eq.t_quantile(0.95, 3) == pytest.approx(2.353363, abs=1e-6)
    # an interval at df = inf is the normal one: 0.5 +- 1.959964 x 0.25
    assert eq.Interval(0.5, 0.25, math.inf).ci(0.95) == pytest.approx(
        (0.5 - 0.489991, 0.5 + 0.489991), abs=1e-6
    )
    assert eq.Interval(0.5, 0.25, 4).p_zero == pytest.approx(2 * stats.t.sf(2.0, 4))


def test_unknown_seeds_never_pair_and_are_named_unknown():
    assert eq.is_known(1337) and eq.is_known(("nanogpt", 1337)) and eq.is_known(0)
    assert not eq.is_known(None) and not eq.is_known(("unknown", 3))
    assert eq.seed_names([1, ("nanogpt", 1337), ("unknown", 0)]) == "1, nanogpt seed 1337"
    assert eq.seed_names([("unknown", 0)]) == "unknown" and eq.seed_names([]) == "unknown"
    # the same values as lists (seeds unknown): nothing shared
    s = eq.split_seeds([1.0, 2.0], [3.0, 4.0])
    assert s.shared == () and len(s.only_a) == 2 and len(s.only_b) == 2
    assert eq.split_seeds({}, {1: 1.0}) is None and eq.split_seeds({1: 1.0}, {}) is None


def test_seed_split_by_hand_and_in_words():
    # shared 1, 2: paired diff ((2.5 - 2.0) + (3.5 - 3.0)) / 2 = 0.5
    # A also ran 3 (4.0): A's mean of all 3.0 vs shared 2.5 -> a_extra +0.5
    # B also ran 7 and 8 (1.0, 2.0): B's mean of all 2.25 vs shared 3.0 -> b_extra -0.75
    # total: 2.25 - 3.0 = -0.75 = 0.5 + (-0.75) - 0.5
    s = eq.split_seeds({1: 2.0, 2: 3.0, 3: 4.0}, {1: 2.5, 2: 3.5, 7: 1.0, 8: 2.0})
    assert (s.shared, s.only_a, s.only_b) == ((1, 2), (3,), (7, 8))
    assert (s.diff, s.total, s.a_extra, s.b_extra) == (0.5, -0.75, 0.5, -0.75)
    assert s.differ and s.composition == -1.25
    assert s.on() == "on the 2 shared seeds"
    assert s.words("cpu", "gpu") == (
        "seed sets differ: 2 shared seeds; gpu's other seeds 7, 8 move its mean by -0.7500; "
        "cpu's other seed 3 moves its mean by +0.5000, so the means differ by -0.7500"
    )
    one = eq.split_seeds({1: 2.0, 5: 3.0}, {1: 2.5})
    assert one.on() == "on the 1 shared seed, 1"
    assert one.words("A", "B") == (
        "seed sets differ: 1 shared seed; A's other seed 5 moves its mean by +0.5000, "
        "so the means differ by +0.0000"
    )
    none = eq.split_seeds({1: 2.0}, {2: 3.0})
    assert (none.diff, none.total, none.a_extra, none.b_extra) == (1.0, 1.0, 0.0, 0.0)
    assert none.on() == "between the seed means (no shared seed)"
    assert none.words("A", "B") == (
        "no seed ran in both (B: 2; A: 1): the difference of means cannot be told from the "
        "choice of seeds unless it exceeds their seed-to-seed spread"
    )
    same = eq.split_seeds({1: 2.0}, {1: 3.0})
    assert not same.differ and same.words("A", "B") == "" and same.composition == 0.0


def test_compare_curves_method_words_and_edges():
    a = {0: {1: 4.0, 2: 4.0}, 10: {1: 2.0, 2: 3.0}, 20: {1: 1.0, 2: 2.0}}
    b = {0: {1: 4.0, 2: 4.0}, 10: {1: 2.0, 2: 3.0}, 20: {1: 1.0, 2: 2.0}, 30: {1: 0.5}}
    out = eq.compare_curves(a, b, margin=0.25)
    assert out["method"] == (
        "paired t intervals over the seeds; equivalent: TOST at alpha 0.05 (the 90% interval "
        "inside +/-0.25 nats) at each evaluation, an intersection-union test that needs no "
        "correction; different: the test of a zero difference, Holm-adjusted over 2 evaluations"
    )
    assert [p.iter for p in out["points"]] == [10, 20] and out["final"].iter == 20
    assert [p.verdict for p in out["points"]] == ["equivalent", "equivalent"]
    assert (out["margin"], out["last_a"], out["last_b"], out["too_short"]) == (0.25, 20, 30, False)
    assert out["first_iter_beyond_noise"] is None
    assert (out["diverged_a"], out["diverged_b"]) == ({}, {})
    # only iteration 0 in common: too short, nothing judged, and no design to name
    short = eq.compare_curves({0: [4.0, 4.1]}, {0: [4.0, 4.1], 5: [3.0]})
    assert short["too_short"] and short["points"] == [] and short["final"] is None
    assert short["method"].startswith("no t intervals") and short["margin"] == eq.DEFAULT_MARGIN
    empty = eq.compare_curves({}, {})
    assert (empty["too_short"], empty["last_a"], empty["last_b"]) == (False, None, None)
    # both designs named, sorted: paired at 10 (2 shared seeds), Welch at 20 (no seed known)
    mixed = eq.compare_curves(
        {10: {1: 1.0, 2: 2.0}, 20: [1.0, 2.0]}, {10: {1: 1.0, 2: 2.0}, 20: [1.0, 2.0]}
    )
    assert mixed["method"].startswith("paired and unpaired t intervals")
    # a look with a single seed a side tests nothing: one evaluation in the Holm count
    one = eq.compare_curves({10: [1.0, 2.0], 20: [1.0]}, {10: [1.0, 2.0], 20: [1.0]})
    assert one["method"].endswith("Holm-adjusted over 1 evaluations")


def test_a_difference_that_stays_significant_leaves_the_noise_where_it_starts():
    # constant per-seed differences (p = 0) from 20 on; at 10 none (p = 1)
    a = {10: {1: 1.0, 2: 2.0}, 20: {1: 1.0, 2: 2.0}, 30: {1: 1.0, 2: 2.0}}
    b = {10: {1: 1.0, 2: 2.0}, 20: {1: 1.5, 2: 2.5}, 30: {1: 1.5, 2: 2.5}}
    out = eq.compare_curves(a, b, margin=0.25)
    assert [p.verdict for p in out["points"]] == ["equivalent", "different", "different"]
    assert [p.p_holm for p in out["points"]] == [1.0, 0.0, 0.0]
    assert out["first_iter_beyond_noise"] == 20


def test_a_seed_that_diverged_on_one_side_only():
    # seed 2 diverged in B at iteration 20; both sides still agree on seeds 1 and 3
    a = {10: {1: 1.0, 2: 2.0, 3: 3.0}, 20: {1: 1.0, 2: 2.0, 3: 3.0}}
    b = {10: {1: 1.0, 2: 2.0, 3: 3.0}, 20: {1: 1.0, 3: 3.0}}
    out = eq.compare_curves(a, b, margin=0.25, diverged_b={2: 20})
    first, second = out["points"]
    assert first.diverged == () and first.verdict == "equivalent"
    assert second.diverged == ((2, "b", 20),) and second.verdict == "diverged"
    assert out["diverged_b"] == {2: 20} and out["diverged_a"] == {}
    # diverged on both sides by then: not one-sided
    both = eq.compare_curves(a, b, margin=0.25, diverged_a={2: 20}, diverged_b={2: 20})
    assert both["points"][1].diverged == ()
    # diverged in A at 20, in B only later: one-sided at 20
    later = eq.compare_curves(a, b, margin=0.25, diverged_a={2: 20}, diverged_b={2: 30})
    assert later["points"][1].diverged == ((2, "a", 20),)
    # a seed B never ran cannot diverge against it
    other = eq.compare_curves(a, b, margin=0.25, diverged_a={7: 10})
    assert [p.diverged for p in other["points"]] == [(), ()]
    # a single seed a side with a divergence says diverged, not undecided
    lone = eq.point_statistic(1, [1.0], [1.0], 0.25, diverged=((5, "a", 1),))
    assert lone.verdict == "diverged"
    # a significant difference on the surviving pairs is still "different"
    apart = eq.point_statistic(1, {1: 1.0, 3: 3.0}, {1: 1.5, 3: 3.5}, 0.25, diverged=((2, "b", 1),))
    assert apart.verdict == "different"


def test_band_is_the_seeds_mean_and_range():
    assert eq.band([2.0, 1.0, 6.0]) == (3.0, 1.0, 6.0, "min-max")
    assert eq.band([2.5]) == (2.5, 2.5, 2.5, "min-max")


def test_curve_at_takes_the_shared_seeds_mean_when_all_were_recorded():
    c = eq.Curve("A", {10: (2.0, 5.0), 20: (1.0, 9.0)}, {10: {1: 1.0, 2: 2.0, 3: 3.0}})
    assert c.last_iter == 20
    assert c.at(10, (1, 3)) == 2.0 and c.at(10, (1, 2)) == 1.5
    assert c.at(10) == 2.0 and c.at(10, (1, 4)) == 2.0  # seed 4 not recorded: every seed's mean
    assert c.at(20, (1,)) == 1.0  # no per-seed values at 20


# ---- explain_gap, by hand -----------------------------------------------------------------------
A = eq.Curve(
    "cpu fp32", {10: (3.0, 4.0), 20: (2.0, 8.0)}, {10: {1: 2.5, 2: 3.5}, 20: {1: 1.5, 2: 2.5}}
)
B = eq.Curve(
    "gpu bf16",
    {10: (2.75, 1.0), 20: (2.25, 2.0), 30: (1.75, 3.0)},
    {10: {1: 2.25, 2: 3.25}, 20: {1: 1.75, 2: 2.75}, 30: {1: 1.25, 2: 2.25}},
)


def test_explain_gap_by_hand():
    # last common evaluation 20: A 2.0 (8 s), B 2.25 (2 s); B goes on to 1.75 at 30
    out = eq.explain_gap(A, B)
    assert (out["iter"], out["total_gap"], out["at_equal_iters"], out["from_iterations"]) == (
        20,
        -0.25,
        0.25,
        -0.5,
    )
    assert (out["seed_composition"], out["shared_seeds"], out["speedup_to_iter"]) == (
        0.0,
        [1, 2],
        4.0,
    )
    assert out["train_time_s_to_iter"] == {"cpu fp32": 8.0, "gpu bf16": 2.0}
    assert (out["precision"], out["device"]) == (None, None)
    assert out["sentences"] == [
        "gpu bf16 ended at val 1.7500 (iteration 30), cpu fp32 at 2.0000 (iteration 20): a gap of -0.2500.",
        "At equal iterations (20) the gap is +0.2500: that much is hardware and precision.",
        "The other -0.5000 comes from iterations beyond 20: gpu bf16's 20-30 contribute -0.5000.",
        "gpu bf16 reached iteration 20 in 2.0 s of training, 4.00x sooner than cpu fp32 (8.0 s).",
    ]
    # the other way round: A is the faster one, and its own iterations beyond 20 count against it
    back = eq.explain_gap(B, A)
    assert (back["total_gap"], back["from_iterations"]) == (0.25, 0.5)
    assert back["sentences"][2] == (
        "The other +0.5000 comes from iterations beyond 20: gpu bf16's 20-30 contribute +0.5000."
    )
    assert back["sentences"][3] == (
        "gpu bf16 reached iteration 20 in 2.0 s of training, 4.00x sooner than cpu fp32 (8.0 s)."
    )


def test_explain_gap_speedup_under_a_second_of_training():
    # B reaches iteration 20 in 0.5 s of training, A in 8.0 s: 16x, however short the times
    fast = eq.Curve("gpu bf16", {10: (2.75, 0.25), 20: (2.25, 0.5)}, B.seeds)
    out = eq.explain_gap(A, fast)
    assert out["speedup_to_iter"] == 16.0  # A's 8.0 s over 0.5 s
    assert out["sentences"][-1] == (
        "gpu bf16 reached iteration 20 in 0.5 s of training, 16.00x sooner than cpu fp32 (8.0 s)."
    )


def test_explain_gap_splits_precision_from_the_device_on_the_seeds_all_three_ran():
    ref = eq.Curve("cpu bf16", {20: (2.125, 9.0)}, {20: {1: 1.625, 2: 2.625}})
    out = eq.explain_gap(A, B, precision_ref=ref)
    assert (out["precision"], out["device"]) == (0.125, 0.125)
    assert out["sentences"][3] == (
        "Of the equal-iteration gap, +0.1250 is precision (cpu bf16 vs cpu fp32) and +0.1250 the "
        "device itself (kernels, reduction order, dropout masks)."
    )
    # the reference ran seed 1 of the shared ones (and 3): A 1.5, ref 1.75, B 1.75 on seed 1,
    # not the reference's mean over its own seeds (2.0)
    one = eq.Curve("cpu bf16", {20: (2.0, 9.0)}, {20: {1: 1.75, 3: 2.25}})
    out = eq.explain_gap(A, B, precision_ref=one)
    assert (out["precision"], out["device"]) == (0.25, 0.0)
    assert out["sentences"][3].endswith("dropout masks) (on the 1 seed all three ran: 1).")
    none = eq.Curve("cpu bf16", {20: (1.75, 9.0)}, {20: {3: 1.75}})
    out = eq.explain_gap(A, B, precision_ref=none)
    assert (out["precision"], out["device"]) == (None, None)
    assert out["sentences"][3] == (
        "cpu bf16 ran none of the seeds cpu fp32 and gpu bf16 share: precision and device are not split."
    )
    # a reference without an evaluation at 20: nothing split, nothing said
    assert eq.explain_gap(A, B, precision_ref=eq.Curve("r", {10: (2.0, 1.0)}))["precision"] is None


def test_explain_gap_names_the_cause():
    def said(**kw):
        return eq.explain_gap(A, B, **kw)["sentences"][1].split("that much is ")[1]

    assert said(same_device=True) == "precision (or compilation): both ran on the same device."
    assert said(recipe_keys=("model.n_embd", "train.lr")) == (
        "the recipe (model.n_embd, train.lr), hardware and precision together."
    )
    assert said(recipe_keys=("model.n_embd",), same_device=True) == (
        "the recipe (model.n_embd), hardware and precision together."
    )
    assert said(recipe_keys=("model.n_embd",), same_device=True, same_precision=True) == (
        "the recipe (model.n_embd): both ran on the same device in the same precision."
    )
    assert said(other_program="nanoGPT") == (
        "the two programs (nanoGPT and nanobench: their batches, evaluation text and kernels): "
        "both ran on a device of the same name in the same precision."
    )


def test_explain_gap_on_differing_seed_sets():
    a = eq.Curve("A", {20: (2.0, 8.0)}, {20: {1: 1.5, 2: 2.5}})
    b = eq.Curve("B", {20: (3.0, 4.0)}, {20: {1: 2.0, 3: 4.0}})
    out = eq.explain_gap(a, b)
    # on seed 1: 2.0 - 1.5 = 0.5; the means differ by 1.0: the other 0.5 is which seeds ran
    assert (out["total_gap"], out["seed_composition"], out["shared_seeds"]) == (0.5, 0.5, [1])
    assert out["sentences"] == [
        "B ended at val 2.0000 (iteration 20), A at 1.5000 (iteration 20) on the 1 shared seed, 1: a gap of +0.5000.",
        "At equal iterations (20) the gap is +0.5000 on the 1 shared seed, 1: that much is hardware and precision.",
        "Seed sets differ: 1 shared seed; B's other seed 3 moves its mean by +1.0000; A's other "
        "seed 2 moves its mean by +0.5000, so the means differ by +1.0000.",
        "B reached iteration 20 in 4.0 s of training, 2.00x sooner than A (8.0 s).",
    ]
    # no training time recorded for B: no speed-up to state
    still = eq.explain_gap(a, eq.Curve("B", {20: (3.0, 0.0)}))
    assert still["speedup_to_iter"] is None and not any("sooner" in s for s in still["sentences"])
    assert eq.explain_gap(a, eq.Curve("B", {30: (3.0, 1.0)}))["sentences"] == [
        "A and B share no evaluation iteration; nothing to compare."
    ]
