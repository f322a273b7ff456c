"""The board's statistics (analyze/board.py) on hand-made runs written through RunWriter:
rows, medians and ranges against numpy, the speedup's quartile range by hand, the loss
verdict and the per-version lines against scipy's own tests, the noisy-run rule, and each
refusal of the "left out" list."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from nanobench.analyze import board
from nanobench.errors import InputError

H100 = "NVIDIA H100 80GB HBM3"


def build(*paths, **kw):
    return board.board_files([str(s) for s in paths], **kw)[0]


def only_table(b):
    [table] = b.tables
    return table


def row_of(table, text):
    [row] = [r for r in table.rows if text in r.label]
    return row


@pytest.fixture
def two_machines(tmp_path, handmade):
    """cpu fp32 on two machines of one hardware (seeds 1-2 on one, 3 on the other) and an
    H100 bf16 row of seeds 1-3 that reaches both targets."""
    d = tmp_path / "runs"
    for seed, step, token in ((1, 0.10, "a" * 16), (2, 0.12, "a" * 16), (3, 0.11, "b" * 16)):
        handmade(d, f"cpu-s{seed}", seed=seed, step_s=step, env={"machine_token": token})
    for seed, last in ((1, 1.45), (2, 1.46), (3, 1.44)):
        handmade(
            d,
            f"gpu-s{seed}",
            device_type="cuda",
            device_name=H100,
            dtype="bf16",
            seed=seed,
            step_s=0.01,
            vals={0: 3.0, 4: 1.9, 8: last},
        )
    return d


def test_rows_medians_and_counts(two_machines):
    t = only_table(build(two_machines))
    cpu, gpu = row_of(t, "AMD EPYC"), row_of(t, H100)
    assert cpu.hardware == "AMD EPYC · 2 cores · avx2"  # model, cores and SIMD class
    assert (cpu.machines, cpu.runs, cpu.seeds) == (2, 3, 3)  # one hardware, two machines
    tps = [768 / 0.10, 768 / 0.12, 768 / 0.11]
    assert cpu.tokens_per_s.median == pytest.approx(np.median(tps))
    assert (cpu.tokens_per_s.low, cpu.tokens_per_s.high) == pytest.approx((768 / 0.12, 768 / 0.10))
    assert cpu.step_s.median == pytest.approx(0.11)
    # time to val 2.0: the evaluation at iteration 4, reached after 4 steps
    assert cpu.targets[0].train_time_s.median == pytest.approx(4 * 0.11)
    assert (cpu.targets[1].reached, cpu.targets[1].runs) == (0, 3)  # 1.5 never reached
    assert gpu.targets[1].train_time_s.median == pytest.approx(8 * 0.01)
    # sorted by time to the first target: the GPU first; the reference is the slowest CPU row
    assert t.rows == [gpu, cpu] and t.reference is cpu and cpu.reference


def test_speedup_is_pairs_quartile_range_by_hand(two_machines):
    gpu = row_of(only_table(build(two_machines)), H100)
    # reference medians 0.10, 0.11, 0.12: Q1 0.105, median 0.11, Q3 0.115; the GPU's all 0.01
    s = gpu.speedup
    assert (s.ratio, s.low, s.high) == pytest.approx((11.0, 10.5, 11.5))


def test_loss_verdict_paired_by_seed_against_scipy(two_machines):
    gpu = row_of(only_table(build(two_machines)), H100)
    loss = gpu.loss
    assert loss.iter == 8 and loss.design == "paired"  # seeds 1-3 once on each side
    assert loss.val_loss == pytest.approx(1.45) and loss.diff == pytest.approx(-0.15)
    assert stats.ttest_rel([1.45, 1.46, 1.44], [1.6, 1.6, 1.6]).pvalue < 0.05
    assert loss.verdict == "different"


def test_noisy_runs_are_left_out_unless_asked(tmp_path, handmade):
    d = tmp_path / "runs"
    for seed, step in ((1, 0.10), (2, 0.11), (3, 0.12)):
        handmade(d, f"q{seed}", seed=seed, step_s=step)
    handmade(d, "noisy", seed=4, step_s=0.5, noise="noisy")
    quiet = build(d)
    row = only_table(quiet).rows[0]
    assert (row.runs, row.noisy, quiet.noisy_left_out) == (3, 1, 1)
    assert row.tokens_per_s.median == pytest.approx(768 / 0.11)
    loud = build(d, include_noisy=True)
    row = only_table(loud).rows[0]
    assert (row.runs, row.noisy, loud.noisy_left_out) == (4, 1, 0)
    # four runs: the median of an even count is the mean of the middle two (numpy's)
    assert row.tokens_per_s.median == pytest.approx(
        np.median([768 / s for s in (0.1, 0.11, 0.12, 0.5)])
    )


def test_a_row_of_noisy_runs_only_is_named_not_shown(tmp_path, handmade):
    d = tmp_path / "runs"
    handmade(d, "cpu", seed=1)
    handmade(
        d, "gpu", device_type="cuda", device_name=H100, dtype="bf16", step_s=0.01, noise="noisy"
    )
    b = build(d)
    assert [r.hardware for r in only_table(b).rows] == ["AMD EPYC · 2 cores · avx2"]
    assert any(H100 in n and "all 1 runs recorded noisy" in n for n in b.notes)


def test_history_line_per_torch_version_against_scipy(tmp_path, handmade):
    d = tmp_path / "runs"
    before, after = [0.100, 0.102, 0.104], [0.090, 0.091, 0.092]
    for k, step in enumerate(before):
        handmade(d, f"old{k}", seed=k, step_s=step, torch="2.12.0")
    for k, step in enumerate(after):
        handmade(d, f"new{k}", seed=k, step_s=step, torch="2.13.0")
    row = only_table(build(d)).rows[0]
    [h] = [h for h in row.history if h.software == "torch"]
    a, b = [768 / s for s in before], [768 / s for s in after]
    assert (h.before, h.after) == ("2.12.0", "2.13.0")
    assert h.change == pytest.approx(np.median(b) / np.median(a) - 1)  # +12.1%
    assert h.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert h.beyond_noise and h.sentence().startswith(
        "torch 2.12.0 -> 2.13.0: +12% tokens/s, beyond noise"
    )
    assert row.torch == ["2.12.0", "2.13.0"]


def test_history_within_noise_and_untested(tmp_path, handmade):
    d = tmp_path / "runs"
    for k, (step, version) in enumerate(
        [(0.10, "2.12.0"), (0.12, "2.12.0"), (0.11, "2.13.0"), (0.115, "2.13.0"), (0.1, "2.14.0")]
    ):
        handmade(d, f"r{k}", seed=k, step_s=step, torch=version)
    row = only_table(build(d)).rows[0]
    first, second = row.history[:2]
    p = stats.ttest_ind([768 / 0.10, 768 / 0.12], [768 / 0.11, 768 / 0.115], equal_var=False).pvalue
    assert first.p == pytest.approx(p) and p > 0.05 and "within noise" in first.sentence()
    assert second.p is None and "one run on a side: not tested" in second.sentence()


def test_versions_sort_by_number_not_text():
    assert sorted(["2.10.0", "2.9.1", "2.13.0+cu128"], key=board._version_key) == [
        "2.9.1",
        "2.10.0",
        "2.13.0+cu128",
    ]


def test_baseline_chooses_the_reference_row(two_machines):
    t = only_table(build(two_machines, baseline="h100"))
    gpu, cpu = row_of(t, H100), row_of(t, "AMD EPYC")
    assert t.reference is gpu and cpu.speedup.ratio == pytest.approx(0.01 / 0.11)
    with pytest.raises(InputError, match="--baseline nothing: no row"):
        build(two_machines, baseline="nothing")


# ---- the left-out list: one test per refusal ------------------------------------------------


@pytest.fixture
def good(tmp_path, handmade):
    d = tmp_path / "runs"
    handmade(d, "good1", seed=1)
    handmade(d, "good2", seed=2, step_s=0.12)
    return d


def left_out(b):
    return {x.file.rsplit("/", 1)[-1]: (x.kind, x.reason) for x in b.left_out}


def rewrite_meta(path, edit):
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"nanobench"])
    edit(meta)
    pq.write_table(table.replace_schema_metadata({b"nanobench": json.dumps(meta).encode()}), path)


def test_another_schema_version(good, handmade):
    path = handmade(good, "future", seed=3)
    rewrite_meta(path, lambda m: m.update(schema_version=2))
    b = build(good)
    kind, reason = left_out(b)["future.parquet"]
    assert kind == "unreadable" and "schema_version 2 is newer" in reason
    assert only_table(b).rows[0].runs == 2


def test_another_dataset_checksum(good, handmade):
    handmade(good, "other-data", seed=3, sha="b" * 64)
    kind, reason = left_out(build(good))["other-data.parquet"]
    assert kind == "dataset" and "bbbbbbbbbbbb" in reason and "aaaaaaaaaaaa" in reason


def test_a_recipe_its_overrides_do_not_explain(good, handmade):
    lr = {
        "name": "tiny",
        "targets": {"val_loss": [2.0, 1.5]},
        "train": {"learning_rate": 3e-4, "max_iters": 8},
        "eval": {"interval": 4},
    }
    handmade(good, "silent", seed=3, scenario=lr)
    handmade(
        good, "declared", seed=4, scenario=lr, options={"overrides": ["train.learning_rate=3e-4"]}
    )
    b = build(good)
    kind, reason = left_out(b)["silent.parquet"]
    assert kind == "recipe" and "train.learning_rate" in reason
    # the declared one is an experiment of its own: a table of its own
    assert sorted(t.title for t in b.tables) == ["tiny", "tiny · learning_rate=3e-4"]


def test_mfu_above_one_against_the_measured_peak(good, handmade):
    peaks = {"spec": {"flops": None}, "measured": {"flops": 5e9}, "used_for_mfu": {"flops": None}}
    handmade(
        good, "too-fast", seed=3, step_s=0.1, flops_per_iter=1e9, peak_flops=peaks
    )  # 1e10 FLOP/s
    kind, reason = left_out(build(good))["too-fast.parquet"]
    assert kind == "impossible" and "MFU 2.00 against its measured peak" in reason


def test_tokens_per_s_above_the_datasheet_whatever_the_file_says(good, handmade):
    forged = {"spec": {"flops": 1e18}, "measured": {"flops": None}, "used_for_mfu": {"flops": 1e18}}
    handmade(
        good,
        "h100",
        device_type="cuda",
        device_name=H100,
        seed=3,
        step_s=0.001,
        flops_per_iter=1e12,
        peak_flops=forged,
    )
    kind, reason = left_out(build(good))["h100.parquet"]
    # 1e12 FLOPs per 1 ms = 1e15 FLOP/s, above the H100's fp32 66.9 TFLOP/s
    assert kind == "impossible" and "768,000 tokens/s" in reason and "(66,900.0 GFLOP/s)" in reason


def test_tokens_per_s_above_the_recorded_peak(good, handmade):
    peaks = {"spec": {"flops": 2e9}, "measured": {"flops": None}, "used_for_mfu": {"flops": 2e9}}
    handmade(good, "cpu-fast", seed=3, step_s=0.1, flops_per_iter=1e9, peak_flops=peaks)
    kind, reason = left_out(build(good))["cpu-fast.parquet"]
    assert kind == "impossible" and "the largest peak the file records (2.0 GFLOP/s)" in reason


def test_times_that_run_backwards(good, handmade):
    def back(rows):
        rows[5]["train_time_s"] = rows[3]["train_time_s"] - 0.05

    handmade(good, "backwards", seed=3, rows_hook=back)
    kind, reason = left_out(build(good))["backwards.parquet"]
    assert kind == "impossible" and "train_time_s runs backwards at iteration 5" in reason


def test_a_run_reached_through_two_paths_counts_once(good, tmp_path):
    copy = tmp_path / "synced" / "good1.parquet"
    copy.parent.mkdir()
    shutil.copy2(good / "good1.parquet", copy)
    (tmp_path / "link").symlink_to(good)  # the same folder again, by another name
    b = build(good, tmp_path / "link", tmp_path / "synced")
    assert only_table(b).rows[0].runs == 2  # good1 once, good2 once
    assert [(x.kind, x.file) for x in b.left_out] == [("duplicate", str(copy))]
    assert "the same run (good1)" in b.left_out[0].reason


def test_an_unfinished_run(good, handmade):
    handmade(good, "stopped", seed=3, status="interrupted")
    assert left_out(build(good))["stopped.parquet"][0] == "status"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["scenario"]["targets"].update(val_loss=["x"]), "malformed"),
        (lambda m: m.update(options=[1, 2]), "metadata key 'options' is list"),
        (lambda m: m["peak_flops"]["measured"].update(flops="fast"), None),  # ignored, not a crash
        (lambda m: m.update(sample="<script>" * 200_000), "nanobench metadata of"),  # huge
        # a seed no 64-bit column holds (crashed the index's write before)
        (lambda m: m["options"].update(seed=2**70), "seed 1180591620717411303424 does not fit"),
    ],
)
def test_malformed_or_huge_metadata_is_refused_naming_the_file(good, handmade, edit, message):
    path = handmade(
        good,
        "strange",
        seed=3,
        flops_per_iter=1e6,
        peak_flops={"measured": {"flops": 1e12}, "spec": {}},
    )
    rewrite_meta(path, edit)
    b = build(good)
    if message is None:
        assert "strange.parquet" not in left_out(b)
        return
    kind, reason = left_out(b)["strange.parquet"]
    assert kind == "unreadable" and reason.startswith(str(path)) and message in reason


def test_metadata_that_is_not_an_object(good):
    table = pa.table({"iter": [0]})
    pq.write_table(
        table.replace_schema_metadata({b"nanobench": b"[1, 2, 3]"}), good / "array.parquet"
    )
    kind, reason = left_out(build(good))["array.parquet"]
    assert "a JSON list, not an object" in reason


def test_runs_that_all_declare_an_override_are_not_refused(tmp_path, handmade):
    lr = {
        "name": "tiny",
        "targets": {"val_loss": [2.0]},
        "train": {"learning_rate": 3e-4, "beta2": 0.99},
    }
    for seed in (1, 2):
        handmade(
            tmp_path,
            f"s{seed}",
            seed=seed,
            scenario=lr,
            options={"overrides": ["train.learning_rate=3e-4"]},
        )
    b = build(tmp_path)
    assert b.left_out == [] and only_table(b).rows[0].runs == 2


def test_each_speed_setting_is_its_own_row_named_in_words(tmp_path, handmade):
    """One hardware, one dtype, three settings: the defaults, one thread with AdamW foreach,
    and a compiled run in max-autotune; the row label carries the settings as written here
    by hand, and the defaults' row none."""
    d = tmp_path / "runs"
    handmade(d, "default", seed=1)
    handmade(d, "foreach", seed=1, options={"threads": 1, "optimizer": "foreach"})
    handmade(d, "compiled", seed=1, options={"compile": True, "compile_mode": "max-autotune"})
    t = only_table(build(d))
    assert sorted(r.settings for r in t.rows) == [
        "compile max-autotune",
        "default",
        "optimizer foreach, 1 thread",
    ]
    shown = {r.settings: r.label for r in t.rows}
    assert "[optimizer foreach, 1 thread]" in shown["optimizer foreach, 1 thread"]
    assert "[" not in shown["default"]
