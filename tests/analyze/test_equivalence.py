"""The equivalence statistics against values computed by hand (t tables to 3 decimals)."""

import math

import pytest

from nanobench.analyze import equivalence as eq


@pytest.mark.parametrize("p,df,expected", [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.95, 4, 2.132), (0.975, 10, 2.228), (0.975, math.inf, 1.960),
])
def test_t_quantile_matches_tables(p, df, expected):
    assert eq.t_quantile(p, df) == pytest.approx(expected, abs=1e-3)


def test_welch_interval_by_hand():
    # A: mean 2.1, sd 0.1; B: mean 2.4, sd 0.1; se = sqrt(2 * 0.01 / 3) = 0.08165, df = 4
    diff, lo, hi, df = eq.welch_interval([2.0, 2.1, 2.2], [2.3, 2.4, 2.5], 0.95)
    assert diff == pytest.approx(0.3) and df == pytest.approx(4.0)
    assert lo == pytest.approx(0.3 - 2.776 * 0.08165, abs=1e-3) and hi == pytest.approx(0.3 + 2.776 * 0.08165, abs=1e-3)


def test_verdicts():
    # clearly apart: 95% CI [0.073, 0.527] excludes 0 -> different
    assert eq.verdict_at(0, [2.0, 2.1, 2.2], [2.3, 2.4, 2.5], 0.02).verdict == "different"
    # 1e-3 apart with 1e-3 spread: 90% CI [-0.0007, 0.0027] inside +-0.02 -> equivalent
    assert eq.verdict_at(0, [2.0, 2.001, 2.002], [2.001, 2.002, 2.003], 0.02).verdict == "equivalent"
    # two noisy seeds each: the interval spans 0 and the margin -> undecided
    assert eq.verdict_at(0, [2.0, 2.1], [2.05, 2.12], 0.02).verdict == "undecided"
    # a single seed has no spread to compare against
    single = eq.verdict_at(0, [2.0], [2.0, 2.1], 0.02)
    assert single.verdict == "undecided" and single.ci95 is None and single.diff == pytest.approx(0.05)


def test_compare_curves_finds_where_they_leave_the_noise():
    a = {0: [4.17, 4.171, 4.172], 250: [2.44, 2.45, 2.46], 500: [2.30, 2.31, 2.32]}
    b = {0: [4.17, 4.171, 4.172], 250: [2.45, 2.46, 2.47], 500: [2.50, 2.51, 2.52], 750: [2.0]}
    out = eq.compare_curves(a, b, margin=0.02)
    assert [p.iter for p in out["points"]] == [0, 250, 500]  # common evaluations only
    assert [p.verdict for p in out["points"]] == ["equivalent", "undecided", "different"]
    assert out["first_iter_beyond_noise"] == 500 and out["final"].iter == 500


def test_band_kinds():
    assert eq.band([1.0, 2.0, 3.0]) == (2.0, 1.0, 3.0, "min-max")
    mean, lo, hi, kind = eq.band([1.0, 2.0, 3.0, 4.0, 5.0])
    # sd = 1.5811, t(0.975, 4) = 2.776: half-width = 2.776 * 1.5811 / sqrt(5) = 1.963
    assert kind == "95% CI" and mean == 3.0 and lo == pytest.approx(1.037, abs=1e-3) and hi == pytest.approx(4.963, abs=1e-3)


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
    assert "6.00x sooner than cpu fp32" in text and "cuda bf16's 2000-5000 contribute -0.1800" in text
    # the other way round: the longer run is A, so its extra iterations count against the gap
    back = eq.explain_gap(gpu, cpu)
    assert back["total_gap"] == pytest.approx(0.19) and back["from_iterations"] == pytest.approx(0.18)


def test_explain_gap_without_common_iterations():
    out = eq.explain_gap(eq.Curve("a", {0: (1.0, 0.0)}), eq.Curve("b", {5: (1.0, 1.0)}))
    assert "share no evaluation" in out["sentences"][0]


def test_explain_gap_on_one_device_calls_it_precision():
    a = eq.Curve("cpu fp32", {0: (4.0, 0.0), 100: (2.0, 3.0)})
    b = eq.Curve("cpu bf16", {0: (4.0, 0.0), 100: (2.01, 2.0)})
    text = " ".join(eq.explain_gap(a, b, same_device=True)["sentences"])
    assert "+0.0100: that much is precision (or compilation)" in text
    assert "hardware" not in " ".join(eq.explain_gap(a, b, same_device=True)["sentences"])
