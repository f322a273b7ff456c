"""Is my run normal? The reference bands against hand-computed values, the committed seed
numbers against the committed example files, and the flag through compare."""

import math
from pathlib import Path

import pytest

from nanobench.analyze import compare, export, references
from nanobench.store import results
from nanobench.store.meta import RunMeta

EXAMPLES = Path(__file__).parents[2] / "results" / "examples" / "cpu-fp32-vs-bf16"


def test_prediction_band_hand_computed():
    # mean 2, sd 1, n 3: t(0.975, 2) = 4.302653; half-width 4.302653 * sqrt(1 + 1/3) = 4.968275
    low, high = references.prediction_band([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.968275, abs=1e-6) and high == pytest.approx(
        2 + 4.968275, abs=1e-6
    )
    assert references.prediction_band([1.0]) is None


def test_seed_runs_are_the_committed_examples():
    per_iter = {}
    for path in sorted(EXAMPLES.glob("*-cpu-fp32-*.parquet")):
        run = results.read_run(path)
        for it, v in zip(run.rows["iter"], run.rows["eval_val_loss"]):
            if not math.isnan(v):
                per_iter.setdefault(int(it), []).append(round(float(v), 6))
    _, seeds, values = references.SEED_RUNS["shakespeare_char_cpu"]
    assert seeds == (1337, 1338, 1339)  # the files' seeds, in the order of each tuple below
    assert {it: tuple(v) for it, v in per_iter.items()} == values


def _evals(run_id_seed=0, **changes):
    seeds = references.SEED_RUNS["shakespeare_char_cpu"][2]
    vals = {it: v[run_id_seed] for it, v in seeds.items()}
    vals.update({int(k[1:]): v for k, v in changes.items()})
    return sorted(vals.items())


def test_a_committed_seed_is_normal_everywhere():
    c = references.check("s1337", "shakespeare_char_cpu", _evals(), seed=1337)
    assert (
        c.first_outside is None and len(c.checked) == 10
    )  # 9 seed bands + nanoGPT's figure at 2000
    assert (
        "normal, inside the reference bands of shakespeare_char_cpu at all 10 checks (iterations 0-2000; "
        "seed bands: prediction bands of seeds 1338, 1339 (its own seed 1337 left out)"
        in c.sentence()
    )


def test_a_run_leaving_the_band_is_flagged_at_the_first_evaluation_outside():
    # a run of another seed (42): the band of all three seeds, each of the 9 at level 1 - 0.05/9
    # (Bonferroni). At 750: values 2.171207, 2.124645, 2.160984 -> mean 2.152279, sd 0.024471;
    # t(1 - 0.05/18, 2) = 13.360441 (scipy: stats.t.ppf(1 - 0.05 / 18, 2)); half-width
    # 13.360441 * 0.024471 * 1.154701 = 0.377526 -> 1.774753 .. 2.529804
    c = references.check("odd", "shakespeare_char_cpu", _evals(i750=2.60, i1000=2.20), seed=42)
    it, val, band = c.first_outside
    assert (it, val) == (750, 2.60)
    half = 13.360441 * 0.024471 * 1.154701
    assert band.low == pytest.approx(2.152279 - half, abs=1e-4) and band.high == pytest.approx(
        2.152279 + half, abs=1e-4
    )
    assert c.sentence().startswith(
        "odd: NOT NORMAL from iteration 750: val loss 2.6000 is above the band 1.7748-2.5298"
    )


def test_nanogpts_published_figure_catches_what_the_wide_seed_band_lets_through():
    # 1.95 at 2000 is inside the 3-seed band (about 1.68 .. 2.11) but not within 0.05 of nanoGPT's 1.88
    c = references.check("late", "shakespeare_char_cpu", _evals(i2000=1.95), seed=42)
    it, val, band = c.first_outside
    assert (
        it == 2000
        and (band.low, band.high) == pytest.approx((1.83, 1.93))
        and "nanoGPT README" in band.source
    )


def test_gpu_recipe_has_nanogpts_point_only_and_unknown_scenarios_none():
    [band] = references.bands("shakespeare_char")
    assert (band.iter, band.low, band.high) == (5000, pytest.approx(1.4197), pytest.approx(1.5197))
    assert band.kind == "best"  # nanoGPT's figure is its best val loss over the run
    assert references.check("x", "tiny", [(0, 3.0)]) is None


def test_compare_flags_the_run_outside_its_band():
    runs = [results.read_run(p) for p in sorted(EXAMPLES.glob("*-cpu-fp32-*.parquet"))]
    odd = runs[0]
    rows = odd.rows.copy()
    rows.loc[rows["iter"] == 1000, "eval_val_loss"] = 2.5
    stats = [compare.run_stats(r) for r in runs[1:]] + [
        compare.run_stats(
            results.Run(
                odd.path,
                # another seed than the reference ones: held to the band of all three
                RunMeta.parse(
                    dict(odd.meta, run_id="odd", options=dict(odd.meta["options"], seed=42)),
                    odd.path,
                ),
                rows,
            )
        )
    ]
    c = compare.compare_runs(stats)
    flagged = [ch for ch in c.references if ch.first_outside]
    assert [(ch.run_id, ch.first_outside[0]) for ch in flagged] == [("odd", 1000)]
    assert len(c.references) == 3
    out = export.to_json(c)["references"]
    assert [r["normal"] for r in out] == [False, True, True] and out[0]["first_outside"][
        "iter"
    ] == 1000
