"""`nanobench tune`: candidates per device, the selection on injected timings and loss drifts,
the record file's keys, rounds as plans read back from their result files, and one short real
round (its figures, not its speed)."""

import json
import math

import pyarrow.parquet as pq
import pytest

from nanobench.errors import InputError
from nanobench.measure import host
from nanobench.measure.device import Device
from nanobench.run import executors, tune
from nanobench.run import plan as plans
from nanobench.run.scenario import load
from nanobench.run.settings import Settings
from nanobench.run.tune import Measured
from nanobench.store.results import RunWriter

REF = Settings()


def m(settings, ms, drift=0.0, finite=True):
    return Measured(settings, ms / 1e3, drift if finite else math.inf, 3, drift, finite)


# ---- selection on injected figures -----------------------------------------------------------


def test_select_on_a_base_measures_gains_against_the_base():
    t1 = Settings(threads=1)
    measured = [
        m(REF, 100.0),
        m(t1, 50.0),
        m(Settings(threads=1, sdpa="math"), 49.0),  # 2% on the base: noise
        m(Settings(threads=1, optimizer="foreach"), 45.0),
    ]
    kept = tune.select_singles(measured, 0.02, 0.03, base=t1)
    assert list(kept) == ["optimizer"]
    assert tune.combine(kept, t1) == Settings(threads=1, optimizer="foreach")
    assert tune.on_base([REF, Settings(sdpa="math"), Settings(compile=True)], t1) == [
        t1,
        Settings(threads=1, sdpa="math"),
        Settings(threads=1, compile=True),
    ]


def test_select_keeps_the_fastest_equivalent_value_of_each_setting_beyond_the_gain():
    measured = [
        m(REF, 50.0),
        m(Settings(threads=1), 40.0, 1e-6),  # 20% faster, equivalent: kept
        m(Settings(threads=4), 35.0, 1e-6),  # faster still: wins the threads axis
        m(Settings(optimizer="foreach"), 49.0),  # 2% faster: within min_gain, not kept
        m(Settings(sdpa="math"), 30.0, 0.05),  # fastest of all, but its loss drifts 0.05 > 0.02
        m(Settings(dtype="bf16"), 20.0, finite=False),  # diverged
        m(Settings(compile=True), 45.0, 1e-3),
    ]  # 10%: kept
    kept = tune.select_singles(measured, margin=0.02, min_gain=0.03)
    assert {k: v.settings for k, v in kept.items()} == {
        "threads": Settings(threads=4),
        "compile": Settings(compile=True),
    }
    assert tune.combine(kept) == Settings(threads=4, compile=True)


def test_compile_modes_are_one_setting_and_their_combination_keeps_the_mode():
    measured = [
        m(REF, 50.0),
        m(Settings(compile=True), 40.0),
        m(Settings(compile=True, compile_mode="max-autotune"), 30.0),
    ]
    kept = tune.select_singles(measured, 0.02, 0.03)
    assert list(kept) == ["compile"]
    assert tune.combine(kept) == Settings(compile=True, compile_mode="max-autotune")


def test_choose_refuses_drift_and_small_gains_and_falls_back_to_the_reference():
    ref = m(REF, 50.0)
    assert tune.choose([ref, m(Settings(threads=1), 49.0)], 0.02, 0.03) is ref  # 2%: noise
    assert (
        tune.choose([ref, m(Settings(threads=1), 10.0, 0.021)], 0.02, 0.03) is ref
    )  # beyond the margin
    fast = m(Settings(threads=1, optimizer="foreach"), 30.0, 0.019)
    assert tune.choose([ref, m(Settings(threads=1), 40.0), fast], 0.02, 0.03) is fast


def test_loss_figures_hand_computed():
    f = tune.loss_figures([4.0, 3.0, 2.0], [4.0, 3.01, 1.995])
    assert f["max_abs_loss_diff"] == pytest.approx(0.01) and f["max_diff_iter"] == 1
    assert f["final_loss_diff"] == pytest.approx(-0.005) and f["finite"]
    assert not tune.loss_figures([4.0, 3.0], [4.0, math.nan])["finite"]


def test_tune_settles_threads_first_then_tries_the_rest_on_them_and_combines(monkeypatch):
    """tune() with each round's runs replaced by figures (ms): on a CPU the thread count is
    chosen first; the other settings are measured at it; kept ones are combined and
    measured again with the reference and the best single change."""
    rounds = []
    t1 = Settings(threads=1)
    figures = {
        REF: 50.0,
        t1: 40.0,
        Settings(threads=1, optimizer="foreach"): 36.0,
        Settings(threads=1, sdpa="math"): 38.0,
        Settings(threads=1, optimizer="foreach", sdpa="math"): 30.0,
    }

    def fake_round(runs, scenario, device_text, settings, iters, log=None):
        rounds.append(settings)
        return [m(s, figures.get(s, 60.0), 1e-4) for s in settings]

    monkeypatch.setattr(tune, "run_round", fake_round)
    monkeypatch.setattr(
        tune,
        "candidates",
        lambda device, axes: [
            REF,
            t1,
            Settings(optimizer="foreach"),
            Settings(sdpa="math"),
            Settings(compile=True),
        ],
    )
    result = tune.tune(load("smoke"), "cpu", None, iters=20)
    assert rounds[0] == [REF, t1]
    assert rounds[1] == [
        REF,
        t1,
        Settings(threads=1, optimizer="foreach"),
        Settings(threads=1, sdpa="math"),
        Settings(threads=1, compile=True),
    ]  # compile: 60 ms, not kept
    assert rounds[2] == [
        REF,
        t1,
        Settings(threads=1, optimizer="foreach"),
        Settings(threads=1, optimizer="foreach", sdpa="math"),
    ]
    assert result.best.settings == Settings(threads=1, optimizer="foreach", sdpa="math")
    assert [title for title, _ in result.rounds][0].startswith("threads first")
    assert "--dtype fp16" in result.refused and "--compile-mode reduce-overhead" in result.refused
    # only the axes asked for: nothing said of dtypes or CUDA graphs that were never on the table
    narrow = tune.tune(load("smoke"), "cpu", None, iters=20, axes=("optimizer", "sdpa"))
    assert narrow.refused == {}


def test_without_a_faster_thread_count_the_rest_is_measured_on_the_defaults(monkeypatch):
    rounds = []
    monkeypatch.setattr(
        tune,
        "run_round",
        lambda runs, scenario, device_text, settings, iters, log=None: (
            rounds.append(settings) or [m(s, 50.0 if s.threads is None else 80.0) for s in settings]
        ),
    )
    monkeypatch.setattr(
        tune, "candidates", lambda device, axes: [REF, Settings(threads=1), Settings(sdpa="math")]
    )
    result = tune.tune(load("smoke"), "cpu", None, iters=20)
    assert rounds == [
        [REF, Settings(threads=1)],
        [REF, Settings(sdpa="math")],
    ]  # nothing kept: no round 3
    assert result.best.settings == REF


# ---- candidates per device -----------------------------------------------------------------


def test_bf16_is_a_cpu_candidate_only_with_native_bf16_matmuls(monkeypatch):
    cpu = Device("cpu", None, "Some CPU")
    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2", "fma"])
    dtypes, why = tune.native_dtypes(cpu)
    assert dtypes == ["fp32"] and "no native bf16 matmul" in why["bf16"]
    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2", "avx512f", "avx512_bf16"])
    assert tune.native_dtypes(cpu)[0] == ["fp32", "bf16"]


def test_cuda_candidates_include_its_dtypes_cuda_graphs_and_its_attention_backends():
    """A stand-in H100 (no GPU here): nothing is probed to list the candidates."""
    h100 = Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), True)
    found = tune.candidates(h100)
    assert found[0] == REF
    assert {s.dtype for s in found} == {"fp32", "tf32", "bf16", "fp16"}
    assert Settings(compile=True, compile_mode="reduce-overhead") in found  # CUDA graphs
    assert {s.sdpa for s in found} == {"auto", "math", "flash", "efficient", "cudnn"}
    assert Settings(optimizer="foreach") in found and not any(s.threads for s in found)
    old = Device("cuda", 0, "Tesla T4", (7, 5), False)
    assert tune.native_dtypes(old)[0] == ["fp32", "fp16"]


def test_cuda_limits_torch_hits_at_the_first_step_are_screened_out_and_refused_in_one_line():
    """A stand-in H100. Forced flash or cuDNN attention has no fp32 kernel on CUDA; CUDA graphs
    reclaim the gradients accumulated over micro-steps. `run` refuses both (exit 2), tune
    leaves them out and says why."""
    from nanobench.errors import InputError
    from nanobench.run import settings

    h100 = Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), True)
    with pytest.raises(
        InputError, match=r"^--sdpa flash: on CUDA this kernel takes fp16 or bf16 only, not fp32$"
    ):
        settings.check(h100, "auto", "flash", False, None, "fp32")
    settings.check(h100, "auto", "flash", False, None, "bf16")  # runs
    settings.check(
        h100, "auto", "efficient", False, None, "fp32"
    )  # memory-efficient attention takes fp32
    with pytest.raises(
        InputError, match=r"^--compile-mode reduce-overhead: CUDA graphs overwrite the gradients"
    ):
        settings.check(h100, "auto", "auto", True, "reduce-overhead", "bf16", grad_accum=2)
    settings.check(h100, "auto", "auto", True, "reduce-overhead", "bf16", grad_accum=1)
    settings.check(
        Device("cpu", None, "Some CPU"), "auto", "flash", False, None, "fp32"
    )  # the CPU kernel takes fp32

    one, refused_one = tune.screen(tune.candidates(h100), h100, grad_accum=1)
    assert refused_one == {}  # flash and cuDNN are tried in bf16, where they run
    assert (
        Settings(compile=True, compile_mode="reduce-overhead") in one
        and Settings(sdpa="efficient") in one
    )
    accum, refused_accum = tune.screen(tune.candidates(h100), h100, grad_accum=4)
    assert not any(s.compile_mode in ("reduce-overhead", "max-autotune") for s in accum)
    assert "train.grad_accum = 4" in refused_accum["--compile --compile-mode reduce-overhead"]
    assert Settings(compile=True) in accum  # compile without CUDA graphs stays


def test_flash_and_cudnn_are_tried_in_the_half_dtype_each_gpu_runs():
    """Issue 25, defect 2: screened against the fp32 reference, CUDA flash and cuDNN attention
    were never tried at all. Each backend is now a candidate in a dtype it runs (bf16 where
    native, else fp16), and refused by compute capability before Ampere."""
    h100 = Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), True)
    found = tune.candidates(h100, axes=("sdpa",))
    assert Settings(dtype="bf16", sdpa="flash") in found
    assert Settings(dtype="bf16", sdpa="cudnn") in found
    assert Settings(sdpa="efficient") in found and Settings(sdpa="math") in found
    kept, refused = tune.screen(found, h100)
    assert Settings(dtype="bf16", sdpa="flash") in kept and refused == {}
    # the GPU recipe's dropout 0.2 is no cuDNN dropout: left out, with torch's reason
    kept, refused = tune.screen(found, h100, dropout=0.2)
    assert Settings(dtype="bf16", sdpa="cudnn") not in kept
    assert "not a multiple of 1/16" in refused["--dtype bf16 --sdpa cudnn"]
    t4 = Device("cuda", 0, "Tesla T4", (7, 5), False)
    found = tune.candidates(t4, axes=("sdpa",))
    assert Settings(dtype="fp16", sdpa="flash") in found  # no native bf16 there
    kept, refused = tune.screen(found, t4)
    assert "compute capability 7.5" in refused["--dtype fp16 --sdpa flash"]
    assert Settings(sdpa="efficient") in kept
    # an attention candidate is filed under sdpa, and a kept dtype wins over its own
    assert tune.axis_of(Settings(dtype="bf16", sdpa="flash")) == "sdpa"
    kept = {
        "sdpa": m(Settings(dtype="bf16", sdpa="flash"), 20.0),
        "dtype": m(Settings(dtype="fp16"), 25.0),
    }
    assert tune.combine(kept) == Settings(dtype="fp16", sdpa="flash")


def test_compiled_candidates_are_screened_with_runs_own_compile_check(monkeypatch):
    """Issue 25, defect 4: without a C++ compiler (or triton on CUDA) the first compiled
    candidate raised inside inductor and aborted the whole tune. The compiler here is made
    absent through the setting torch's own check reads (inductor's cpp.cxx)."""
    from torch._inductor import config as inductor_config

    from nanobench.measure import environment

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++ stand-in",))
    why = environment.compile_problem(Device.cpu())
    assert why and "needs a C++ compiler" in why
    measured = []

    def fake_round(runs, scenario, device_text, settings, iters, log=None):
        measured.extend(settings)
        return [m(s, 50.0) for s in settings]

    monkeypatch.setattr(tune, "run_round", fake_round)
    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2"])
    result = tune.tune(load("smoke"), "cpu", None, iters=20, axes=("compile", "sdpa"))
    assert not any(s.compile for s in measured) and Settings(sdpa="math") in measured
    assert result.refused["--compile"] == why
    assert result.refused["--compile --compile-mode max-autotune-no-cudagraphs"] == why


def test_compile_and_an_attention_backend_are_never_combined():
    """Compiled models of one mode share dynamo's graph, which ignores the SDPA backend: of a
    kept compile and a kept backend, the faster alone goes into the combination."""
    kept = {
        "compile": m(Settings(compile=True), 30.0),
        "sdpa": m(Settings(sdpa="math"), 35.0),
        "optimizer": m(Settings(optimizer="foreach"), 40.0),
    }
    apart, note = tune.apart(kept)
    assert list(apart) == ["compile", "optimizer"]
    assert note.startswith("not combined: --sdpa math (slower than --compile)")
    assert tune.combine(apart) == Settings(compile=True, optimizer="foreach")
    faster_backend = dict(kept, sdpa=m(Settings(sdpa="math"), 20.0))
    assert list(tune.apart(faster_backend)[0]) == ["sdpa", "optimizer"]
    assert tune.apart({"sdpa": kept["sdpa"]}) == ({"sdpa": kept["sdpa"]}, None)


def test_cpu_thread_candidates(monkeypatch):
    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2"])
    monkeypatch.setattr(host, "physical_cores", lambda: 2)
    found = tune.candidates(Device("cpu", None, "Some CPU"), default_threads=2, logical_cpus=2)
    assert [s.threads for s in found if s.threads] == [1]
    # torch has no foreach AdamW on the CPU: the for-loop is the other one it runs
    assert Settings(optimizer="for-loop") in found and Settings(sdpa="math") in found
    assert Settings(optimizer="foreach") not in found
    assert Settings(compile=True, compile_mode="reduce-overhead") not in found
    assert tune.thread_counts(default=16, logical=32, physical=16) == [1, 2, 4, 8, 32]


# ---- the record ----------------------------------------------------------------------------


def test_record_round_trip_is_keyed_by_device_torch_and_scenario(tmp_path):
    path = tmp_path / "tune.json"
    smoke = load("smoke")
    result = tune.TuneResult(
        "smoke",
        "AMD EPYC",
        "2.13.0+cpu",
        60,
        0.02,
        0.03,
        [("one at a time", [m(REF, 50.0)])],
        [m(REF, 50.0), m(Settings(threads=1), 40.0)],
        m(Settings(threads=1), 40.0),
        {},
    )
    key = tune.save(result, smoke, path)
    assert key.startswith("AMD EPYC|torch 2.13.0+cpu|smoke|")
    assert tune.find("AMD EPYC", "2.13.0+cpu", smoke, path) == Settings(threads=1)
    assert tune.find("AMD EPYC", "2.14.0+cpu", smoke, path) is None  # another torch
    assert tune.find("Intel Xeon", "2.13.0+cpu", smoke, path) is None  # another device
    assert (
        tune.find("AMD EPYC", "2.13.0+cpu", load("smoke", ["model.n_layer=3"]), path) is None
    )  # another model
    assert (
        tune.find("AMD EPYC", "2.13.0+cpu", load("smoke", ["train.learning_rate=3e-4"]), path)
        is None
    )
    same_step = load(
        "smoke", ["eval.interval=100000", "train.max_iters=7", "train.seed=1"]
    )  # the step is the same
    assert tune.find("AMD EPYC", "2.13.0+cpu", same_step, path) == Settings(threads=1)
    other = tune.TuneResult(
        "smoke",
        "NVIDIA H100",
        "2.13.0+cu128",
        60,
        0.02,
        0.03,
        [],
        [],
        m(Settings(dtype="bf16"), 5.0),
        {},
    )
    tune.save(other, smoke, path)  # a second key keeps the first
    assert len(tune.load_records(path)) == 2 and tune.find(
        "AMD EPYC", "2.13.0+cpu", smoke, path
    ) == Settings(threads=1)
    path.write_text("{not json")
    assert tune.load_records(path) == {}  # damaged: tune again, never a traceback
    path.write_text(json.dumps({"version": 99, "records": {}}))
    assert tune.load_records(path) == {}


# ---- a round: one plan of runs, read back from their result files ---------------------------


def write_candidate(out, plan, cell, losses, step_ms):
    """The result file a candidate's run leaves: its cell and plan recorded, the given losses
    and step times (one row per iteration, then the final evaluation's row)."""
    meta = {
        "scenario": load("smoke").to_dict(),
        "options": {"device": "cpu", "dtype": "fp32", "cell": cell.id, "seed": 1337},
        "group_id": plan.plan_id,
        "device": {"spec": "cpu", "type": "cpu", "name": "EPYC"},
    }
    rows = [
        {"iter": i, "loss": loss, "step_time_s": ms / 1e3, "eval_val_loss": None}
        for i, (loss, ms) in enumerate(zip(losses, step_ms))
    ]
    rows.append({"iter": len(losses), "eval_val_loss": 2.5})
    writer = RunWriter(out, f"smoke-{cell.id}", meta)
    writer.append(rows)
    writer.finish("completed", None)


def test_a_round_is_a_plan_read_back_from_its_result_files_and_continued(tmp_path):
    """Fast (no training): a round's plan stored in OUT, its candidates' files written by hand.
    The figures are computed here by hand: medians of the steps from iteration 2 on, and the
    loss differences to the reference's curve. With --continue the stored plan is found and
    only its candidate without a result runs."""
    executed = []

    def execute(plan, cells):
        executed.append([c.id for c in cells])
        write_candidate(tmp_path, plan, cells[0], [4.0, 3.0, 2.5, 2.0], [9, 9, 30, 50])
        return []

    runs = tune.TuneRuns("smoke", (), str(tmp_path), execute, continue_=True, passes=1)
    settings = [REF, Settings(threads=1)]
    cells = tune.round_cells(runs, "cpu", settings, 4, 1337)
    assert [(c.seed, c.max_iters, c.threads) for c in cells] == [(1337, 4, None), (1337, 4, 1)]
    stored = plans.Plan("smoke-round", str(tmp_path), tuple(cells))
    stored.save()
    write_candidate(tmp_path, stored, cells[0], [4.0, 3.0, 2.0, 1.5], [9, 9, 20, 40])
    ref, one = tune.run_round(runs, load("smoke"), "cpu", settings, iters=4, warmup=2)
    assert executed == [["c001"]]  # the reference's result was there: only the other ran
    assert ref.median_step_s == pytest.approx(0.030) and ref.max_abs_loss_diff == 0.0
    assert one.median_step_s == pytest.approx(0.040)  # (30 + 50) / 2 ms
    assert one.max_abs_loss_diff == pytest.approx(0.5) and one.max_diff_iter == 2
    assert one.final_loss_diff == pytest.approx(0.5) and one.finite
    assert [p.stem for p in plans.stored(tmp_path)] == ["smoke-round"]  # no second plan
    tune.run_round(runs, load("smoke"), "cpu", settings, iters=4, warmup=2)
    assert executed == [["c001"]]  # all completed: nothing runs again


def test_two_passes_run_each_candidate_forward_then_backward_and_pool_their_steps(tmp_path):
    """A B C, then C B A: each candidate's step time is the median of its steady steps of both
    runs, its loss figures the worse of its two curves against the reference's first run."""
    assert tune.pass_order(3, 2) == [0, 1, 2, 2, 1, 0] and tune.pass_order(2, 3) == [
        0,
        1,
        1,
        0,
        0,
        1,
    ]
    given = {  # cell id -> (losses, step ms): iterations 0-1 are the warm-up
        "c000": ([4.0, 3.0, 2.0, 1.0], [9, 9, 10, 20]),  # the reference, first pass
        "c001": ([4.0, 3.0, 2.0, 1.0], [9, 9, 30, 40]),
        "c002": ([4.0, 3.0, 2.0, 1.2], [9, 9, 50, 60]),  # the candidate, second pass
        "c003": ([4.0, 3.0, 2.0, 1.0], [9, 9, 60, 70]),  # the reference, second pass
    }

    def execute(plan, cells):
        for cell in cells:
            write_candidate(tmp_path, plan, cell, *given[cell.id])
        return []

    runs = tune.TuneRuns("smoke", (), str(tmp_path), execute, passes=2)
    ref, one = tune.run_round(runs, load("smoke"), "cpu", [REF, Settings(threads=1)], 4, 2)
    assert ref.median_step_s == pytest.approx(0.040)  # median of 10, 20, 60, 70 ms
    assert one.median_step_s == pytest.approx(0.045)  # median of 30, 40, 50, 60 ms
    assert one.max_abs_loss_diff == pytest.approx(0.2) and one.max_diff_iter == 3
    assert ref.max_abs_loss_diff == 0.0
    [stored] = plans.stored(tmp_path)
    cells = json.loads(stored.read_text())["cells"]
    assert [(c["id"], c["threads"]) for c in cells] == [
        ("c000", None),
        ("c001", 1),
        ("c002", 1),
        ("c003", None),
    ]


def test_a_candidate_without_a_result_is_one_line_naming_it(tmp_path):
    def only_the_reference(plan, cells):
        write_candidate(tmp_path, plan, cells[0], [4.0, 3.0, 2.0, 1.5], [9, 9, 20, 40])
        return []

    runs = tune.TuneRuns("smoke", (), str(tmp_path), only_the_reference, passes=1)
    with pytest.raises(InputError, match=r"candidate --threads 1 \(c001\) left no result"):
        tune.run_round(runs, load("smoke"), "cpu", [REF, Settings(threads=1)], iters=4, warmup=2)


# fast counterpart: test_a_round_is_a_plan_read_back_from_its_result_files_and_continued
@pytest.mark.slow
def test_a_real_round_trains_each_candidate_as_a_run_of_its_plan(tmp_path):
    """Three smoke runs of 6 iterations, one per candidate, by the local executor. The expected
    figures are read from the result files with pandas, not through tune."""
    import pandas as pd
    import torch

    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # the caller's: each run sets fp32's own
    runs = tune.TuneRuns("smoke", (), str(tmp_path), executors.run_quietly, passes=1)
    settings = [REF, Settings(threads=1), Settings(sdpa="math")]
    try:
        out = tune.run_round(runs, load("smoke"), "cpu", settings, iters=6, warmup=2)
        assert torch.get_float32_matmul_precision() == "medium"  # given back, as the threads
    finally:
        torch.set_float32_matmul_precision(saved)
    [plan_file] = (tmp_path / "plans").glob("*.json")
    plan = json.loads(plan_file.read_text())
    frames = {}
    for f in tmp_path.glob("*.parquet"):
        meta = json.loads(pq.read_schema(f).metadata[b"nanobench"])
        assert meta["group_id"] == plan["plan_id"]
        frames[meta["options"]["cell"]] = pd.read_parquet(f)
    assert sorted(frames) == [c["id"] for c in plan["cells"]] == ["c000", "c001", "c002"]
    assert [x.settings for x in out] == settings
    reference = frames["c000"].dropna(subset=["loss"])["loss"].to_numpy()
    for x, cell in zip(out, ("c000", "c001", "c002")):
        steps = frames[cell].dropna(subset=["loss"])
        assert len(steps) == 6
        assert x.median_step_s == steps[steps["iter"] >= 2]["step_time_s"].median()
        assert x.max_abs_loss_diff == abs(steps["loss"].to_numpy() - reference).max()
        assert x.finite and x.max_abs_loss_diff < 1e-4  # fp32 all: only kernel order differs
    assert out[0].max_abs_loss_diff == 0.0


def test_the_table_names_each_verdict_and_the_choice():
    import io

    from rich.console import Console

    from nanobench.present.tuning import print_tune

    singles = [
        m(REF, 50.0),
        m(Settings(threads=1), 40.0, 2e-7),
        m(Settings(sdpa="math"), 30.0, 0.05),
        m(Settings(compile=True), 20.0, finite=False),
    ]
    result = tune.TuneResult(
        "smoke",
        "AMD EPYC",
        "2.13.0+cpu",
        60,
        0.02,
        0.03,
        [("one at a time", singles)],
        singles[:2],
        singles[1],
        {"--dtype bf16": "no native bf16"},
        {"before": 9.0, "after": 8.0, "cpus": 2},
    )
    out = io.StringIO()
    print_tune(result, Console(file=out, width=200, no_color=True, highlight=False), key="K")
    text = out.getvalue()
    assert (
        "--threads 1" in text
        and "x1.25" in text
        and "2.00e-07 @3" in text
        and "equivalent, chosen" in text
    )
    assert "refused: loss off by more than 0.02" in text and "refused: loss not finite" in text
    assert (
        "not a candidate: --dtype bf16: no native bf16" in text
        and "load average 9.0 -> 8.0 on 2 CPUs" in text
    )
    assert "best: --threads 1 (recorded as K)" in text and "round 1: one at a time" in text


def test_best_settings_tunes_once_then_reads_the_record(monkeypatch, tmp_path):
    path, calls = tmp_path / "tune.json", []
    import torch

    def fake_tune(scenario, device_text, runs, log=None):
        calls.append(device_text)
        best = m(Settings(threads=1), 40.0)
        return tune.TuneResult(
            scenario.name,
            Device.cpu().name,
            torch.__version__,
            60,
            0.02,
            0.03,
            [],
            [best],
            best,
            {},
        )

    monkeypatch.setattr(tune, "tune", fake_tune)
    smoke = load("smoke")
    assert tune.best_settings(smoke, "cpu", None, path=path) == Settings(threads=1)
    assert tune.best_settings(smoke, "cpu", None, path=path) == Settings(threads=1)
    assert calls == ["cpu"]  # the second call read the record
