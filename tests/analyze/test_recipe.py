"""A configuration is its whole recipe (issue 20): runs whose scenarios differ after `--set`
overrides are different configurations, never pooled, paired or gated as seeds of one another;
`--max-iters` (and `train.max_iters`) only truncate the same recipe.

The result files are written here through the real writer, with the `smoke` scenario resolved
by the real scenario loader, overrides and all; their rows are small and hand-made."""

import shutil

import pytest

from nanobench.analyze import compare, config, gates
from nanobench.analyze.export import to_json
from nanobench.present import tables
from nanobench.run import scenario as scen
from nanobench.store.results import PARTIAL_DIR, RunWriter

SHA = "c" * 64


def write_run(
    folder, seed, overrides=(), vals=(3.0, 2.5, 2.0), step_s=0.1, max_iters=None, tokens=64
):
    """A 3-step run of `smoke` with evaluations at iter 0, 2 and 3 (final row); `tokens` per
    iteration, and 1000 model FLOPs per token."""
    s = scen.load("smoke", list(overrides))
    run_id = f"smoke-s{seed}-{len(list(folder.glob('*.parquet')))}"  # the nth file of the folder
    meta = {
        "scenario": s.to_dict(),
        "dataset": {"name": "synthetic", "sha256": SHA},
        "options": {
            "device": "cpu",
            "dtype": "fp32",
            "compile": False,
            "seed": seed,
            "threads": 2,
            "max_iters": max_iters or s.train.max_iters,
            "overrides": list(overrides),
        },
        "device": {"spec": "cpu", "type": "cpu", "name": "EPYC"},
        "environment": {"torch": "2.13.0+cpu"},
        "flops": {"per_iter": 1000 * tokens},
    }
    rows, t = [], 0.0
    for i in range(3):
        t += step_s
        rows.append(
            {
                "iter": i,
                "loss": 3.0,
                "step_time_s": step_s,
                "train_time_s": t,
                "wall_time_s": t,
                "tokens": tokens * (i + 1),
                "warmup": False,
                "eval_val_loss": {0: vals[0], 2: vals[1]}.get(i),
            }
        )
    rows.append(
        {
            "iter": 3,
            "train_time_s": t,
            "wall_time_s": t,
            "tokens": tokens * 3,
            "eval_val_loss": vals[2],
            "warmup": False,
        }
    )
    w = RunWriter(folder, run_id, meta)
    w.append(rows)
    w.finish("completed", None)
    shutil.rmtree(folder / PARTIAL_DIR, ignore_errors=True)


def three_default_seeds(folder):
    for seed, final in ((1, 2.00), (2, 2.02), (3, 1.98)):
        write_run(folder, seed, vals=(3.0, 2.5, final))


@pytest.mark.parametrize(
    "override, key, tag",
    [
        ("model.n_layer=2", "model.n_layer", "n_layer=2"),
        ("train.learning_rate=3e-4", "train.learning_rate", "learning_rate=3e-4"),
        ("data.dataset=/data/other.txt", "data.dataset", "dataset=/data/other.txt"),
        ("eval.iters=8", "eval.iters", "iters=8"),
    ],
)
def test_an_override_of_each_kind_is_its_own_configuration(tmp_path, override, key, tag):
    three_default_seeds(tmp_path)
    write_run(tmp_path, 1337, [override], vals=(3.0, 2.8, 3.08))
    [g] = compare.compare_files([str(tmp_path)]).groups
    labels = [cs.label for cs in g.configs]
    assert labels == ["cpu fp32", f"cpu fp32 · {tag}"]
    base, other = g.configs
    # the default configuration's seed statistics are its three runs' alone
    assert base.seeds == [1, 2, 3] and base.final_val_loss == pytest.approx(2.0)
    assert other.seeds == [1337] and other.final_val_loss == pytest.approx(3.08)
    assert g.baseline is base and [p.other for p in g.pairs] == [other]
    assert g.notes == [
        f"the recipes differ in {key}: 2 different experiments, shown side by side "
        "and never pooled as seeds of one another"
    ]
    assert g.confounds == []  # same device, dtype, threads and torch: the recipe is not a confound


def test_max_iters_truncation_stays_one_configuration(tmp_path):
    three_default_seeds(tmp_path)
    write_run(
        tmp_path, 4, max_iters=10
    )  # --max-iters 10: options say so, the scenario is unchanged
    write_run(tmp_path, 5, ["train.max_iters=20"])  # the same truncation written as an override
    [g] = compare.compare_files([str(tmp_path)]).groups
    [cs] = g.configs
    assert cs.label == "cpu fp32" and cs.seeds == [1, 2, 3, 4, 5] and g.notes == []


def test_the_plain_label_goes_to_the_runs_without_overrides_even_when_outnumbered(tmp_path):
    write_run(tmp_path, 1)
    for seed in (1, 2, 3):
        write_run(tmp_path, seed, ["train.learning_rate=3e-4", "model.n_embd=64"])
    [g] = compare.compare_files([str(tmp_path)]).groups
    assert [cs.label for cs in g.configs] == [
        "cpu fp32",
        "cpu fp32 · n_embd=64, learning_rate=3e-4",
    ]
    assert "the recipes differ in model.n_embd, train.learning_rate:" in g.notes[0]
    out = to_json(compare.compare_files([str(tmp_path)]))["groups"][0]
    assert out["notes"] == g.notes
    assert [c["recipe_vs_baseline"] for c in out["configurations"]] == [
        {},
        {"model.n_embd": 64, "train.learning_rate": 0.0003},
    ]
    assert {tuple(r["overrides"]) for r in out["runs"]} == {
        (),
        ("train.learning_rate=3e-4", "model.n_embd=64"),
    }


def test_a_gate_refuses_to_match_across_recipes(tmp_path):
    base_dir, cur_dir = tmp_path / "base", tmp_path / "cur"
    three_default_seeds(base_dir)
    write_run(cur_dir, 1337, ["train.learning_rate=3e-4"], vals=(3.0, 2.8, 3.08))
    current, baseline = (
        compare.compare_files([str(cur_dir)]),
        compare.compare_files([str(base_dir)]),
    )
    results, ungated = gates.check_gates(current, baseline, gates.parse_gates("val_loss:0.02"))
    assert results == []  # 3.08 vs 2.00 would have failed: it is never compared
    assert ungated == [
        "smoke cpu fp32: the baseline's cpu fp32 runs have another recipe "
        "(differing in train.learning_rate); not gated across recipes"
    ]
    # the same recipe on both sides is gated as before
    write_run(cur_dir, 1, vals=(3.0, 2.5, 2.01))
    current = compare.compare_files([str(cur_dir)])
    results, ungated = gates.check_gates(current, baseline, gates.parse_gates("val_loss:0.02"))
    assert [(r.config, r.passed) for r in results] == [("cpu fp32", True)]
    assert ungated == [
        "smoke cpu fp32 · learning_rate=3e-4: the baseline's cpu fp32 runs have another recipe "
        "(differing in train.learning_rate); not gated across recipes"
    ]


def test_recipe_leaves_out_name_targets_sample_seed_and_length():
    a = scen.load("smoke").to_dict()
    b = scen.load(
        "smoke",
        [
            "train.seed=7",
            "train.max_iters=5",
            "targets.val_loss=[1.0]",
            "sample.length=9",
            "description='x'",
        ],
    ).to_dict()
    assert config.recipe_of(a) == config.recipe_of(b)
    keys = dict(config.recipe_of(a))
    assert (
        "train.learning_rate" in keys
        and "model.n_layer" in keys
        and "eval.iters" in keys
        and "data.dataset" in keys
    )


def test_labels_write_values_briefly():
    assert config.show_value("0.0003") == "3e-4"
    assert (
        config.show_value("0.001") == "1e-3"
        and config.show_value("0.1") == "0.1"
        and config.show_value("100.0") == "100"
    )
    assert config.show_value("2") == "2" and config.show_value('"synthetic"') == "synthetic"
    assert config.show_value("true") == "true" and config.show_value("?") == "?"
    ref = (("a.x", "1"), ("a.y", "1"), ("a.z", "1"), ("b.w", "1"))
    many = (("a.x", "2"), ("a.y", "2"), ("a.z", "2"), ("b.w", "2"))
    assert config.recipe_tag(many, ref) == " · x=2, y=2, z=2 +1 more"
    assert config.recipe_tag(ref, ref) == ""


def test_the_gap_between_recipes_is_put_down_to_the_recipe(tmp_path):
    three_default_seeds(tmp_path)
    write_run(tmp_path, 1337, ["train.learning_rate=3e-4"], vals=(3.0, 2.8, 3.08))
    [p] = compare.compare_files([str(tmp_path)]).groups[0].pairs
    said = " ".join(p.explanation["sentences"])
    assert (
        # seeds 1-3 against seed 1337: no shared seed, so the gap is between the means and says so
        "At equal iterations (3) the gap is +1.0800 between the seed means (no shared seed): that much is "
        "the recipe (train.learning_rate): "
        "both ran on the same device in the same precision."
    ) in said
    assert "precision (or compilation)" not in said


def test_recipes_of_other_batches_meet_at_equal_tokens_and_flops(tmp_path):
    three_default_seeds(tmp_path)  # 64 tokens per iteration: evaluations at 0, 128 and 192 tokens
    write_run(
        tmp_path, 1, ["train.batch_size=8"], vals=(3.0, 2.4, 2.2), tokens=128
    )  # 0, 256, 384 tokens
    [g] = compare.compare_files([str(tmp_path)]).groups
    [p] = g.pairs
    # at 192 tokens (the default runs' last evaluation): default 2.0 (mean of 2.00, 2.02, 1.98); the
    # batch-8 run halfway-plus between 0 (3.0) and 256 tokens (2.4): 3.0 - 0.6 x 192 / 256 = 2.55
    assert (p.equal_tokens.at, p.equal_tokens.base_val, p.equal_tokens.other_val) == pytest.approx(
        (192, 2.0, 2.55)
    )
    assert (p.equal_flops.at, p.equal_flops.other_val) == pytest.approx((192_000, 2.55))
    assert (p.equal_iter.at, p.equal_iter.other_val) == (
        3,
        2.2,
    )  # the same iteration saw twice the tokens
    table = tables.speed_table(g)
    assert [c for c, _ in table.columns][-2:] == ["val @ tokens", "val @ FLOPs"]
    assert table.rows[1][-2:] == ["2.5500 vs 2.0000 @192", "2.5500 vs 2.0000 @192k"]
    out = to_json(compare.compare_files([str(tmp_path)]))["groups"][0]["comparisons"][0]
    assert out["equal_tokens"]["tokens"] == 192 and out["equal_flops"][
        "other_val_loss"
    ] == pytest.approx(2.55)
    # one recipe only: the columns are left out (equal tokens would be equal iteration)
    same = tmp_path / "same"
    three_default_seeds(same)
    write_run(same, 9)
    assert "val @ tokens" not in [
        c for c, _ in tables.speed_table(compare.compare_files([str(same)]).groups[0]).columns
    ]
