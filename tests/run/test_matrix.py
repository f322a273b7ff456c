"""`nanobench run --device all --dtype fp32,bf16`: the matrix of (device, dtype) entries, what is
skipped and why, and a real matrix of `smoke` runs. The devices and the CPU's native-bf16 answer are passed in,
never read from this host: the Device values below stand for machines that are not here."""

import contextlib

import pytest

from nanobench.errors import InputError
from nanobench.measure.device import Device
from nanobench.run import executors, matrix
from nanobench.run import plan as plans
from nanobench.run import train as train_module
from nanobench.store import results

AVX2_CPU = Device("cpu", None, "AVX2 CPU stand-in", native_bf16=False)  # bf16 emulated
BF16_CPU = Device("cpu", None, "AMX CPU stand-in", native_bf16=True)
H100 = Device("cuda", 0, "NVIDIA H100 stand-in", (9, 0), True)
T4 = Device("cuda", 1, "Tesla T4 stand-in", (7, 5), False)


def expand(device, dtype, devices, allow_slow=False, slowdown=6.0):
    return matrix.expand(
        device, dtype, allow_slow=allow_slow, devices=lambda: devices, slowdown=lambda d: slowdown
    )


def test_all_devices_by_every_dtype_with_skipped_cells_saying_why():
    p = expand("all", "fp32,tf32,bf16", [AVX2_CPU, H100, T4])
    assert [e.label for e in p.entries] == [
        "cpu fp32",
        "cuda:0 fp32",
        "cuda:0 tf32",
        "cuda:0 bf16",
        "cuda:1 fp32",
    ]
    assert p.skipped == [
        "cpu tf32: skipped (TF32 needs an NVIDIA GPU of compute capability 8.0+ (Ampere); not cpu)",
        "cpu bf16: skipped: AVX2 CPU stand-in has no native bf16 (no avx512_bf16, amx_bf16 or Arm bf16): bf16 is "
        "emulated, its measured bf16 matmul peak is 6.0x below fp32's; add --allow-slow (or --device cpu) to run it",
        "cuda:1 tf32: skipped (TF32 needs an NVIDIA GPU of compute capability 8.0+ (Ampere); not cuda:1)",
        "cuda:1 bf16: skipped (Tesla T4 stand-in (cuda:1, compute capability 7.5) has no native bfloat16 "
        "(needs 8.0+, Ampere or later); use fp16 or fp32 there)",
    ]
    assert p.notes == []


def test_emulated_bf16_runs_when_asked_for_and_native_bf16_always():
    slow = expand("all", "bf16", [AVX2_CPU], allow_slow=True)
    assert [e.label for e in slow.entries] == ["cpu bf16"] and "running it as asked" in slow.notes[
        0
    ]
    assert "6.0x below fp32's" in slow.notes[0]
    assert [e.label for e in expand("all", "fp32,bf16", [BF16_CPU]).entries] == [
        "cpu fp32",
        "cpu bf16",
    ]
    unknown = expand("all", "bf16", [AVX2_CPU], allow_slow=True, slowdown=None)
    assert "its bf16 speed is unknown" in unknown.notes[0]


def test_a_named_cpu_runs_emulated_bf16_after_saying_so(monkeypatch):
    # --device cpu names the device: the user asked for it; the host's answer is replaced by the stand-in
    monkeypatch.setattr(Device, "cpu", classmethod(lambda cls: AVX2_CPU))
    p = matrix.expand("cpu", "fp32,bf16", slowdown=lambda d: 5.5)
    assert [e.label for e in p.entries] == ["cpu fp32", "cpu bf16"] and p.skipped == []
    assert p.notes == [
        "cpu bf16: AVX2 CPU stand-in has no native bf16 (no avx512_bf16, amx_bf16 or Arm bf16): "
        "bf16 is emulated, its measured bf16 matmul peak is 5.5x below fp32's; running it as asked"
    ]


def test_a_flag_one_device_cannot_take_skips_that_cell_only():
    """Issue 25, defect 7: `--device all --sdpa efficient` (or cudnn, or CUDA graphs) aborted
    the whole matrix at the CPU cell; now that cell is skipped with one line, like a dtype."""
    efficient = matrix.expand(
        "all",
        "fp32,bf16",
        speed={"sdpa": "efficient"},
        devices=lambda: [BF16_CPU, H100],
        slowdown=lambda d: None,
    )
    assert [e.label for e in efficient.entries] == ["cuda:0 fp32", "cuda:0 bf16"]
    assert efficient.skipped == [
        "cpu fp32: skipped (--sdpa efficient: not a backend of cpu (there: auto, math, flash))",
        "cpu bf16: skipped (--sdpa efficient: not a backend of cpu (there: auto, math, flash))",
    ]
    graphs = matrix.expand(
        "all",
        "bf16",
        speed={"compile": True, "compile_mode": "reduce-overhead"},
        devices=lambda: [BF16_CPU, H100],
        compile_problem=lambda device: None,  # stands for a host where compile works
    )
    assert [e.label for e in graphs.entries] == ["cuda:0 bf16"]
    assert graphs.skipped == [
        "cpu bf16: skipped (--compile-mode reduce-overhead: CUDA graphs need a CUDA device, not cpu)"
    ]
    no_triton = matrix.expand(
        "all",
        "bf16",
        speed={"compile": True},
        devices=lambda: [BF16_CPU, H100],
        compile_problem=lambda d: "needs triton (stand-in)" if d.kind == "cuda" else None,
    )
    assert [e.label for e in no_triton.entries] == ["cpu bf16"]
    assert no_triton.skipped == ["cuda:0 bf16: skipped (--compile: needs triton (stand-in))"]


def test_bad_lists_and_an_empty_matrix_are_bad_input():
    with pytest.raises(InputError, match=r"--dtype int8: unknown \(use fp32, tf32, bf16, fp16\)"):
        expand("all", "fp32,int8", [AVX2_CPU])
    with pytest.raises(
        InputError, match="--dtype tf32: TF32 needs an NVIDIA GPU"
    ):  # one cell: the run's own error
        matrix.expand("cpu", "tf32")
    with pytest.raises(InputError, match="--device tpu: not a device"):
        matrix.expand("cpu,tpu", "fp32")
    with pytest.raises(InputError, match="no cell of the matrix can run here"):
        expand("all", "tf32,fp16", [AVX2_CPU])
    assert matrix.wants_matrix("all", None) and matrix.wants_matrix("cpu", "fp32,bf16")
    assert not matrix.wants_matrix("cuda:1", "bf16") and not matrix.wants_matrix(None, None)


def test_a_matrix_of_smoke_runs_with_a_skipped_cell(tmp_path):
    """The plan (tf32 skipped on the CPU) run for real: one file per cell and seed, one group_id."""
    p = expand("all", "fp32,tf32", [Device.cpu()])
    assert [e.label for e in p.entries] == ["cpu fp32"] and p.skipped[0].startswith(
        "cpu tf32: skipped"
    )
    reported = []
    cells = plans.make_cells(
        "smoke",
        (),
        [(e.device, e.dtype) for e in p.entries],
        [1, 2],
        {"max_iters": 3, "threads": 1},
    )
    run_plan = plans.Plan("matrix-test", str(tmp_path), tuple(cells))
    outcomes = executors.run_local(
        run_plan, cells, lambda label: contextlib.nullcontext(), reported.append, True, False
    )
    assert [o.status for o in outcomes] == ["completed", "completed"] and reported == outcomes
    runs = [results.read_run(o.path) for o in outcomes]
    assert {r.info.group_id for r in runs} == {"matrix-test"}
    assert [(r.info.options.settings.dtype, r.info.options.seed) for r in runs] == [
        ("fp32", 1),
        ("fp32", 2),
    ]


def test_an_interrupted_run_stops_the_plan_and_keeps_what_ran(monkeypatch, tmp_path):
    class Outcome:
        def __init__(self, status):
            self.status, self.reason, self.stop_requested = status, None, False
            self.path, self.summary = f"{status}.parquet", {}

    statuses = iter(["completed", "interrupted", "completed"])
    ran = []

    def fake_train(scenario, opts, progress, stop=None):  # train(): the second run gets Ctrl-C
        ran.append((opts.device, opts.dtype, opts.seed))
        return Outcome(next(statuses))

    monkeypatch.setattr(train_module, "train", fake_train)
    cells = plans.make_cells("smoke", (), [("cpu", "fp32"), ("cpu", "bf16")], [1, 2], {})
    outcomes = executors.run_local(
        plans.Plan("stop-test", str(tmp_path), tuple(cells)),
        cells,
        lambda label: contextlib.nullcontext(),
        lambda o: None,
        True,
        False,
    )
    assert ran == [("cpu", "fp32", 1), ("cpu", "fp32", 2)]  # the bf16 cell never started
    # both kept, the interrupted one too
    assert [o.status for o in outcomes] == ["completed", "interrupted"]


def test_run_device_list_prints_the_skip_and_the_comparison(nb, tmp_path):
    out = nb(
        "run",
        "smoke",
        "--device",
        "cpu",
        "--dtype",
        "fp32,tf32",
        "--seeds",
        "1,2",
        "--max-iters",
        "3",
        "--threads",
        "1",
        "--quiet",
        "--out",
        tmp_path,
        env={"NO_COLOR": "1", "COLUMNS": "160"},
    )
    assert out.returncode == 0, out.stderr
    assert "nanobench: cpu tf32: skipped (TF32 needs an NVIDIA GPU" in out.stderr
    assert "smoke on synthetic" in out.stdout and "2 runs; baseline: cpu fp32" in out.stdout
    files = sorted(tmp_path.glob("*.parquet"))
    assert len(files) == 2 and len({results.read_run(f).info.group_id for f in files}) == 1
