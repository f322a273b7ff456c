"""Analysis end to end: pairs, seeds, groups, verdicts and the compare command's text and
JSON output against a golden file built from committed hand-made fixtures
(tests/fixtures/make_fixtures.py documents every number used below)."""

import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from nanobench.analyze import compare, pairs, runs, seeds, verdicts
from nanobench.analyze.config import Config
from nanobench.analyze.runs import Evaluation, Hit
from nanobench.present import tables
from nanobench.store import results

FIX = Path(__file__).parents[1] / "fixtures"
GOLDEN = FIX / "compare.golden.txt"
PLAIN = {"NO_COLOR": "1", "COLUMNS": "160"}  # the width the golden file was rendered at


def ev(it, val, t, w=None):
    return Evaluation(it, val, None, t, w if w is not None else 2 * t)


# ---- pure statistics, hand-computed ---------------------------------------------------------


def test_speedup_ratio_of_medians_with_quartile_range():
    base = [0.08, 0.10, 0.12]  # Q1 0.09, median 0.10, Q3 0.11
    other = [0.02, 0.025, 0.03]  # Q1 0.0225, median 0.025, Q3 0.0275
    s = pairs.speedup(base, other)
    assert s.ratio == pytest.approx(4.0)  # 0.10 / 0.025
    assert s.low == pytest.approx(0.09 / 0.0275)  # 3.2727
    assert s.high == pytest.approx(0.11 / 0.0225)  # 4.8889
    one = pairs.speedup([0.1], [0.05])  # one step each: no spread, ratio 2
    assert (one.ratio, one.low, one.high) == pytest.approx((2.0, 2.0, 2.0))
    assert pairs.speedup([], [0.1]) is None


def _stats(cfg, seed, evs, steps):
    return runs.RunStats(
        run_id=f"{cfg.label()}-{seed}",
        path=f"/x/{cfg.label()}-{seed}",
        scenario="s",
        dataset="d",
        dataset_sha256="h",
        config=cfg,
        seed=seed,
        threads=2,
        torch_version="2",
        status="completed",
        targets=(2.0,),
        iterations=8,
        final_train_loss=None,
        final_val_loss=evs[-1].val_loss if evs else None,
        best_val_loss=min(e.val_loss for e in evs) if evs else None,
        median_step_s=runs.percentile(steps, 50),
        p90_step_s=None,
        tokens_per_s=None,
        mfu=None,
        mem_peak_bytes=None,
        energy_j=None,
        train_time_s=1.0,
        wall_time_s=2.0,
        evaluations=tuple(evs),
        step_times_s=np.asarray(steps, float),
    )


CPU = Config("cpu", "EPYC", "fp32", False)
GPU = Config("cuda", "H100", "bf16", False)


def test_a_single_run_group_has_no_pairs_and_its_own_baseline():
    c = compare.compare_runs([_stats(CPU, 1, [ev(0, 3.0, 0.0), ev(8, 2.5, 1.0)], [0.1, 0.1])])
    [g] = c.groups
    assert g.baseline.label == "cpu fp32" and g.pairs == [] and c.warnings == []
    assert seeds.config_hit(g.baseline, 2.0) == (None, 0)  # never reached


def test_seeds_aggregate_and_a_target_counts_only_when_every_seed_reached_it():
    runs = [
        _stats(GPU, 1, [ev(0, 3.0, 0.0), ev(4, 1.9, 0.15), ev(8, 1.4, 0.25)], [0.02, 0.03]),
        _stats(GPU, 2, [ev(0, 3.0, 0.0), ev(4, 2.1, 0.15), ev(8, 2.05, 0.25)], [0.025]),
    ]
    cs = seeds.aggregate(GPU, "cuda bf16", runs)
    assert cs.median_step_s == pytest.approx(0.025)  # pooled 0.02, 0.025, 0.03
    assert cs.final_val_loss == pytest.approx((1.4 + 2.05) / 2)
    assert seeds.config_hit(cs, 2.0) == (None, 1)  # seed 2 never got to 2.0
    hit, n = seeds.config_hit(cs, 2.5)  # both at iter 4
    assert n == 2 and hit == Hit(4.0, 0.15, 0.3)


def test_baseline_is_cpu_fp32_else_the_slowest():
    fast_cpu = seeds.aggregate(CPU, "cpu fp32", [_stats(CPU, 1, [], [0.01])])
    slow_gpu = seeds.aggregate(GPU, "cuda bf16", [_stats(GPU, 1, [], [0.5])])
    assert compare.choose_baseline([slow_gpu, fast_cpu]) is fast_cpu
    bf16_cpu = Config("cpu", "EPYC", "bf16", False)
    a = seeds.aggregate(bf16_cpu, "cpu bf16", [_stats(bf16_cpu, 1, [], [0.2])])
    assert compare.choose_baseline([slow_gpu, a]) is slow_gpu
    assert compare.choose_baseline([a, slow_gpu]) is slow_gpu  # order does not matter


def test_verdict_when_only_one_configuration_reaches_the_target():
    base = seeds.aggregate(
        CPU, "cpu fp32", [_stats(CPU, 1, [ev(0, 3.0, 0.0), ev(8, 2.2, 1.0)], [0.1])]
    )
    other = seeds.aggregate(
        GPU, "cuda bf16", [_stats(GPU, 1, [ev(0, 3.0, 0.0), ev(8, 1.9, 0.2)], [0.025])]
    )
    p = pairs.compare_pair(base, other, (2.0,))
    assert p.targets[0].base is None and p.targets[0].train_time_ratio is None
    assert (
        "cuda bf16 reached val 2.00 after 0.2 s of training; cpu fp32 never did (best 2.2000)"
        in p.verdict
    )
    p = pairs.compare_pair(base, other, (1.0,))
    assert "neither reached val 1.00" in p.verdict


# ---- the committed fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_comparison():
    return compare.compare_files([str(FIX / "compare"), str(FIX / "compare-other")])


def test_fixture_answers(fixture_comparison):
    c = fixture_comparison
    assert len(c.groups) == 2 and "compared separately, never mixed" in c.warnings[0]
    g = c.groups[0]
    assert g.dataset_sha256 == "a" * 64 and g.baseline.label == "cpu fp32"
    [p] = g.pairs
    assert p.other.label == "cuda bf16" and len(p.other.runs) == 2
    assert p.speedup.ratio == pytest.approx(4.0)  # 0.1 / 0.025
    t2, t15 = p.targets
    # val <= 2.0: cpu at iter 4 (exactly 2.0), train 0.6, wall 1.3; cuda seeds at iter 4 (0.15 s, wall 0.65)
    # and iter 8 (0.25 s, wall 0.75) -> mean iter 6, train 0.2, wall 0.7
    assert (t2.base.iter, t2.base.train_time_s, t2.base.wall_time_s) == pytest.approx((4, 0.6, 1.3))
    assert (t2.other.iter, t2.other.train_time_s, t2.other.wall_time_s) == pytest.approx(
        (6, 0.2, 0.7)
    )
    assert (t2.iter_ratio, t2.train_time_ratio, t2.wall_time_ratio) == pytest.approx(
        (4 / 6, 3.0, 1.3 / 0.7)
    )
    # energy (cuda only, 10 J a step): s1 reached 2.0 at wall 0.65 s (40 J), s2 at 0.75 s (80 J) -> 60 J
    assert t2.base.energy_j is None and t2.other.energy_j == pytest.approx(60.0)
    # val <= 1.5: cpu never (best 1.6); both cuda seeds at iter 8
    assert t15.base is None and t15.other.iter == 8 and t15.train_time_ratio is None
    # equal iteration 8: cpu 1.6, cuda mean(1.4, 1.45) = 1.425
    assert (p.equal_iter.at, p.equal_iter.base_val, p.equal_iter.other_val) == pytest.approx(
        (8, 1.6, 1.425)
    )
    # equal train time 0.25 s (cuda's last evaluation): cpu 3.0 - 1.0 * 0.25 / 0.6 = 2.58333
    assert p.equal_time.at == pytest.approx(0.25)
    # the seed sets differ (cpu ran seed 1, cuda seeds 1 and 2): the difference is taken on the
    # shared seed 1 (cuda s1: 1.4 at iteration 8, reached at 0.25 s), and cuda's seed 2 is said apart
    assert p.equal_time.base_val == pytest.approx(
        2.583333333
    ) and p.equal_time.diff == pytest.approx(1.4 - 2.583333333)
    assert p.equal_iter.diff == pytest.approx(1.4 - 1.6)
    split = p.equal_iter.split
    assert split.shared == (1,) and split.only_b == (2,) and split.b_extra == pytest.approx(0.025)
    assert "at equal iterations (8) their val loss differs by -0.2000" in p.verdict
    assert (
        "on the 1 shared seed, 1" in p.verdict and "seed 2 moves its mean by +0.0250" in p.verdict
    )
    assert any(x.startswith("dtype differs") for x in g.confounds)
    assert any(x.startswith("torch differs") for x in g.confounds)
    other = c.groups[1]
    assert other.dataset_sha256 == "b" * 64 and other.pairs == []


def test_compare_output_matches_golden_file(nb):
    # Only compares: the committed file is regenerated on purpose, by
    # `PYTHONPATH=. python tests/fixtures/make_fixtures.py --golden`, and the diff reviewed.
    out = nb("compare", FIX / "compare", FIX / "compare-other", env=PLAIN)
    assert out.returncode == 0, out.stderr
    assert out.stdout == GOLDEN.read_text()


def test_in_process_rendering_is_the_same_table(fixture_comparison):
    buf = StringIO()
    tables.render_comparison(
        fixture_comparison,
        Console(file=buf, width=160, no_color=True, highlight=False, soft_wrap=True),
    )
    assert buf.getvalue() == GOLDEN.read_text()


def test_json_output(nb):
    out = nb("compare", "--json", FIX / "compare")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    [g] = data["groups"]
    [p] = g["comparisons"]
    assert p["speedup"]["ratio"] == pytest.approx(4.0)
    assert p["equal_train_time"]["base_val_loss"] == pytest.approx(2.583333333)
    assert p["targets"][1]["base"] is None and p["targets"][1]["other"]["iter"] == 8
    assert "3.00x sooner" in p["verdict"]
    cpu = next(r for r in g["runs"] if r["device_type"] == "cpu")
    assert cpu["time_to_target"] == {
        "2": {
            "iter": 4,
            "train_time_s": pytest.approx(0.6),
            "wall_time_s": pytest.approx(1.3),
            "energy_j": None,
        },  # no energy counter in the cpu fixture
        "1.5": None,
    }
    assert p["targets"][0]["other"]["energy_j"] == pytest.approx(
        60.0
    )  # the cuda seeds' 40 and 80 J


@pytest.fixture
def with_bad_files(tmp_path):
    shutil.copytree(FIX / "compare", tmp_path / "runs")
    (tmp_path / "runs" / "a-empty.parquet").write_bytes(b"")
    (tmp_path / "runs" / "b-notes.parquet").write_text("iter,loss\n0,4.2\n")
    return tmp_path / "runs"


def test_a_bad_file_is_one_line_exit_2(nb, with_bad_files):
    out = nb("compare", with_bad_files, env=PLAIN)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"nanobench: error: {with_bad_files / 'a-empty.parquet'}: empty file (0 bytes), "
        "not a nanobench result; delete it"
    ]


def test_skip_bad_goes_on_and_lists_what_it_skipped(nb, with_bad_files):
    out = nb("compare", "--skip-bad", with_bad_files, env=PLAIN)
    assert out.returncode == 0, out.stderr
    skipped = [line for line in out.stderr.splitlines() if line.startswith("nanobench: skipped:")]
    assert (
        len(skipped) == 2 and "a-empty.parquet" in skipped[0] and "not a parquet file" in skipped[1]
    )
    assert "cuda bf16 ran 4.00x faster" in out.stdout
    data = json.loads(nb("compare", "--skip-bad", "--json", with_bad_files).stdout)
    assert len(data["skipped"]) == 2 and len(data["groups"][0]["runs"]) == 3


# fast in the default suite: run/test_matrix's device list (real smoke runs compared), the
# fixture-based compare tests
@pytest.mark.slow
def test_real_smoke_runs_compare(nb, tmp_path):
    """Two real runs (fp32, bf16) of the smoke scenario: same iterations, close losses."""
    for dtype in ("fp32", "bf16"):
        r = nb(
            "run",
            "smoke",
            "--dtype",
            dtype,
            "--threads",
            "1",
            "--max-iters",
            "12",
            "--quiet",
            "--out",
            tmp_path,
        )
        assert r.returncode == 0, r.stderr
    c = compare.compare_files([str(tmp_path)])
    [g] = c.groups
    [p] = g.pairs
    assert g.baseline.label == "cpu fp32" and p.other.label == "cpu bf16"
    assert (
        p.equal_iter.at == 12 and abs(p.equal_iter.diff) < 0.05
    )  # same batches, same init: precision only
    assert p.speedup is not None and p.speedup.low <= p.speedup.ratio <= p.speedup.high
    assert all(r.iterations == 12 and r.median_step_s > 0 for r in g.runs)
    assert results.read_run(g.runs[0].path).meta["summary"]["iterations"] == 12


# ---- issue 6: seeds, equivalence and the gap, through compare ----------------------------------

CPU_BF16 = Config("cpu", "EPYC", "bf16", False)


def test_equivalence_and_gap_through_compare():
    # three seeds each, of different numbers (so unpaired: Welch); at iteration 4 the
    # configurations overlap, at 8 cuda is 0.5 lower
    cpu = [
        _stats(CPU, s, [ev(0, 3.0, 0.0), ev(4, 2.4 + d, 1.0), ev(8, 2.1 + d, 2.0)], [0.1])
        for s, d in ((1, -0.1), (2, 0.0), (3, 0.1))
    ]
    gpu = [
        _stats(GPU, s, [ev(0, 3.0, 0.0), ev(4, 2.45 + d, 0.2), ev(8, 1.6 + d, 0.4)], [0.02])
        for s, d in ((11, -0.1), (12, 0.0), (13, 0.1))
    ]
    bf16 = [_stats(CPU_BF16, 1, [ev(0, 3.0, 0.0), ev(4, 2.4, 1.0), ev(8, 2.05, 2.0)], [0.1])]
    [g] = compare.compare_runs(cpu + gpu + bf16).groups
    pair = next(p for p in g.pairs if p.other.label == "cuda bf16")
    points = {p.iter: p for p in pair.equivalence["points"]}
    assert {p.design for p in points.values()} == {"unpaired"}
    # iteration 0 (the initial weights, before any training) is not judged
    assert 0 not in points
    # iteration 4: diff +0.05, sd 0.1 each, se = 0.08165, df = 4: 95% CI +0.05 +- 0.2267 spans 0
    assert points[4].diff == pytest.approx(0.05) and points[4].verdict == "undecided"
    # iteration 8: diff -0.5, 95% CI -0.5 +- 0.2267 = [-0.727, -0.273] excludes 0; t = 6.12, df 4:
    # p = 0.0036, Holm over 2 looks (4 and 8; it is the smallest) x 2 = 0.007 < 0.05 -> different
    assert points[8].verdict == "different" and points[8].ci95[1] == pytest.approx(
        -0.2733, abs=1e-3
    )
    assert points[8].p_holm == pytest.approx(2 * points[8].p) and points[8].p_holm < 0.05
    assert pair.equivalence["first_iter_beyond_noise"] == 8
    # the gap: -0.5 at equal iterations; precision (cpu bf16 - cpu fp32 at 8) = 2.05 - 2.1 = -0.05
    gap = pair.explanation
    assert gap["at_equal_iters"] == pytest.approx(-0.5) and gap["precision"] == pytest.approx(-0.05)
    assert gap["device"] == pytest.approx(-0.45) and gap["speedup_to_iter"] == pytest.approx(5.0)
    text = verdicts.equivalence_sentence(pair.equivalence, "cpu fp32", "cuda bf16")
    assert "different at iteration 8" in text and "leave the seed noise at iteration 8" in text
    assert "unpaired (Welch), 3 vs 3 seeds" in text
    # a same-device pair has no precision split: the whole difference is precision
    same = next(p for p in g.pairs if p.other.label == "cpu bf16")
    assert same.explanation["precision"] is None
    assert "undecided, 1 and 3 seed(s)" in verdicts.equivalence_sentence(
        same.equivalence, "cpu fp32", "cpu bf16"
    )


def test_the_same_seeds_pair_through_compare():
    # seeds 1-3 in both: at iteration 4 every seed of cuda is exactly 0.05 above its cpu twin,
    # which the unpaired test above calls undecided (the seeds' spread of 0.1 hides it)
    cpu = [
        _stats(CPU, s, [ev(0, 3.0, 0.0), ev(4, 2.4 + d, 1.0)], [0.1])
        for s, d in ((1, -0.1), (2, 0.0), (3, 0.1))
    ]
    gpu = [
        _stats(GPU, s, [ev(0, 3.0, 0.0), ev(4, 2.45 + d + e, 0.2)], [0.02])
        for s, d, e in ((1, -0.1, 0.001), (2, 0.0, -0.001), (3, 0.1, 0.0))
    ]
    [pair] = compare.compare_runs(cpu + gpu).groups[0].pairs
    [four] = pair.equivalence["points"]  # iteration 0 is not judged
    assert (four.design, four.n_pairs) == ("paired", 3)
    # differences 0.051, 0.049, 0.050: mean 0.05, sd 0.001, se 0.000577, 95% CI 0.05 +- 4.303 x 0.000577
    assert four.ci95 == pytest.approx((0.05 - 0.002484, 0.05 + 0.002484), abs=1e-5)
    assert four.verdict == "different" and pair.equivalence["first_iter_beyond_noise"] == 4
    assert "paired over 3 seeds" in verdicts.equivalence_sentence(
        pair.equivalence, "cpu fp32", "cuda bf16"
    )


def test_runs_of_different_lengths_in_one_configuration_are_flagged():
    long = _stats(CPU, 1, [ev(0, 3.0, 0.0), ev(4, 2.5, 0.5), ev(8, 2.0, 1.0)], [0.1])
    short = _stats(CPU, 2, [ev(0, 3.0, 0.0), ev(4, 2.6, 0.5)], [0.1])
    [g] = compare.compare_runs([long, short]).groups
    assert any("cpu fp32 runs end at different iterations (4, 8)" in c for c in g.confounds)
    assert seeds.mean_curve(g.baseline).last_iter == 4  # only where both seeds got to


def test_margin_option_on_the_committed_example(nb):
    """The real example (seeds 1337-1339 of cpu fp32 and of cpu bf16, so 3 pairs): at iteration
    2000 the paired 90% interval is -0.0018 to +0.0006 (the unpaired one was about +-0.025), so
    the verdict is equivalent at the default 0.02 and undecided at a margin of 0.001."""
    example = Path(__file__).resolve().parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"
    default = json.loads(nb("compare", str(example), "--json").stdout)
    narrow = json.loads(nb("compare", str(example), "--json", "--margin", "0.001").stdout)
    final = lambda out: out["groups"][0]["comparisons"][0]["equivalence"]["points"][-1]  # noqa: E731
    assert final(default)["iter"] == 2000 and final(default)["verdict"] == "equivalent"
    assert (final(default)["design"], final(default)["n_pairs"]) == ("paired", 3)
    assert final(default)["ci90"] == pytest.approx([-0.0018, 0.0006], abs=1e-4)
    assert final(narrow)["verdict"] == "undecided"
    bad = nb("compare", str(example), "--margin", "0")
    assert bad.returncode == 2 and "--margin 0.0: must be > 0" in bad.stderr
