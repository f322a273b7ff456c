"""scripts/gpu-check.sh without a GPU: its time plan for two GPUs, and its failure paths
played by tests/fixtures/fake_gpu_python, which stands for a CUDA machine's Python (it
answers the script's torch questions and plays each stage's exit code and duration)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu-check.sh"
FAKE = REPO / "tests" / "fixtures" / "fake_gpu_python"
ORDER = [
    "setup",
    "tune cuda (dtype, optimizer, sdpa)",
    "cuda graphs (reduce-overhead, 300 iters)",
    "gpu tests",
    "shakespeare_char_cpu cuda fp32",
    "shakespeare_char cuda bf16",
    "shakespeare_char cuda tf32",
]
PLAN_LINE = re.compile(r"^#   (.+?)\s+(\d+) s   (.*)$")


def gpu_check(*args, env=None, timeout=120):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={
            **os.environ,
            "PY": str(FAKE),
            "REAL_PY": sys.executable,
            "PYTHONPATH": str(REPO),
            **(env or {}),
        },
    )


def plan_for(gpu: str) -> dict:
    out = gpu_check("--plan-for", gpu)
    assert out.returncode == 0, out.stderr
    lines = [PLAN_LINE.match(line) for line in out.stderr.splitlines()]
    return {m.group(1): (int(m.group(2)), m.group(3)) for m in lines if m}


@pytest.mark.parametrize("gpu", ["NVIDIA H200", "NVIDIA GeForce RTX 4070 Ti"])
def test_the_plan_runs_the_untried_paths_first_and_fits_the_budget(gpu):
    """Issue 25, defect 10: tune and CUDA graphs (never run on a GPU yet) come first, and the
    stages add up to no more than the 480 s budget less the 15 s kept for the summary."""
    plan = plan_for(gpu)
    assert [name for name in plan if name != "total"] == ORDER
    assert sum(s for name, (s, _) in plan.items() if name != "total") <= 480 - 15
    bf16 = plan["shakespeare_char cuda bf16"][1]
    if gpu == "NVIDIA H200":  # nanoGPT's whole recipe fits on an H200
        assert bf16.startswith("5000 iters") and "cut" not in bf16
    else:  # not on a 4070 Ti: truncated to what fits, said in the plan
        iters = int(bf16.split()[0])
        assert 50 <= iters < 5000 and "cut from 5000 to fit the budget" in bf16


def test_no_cuda_device_is_exit_2_in_one_line(tmp_path):
    out = gpu_check(env={"FAKE_CUDA": "0", "OUT": str(tmp_path / "out")})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("gpu-check: no CUDA device visible")


def stages(out_dir: Path) -> list[list[str]]:
    return [line.split("\t") for line in (out_dir / "stages.tsv").read_text().splitlines()[1:]]


def test_a_failing_stage_is_reported_and_the_later_stages_still_run(tmp_path):
    out_dir = tmp_path / "out"
    out = gpu_check(env={"FAKE_TUNE_RC": "1", "OUT": str(out_dir)})
    assert out.returncode == 1, out.stderr
    assert "gpu-check: FAILED: tune cuda (dtype, optimizer, sdpa) (exit 1)" in out.stderr
    got = stages(out_dir)
    assert [row[0].split(" (")[0] for row in got] == [n.split(" (")[0] for n in ORDER[1:]]
    assert [row[1] for row in got] == ["1", "0", "0", "0", "0", "0"]
    assert got[4][0] == "shakespeare_char cuda bf16 (5000 iters)"  # the planned length


@pytest.mark.slow  # fast in the default suite: test_a_failing_stage_is_reported_and_the_later_stages_still_run
def test_a_stage_over_its_cap_is_cut_and_what_ran_before_stays_visible(tmp_path):
    """A 40 s budget: the CUDA-graphs stage (played as 60 s) is ended at what is left (exit
    124), the stages after it are skipped, and the tune stage's result is still in stages.tsv."""
    out_dir = tmp_path / "out"
    out = gpu_check(env={"BUDGET_S": "40", "FAKE_GRAPHS_S": "60", "OUT": str(out_dir)}, timeout=90)
    assert out.returncode == 1, out.stderr
    got = stages(out_dir)
    assert got[0][:2] == ["tune cuda (dtype, optimizer, sdpa)", "0"]
    assert got[1][:2] == ["cuda graphs (reduce-overhead, 300 iters)", "124"]
    assert all(row[1] in ("skipped", "left out") for row in got[2:])
    assert "== tune cuda (dtype, optimizer, sdpa): exit 0" in out.stderr
