"""The equivalence statistics against values computed by hand (t tables to 3 decimals)."""

import math

import pytest
from scipy import stats

from nanobench.analyze import equivalence as eq


@pytest.mark.parametrize(
    "p,df,expected",
    [
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.95, 4, 2.132),
        (0.975, 10, 2.228),
        (0.975, math.inf, 1.960),
    ],
)
def test_t_quantile_matches_tables(p, df, expected):
    assert eq.t_quantile(p, df) == pytest.approx(expected, abs=1e-3)


def test_welch_interval_by_hand():
    # A: mean 2.1, sd 0.1; B: mean 2.4, sd 0.1; se = sqrt(2 * 0.01 / 3) = 0.08165, df = 4
    diff, lo, hi, df = eq.welch_interval([2.0, 2.1, 2.2], [2.3, 2.4, 2.5], 0.95)
    assert diff == pytest.approx(0.3) and df == pytest.approx(4.0)
    assert lo == pytest.approx(0.3 - 2.776 * 0.08165, abs=1e-3) and hi == pytest.approx(
        0.3 + 2.776 * 0.08165, abs=1e-3
    )


def test_verdicts():
    # clearly apart: 95% CI [0.073, 0.527] excludes 0 -> different
    assert eq.point_statistic(0, [2.0, 2.1, 2.2], [2.3, 2.4, 2.5], 0.02).verdict == "different"
    # 1e-3 apart with 1e-3 spread: 90% CI [-0.0007, 0.0027] inside +-0.02 -> equivalent
    assert (
        eq.point_statistic(0, [2.0, 2.001, 2.002], [2.001, 2.002, 2.003], 0.02).verdict
        == "equivalent"
    )
    # two noisy seeds each: the interval spans 0 and the margin -> undecided
    assert eq.point_statistic(0, [2.0, 2.1], [2.05, 2.12], 0.02).verdict == "undecided"
    # a single seed has no spread to compare against
    single = eq.point_statistic(0, [2.0], [2.0, 2.1], 0.02)
    assert (
        single.verdict == "undecided" and single.ci95 is None and single.diff == pytest.approx(0.05)
    )


def test_compare_curves_finds_where_they_leave_the_noise():
    a = {0: [4.17, 4.171, 4.172], 250: [2.44, 2.45, 2.46], 500: [2.30, 2.31, 2.32]}
    b = {0: [4.17, 4.171, 4.172], 250: [2.45, 2.46, 2.47], 500: [2.50, 2.51, 2.52], 750: [2.0]}
    out = eq.compare_curves(a, b, margin=0.02)
    # common evaluations after training began only (iteration 0 is the initial weights)
    assert [p.iter for p in out["points"]] == [250, 500]
    assert [p.verdict for p in out["points"]] == ["undecided", "different"]
    assert out["first_iter_beyond_noise"] == 500 and out["final"].iter == 500


def test_band_kinds():
    # one meaning at every number of seeds: the seeds' range (issue 24, item 8)
    assert eq.band([1.0, 2.0, 3.0]) == (2.0, 1.0, 3.0, "min-max")
    assert eq.band([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, 1.0, 5.0, "min-max")


def test_explain_gap_splits_iterations_precision_and_device():
    # The README's question: laptop 1.89 after 2000 iterations, GPU 1.70 after 5000.
    cpu = eq.Curve("cpu fp32", {0: (4.17, 0.0), 2000: (1.89, 60.0)})
    gpu = eq.Curve("cuda bf16", {0: (4.17, 0.0), 2000: (1.88, 10.0), 5000: (1.70, 25.0)})
    cpu_bf16 = eq.Curve("cpu bf16", {0: (4.17, 0.0), 2000: (1.885, 58.0)})
    out = eq.explain_gap(cpu, gpu, precision_ref=cpu_bf16)
    assert out["iter"] == 2000
    assert out["total_gap"] == pytest.approx(-0.19)
    assert out["at_equal_iters"] == pytest.approx(-0.01)
    assert out["from_iterations"] == pytest.approx(-0.18)
    assert out["precision"] == pytest.approx(-0.005) and out["device"] == pytest.approx(-0.005)
    assert out["speedup_to_iter"] == pytest.approx(6.0)
    text = " ".join(out["sentences"])
    assert (
        "6.00x sooner than cpu fp32" in text and "cuda bf16's 2000-5000 contribute -0.1800" in text
    )
    # the other way round: the longer run is A, so its extra iterations count against the gap
    back = eq.explain_gap(gpu, cpu)
    assert back["total_gap"] == pytest.approx(0.19) and back["from_iterations"] == pytest.approx(
        0.18
    )


def test_explain_gap_without_common_iterations():
    out = eq.explain_gap(eq.Curve("a", {0: (1.0, 0.0)}), eq.Curve("b", {5: (1.0, 1.0)}))
    assert "share no evaluation" in out["sentences"][0]


def test_explain_gap_on_one_device_calls_it_precision():
    a = eq.Curve("cpu fp32", {0: (4.0, 0.0), 100: (2.0, 3.0)})
    b = eq.Curve("cpu bf16", {0: (4.0, 0.0), 100: (2.01, 2.0)})
    text = " ".join(eq.explain_gap(a, b, same_device=True)["sentences"])
    assert "+0.0100: that much is precision (or compilation)" in text
    assert "hardware" not in " ".join(eq.explain_gap(a, b, same_device=True)["sentences"])


# ---- paired vs unpaired, by hand (issue 13) ----------------------------------------------------
# A and B by seed; per-seed differences B - A = 0.01, 0.02, 0.00: mean 0.01, sd 0.01,
# se = 0.01 / sqrt(3) = 0.005774, df 2. t(0.975, 2) = 4.303, t(0.95, 2) = 2.920.
A = {1: 2.0, 2: 2.1, 3: 2.2}
B = {1: 2.01, 2: 2.12, 3: 2.20}


def test_paired_interval_by_hand():
    p = eq.point_statistic(0, A, B, 0.02)
    assert (p.design, p.n_pairs, p.n_unpaired) == ("paired", 3, 0)
    assert p.diff == pytest.approx(0.01)
    assert p.ci95 == pytest.approx(
        (0.01 - 4.303 * 0.005774, 0.01 + 4.303 * 0.005774), abs=1e-4
    )  # -0.0148, 0.0348
    assert p.ci90 == pytest.approx(
        (0.01 - 2.920 * 0.005774, 0.01 + 2.920 * 0.005774), abs=1e-4
    )  # -0.0069, 0.0269
    # t = 0.01 / 0.005774 = sqrt(3); Student t with 2 df: F(t) = 1/2 + t / (2 sqrt(2 + t^2)) -> p = 1 - sqrt(3/5)
    assert p.p == pytest.approx(1 - math.sqrt(3 / 5), abs=1e-9)  # 0.2254
    assert p.verdict == "undecided"  # the 90% interval reaches past +0.02
    assert eq.point_statistic(0, A, B, 0.03).verdict == "equivalent"


def test_the_same_numbers_without_seeds_are_unpaired_and_far_wider():
    p = eq.point_statistic(0, list(A.values()), list(B.values()), 0.02)
    # Welch: A sd 0.1, B sd sqrt(0.0091) = 0.09539; se = sqrt(0.01 / 3 + 0.0091 / 3) = 0.07979
    assert (p.design, p.n_pairs) == ("unpaired", 0) and p.diff == pytest.approx(0.01)
    # df = (va + vb)^2 / (va^2 / 2 + vb^2 / 2) = 3.9911, t(0.975, 3.9911) = 2.7787 (scipy),
    # half-width 2.7787 x 0.07979 = 0.2217, against 0.0248 paired
    va, vb = 0.01 / 3, 0.0091 / 3
    df = (va + vb) ** 2 / (va * va / 2 + vb * vb / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert df == pytest.approx(3.9911, abs=1e-4) and half == pytest.approx(0.2217, abs=1e-4)
    assert p.ci95 == pytest.approx((0.01 - half, 0.01 + half))


def test_seeds_that_partly_pair():
    # seeds 1-3 pair; seed 4 (A only) and 9 (B only) are left out of the paired statistic
    p = eq.point_statistic(0, {**A, 4: 2.5}, {**B, 9: 1.0}, 0.02)
    assert (p.design, p.n_pairs, p.n_unpaired, p.n_a, p.n_b) == ("paired", 3, 2, 4, 4)
    # the interval of seeds 1-3 alone, worked out above test_paired_interval_by_hand
    assert p.diff == pytest.approx(0.01) and p.ci95 == pytest.approx(
        (0.01 - 4.303 * 0.005774, 0.01 + 4.303 * 0.005774), abs=1e-4
    )
    # one shared seed is no pairing: Welch over all seeds, the textbook case above
    w = eq.point_statistic(0, {1: 2.0, 2: 2.1, 3: 2.2}, {1: 2.3, 5: 2.4, 6: 2.5}, 0.02)
    assert (w.design, w.n_pairs) == ("unpaired", 1) and w.diff == pytest.approx(0.3)
    assert w.ci95 == pytest.approx((0.3 - 2.776 * 0.08165, 0.3 + 2.776 * 0.08165), abs=1e-3)


def test_holm_adjustment_by_hand():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> monotone 0.06
    assert eq.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert eq.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and eq.holm([]) == []


def test_many_looks_do_not_leave_the_noise_on_one_lucky_evaluation():
    # at iteration 5 the differences are 0.05, 0.06, 0.07: t = 0.06 / (0.01 / sqrt 3) = 10.39, df 2,
    # p = 1 - t / sqrt(2 + t^2) = 0.0092: alone, "different"
    flat = {it: ({1: 2.0, 2: 2.0, 3: 2.0}, {1: 2.0, 2: 2.0, 3: 2.0}) for it in range(1, 21)}
    flat[5] = ({1: 2.0, 2: 2.0, 3: 2.0}, {1: 2.05, 2: 2.06, 3: 2.07})
    alone = eq.point_statistic(5, *flat[5], 0.02)
    t = 0.06 / (0.01 / math.sqrt(3))
    assert alone.p == pytest.approx(1 - t / math.sqrt(2 + t * t)) and alone.verdict == "different"
    # one of 20 looks: Holm multiplies it by 20 -> 0.18: not beyond the noise
    out = eq.compare_curves(
        {it: a for it, (a, _) in flat.items()}, {it: b for it, (_, b) in flat.items()}, 0.02
    )
    five = out["points"][4]
    assert five.iter == 5 and five.p_holm == pytest.approx(20 * alone.p)
    assert five.verdict == "undecided" and out["first_iter_beyond_noise"] is None
    # one of 3 looks: 3 x 0.0092 = 0.028 < 0.05 -> "different" there, but it comes back into the
    # noise at 6, so it does not leave the noise (it must stay out: issue 24, item 7)
    few = eq.compare_curves(
        {it: flat[it][0] for it in (4, 5, 6)}, {it: flat[it][1] for it in (4, 5, 6)}, 0.02
    )
    assert few["first_iter_beyond_noise"] is None and few["points"][1].verdict == "different"
    # the last look: 5 and then nothing after it -> it leaves the noise at 5 and stays out
    end = eq.compare_curves(
        {it: flat[it][0] for it in (4, 5)}, {it: flat[it][1] for it in (4, 5)}, 0.02
    )
    assert end["first_iter_beyond_noise"] == 5
