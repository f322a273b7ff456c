"""Run-time estimates from FLOPs: the parameter count from shapes alone, and the arithmetic."""

import dataclasses

import pytest
import torch

from nanobench.run import estimate as est
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import load


@pytest.mark.parametrize("name", ["smoke", "shakespeare_char_cpu", "shakespeare_char"])
@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count_from_shapes_matches_the_model(name, bias):
    m = dataclasses.replace(load(name).model, bias=bias)
    model = GPT(
        GPTConfig(65, m.block_size, m.n_layer, m.n_head, m.n_embd, 0.0, bias), torch.Generator()
    )
    assert est.n_params(m, 65) == model.num_params()


def test_gpu_recipe_estimate_by_hand():
    s = load(
        "shakespeare_char"
    )  # 6L/6H/384, T 256, batch 64, 5000 iters, eval every 250 over 200 batches
    e = est.estimate(s, 65, peak_flops=1e15, mfu=0.1)
    n = est.n_params(s.model, 65)
    per_token = 6 * n + 12 * 6 * 6 * 64 * 256
    assert e.n_evals == 21  # iterations 0, 250, ..., 5000
    assert e.train_flops == per_token * 64 * 256 * 5000
    assert e.train_s == pytest.approx(e.train_flops / 1e14)
    assert e.eval_s == pytest.approx(per_token / 3 * 64 * 256 * 21 * 2 * 200 / 1e14)
    assert 1.1e12 < e.train_flops / 5000 < 1.2e12  # ~1.16 TFLOP per iteration


def test_truncated_runs_count_their_last_evaluation_and_a_floor_binds_small_models():
    s = load("shakespeare_char_cpu")  # eval every 250
    assert est.estimate(s, 65, 1e15, 0.5, iters=300).n_evals == 3  # 0, 250, 300
    e = est.estimate(s, 65, 1e15, 0.5, iters=1000, floor_s_per_iter=0.004)
    assert e.train_s == pytest.approx(4.0)  # 4 GFLOP at 500 TFLOP/s is 8 us: the floor binds


def test_nonsense_rates_are_refused():
    with pytest.raises(ValueError):
        est.estimate(load("smoke"), 65, 0, 0.5)
    with pytest.raises(ValueError):
        est.estimate(load("smoke"), 65, 1e12, 1.5)
