"""`run --best` applies the tune record of this device, torch and scenario; `env` lists it.
The record is written by tune.save from injected figures: nothing here is timed."""

import dataclasses
import json

import pytest
import torch

from nanobench import cli
from nanobench.measure.device import Device
from nanobench.run import tune
from nanobench.run.scenario import load
from nanobench.run.settings import Settings
from nanobench.store import results

TUNED = Settings(threads=1, optimizer="foreach", sdpa="math")


def record(tmp_path) -> dict:
    """A tune record of this CPU for `smoke` in a fresh cache; the child's environment for it."""
    cache = tmp_path / "cache"
    best = tune.Measured(TUNED, 0.04, 1e-6, 3, 1e-7)
    result = tune.TuneResult(
        "smoke", Device.cpu().name, torch.__version__, 60, 0.02, 0.03, [], [best], best, {}
    )
    tune.save(result, load("smoke"), cache / "nanobench" / "tune.json")
    return {"XDG_CACHE_HOME": str(cache)}


def tuned_options(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)
    options = results.read_run(outcome["path"]).info.raw["options"]
    return {k: options[k] for k in ("threads", "optimizer", "sdpa", "dtype", "compile", "best")}


TUNED_OPTIONS = {
    "threads": 1,
    "optimizer": "foreach",
    "sdpa": "math",
    "dtype": "fp32",
    "compile": False,
    "best": True,
}


@pytest.mark.slow  # fast in the default suite: test_device_all_best_runs_each_device_with_its_record, run/test_tune's record tests
def test_run_best_applies_the_record_and_env_lists_it(nb, tmp_path):
    env = record(tmp_path)
    proc = nb(
        "run",
        "smoke",
        "--best",
        "--max-iters",
        "2",
        "--out",
        tmp_path / "out",
        "--quiet",
        "--json",
        env=env,
    )
    assert tuned_options(proc) == TUNED_OPTIONS

    listed = json.loads(nb("env", "--json", env=env).stdout)["tune_records"]
    assert [r["label"] for r in listed.values()] == ["--threads 1 --optimizer foreach --sdpa math"]


def test_device_all_best_runs_each_device_with_its_record(nb, tmp_path):
    """GPUs hidden from the child, `all` is the CPU alone: the matrix is its one tuned cell."""
    env = dict(record(tmp_path), CUDA_VISIBLE_DEVICES="")
    proc = nb(
        "run",
        "smoke",
        "--device",
        "all",
        "--best",
        "--max-iters",
        "2",
        "--out",
        tmp_path / "out",
        "--quiet",
        "--json",
        env=env,
    )
    assert tuned_options(proc) == TUNED_OPTIONS


def test_data_parallel_best_hands_the_record_to_its_workers():
    """In process: the arguments the `--nproc 2 --best` launcher gives each worker, parsed as
    the worker parses them, give the record's settings and `best`."""
    from nanobench.run import executors
    from nanobench.run.plan import Cell, build_cells

    parser = cli.build_parser()
    resolved = Cell(  # a `--best` cell after run_cell read the tune record
        "c000", "smoke", (), "cpu", "fp32", None, threads=1, optimizer="foreach", sdpa="math"
    )

    def worker_cell(cell):
        worker = parser.parse_args(["run", *executors.worker_args(cell, "out", True, False)])
        platform = {
            "device": worker.device,
            "dtype": worker.dtype,
            "compile": bool(worker.compile),
            "threads": worker.threads,
            "checkpoint_every": None,
        }
        assert (worker.threads, worker.dtype, worker.compile, worker.best) == (
            1,
            "fp32",
            False,
            False,
        )
        request = cli._request(worker, platform, [None], child=True)
        [cell] = build_cells(request, load("smoke"), here=False)[0]
        return cell

    tuned = worker_cell(dataclasses.replace(resolved, best=True))
    assert (tuned.optimizer, tuned.sdpa, tuned.best, tuned.threads) == ("foreach", "math", True, 1)
    assert worker_cell(resolved).best is False


@pytest.mark.slow  # fast in the default suite: test_data_parallel_best_hands_the_record_to_its_workers
def test_data_parallel_best_workers_record_the_tuned_settings(nb, tmp_path):
    """`--nproc 2 --best`: the launcher reads the record, its two gloo workers get the settings
    as flags; rank 0's run says best like a single-process `--best` run."""
    env = record(tmp_path)
    proc = nb(
        "run",
        "smoke",
        "--nproc",
        "2",
        "--best",
        "--max-iters",
        "2",
        "--out",
        tmp_path / "out",
        "--quiet",
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    [path] = (tmp_path / "out").glob("*.parquet")
    options = results.read_run(path).info.raw["options"]
    assert {k: options[k] for k in TUNED_OPTIONS} == TUNED_OPTIONS


def test_best_with_a_setting_given_is_one_line_exit_2(nb, tmp_path):
    proc = nb("run", "smoke", "--best", "--threads", "2", "--out", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "nanobench: error: --best: it chooses --dtype, --compile, --threads, --compile-mode, "
        "--optimizer, --sdpa from the tune record; drop --threads"
    )


def test_a_setting_the_device_lacks_is_one_line_exit_2(nb, tmp_path):
    proc = nb("run", "smoke", "--sdpa", "efficient", "--out", tmp_path)
    assert proc.returncode == 2 and "--sdpa efficient: not a backend of cpu" in proc.stderr
    proc = nb("run", "smoke", "--compile-mode", "reduce-overhead", "--compile", "--out", tmp_path)
    assert proc.returncode == 2 and "CUDA graphs need a CUDA device" in proc.stderr
