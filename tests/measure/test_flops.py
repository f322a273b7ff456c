"""The FLOPs formula against torch's own counter, for every shipped scenario's model.

torch.utils.flop_counter.FlopCounterMode has no formula for the fused CPU attention kernel
(`_scaled_dot_product_flash_attention_for_cpu` counts as 0, pytorch/pytorch#195460), so the
count runs under the MATH SDPA backend, whose matmuls it does count.
"""

import dataclasses

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nanobench.measure.metrics import flops_per_token
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import list_shipped, load


@pytest.mark.parametrize("name", list_shipped())
def test_formula_matches_flop_counter_within_2_percent(name):
    s = load(name)
    m = s.model
    vocab = 65  # tinyshakespeare's; the vocabulary enters both counts the same way (through N)
    cfg = dataclasses.replace(GPTConfig.from_scenario(s, vocab), dropout=0.0)
    model = GPT(cfg, torch.Generator().manual_seed(0))
    batch = (
        1 if m.block_size * m.n_embd > 64 * 128 else 2
    )  # the GPU recipe: one sequence keeps it fast
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(vocab, (batch, m.block_size), generator=gen)  # (B, T)
    y = torch.randint(vocab, (batch, m.block_size), generator=gen)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        _, loss = model(x, y)
        loss.backward()
    counted_per_token = counter.get_total_flops() / (batch * m.block_size)
    formula = flops_per_token(
        model.num_params(), m.n_layer, m.n_head, m.n_embd // m.n_head, m.block_size
    )
    print(
        f"{name}: counted {counted_per_token:,.0f} FLOPs/token, formula {formula:,}, "
        f"ratio {counted_per_token / formula:.4f}"
    )
    assert counted_per_token == pytest.approx(formula, rel=0.02), (name, counted_per_token, formula)


def test_cpu_recipe_count_matches_the_field_notes():
    s = load("shakespeare_char_cpu")
    m = s.model
    model = GPT(GPTConfig.from_scenario(s, 65), torch.Generator().manual_seed(0))
    assert model.num_params() == 795_904
    assert (
        flops_per_token(model.num_params(), m.n_layer, m.n_head, m.n_embd // m.n_head, m.block_size)
        == 5_168_640
    )
