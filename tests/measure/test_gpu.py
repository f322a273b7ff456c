"""CUDA paths on a real GPU (skipped without one; `make gpu-check` runs them on a GPU box).

These check what cannot be checked here: event timing, the allocator and NVML columns, the
energy counter, the datasheet row of the GPU at hand against its measured matmul rate, and
each dtype's run end to end.
"""

import time

import pytest
import torch

from nanobench.measure import peaks
from nanobench.measure.device import parse_device
from nanobench.measure.precision import Precision
from nanobench.run.scenario import load
from nanobench.run.train import RunOptions, train
from nanobench.store import results

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda():
    return parse_device("cuda:0").resolve()


def smoke(tmp_path, **opts):
    outcome = train(load("smoke"), RunOptions(device="cuda", out_dir=str(tmp_path), **opts))
    assert outcome.status == "completed", outcome.reason
    return results.read_run(outcome.path)


def test_cuda_event_timer_agrees_with_a_synchronised_wall_clock(cuda):
    a = torch.randn(4096, 4096, device=cuda.torch)
    timer = cuda.step_timer()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    timer.start()
    for _ in range(20):
        a @ a
    handle = timer.stop()
    (event_s,) = timer.seconds([handle])
    wall_s = time.perf_counter() - t0  # seconds() synchronised on the end event
    assert 0 < event_s <= wall_s * 1.05


def test_fp32_run_fills_the_cuda_memory_energy_and_mfu_columns(tmp_path, cuda):
    run = smoke(tmp_path, dtype="fp32")
    steps = run.rows[run.rows["step_time_s"].notna()]
    assert (steps["mem_reserved_bytes"] >= steps["mem_bytes"]).all()
    assert (steps["mem_peak_bytes"] >= steps["mem_bytes"]).all()
    assert (
        steps["mem_device_bytes"] >= steps["mem_reserved_bytes"]
    ).all()  # NVML sees the context too
    assert run.meta["energy"]["source"] == "nvml"
    assert steps["energy_j"].is_monotonic_increasing and steps["energy_j"].iloc[-1] > 0
    state = run.meta["environment"]["gpu_state_at_start"]
    assert state["nvml"] and state["power_limit_w"] > 0 and state["sm_clock_max_mhz"] > 0
    assert run.meta["precision"]["cuda_matmul_allow_tf32"] is False
    if run.meta["peak_flops"]["spec"]["flops"]:
        assert steps.loc[~steps["warmup"], "mfu"].between(0, 1, inclusive="neither").all()
    assert steps.loc[~steps["warmup"], "mfu_measured"].between(0, 1, inclusive="neither").all()


@pytest.mark.parametrize("dtype", ["tf32", "bf16", "fp16"])
def test_each_gpu_dtype_trains(tmp_path, dtype):
    run = smoke(tmp_path, dtype=dtype)
    evals = run.rows["eval_val_loss"].dropna()
    assert evals.iloc[-1] < evals.iloc[0]
    assert run.meta["precision"]["cuda_matmul_allow_tf32"] is (dtype == "tf32")


@pytest.mark.parametrize("dtype", ["fp32", "tf32", "bf16"])
def test_measured_matmul_does_not_beat_the_datasheet(cuda, dtype):
    precision = Precision.for_device(dtype, cuda)
    spec = peaks.spec_peak(cuda, precision)
    measured = peaks.measured_peak(cuda, precision, recalibrate=True)
    assert measured.flops and measured.flops > 0
    if spec.flops is None:
        pytest.skip(spec.source)
    # a datasheet row for the wrong variant (PCIe vs SXM) or a sparse figure would show here
    assert 0.2 * spec.flops < measured.flops <= 1.05 * spec.flops, (cuda.name, spec, measured)


def test_nvml_energy_counter_advances_under_load(cuda):
    meter = cuda.energy_meter()
    assert meter.describe()["source"] == "nvml"
    a = torch.randn(8192, 8192, device=cuda.torch)
    for _ in range(50):
        a @ a
    torch.cuda.synchronize()
    time.sleep(0.2)  # the counter updates at the driver's own rate
    assert meter.read_j() > 0


def test_nvml_matches_torch_device(cuda):
    pynvml, handle = cuda.nvml()
    assert pynvml.nvmlDeviceGetMemoryInfo(handle).total >= cuda.memory_total_bytes()


def test_compile_time_is_recorded_and_its_steps_marked_warmup(tmp_path):
    run = smoke(tmp_path, dtype="fp32", compile=True, max_iters=12)
    summary = run.meta["summary"]
    assert summary["compile_time_s"] > 0
    assert summary["first_step_time_s"] > 10 * summary["median_step_time_s"]
    assert bool(run.rows["warmup"].iloc[0])


def test_no_host_sync_per_step(tmp_path):
    """The loop syncs once per read window (and at evaluations), never once per step: with
    torch's sync debug mode counting every synchronising call, doubling the steps adds the
    syncs of the extra read windows and evaluations, not one per step."""
    import warnings

    def count_syncs(iters: int) -> int:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train(
                    load("smoke", ["eval.interval=1000"]),
                    RunOptions(device="cuda", out_dir=str(tmp_path), max_iters=iters),
                )
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message).lower() for w in caught)

    short, long = count_syncs(40), count_syncs(80)
    extra_windows = 40 // parse_device("cuda").resolve().host_read_interval
    assert long - short <= extra_windows + 2, (short, long)


def test_release_memory_hands_the_cache_back_and_restarts_the_peaks(cuda):
    """Issue 25, defect 6 on the real allocator (tests/measure/test_device.py fakes it)."""
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device=cuda.torch)
    del block  # freed, still cached
    assert torch.cuda.memory_reserved(cuda.torch) >= 256 * 2**20
    cuda.release_memory()
    assert torch.cuda.memory_reserved(cuda.torch) < 256 * 2**20
    assert torch.cuda.max_memory_allocated(cuda.torch) == torch.cuda.memory_allocated(cuda.torch)


def test_cudnn_attention_really_refuses_the_gpu_recipes_dropout(cuda):
    """What settings.unsupported refuses up front (defect 1) is what torch refuses at the first
    training step: cuDNN attention forced, dropout 0.2 (not a multiple of 1/16)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if cuda.compute_capability < (8, 0):
        pytest.skip("cuDNN attention needs sm80+")
    q = torch.randn(2, 6, 256, 64, device=cuda.torch, dtype=torch.bfloat16, requires_grad=True)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION), pytest.raises(RuntimeError):
        torch.nn.functional.scaled_dot_product_attention(q, q, q, dropout_p=0.2, is_causal=True)


@pytest.mark.parametrize("choice, ran", [("auto", "fused"), ("foreach", "foreach")])
def test_a_cuda_run_records_the_adamw_it_ran(tmp_path, choice, ran):
    run = smoke(tmp_path, optimizer=choice, max_iters=3)
    assert run.meta["optimizer"]["implementation"] == ran
