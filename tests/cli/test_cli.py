"""The console script itself, run as a user runs it."""

import json
import subprocess
import sys

import pytest

from nanobench.store import results


def test_help_and_import_do_not_import_torch():
    code = (
        "import sys, nanobench, nanobench.cli\n"
        "try:\n    nanobench.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "nope"], "unknown scenario 'nope'"),
        (["run", "smoke", "--set", "train.bogus=1"], "train.bogus: unknown key"),
        (["run", "smoke", "--set", "model.n_layer=two"], "model.n_layer: expected integer"),
        (["run", "smoke", "--device", "cuda"], "--device cuda: CUDA is not available"),
        (["run", "smoke", "--device", "tpu"], "--device tpu"),
        (["run", "smoke", "--dtype", "fp8"], "--dtype fp8: unknown"),
        (["run", "smoke", "--dtype", "tf32"], "--dtype tf32: TF32 needs an NVIDIA GPU"),
        (["run", "smoke", "--seeds", "a,b"], "--seeds a,b"),
        (
            ["run", "smoke", "--set", "data.dataset=/no/such/file.txt"],
            "data.dataset: '/no/such/file.txt'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(nb, tmp_path, args, needle):
    # No GPU visible to the child, whatever this host has: "--device cuda" is refused everywhere.
    out = nb(*args, "--out", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_default_scenario_runs_without_data_folder_or_network(nb, tmp_path):
    """A fresh clone, no NANOBENCH_DATA_DIR, no cache, no network: the shipped corpus serves."""
    env = {
        "NANOBENCH_DATA_DIR": "",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "NANOBENCH_TINYSHAKESPEARE_URL": "http://127.0.0.1:9/input.txt",
    }
    out = nb(
        "run",
        "shakespeare_char_cpu",
        "--max-iters",
        "2",
        "--set",
        "eval.iters=1",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    run = results.read_run(json.loads(out.stdout)[0]["path"])
    assert (
        run.meta["dataset"]["sha256"]
        == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    )
    assert "shipped" in run.meta["dataset"]["source"]


def test_run_smoke_prints_where_results_went(nb, tmp_path):
    out = nb("run", "smoke", "--out", str(tmp_path), "--threads", "1")
    assert out.returncode == 0, out.stderr
    files = list(tmp_path.glob("*.parquet"))
    assert len(files) == 1 and str(files[0]) in out.stdout
    assert "completed" in out.stdout and "val loss" in out.stdout


def test_seeds_make_one_file_each(nb, tmp_path):
    out = nb(
        "run",
        "smoke",
        "--seeds",
        "1,2",
        "--max-iters",
        "3",
        "--out",
        str(tmp_path),
        "--threads",
        "1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert len(names) == 2 and "-s1-" in names[0] + names[1] and "-s2-" in names[0] + names[1]
    from nanobench.store.results import read_meta

    groups = {read_meta(p)["group_id"] for p in tmp_path.glob("*.parquet")}
    assert len(groups) == 1 and groups.pop().startswith("smoke-")


def test_scenarios_lists_shipped(nb):
    out = nb("scenarios")
    assert out.returncode == 0 and "shakespeare_char_cpu" in out.stdout and "smoke" in out.stdout
