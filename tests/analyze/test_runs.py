"""One run: per-run statistics, hand-computed, and what a RunStats carries from its file."""

from pathlib import Path

import pytest

from nanobench.analyze import compare, runs
from nanobench.analyze.runs import Evaluation, Hit
from nanobench.errors import InputError
from nanobench.store import results

FIX = Path(__file__).parents[1] / "fixtures"


TRAIN_TIME = lambda e: e.train_time_s  # noqa: E731  (the axis compare uses)


def ev(it, val, t, w=None):
    return Evaluation(it, val, None, t, w if w is not None else 2 * t)


def test_percentile_linear_between_order_statistics():
    # sorted 1,2,3,4: p50 = 2.5; p90 at rank 0.9*3 = 2.7 -> 3 + 0.7*(4-3) = 3.7
    assert runs.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert runs.percentile([4, 1, 3, 2], 90) == pytest.approx(3.7)
    assert runs.percentile([7.0], 90) == 7.0  # a single value is every percentile
    assert runs.percentile([], 50) is None


def test_time_to_target_first_evaluation_at_or_below():
    evs = (ev(0, 3.0, 0.0), ev(4, 2.0, 0.6), ev(8, 1.6, 1.0))
    assert runs.time_to_target(evs, 2.0) == Hit(4, 0.6, 1.2)  # <=: equal counts as reached
    assert runs.time_to_target(evs, 2.5) == Hit(4, 0.6, 1.2)  # first, not best
    assert runs.time_to_target(evs, 1.5) is None  # never reached
    assert runs.time_to_target((), 2.0) is None


def test_val_loss_at_time_interpolates_and_never_extrapolates():
    evs = (ev(0, 3.0, 0.0), ev(4, 2.0, 0.6), ev(8, 1.6, 1.0))
    assert runs.val_loss_at(evs, 0.25, TRAIN_TIME) == pytest.approx(3.0 - 0.25 / 0.6)  # 2.58333
    assert runs.val_loss_at(evs, 0.8, TRAIN_TIME) == pytest.approx(1.8)  # halfway 2.0 -> 1.6
    assert runs.val_loss_at(evs, 1.0, TRAIN_TIME) == pytest.approx(1.6)
    assert runs.val_loss_at(evs, 1.5, TRAIN_TIME) is None


@pytest.fixture(scope="module")
def fixture_comparison():
    return compare.compare_files([str(FIX / "compare")])


def test_evaluation_times_use_the_time_before_the_step(fixture_comparison):
    cpu = next(r for r in fixture_comparison.groups[0].runs if r.config.device_type == "cpu")
    # iter 4: train_time 0.7 after its step of 0.1 -> reached at 0.6; wall 1.4 - 0.1 = 1.3
    # final row iter 8 has no step: its own train time 1.0, wall 2.0
    assert [
        (e.iter, round(e.train_time_s, 9), round(e.wall_time_s, 9)) for e in cpu.evaluations
    ] == [(0, 0.0, 0.2), (4, 0.6, 1.3), (8, 1.0, 2.0)]
    assert cpu.iterations == 8 and cpu.median_step_s == pytest.approx(
        0.1
    )  # warm-up 0.2 s steps excluded
    assert cpu.tokens_per_s == pytest.approx(7680) and cpu.final_train_loss == pytest.approx(2.3)


def test_each_run_carries_its_file_and_series(fixture_comparison):
    """Plots and the report read a run's rows, evaluations and step times from its RunStats:
    the evaluations are the file's (make_fixtures.py), the metadata the one parsed on reading."""
    for r in fixture_comparison.runs:
        assert str(r.run.path) == r.path and r.info.run_id == r.run_id == Path(r.path).stem
        assert r.info.device.type == r.config.device_type and r.info.options.seed == r.seed
    vals = [[(e.iter, e.val_loss) for e in r.evaluations] for r in fixture_comparison.runs]
    assert vals == [
        [(0, 3.0), (4, 2.0), (8, 1.6)],  # cpu fp32 s1
        [(0, 3.0), (4, 1.9), (8, 1.4)],  # cuda bf16 s1
        [(0, 3.0), (4, 2.1), (8, 1.45)],  # cuda bf16 s2
    ]
    # ordered as shown: the baseline's runs first, then each configuration's seeds
    cpu, cuda1, cuda2 = fixture_comparison.runs
    assert [(r.config.device_type, r.seed) for r in (cpu, cuda1, cuda2)] == [
        ("cpu", 1),
        ("cuda", 1),
        ("cuda", 2),
    ]
    # step times without the two warm-up steps and the final evaluation-only row (make_fixtures.py)
    assert cpu.step_times_s.tolist() == pytest.approx(
        [0.1] * 6
    ) and cuda2.step_times_s.tolist() == pytest.approx([0.025] * 6)


def test_only_bad_files_is_an_error_even_with_skip_bad(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="no readable result file"):
        runs.load_runs([str(tmp_path)], skip_bad=True)


def test_evaluations_carry_tokens_flops_and_energy_to_get_there():
    # fixtures: 768 tokens per step; cuda s1 reads energy 10 J per step at wall = train + 0.5
    r = results.read_run(FIX / "compare" / "tiny-cuda-bf16-s1.parquet")
    evs = runs.evaluations(r.rows, tokens_per_iter=768, flops_per_iter=1e9)
    assert [(e.iter, e.tokens, e.flops) for e in evs] == [
        (0, 0, 0),
        (4, 4 * 768, 4e9),
        (8, 8 * 768, 8e9),
    ]
    # iter 4 was reached at wall 0.65 s, when row 3 read 40 J; iter 0 at wall 0.5 s, interpolated from
    # (0 s, 0 J) to the first reading (0.55 s, 10 J): 9.09 J; the final evaluation at 0.75 s: 80 J
    assert [e.energy_j for e in evs] == pytest.approx([0.5 / 0.55 * 10, 40.0, 80.0])
    assert runs.time_to_target(evs, 2.0).energy_j == pytest.approx(40.0)
    cpu = runs.evaluations(results.read_run(FIX / "compare" / "tiny-cpu-fp32-s1.parquet").rows)
    assert {(e.tokens, e.flops, e.energy_j) for e in cpu} == {
        (None, None, None)
    }  # nothing known, nothing made up


def test_val_loss_at_equal_tokens_and_flops():
    evs = (
        runs.Evaluation(0, 3.0, None, 0.0, 0.0, 0.0, 0.0),
        runs.Evaluation(10, 2.0, None, 1.0, 1.0, 1000.0, 5e12),
    )
    assert runs.val_loss_at(evs, 250.0, lambda e: e.tokens) == pytest.approx(2.75)
    assert runs.val_loss_at(evs, 4e12, lambda e: e.flops) == pytest.approx(2.2)
    assert runs.val_loss_at(evs, 2000.0, lambda e: e.tokens) is None  # no extrapolation
    assert (
        runs.val_loss_at(
            evs[:1] + (runs.Evaluation(10, 2.0, None, 1.0, 1.0),), 5.0, lambda e: e.tokens
        )
        is None
    )


def test_arrow_columns_as_numpy_nulls_offsets_and_types():
    """Columns read through their Arrow buffers (the common case: one chunk of the wanted
    type) and through pyarrow's compute functions (several chunks, another type) give the
    same values, written out by hand: null -> NaN (floats), 0 (ints), False (flags), a slice's
    offset respected, an int column read as floats."""
    import numpy as np
    import pyarrow as pa

    floats = pa.array([1.5, None, 3.0, None, 5.25, 6.0, 7.0, None, 9.0, 10.0], pa.float64())
    ints = pa.array([10, 11, None, 13, 14, 15, 16, 17, 18, 19], pa.int64())
    flags = pa.array([True, None, False, True, True, False, None, True, False, True], pa.bool_())
    table = pa.table({"f": floats, "i": ints, "b": flags}).slice(1, 8)  # offset 1 in buffers
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=3))  # the other path
    for t in (table, chunked):
        cols = runs.ArrowColumns(t)
        nan = np.nan
        np.testing.assert_array_equal(cols.floats("f"), [nan, 3.0, nan, 5.25, 6.0, 7.0, nan, 9.0])
        np.testing.assert_array_equal(cols.ints("i"), [11, 0, 13, 14, 15, 16, 17, 18])
        np.testing.assert_array_equal(cols.floats("i"), [11, nan, 13, 14, 15, 16, 17, 18])
        np.testing.assert_array_equal(
            cols.flags("b"), [False, False, True, True, False, False, True, False]
        )
