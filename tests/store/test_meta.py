"""Run metadata parsed once on reading: typed fields from the committed files, defaults for
what a hand-made file leaves out, and a damaged section as one line naming file and key."""

from pathlib import Path

import pytest

from nanobench.errors import InputError
from nanobench.store import results
from nanobench.store.meta import Peak, ResumedFrom, RunMeta, Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "results" / "examples" / "cpu-fp32-vs-bf16"
COMMITTED = sorted(results.expand_paths([str(EXAMPLE), str(REPO / "tests" / "fixtures")]))


def test_every_committed_result_still_reads_with_its_metadata_typed():
    assert len(COMMITTED) == 11  # 6 example runs, 5 fixtures (the parity record is not a run)
    for path in COMMITTED:
        run = results.read_run(path)
        info, raw = run.info, run.meta
        assert info.raw is raw and info.run_id == raw["run_id"] == run.run_id
        assert (info.device.type, info.options.settings.dtype, info.options.seed) == (
            raw["device"]["type"],
            raw["options"]["dtype"],
            raw["options"]["seed"],
        )
        assert (
            info.dataset.sha256 == raw["dataset"]["sha256"]
            and info.status == raw["status"] == "completed"
        )


def test_the_example_run_typed():
    run = results.read_run(
        EXAMPLE / "shakespeare_char_cpu-20261128T084208Z-cpu-fp32-s1337-817893.parquet"
    )
    m = run.info
    assert (m.scenario_name, m.group_id, m.val_loss_targets) == (
        "shakespeare_char_cpu",
        "example-fp32",
        (2.0, 1.9),
    )
    assert m.scenario["model"]["n_layer"] == 4
    assert (m.device.text, m.device.type, m.device.name) == ("cpu", "cpu", "AMD EPYC")
    assert (
        m.options.settings.compile,
        m.options.max_iters,
        m.options.overrides,
        m.options.settings.threads,
    ) == (
        False,
        2000,
        (),
        None,
    )
    assert m.dataset.name == "tinyshakespeare" and m.dataset.sha256.startswith("86c4e6aa")
    env = m.environment
    assert (env.cpu_model, env.cpu_physical_cores, env.torch_num_threads, env.torch) == (
        "AMD EPYC",
        2,
        2,
        "2.13.0+cpu",
    )
    assert (env.gpu_name, env.gpu_driver, env.cuda_runtime) == (
        None,
        None,
        None,
    )  # a CPU run: no GPU, no driver
    assert (env.git_commit[:7], env.git_dirty, env.float32_matmul_precision) == (
        "8f4e3dc",
        False,
        "highest",
    )
    assert m.flops_per_iter == 3969515520
    assert (
        m.peak_flops.used_for_mfu == m.peak_flops.spec and m.peak_flops.spec.flops == 332300544000.0
    )
    assert m.peak_flops.measured.flops == pytest.approx(217842512712.5, rel=1e-9)
    assert m.energy_source is None and "RAPL" in m.energy_reason
    assert m.resumed_from is None and m.summary["iterations"] == 2000 and m.sample
    assert (m.started_at, m.finished_at) == ("2026-11-28T08:42:08Z", "2026-11-28T08:43:13Z")


def test_what_a_hand_made_file_leaves_out_reads_as_unknown():
    m = RunMeta.parse({"schema_version": 1}, "/x/some-run.parquet")
    assert (m.run_id, m.status, m.scenario_name, m.val_loss_targets) == ("some-run", "?", None, ())
    assert (m.options.settings.compile, m.options.overrides, m.device.type, m.dataset.sha256) == (
        False,
        (),
        None,
        None,
    )
    assert (
        m.peak_flops is None
        and m.flops_per_iter is None
        and m.resumed_from is None
        and m.sample is None
    )
    # no speed setting recorded: the run did what `nanobench run` does given no option
    assert m.options.settings == Settings(dtype="fp32", compile=False, threads=None, sdpa="auto")
    peaks = RunMeta.parse(
        {"peak_flops": {"spec": {"flops": None, "source": "no datasheet entry"}}}, "r"
    ).peak_flops
    assert peaks.spec == Peak(None, "no datasheet entry") and peaks.measured == Peak(None, None)


def test_gpu_driver_and_lineage():
    m = RunMeta.parse(
        {
            "environment": {
                "gpu_name": "NVIDIA H100",
                "gpu_state_at_start": {"nvml": True, "driver": "550.54.15"},
            },
            "resumed_from": {
                "run_id": "p",
                "iter": 1000,
                "device": {"spec": "cuda:1", "type": "cuda", "name": "H100"},
                "dtype": "bf16",
                "checkpoint": "c.pt",
                "same_random_streams": True,
            },
        },
        "r",
    )
    assert m.environment.gpu_driver == "550.54.15"
    assert m.resumed_from == ResumedFrom("p", 1000, "cuda", "bf16")
    # a hand-made parent may name its device as a bare string
    assert (
        RunMeta.parse({"resumed_from": {"device": "cpu", "iter": 5}}, "r").resumed_from.device_type
        == "cpu"
    )
    # NVML unavailable at start: the state records why, and no driver
    no_nvml = {
        "environment": {"gpu_state_at_start": {"nvml": None, "reason": "NVML library not found"}}
    }
    assert RunMeta.parse(no_nvml, "r").environment.gpu_driver is None


def test_a_section_that_is_not_an_object_names_file_and_key(tmp_path):
    w = results.RunWriter(tmp_path, "bad", {"environment": {"git": "abc123"}})
    w.append([{"iter": 0, "loss": 3.0, "step_time_s": 0.1, "eval_val_loss": 3.0}])
    path = w.finish("completed")
    with pytest.raises(
        InputError,
        match=r"bad\.parquet: metadata key 'environment\.git' is str, expected an object",
    ):
        results.read_run(path)


def test_the_recorded_speed_settings_read_back_as_one_value():
    options = {
        "device": "cuda",
        "dtype": "bf16",
        "compile": True,
        "compile_mode": "max-autotune",
        "threads": 4,
        "optimizer": "fused",
        "sdpa": "flash",
        "seed": 7,
        "best": True,
    }
    m = RunMeta.parse({"options": options}, "/x/r.parquet")
    assert m.options.settings == Settings("bf16", True, "max-autotune", 4, "fused", "flash")
    assert (m.options.device, m.options.seed, m.options.best) == ("cuda", 7, True)
    assert m.options.settings.describe() == (
        "bf16, compiled (max-autotune), 4 threads, AdamW fused, SDPA flash"
    )
