"""Peak FLOPs: the GPU datasheet table by name, the CPU formula, the cached calibration, and
null MFU where no peak is known. None of these need a GPU: names are plain strings."""

import json

import pytest
import torch

from nanobench.errors import InputError
from nanobench.measure import host, peaks
from nanobench.measure.device import Device
from nanobench.measure.precision import Precision

FP32 = Precision("fp32")

T = 1e12


@pytest.mark.parametrize(
    "name, dtype, tflops",
    [
        ("NVIDIA A100-SXM4-80GB", "bf16", 312),
        ("NVIDIA A100-SXM4-40GB", "tf32", 156),
        ("NVIDIA A100-PCIE-40GB", "fp32", 19.5),
        ("NVIDIA A100 80GB PCIe", "fp16", 312),
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "tf32", 494.7),
        ("NVIDIA H100 80GB HBM3", "fp32", 66.9),
        ("NVIDIA H100 PCIe", "bf16", 756),
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA L4", "bf16", 121),
        ("NVIDIA L40S", "fp16", 366),
        ("NVIDIA A10", "tf32", 62.5),
        ("Tesla T4", "fp16", 65),
        ("Tesla T4", "fp32", 8.1),
        ("Tesla V100-SXM2-16GB", "fp16", 125),
        ("Tesla V100-PCIE-32GB", "fp32", 14),
        ("NVIDIA GeForce RTX 3090", "bf16", 71),
        ("NVIDIA GeForce RTX 4070 Ti", "fp32", 40.1),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
        ("NVIDIA GeForce RTX 4090", "tf32", 82.6),
        ("NVIDIA A10G", "bf16", 125),
        ("NVIDIA L40", "bf16", 181),
        ("NVIDIA GH200 480GB", "bf16", 989.4),
        ("NVIDIA H800", "bf16", 989.4),
        ("NVIDIA H800 PCIe", "fp32", 51.2),
        ("NVIDIA B200", "bf16", 2250),
        ("NVIDIA GeForce RTX 4080", "bf16", 97.5),
        ("NVIDIA GeForce RTX 4080 SUPER", "fp32", 52.2),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "fp32", 39.7),
        ("NVIDIA GeForce RTX 3060", "bf16", 25.5),
        ("NVIDIA GeForce RTX 3070", "fp32", 20.3),
        ("NVIDIA GeForce RTX 3080", "tf32", 29.8),
        ("NVIDIA RTX A6000", "bf16", 154.8),
    ],
)
def test_gpu_datasheet_lookup_by_torch_name(name, dtype, tflops):
    peak = peaks.gpu_spec_peak(name, dtype)
    assert peak.flops == pytest.approx(tflops * T)
    assert name in peak.source and "dense" in peak.source


def test_gpu_table_has_dense_figures_only():
    # A sparse figure is twice the dense one: H100 SXM bf16 is 989.4 dense, 1979 sparse.
    for _, row in peaks.GPU_PEAKS_TFLOPS:
        if row["bf16"]:
            assert row["bf16"] <= 4 * (row["tf32"] or row["fp32"]) + 1e-9
    assert peaks.gpu_spec_peak("NVIDIA H100 80GB HBM3", "bf16").flops < 1000 * T


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA GeForce RTX 4070 Ti SUPER",
        "NVIDIA GeForce RTX 3090 Ti",
        "Some Future GPU",
        "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
    ],
)
def test_unknown_gpu_gets_no_peak_and_says_why(name):
    peak = peaks.gpu_spec_peak(name, "bf16")
    assert peak.flops is None and f"no datasheet entry for '{name}'" in peak.source


@pytest.mark.parametrize(
    "chip, cores, dtype, tflops",
    [
        ("Apple M1", 8, "fp32", 2.6),
        ("Apple M1 Max", 32, "fp32", 10.4),
        ("Apple M2", 10, "fp16", 3.6),
        ("Apple M2 Ultra", 76, "fp32", 27.36),
        ("Apple M3 Pro", 18, "fp32", 6.354),
        ("Apple M4", 10, "fp32", 3.76),
    ],
)
def test_apple_gpu_peak_by_chip_and_core_count(chip, cores, dtype, tflops):
    peak = peaks.apple_gpu_spec_peak(chip, cores, dtype)
    assert peak.flops == pytest.approx(tflops * T, rel=1e-3)


def test_apple_gpu_without_a_figure_says_why():
    assert "core count unknown" in peaks.apple_gpu_spec_peak("Apple M2 Pro", None, "fp32").source
    assert peaks.apple_gpu_spec_peak("Apple M2", 10, "bf16").flops is None
    assert "no figure" in peaks.apple_gpu_spec_peak("Intel Core i9", 8, "fp32").source


def test_gpu_without_a_tensor_mode_gets_no_peak():
    for name, dtype in (("Tesla T4", "bf16"), ("Tesla V100-SXM2-32GB", "tf32")):
        peak = peaks.gpu_spec_peak(name, dtype)
        assert peak.flops is None and dtype in peak.source


@pytest.mark.parametrize(
    "flags, kw, dtype, expected",
    [
        ({"avx512f", "avx2", "fma"}, {}, "fp32", 64),
        ({"avx512f", "avx2", "fma"}, {"vendor": "AuthenticAMD", "family": 25}, "fp32", 32),  # Zen 4
        ({"avx512f", "avx2", "fma"}, {"vendor": "AuthenticAMD", "family": 26}, "fp32", 64),  # Zen 5
        ({"avx2", "fma"}, {}, "fp32", 32),
        ({"asimd"}, {"machine": "aarch64", "system": "Linux"}, "fp32", 16),
        (set(), {"machine": "arm64", "system": "Darwin"}, "fp32", 32),
        ({"avx512f", "avx512_bf16"}, {}, "bf16", 128),
        ({"avx512f", "avx512_bf16", "amx_bf16"}, {}, "bf16", 1024),
    ],
)
def test_cpu_flops_per_cycle_from_flags(flags, kw, dtype, expected):
    per_cycle, what = peaks.cpu_flops_per_cycle(flags, dtype, **kw)
    assert per_cycle == expected and what


@pytest.mark.parametrize(
    "flags, dtype, why",
    [
        ({"avx2", "fma"}, "bf16", "no AMX or AVX-512 BF16"),
        ({"sse4_2"}, "fp32", "no AVX-512, AVX2+FMA or NEON"),
        ({"avx512f"}, "tf32", "not a CPU training dtype"),
    ],
)
def test_cpu_without_a_figure_says_unknown(flags, dtype, why):
    per_cycle, what = peaks.cpu_flops_per_cycle(flags, dtype, machine="x86_64")
    assert per_cycle is None and why in what


def test_cpu_spec_peak_is_cores_times_clock_times_per_cycle(monkeypatch):
    # An AVX2 CPU of 4 cores at 2.5 GHz, injected: the formula, not this host's facts.
    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2", "fma"])
    monkeypatch.setattr(host, "cpu_vendor", lambda: "AuthenticAMD")
    monkeypatch.setattr(host, "cpu_family", lambda: 23)
    monkeypatch.setattr(host, "cpu_clock_hz", lambda: (2.5e9, "2.500 GHz (injected)"))
    monkeypatch.setattr(host, "compute_cores", lambda: (4, "physical"))
    full = peaks.cpu_spec_peak("fp32", threads=8)
    one = peaks.cpu_spec_peak("fp32", threads=1)
    assert (
        full.flops == 4 * 2.5e9 * 32
    )  # cores (not threads beyond them) x clock x 2 FMA x 8 lanes x 2
    assert one.flops == 2.5e9 * 32  # one thread can use one core's peak
    assert "2.500 GHz" in full.source and "32 fp32 FLOPs/cycle" in full.source


def test_hidden_clock_means_unknown_not_wrong(monkeypatch):
    import psutil

    monkeypatch.setattr(
        psutil, "cpu_freq", lambda: None
    )  # what macOS on Apple silicon and some VMs give
    monkeypatch.setattr(host, "_cpuinfo", lambda: {"flags": "avx2 fma"})
    assert host.cpu_clock_hz()[0] is None
    peak = peaks.cpu_spec_peak("fp32", threads=1)
    assert peak.flops is None and "clock unknown" in peak.source


def test_mps_without_an_apple_chip_has_no_spec_peak(monkeypatch):
    monkeypatch.setattr(
        host, "cpu_model", lambda: "Intel(R) Core(TM) i9-9980HK"
    )  # an Intel Mac's AMD GPU under MPS
    monkeypatch.setattr(host, "apple_gpu_cores", lambda: None)
    peak = peaks.spec_peak(
        Device("mps", None, "Apple GPU (mps)"), FP32
    )  # stands for an MPS device: only its kind is read
    assert (
        peak.flops is None
        and "no figure for Apple GPU 'Intel(R) Core(TM) i9-9980HK'" in peak.source
    )


@pytest.fixture
def fast_calibration(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(peaks, "CALIBRATION_N", {"cpu": 256})
    monkeypatch.setattr(peaks, "CALIBRATION_BUDGET_S", 0.02)
    return tmp_path / "nanobench" / "peaks.json"


def test_measured_peak_is_cached_per_machine_and_recalibrates(fast_calibration):
    cpu = Device.cpu()
    first = peaks.measured_peak(cpu, FP32)
    assert first.flops > 1e8 and "measured now" in first.source
    cache = json.loads(fast_calibration.read_text())
    (key,) = cache
    assert key == f"{cpu.name}|fp32|torch {torch.__version__}|threads {torch.get_num_threads()}"
    assert cache[key]["n"] == 256 and cache[key]["reps"] >= 5
    again = peaks.measured_peak(cpu, FP32)
    assert again.flops == first.flops and "cached" in again.source
    fresh = peaks.measured_peak(cpu, FP32, recalibrate=True)
    assert "measured now" in fresh.source
    assert json.loads(fast_calibration.read_text())[key]["measured_at"] >= cache[key]["measured_at"]


def test_measured_peak_keys_threads_and_survives_a_damaged_cache(fast_calibration):
    fast_calibration.parent.mkdir(parents=True)
    fast_calibration.write_text("{not json")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        peak = peaks.measured_peak(Device.cpu(), FP32)
    finally:
        torch.set_num_threads(threads)
    assert peak.flops > 0 and "1 threads" in peak.source
    assert any(k.endswith("|threads 1") for k in json.loads(fast_calibration.read_text()))


def test_calibration_restores_matmul_precision(fast_calibration):
    torch.set_float32_matmul_precision(
        "high"
    )  # as a tf32 run leaves it; calibrating bf16 sets "highest"
    try:
        peaks.calibrate(Device.cpu(), Precision("bf16"), n=128, budget_s=0.01)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_consistency_note_flags_a_spec_below_measurement():
    assert peaks.consistency_note(peaks.Peak(1e11, "s"), peaks.Peak(2e11, "m")).startswith(
        "measured peak 200"
    )
    assert peaks.consistency_note(peaks.Peak(3e11, "s"), peaks.Peak(2e11, "m")) is None
    assert peaks.consistency_note(peaks.Peak(None, "s"), peaks.Peak(2e11, "m")) is None


@pytest.mark.parametrize(
    "dtype, message", [("tf32", "TF32 needs an NVIDIA GPU"), ("fp16", "fp16 training needs a GPU")]
)
def test_cpu_refuses_gpu_only_dtypes(dtype, message):
    with pytest.raises(InputError, match=message):
        Precision.for_device(dtype, Device.cpu())


def _smoke_with_peaks(monkeypatch, out, spec, measured, **opts):
    """A smoke run whose peaks are injected (figures standing for any host's): the spec and
    measured peak functions the train loop calls answer `spec` and `measured` FLOP/s."""
    from nanobench.run.scenario import load
    from nanobench.run.train import RunOptions, train
    from nanobench.store import results

    monkeypatch.setattr(
        peaks, "spec_peak", lambda device, precision: peaks.Peak(spec, "injected spec")
    )
    monkeypatch.setattr(
        peaks, "measured_peak", lambda device, precision: peaks.Peak(measured, "injected measured")
    )
    run = results.read_run(
        train(load("smoke"), RunOptions(out_dir=str(out), threads=1, **opts)).path
    )
    return run, run.rows[~run.rows["warmup"] & run.rows["step_time_s"].notna()]


def test_smoke_run_divides_by_both_peaks(tmp_path, monkeypatch):
    run, steady = _smoke_with_peaks(monkeypatch, tmp_path, 4e12, 1e12, max_iters=8)
    flops = run.meta["flops"]["per_iter"]
    for _, row in steady.iterrows():
        assert row["mfu"] == pytest.approx(flops / row["step_time_s"] / 4e12)
        assert row["mfu_measured"] == pytest.approx(flops / row["step_time_s"] / 1e12)
    assert run.meta["peak_flops"]["used_for_mfu"] == {"flops": 4e12, "source": "injected spec"}
    assert run.meta["peak_flops"]["note"] is None


def test_mfu_is_null_where_the_spec_is_unknown_or_below_the_measurement(tmp_path, monkeypatch):
    run, steady = _smoke_with_peaks(monkeypatch, tmp_path / "below", 1e11, 2e11, max_iters=6)
    assert (
        steady["mfu"].isna().all() and steady["mfu_measured"].notna().all()
    )  # a spec the matmul beats is wrong
    used = run.meta["peak_flops"]["used_for_mfu"]
    assert (
        used["flops"] is None
        and "spec 100 GFLOP/s is below the measured 200 GFLOP/s" in used["source"]
    )
    assert (
        run.meta["peak_flops"]["spec"]["flops"] == 1e11
        and "exceeds the spec" in run.meta["peak_flops"]["note"]
    )

    run, _ = _smoke_with_peaks(monkeypatch, tmp_path / "none", None, 2e11, max_iters=6)
    assert run.rows["mfu"].isna().all() and run.rows["mfu_measured"].iloc[:-1].notna().all()
    assert run.meta["peak_flops"]["spec"] == {"flops": None, "source": "injected spec"}


def test_env_report_lists_peaks_per_dtype_and_why_not(fast_calibration):
    import io

    from rich.console import Console

    from nanobench.measure.survey import survey
    from nanobench.present import envreport

    report = survey() | {"tune_records": {}, "tune_file": "tune.json"}
    cpu = next(d for d in report["devices"] if d["device"] == "cpu")
    assert cpu["memory_bytes"] > 0 and cpu["energy"]["source"] in ("rapl", None)
    assert cpu["peaks"]["tf32"] == {
        "supported": False,
        "why": pytest.approx(cpu["peaks"]["tf32"]["why"]),
    }
    assert "TF32 needs an NVIDIA GPU" in cpu["peaks"]["tf32"]["why"]
    fp32 = cpu["peaks"]["fp32"]
    assert fp32["measured_flops"] > 0 and "measured now" in fp32["measured_source"]
    assert (fp32["spec_flops"] or 0) > 0 or fp32["spec_source"]  # a number, or why not
    again = survey()["devices"][0]["peaks"]["fp32"]
    assert (
        "cached" in again["measured_source"] and again["measured_flops"] == fp32["measured_flops"]
    )
    assert (
        "measured now" in survey(calibrate=True)["devices"][0]["peaks"]["fp32"]["measured_source"]
    )
    out = io.StringIO()
    envreport.print_report(report, Console(file=out, width=200, _environ={}))
    assert (
        "fp32" in out.getvalue()
        and "not supported" in out.getvalue()
        and str(fast_calibration) in out.getvalue()
    )


def test_a_spec_peak_beaten_by_measurement_gives_no_mfu():
    spec, measured = peaks.Peak(665e9, "formula"), peaks.Peak(1012e9, "calibration")
    used = peaks.spec_for_mfu(spec, measured)
    assert used.flops is None and "below the measured 1012 GFLOP/s" in used.source
    assert (
        peaks.spec_for_mfu(peaks.Peak(332e9, "formula"), peaks.Peak(218e9, "calibration")).flops
        == 332e9
    )
    assert (
        peaks.spec_for_mfu(peaks.Peak(332e9, "formula"), peaks.Peak(None, "no calibration")).flops
        == 332e9
    )


def test_a_peak_the_run_beats_is_dropped_from_the_cache(tmp_path, monkeypatch, one_thread):
    """A calibration taken under load reads low; a run whose steps beat it discards it."""
    from nanobench.run.scenario import load
    from nanobench.run.train import RunOptions, train
    from nanobench.store import results

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # one_thread: the cache key holds the thread count; the run below uses 1
    peaks.measured_peak(Device.cpu(), FP32)  # calibrate and cache
    path = peaks.cache_path()
    data = json.loads(path.read_text())
    [key] = data
    data[key]["flops"] = 1e6  # 1 MFLOP/s: a "peak" any real step beats
    path.write_text(json.dumps(data))
    outcome = train(load("smoke"), RunOptions(out_dir=str(tmp_path / "r"), threads=1, max_iters=8))
    run = results.read_run(outcome.path)
    assert outcome.summary["mfu_measured"] > 1
    assert "calibration was low" in run.meta["peak_flops"]["measured_beaten"]
    assert key not in json.loads(path.read_text())  # the next run measures again


def test_each_gpu_has_its_own_calibration_entry():
    """cuda:0 and cuda:1 of one model never share a cached figure (stand-in GPUs: nothing probed)."""
    bf16 = Precision("bf16")
    gpu0 = Device("cuda", 0, "NVIDIA H100 80GB HBM3", (9, 0), True, "GPU-aaaa")
    gpu1 = Device("cuda", 1, "NVIDIA H100 80GB HBM3", (9, 0), True, "GPU-bbbb")
    key0, key1 = peaks._cache_key(gpu0, bf16), peaks._cache_key(gpu1, bf16)
    assert (
        key0 != key1
        and "|cuda:1|GPU-bbbb" in key1
        and key1.startswith("NVIDIA H100 80GB HBM3|bf16|torch ")
    )
    # the same ordinal on another machine's (or a swapped) board: its UUID differs, so does its key
    assert (
        peaks._cache_key(Device("cuda", 1, "NVIDIA H100 80GB HBM3", (9, 0), True, "GPU-cccc"), bf16)
        != key1
    )


class _ClockedBlas:
    """Stands for torch and the clock in the CPU calibration's sizing: a matmul of side n
    advances the clock by 2 n^3 / flops, as a BLAS of that speed would."""

    def __init__(self, flops: float):
        self.flops, self.now = flops, 0.0

    def ones(self, n, m, dtype=None):
        return n

    def matmul(self, a, b):
        self.now += 2 * a**3 / self.flops

    def perf_counter(self):
        return self.now


@pytest.mark.parametrize("flops, n", [(0.5e9, 256), (140e9, 1024), (1e13, 4096)])
def test_cpu_calibration_is_sized_by_the_dtypes_own_speed(monkeypatch, flops, n):
    # an emulated bf16 (~1 GFLOP/s) gets 256^2, ~35 ms a repetition; fp32's 1024^2 would take seconds
    blas = _ClockedBlas(flops)
    monkeypatch.setattr(peaks, "time", blas)
    assert peaks._cpu_calibration_n(blas, torch.bfloat16) == n


def test_calibration_stops_at_its_time_cap():
    # budget and cap spent: two repetitions, not the five an ordinary round insists on
    entry = peaks.calibrate(Device.cpu(), Precision("bf16"), n=64, budget_s=0, cap_s=0)
    assert entry["reps"] == 2 and entry["flops"] > 0


def _measured(fp32: float, bf16: float):
    """measured_peak standing for a calibrated CPU: fp32 and bf16 at the given FLOP/s."""
    return lambda device, precision: peaks.Peak(
        fp32 if precision.name == "fp32" else bf16, "injected"
    )


def test_emulated_bf16_slowdown_from_the_measured_peaks(monkeypatch):
    monkeypatch.setattr(peaks, "measured_peak", _measured(140e9, 1e9))
    emulating = Device("cpu", None, "CPU without bf16 (stand-in)", native_bf16=False)
    native = Device("cpu", None, "CPU with AMX (stand-in)", native_bf16=True)
    bf16 = Precision("bf16")
    assert peaks.emulated_slowdown(emulating, bf16) == pytest.approx(140)
    assert (
        peaks.emulated_slowdown(native, bf16) is None
        and peaks.emulated_slowdown(emulating, FP32) is None
    )
    assert (
        peaks.emulated_slowdown(Device("cuda", 0, "NVIDIA A100 stand-in", (8, 0), True), bf16)
        is None
    )
    line = peaks.emulation_warning(emulating, bf16)
    assert (
        line.startswith("warning: bf16 on this CPU is emulated")
        and "matmul 1 vs 140 GFLOP/s in fp32, about 140x slower" in line
    )
    assert "\n" not in line and peaks.emulation_warning(native, bf16) is None
    monkeypatch.setattr(
        peaks, "measured_peak", _measured(140e9, None)
    )  # a failed calibration: no ratio, no guess
    assert (
        peaks.emulated_slowdown(emulating, bf16) is None
        and peaks.emulation_warning(emulating, bf16) is None
    )


@pytest.mark.parametrize(
    "flags, native",
    [
        ("avx2 fma", False),
        ("avx512f avx512_bf16", True),
        ("amx_bf16", True),
        ("fp asimd bf16", True),
    ],
)
def test_a_cpu_is_native_bf16_by_its_flags(monkeypatch, flags, native):
    monkeypatch.setattr(host, "cpu_flags", lambda: flags.split())
    assert Device.cpu().native_bf16 is native


def test_a_bf16_run_on_an_emulating_cpu_warns_before_its_first_step(tmp_path, monkeypatch):
    from nanobench.run.scenario import load
    from nanobench.run.train import RunOptions, train

    monkeypatch.setattr(peaks, "measured_peak", _measured(140e9, 1e9))
    monkeypatch.setattr(
        host, "cpu_flags", lambda: ["avx2", "fma"]
    )  # a CPU without bf16 hardware, on any host
    opts = RunOptions(out_dir=str(tmp_path), threads=1, max_iters=2, dtype="bf16")

    class Log:  # the command line's progress display: what it was told, in order
        lines = []

        def log(self, text):
            self.lines.append(text)

        def update(self, row, total):
            self.lines.append(f"step {row['iter']}")

    train(load("smoke"), opts, progress=Log())
    [warned] = [i for i, line in enumerate(Log.lines) if "emulated" in line]  # once
    assert "about 140x slower" in Log.lines[warned]
    assert warned < next(
        i for i, line in enumerate(Log.lines) if line.startswith("iter 0:")
    )  # before any step
