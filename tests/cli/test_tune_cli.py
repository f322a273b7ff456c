"""`run --best` applies the tune record of this device, torch and scenario; `env` lists it.
The record is written by tune.save from injected figures: nothing here is timed."""

import dataclasses
import json

import pytest
import torch

from nanobench import cli
from nanobench.measure.device import Device
from nanobench.run import executors, tune
from nanobench.run.plan import Cell, build_cells
from nanobench.run.scenario import load
from nanobench.run.settings import Settings
from nanobench.store import results

TUNED = Settings(threads=1, optimizer="for-loop", sdpa="math")


def record(tmp_path, scenario=None, settings=TUNED) -> dict:
    """A tune record of this CPU for `smoke` (or `scenario`) in a fresh cache; the child's
    environment for it."""
    cache = tmp_path / "cache"
    best = tune.Measured(settings, 0.04, 1e-6, 3, 1e-7)
    result = tune.TuneResult(
        "smoke", Device.cpu().name, torch.__version__, 60, 0.02, 0.03, [], [best], best, {}
    )
    tune.save(result, scenario or load("smoke"), cache / "nanobench" / "tune.json")
    return {"XDG_CACHE_HOME": str(cache)}


def tuned_options(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)
    options = results.read_run(outcome["path"]).info.raw["options"]
    return {k: options[k] for k in ("threads", "optimizer", "sdpa", "dtype", "compile", "best")}


TUNED_OPTIONS = {
    "threads": 1,
    "optimizer": "for-loop",
    "sdpa": "math",
    "dtype": "fp32",
    "compile": False,
    "best": True,
}


# fast in the default suite: test_device_all_best_runs_each_device_with_its_record,
# test_env_json_lists_the_tune_record, run/test_tune's record tests
@pytest.mark.slow
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
    assert [r["label"] for r in listed.values()] == ["--threads 1 --optimizer for-loop --sdpa math"]


def test_env_json_lists_the_tune_record(tmp_path, monkeypatch, capsys):
    """In process (the env half of the slow test above): the record of this CPU for smoke,
    under its key, with the options it stands for."""
    for key, value in record(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert (cli.main(["env", "--json"]) or 0) == 0  # None is success, as for sys.exit
    listed = json.loads(capsys.readouterr().out)["tune_records"]
    [(key, entry)] = listed.items()
    assert entry["label"] == "--threads 1 --optimizer for-loop --sdpa math"
    assert "smoke" in key and torch.__version__ in key, key


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
    parser = cli.build_parser()
    resolved = Cell(  # a `--best` cell after run_cell read the tune record
        "c000", "smoke", (), "cpu", "fp32", None, threads=1, optimizer="for-loop", sdpa="math"
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
    assert (tuned.optimizer, tuned.sdpa, tuned.best, tuned.threads) == ("for-loop", "math", True, 1)
    assert worker_cell(resolved).best is False


def test_data_parallel_best_tunes_one_ranks_share_in_a_child_process(tmp_path, monkeypatch):
    """Issue 25, defect 5: `--nproc 2 --best` tuned in the launcher (on cuda:0, which then kept
    that CUDA context and cache through the whole job) and at the full batch. Now the record
    is that of one rank's share (batch 4 / 2 ranks), looked up in a child process: the
    launcher's own tune functions are made to fail, and the full batch's record differs."""
    smoke = load("smoke")
    share = tune.per_rank(smoke, 2)
    assert share.train.batch_size == smoke.train.batch_size // 2 == 2
    env = record(tmp_path, share)  # what one rank steps
    record(tmp_path, smoke, Settings(sdpa="flash"))  # the full batch: must not be what is used
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])  # the child inherits it

    def not_here(*args, **kwargs):
        raise AssertionError("the launcher process looked up or tuned the settings itself")

    monkeypatch.setattr(tune, "best_settings", not_here)
    monkeypatch.setattr(tune, "tune", not_here)
    launcher = cli.build_parser().parse_args(["run", "smoke", "--nproc", "2", "--best", "--quiet"])
    platform = {"device": "cpu", "dtype": "fp32", "compile": False, "threads": None}
    request = cli._request(launcher, dict(platform, checkpoint_every=None), [None], child=False)
    [cell] = build_cells(request, smoke, here=False)[0]
    assert (cell.nproc, cell.best, cell.dtype) == (2, True, None)  # resolved where it runs
    assert executors.best_settings(cell, smoke) == dataclasses.replace(cell, **TUNED.options())


@pytest.mark.slow  # fast in the default suite: test_data_parallel_best_hands_the_record_to_its_workers
def test_data_parallel_best_workers_record_the_tuned_settings(nb, tmp_path, two_rank_host):
    """`--nproc 2 --best`: the launcher reads the record of one rank's share of the batch (in a
    child process), its two gloo workers get the settings as flags; rank 0's run says best
    like a single-process `--best` run."""
    env = record(tmp_path, tune.per_rank(load("smoke"), 2))
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
