"""`run --best` applies the tune record of this device, torch and scenario; `env` lists it.
The record is written by tune.save from injected figures: nothing here is timed."""

import json

import torch

from nanobench.measure.device import Device
from nanobench.run import tune
from nanobench.run.scenario import load
from nanobench.run.settings import Settings
from nanobench.store import results

TUNED = Settings(threads=1, optimizer="foreach", sdpa="math")


def test_run_best_applies_the_record_and_env_lists_it(nb, tmp_path):
    cache = tmp_path / "cache"
    best = tune.Measured(TUNED, 0.04, 1e-6, 3, 1e-7)
    result = tune.TuneResult("smoke", Device.cpu().name, torch.__version__, 60, 0.02, 0.03, [], [best], best, {})
    tune.save(result, load("smoke"), cache / "nanobench" / "tune.json")
    env = {"XDG_CACHE_HOME": str(cache)}

    proc = nb("run", "smoke", "--best", "--max-iters", "2", "--out", tmp_path / "out", "--quiet", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [outcome] = json.loads(proc.stdout)
    options = results.read_run(outcome["path"]).info.raw["options"]
    assert {k: options[k] for k in ("threads", "optimizer", "sdpa", "dtype", "compile", "best")} == {
        "threads": 1, "optimizer": "foreach", "sdpa": "math", "dtype": "fp32", "compile": False, "best": True}

    listed = json.loads(nb("env", "--json", env=env).stdout)["tune_records"]
    assert [r["label"] for r in listed.values()] == ["--threads 1 --optimizer foreach --sdpa math"]


def test_best_with_a_setting_given_is_one_line_exit_2(nb, tmp_path):
    proc = nb("run", "smoke", "--best", "--threads", "2", "--out", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("nanobench: error: --best: it chooses --dtype, --compile, --threads, --compile-mode, "
                                   "--optimizer, --sdpa from the tune record; drop --threads")


def test_a_setting_the_device_lacks_is_one_line_exit_2(nb, tmp_path):
    proc = nb("run", "smoke", "--sdpa", "efficient", "--out", tmp_path)
    assert proc.returncode == 2 and "--sdpa efficient: not a backend of cpu" in proc.stderr
    proc = nb("run", "smoke", "--compile-mode", "reduce-overhead", "--compile", "--out", tmp_path)
    assert proc.returncode == 2 and "CUDA graphs need a CUDA device" in proc.stderr
