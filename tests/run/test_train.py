"""The seeded CPU smoke run: the loss falls, repeats are bit-identical, seeds differ."""

import math

import pandas as pd
import pytest
import torch

from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, lr_at, train
from nanobench.store import results


def run_smoke(tmp_path, **opts):
    outcome = train(load("smoke"), RunOptions(out_dir=str(tmp_path), threads=1, **opts))
    return outcome, results.read_run(outcome.path)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("smoke")
    return [
        run_smoke(d / name, seed=seed)[1] for name, seed in (("a", 1337), ("b", 1337), ("c", 7))
    ]


def test_loss_falls_and_every_iteration_is_recorded(smoke_runs):
    run = smoke_runs[0]
    rows = run.rows
    assert list(rows["iter"]) == list(range(31))  # 30 steps + the final evaluation row
    evals = rows.dropna(subset=["eval_val_loss"])
    assert list(evals["iter"]) == [0, 10, 20, 30]
    assert evals["eval_val_loss"].iloc[-1] < evals["eval_val_loss"].iloc[0] - 0.4
    assert evals["eval_val_loss"].iloc[0] == pytest.approx(
        math.log(run.meta["dataset"]["vocab_size"]), abs=0.1
    )
    steps = rows.iloc[:-1]
    assert steps["step_time_s"].gt(0).all() and steps["loss"].notna().all()
    assert steps["train_time_s"].is_monotonic_increasing
    assert steps["train_time_s"].iloc[-1] == pytest.approx(steps["step_time_s"].sum())
    assert list(steps["tokens"]) == [4 * 16 * (i + 1) for i in range(30)]
    assert steps["mem_peak_bytes"].ge(steps["mem_bytes"]).all()
    assert pd.isna(rows["loss"].iloc[-1])  # the final row carries the evaluation only
    assert run.meta["status"] == "completed" and run.meta["sample"].startswith("the ")


def test_same_seed_is_bit_identical_other_seed_differs(smoke_runs):
    a, b, c = (r.rows for r in smoke_runs)
    assert a["loss"].iloc[:-1].tolist() == b["loss"].iloc[:-1].tolist()
    assert a["eval_val_loss"].dropna().tolist() == b["eval_val_loss"].dropna().tolist()
    assert smoke_runs[0].meta["sample"] == smoke_runs[1].meta["sample"]
    assert a["loss"].iloc[0] != c["loss"].iloc[0]


def test_metadata_records_what_a_comparison_needs(smoke_runs):
    meta = smoke_runs[0].meta
    assert meta["schema_version"] == results.SCHEMA_VERSION
    assert meta["options"]["seed"] == 1337 and meta["options"]["threads"] == 1
    assert meta["scenario"]["name"] == "smoke"
    assert meta["dataset"]["name"] == "synthetic" and len(meta["dataset"]["sha256"]) == 64
    # smoke on 27 characters: N = 13,248 (worked out in tests/measure/test_metrics.py), per
    # token 6N + 12*1*2*16*16 = 85,632, x 4 x 16 tokens = 5,480,448
    assert meta["model"]["n_params"] == 13_248 and meta["flops"]["per_iter"] == 5_480_448
    env = meta["environment"]
    assert env["torch"] == torch.__version__ and env["torch_num_threads"] == 1
    assert "git" in env and "cpu_model" in env
    assert meta["run_id"] in str(smoke_runs[0].path)


def test_max_iters_truncates_but_keeps_the_schedule(tmp_path):
    outcome, run = run_smoke(tmp_path, max_iters=7)
    assert outcome.status == "completed"
    assert run.rows["iter"].tolist() == list(range(8))
    assert run.rows.dropna(subset=["eval_val_loss"])["iter"].tolist() == [0, 7]
    scenario = load("smoke")
    assert run.rows["lr"].iloc[6] == pytest.approx(lr_at(6, scenario.train))


def test_lr_schedule_warmup_cosine_floor():
    t = load("shakespeare_char_cpu").train
    assert lr_at(0, t) == pytest.approx(1e-3 / 101)
    assert lr_at(99, t) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, t) == pytest.approx(1e-3)
    assert lr_at(1050, t) == pytest.approx(1e-4 + 0.5 * 0.9e-3)
    assert lr_at(2000, t) == pytest.approx(1e-4) and lr_at(5000, t) == 1e-4


def test_grad_accum_keeps_the_global_batch(tmp_path):
    """grad_accum=2 with half the batch sees the same tokens: the losses agree closely."""
    s = load("smoke")
    full = train(s, RunOptions(out_dir=str(tmp_path / "a"), threads=1, max_iters=5))
    split = train(
        load("smoke", ["train.batch_size=2", "train.grad_accum=2"]),
        RunOptions(out_dir=str(tmp_path / "b"), threads=1, max_iters=5),
    )
    la = results.read_run(full.path).rows["loss"].iloc[:5]
    lb = results.read_run(split.path).rows["loss"].iloc[:5]
    assert la.tolist() == pytest.approx(lb.tolist(), abs=1e-4)


def test_initial_weights_and_batches_ignore_the_device_string(tmp_path, monkeypatch):
    """'cpu' and 'auto' start from the same weights and batches ('auto' made to mean the CPU
    here by hiding any GPU, so the test is the same on every host)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _, a = run_smoke(tmp_path / "a", device="cpu", max_iters=3)
    _, b = run_smoke(tmp_path / "b", device="auto", max_iters=3)
    assert a.rows["loss"].iloc[:3].tolist() == b.rows["loss"].iloc[:3].tolist()


def test_memory_is_released_after_calibration_before_each_runs_first_step(tmp_path, monkeypatch):
    """On CUDA the calibration's matmuls (768 MiB at 8192^2 in fp32) and an earlier seed's or
    cell's model would otherwise stay in every row's reserved and device memory. The CPU has
    no cache to release, so spies record the order; two seeds: each run releases before its
    own first step (tests/measure/test_device.py fakes the CUDA allocator itself)."""
    from nanobench.measure import peaks
    from nanobench.measure.device import Device
    from nanobench.run import executors
    from nanobench.run import plan as plans

    calls = []
    measured, sample = peaks.measured_peak, Device.memory_sample
    monkeypatch.setattr(
        peaks, "measured_peak", lambda *a, **k: calls.append("calibrate") or measured(*a, **k)
    )
    monkeypatch.setattr(Device, "release_memory", lambda self: calls.append("release"))
    monkeypatch.setattr(Device, "memory_sample", lambda self: calls.append("step") or sample(self))
    cells = plans.make_cells("smoke", (), [("cpu", "fp32")], [1, 2], {"max_iters": 2, "threads": 1})
    executors.run_local(
        plans.Plan("release-test", str(tmp_path), tuple(cells)),
        cells,
        lambda label: __import__("contextlib").nullcontext(),
        lambda o: None,
        True,
        False,
    )
    runs = [i for i, c in enumerate(calls) if c == "calibrate"]
    assert len(runs) == 2 and calls.count("release") == 2
    for start in runs:
        assert calls[start : start + 3] == ["calibrate", "release", "step"]


# fast in the default suite: test_metrics' summary (compile_time_s = first step - median),
# test_platforms' refusal without a C++ compiler, test_settings_compile_wraps_lazily
@pytest.mark.slow
def test_compile_trains_on_the_cpu(tmp_path):
    """torch.compile's CPU path end to end (inductor builds C++ kernels with this host's
    compiler): the compiled run starts from the same weights and batches as the eager one
    and follows its losses, and records what compiling cost."""
    from nanobench.measure import environment
    from nanobench.measure.device import Device

    problem = environment.compile_problem(Device.cpu())
    if problem:
        pytest.skip(problem)
    try:
        _, compiled = run_smoke(tmp_path / "compiled", compile=True, max_iters=6)
    finally:
        torch._dynamo.reset()  # the compiled graphs are this test's, not the next one's
    _, eager = run_smoke(tmp_path / "eager", max_iters=6)
    assert compiled.meta["options"]["compile"] is True and compiled.meta["status"] == "completed"
    # the same model and batches; only kernel fusion and summation order differ
    losses = compiled.rows["loss"].iloc[:6].tolist()
    assert losses == pytest.approx(eager.rows["loss"].iloc[:6].tolist(), rel=1e-3)
    summary = compiled.meta["summary"]
    assert summary["compile_time_s"] > 0
    assert summary["compile_time_s"] == pytest.approx(
        summary["first_step_time_s"] - summary["median_step_time_s"]
    )


def test_settings_compile_wraps_lazily():
    """--compile hands train a torch.compile wrapper of the model (nothing is compiled until
    its first call); without it, the model itself."""
    from nanobench.run.model import GPT, GPTConfig
    from nanobench.run.settings import compile_model

    model = GPT(GPTConfig.from_scenario(load("smoke"), 27), torch.Generator().manual_seed(0))
    assert compile_model(model, False, None) is model
    wrapped = compile_model(model, True, None)
    assert isinstance(wrapped, torch._dynamo.eval_frame.OptimizedModule)
    assert wrapped._orig_mod is model


def test_run_options_take_the_speed_settings_under_their_names_and_defaults():
    """A run recorded with RunOptions is read back as Settings: both must name and default
    the six settings alike, or a recorded key would read as another setting or default."""
    import dataclasses

    from nanobench.store.meta import Settings

    opts = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    speed = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert sorted(speed) == ["compile", "compile_mode", "dtype", "optimizer", "sdpa", "threads"]
    assert {k: opts[k] for k in speed} == speed
    recorded = RunOptions(threads=1, sdpa="math").recorded()
    assert Settings.recorded(recorded) == Settings(threads=1, sdpa="math")
