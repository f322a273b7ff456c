"""compare's two device speedups, "same settings" and "best vs best" (analyze/best.py), on
hand-made runs: a CPU and a stand-in GPU (no GPU here), each once with the default settings
and once with its tuned ones (`run --best`). Ratios are hand-computed from the step times."""

import io
import shutil

import pytest
from rich.console import Console

from nanobench.analyze import compare
from nanobench.analyze.best import device_speedups
from nanobench.analyze.export import to_json
from nanobench.present.report import render_html
from nanobench.present.tables import render_comparison
from nanobench.store.results import PARTIAL_DIR, RunWriter

H100 = "NVIDIA H100 80GB HBM3"


def write_run(folder, run_id, device_type, device_name, step_s, options):
    meta = {
        "scenario": {
            "name": "tiny",
            "targets": {"val_loss": [2.0]},
            "eval": {"interval": 4, "iters": 2},
        },
        "options": {
            "device": device_type,
            "dtype": "fp32",
            "compile": False,
            "threads": None,
            "seed": 1,
            "max_iters": 4,
            "overrides": [],
            **options,
        },
        "device": {"spec": device_type, "type": device_type, "name": device_name},
        "dataset": {"name": "fixture", "sha256": "a" * 64},
        "environment": {"torch": "2.13.0"},
    }
    rows, train = [], 0.0
    for i in range(4):  # iteration 0 is warm-up; steps 1-3 take step_s
        train += step_s
        rows.append(
            {
                "iter": i,
                "loss": 3.0 - 0.1 * i,
                "lr": 1e-3,
                "step_time_s": step_s,
                "train_time_s": train,
                "wall_time_s": train,
                "tokens": 10 * (i + 1),
                "eval_val_loss": 3.0 if i == 0 else None,
                "warmup": i == 0,
            }
        )
    rows.append(
        {
            "iter": 4,
            "train_time_s": train,
            "wall_time_s": train,
            "eval_val_loss": 2.5,
            "warmup": False,
        }
    )
    w = RunWriter(folder, run_id, meta)
    w.append(rows)
    w.finish("completed", None)
    shutil.rmtree(folder / PARTIAL_DIR, ignore_errors=True)


@pytest.fixture
def tuned_runs(tmp_path):
    write_run(tmp_path, "cpu-default", "cpu", "AMD EPYC", 0.050, {})
    write_run(tmp_path, "gpu-default", "cuda", H100, 0.005, {})  # same settings: 10x
    write_run(
        tmp_path,
        "cpu-best",
        "cpu",
        "AMD EPYC",
        0.040,
        {"threads": 1, "optimizer": "foreach", "best": True},
    )
    write_run(
        tmp_path,
        "gpu-best",
        "cuda",
        H100,
        0.002,
        {"dtype": "bf16", "compile": True, "compile_mode": "reduce-overhead", "best": True},
    )  # 0.040 / 0.002: 20x
    return compare.compare_files([str(tmp_path)])


def test_same_settings_and_best_vs_best(tuned_runs):
    [group] = tuned_runs.groups
    assert (
        group.baseline.label == "cpu fp32"
    )  # the untuned CPU run: best runs are their own configurations
    lines = device_speedups(group.configs)
    assert [d.kind for d in lines] == ["same settings", "best vs best"]
    same, best = lines
    assert same.speedup.ratio == pytest.approx(10.0) and best.speedup.ratio == pytest.approx(20.0)
    assert (
        same.base_settings
        == same.other_settings
        == "fp32, eager, default threads, AdamW auto, SDPA auto"
    )
    assert best.base_settings == "fp32, eager, 1 threads, AdamW foreach, SDPA auto"
    assert (
        best.other_settings
        == "bf16, compiled (reduce-overhead), default threads, AdamW auto, SDPA auto"
    )


def test_compare_prints_both_speedups(tuned_runs):
    out = io.StringIO()
    render_comparison(tuned_runs, Console(file=out, width=300, no_color=True, highlight=False))
    text = out.getvalue()
    assert "same settings: cuda (NVIDIA H100 80GB HBM3) is 10.00x cpu (AMD EPYC)" in text
    assert "best vs best: cuda (NVIDIA H100 80GB HBM3) is 20.00x cpu (AMD EPYC)" in text
    assert "cpu: fp32, eager, 1 threads, AdamW foreach" in text


def test_without_tuned_runs_only_same_settings_pairs_exist(tmp_path):
    write_run(tmp_path, "cpu-default", "cpu", "AMD EPYC", 0.050, {})
    write_run(
        tmp_path, "gpu-bf16", "cuda", H100, 0.005, {"dtype": "bf16"}
    )  # other settings: no same-settings pair
    [group] = compare.compare_files([str(tmp_path)]).groups
    assert device_speedups(group.configs) == []


def test_json_and_report_carry_both_speedups(tuned_runs):
    [group] = to_json(tuned_runs)["groups"]
    same, best = group["device_speedups"]
    assert (same["kind"], same["base"], same["other"]) == ("same settings", "cpu fp32", "cuda fp32")
    assert same["ratio"] == pytest.approx(10.0)
    assert (best["kind"], best["base"], best["other"]) == (
        "best vs best",
        "cpu fp32 best",
        "cuda bf16 compiled best",
    )
    assert best["ratio"] == pytest.approx(20.0)
    assert (
        best["other_settings"]
        == "bf16, compiled (reduce-overhead), default threads, AdamW auto, SDPA auto"
    )
    html = render_html(tuned_runs)
    assert "best vs best: cuda (NVIDIA H100 80GB HBM3) is 20.00x cpu (AMD EPYC)" in html


def test_a_slower_tuned_cpu_run_is_never_the_baseline(tmp_path):
    """The baseline is the slowest CPU fp32 run, but never a `--best` one while a default one exists."""
    write_run(tmp_path, "cpu-default", "cpu", "AMD EPYC", 0.050, {})
    write_run(
        tmp_path, "cpu-best", "cpu", "AMD EPYC", 0.060, {"threads": 1, "best": True}
    )  # tuned when loaded
    [group] = compare.compare_files([str(tmp_path)]).groups
    assert group.baseline.label == "cpu fp32"
    only_best = tmp_path / "only"
    only_best.mkdir()
    write_run(only_best, "cpu-best", "cpu", "AMD EPYC", 0.060, {"threads": 1, "best": True})
    assert compare.compare_files([str(only_best)]).groups[0].baseline.label == "cpu fp32 best"


def test_no_device_lines_without_a_tuned_run(tmp_path):
    write_run(tmp_path, "cpu-default", "cpu", "AMD EPYC", 0.050, {})
    write_run(tmp_path, "gpu-default", "cuda", H100, 0.005, {})
    [group] = compare.compare_files([str(tmp_path)]).groups
    assert (
        group.device_speedups == []
        and to_json(compare.compare_files([str(tmp_path)]))["groups"][0]["device_speedups"] == []
    )
