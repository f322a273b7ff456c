"""How long a run will take, before it runs: FLOPs from the scenario, over a peak and an MFU.

Used to plan work that has a time limit (scripts/gpu-check.sh on a lent GPU) and to say,
before a run starts, what it will cost. An estimate is a plan, never a measurement: it is
printed as such and never written into a result file.

The training step costs `flops_per_token x tokens per iteration` (6N + attention, see
measure/metrics.flops_per_token). An evaluation runs forward passes only, a third of a
training step's FLOPs per token, over `eval.iters` batches of each of the two splits. A
small model on a GPU is bound by kernel launches, not FLOPs: `floor_s_per_iter` is the
least time one iteration (or one evaluation batch) takes, whatever its FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanobench.measure.metrics import flops_per_token

EVAL_SPLITS = 2  # train and val


def n_params(model, vocab_size: int) -> int:
    """Parameters as GPT.num_params() counts them (position embeddings excluded), from the
    shapes alone: no model is built. `model` is a scenario's ModelConfig."""
    c, b = model.n_embd, int(model.bias)
    per_layer = (
        2 * c * (1 + b)  # ln_1, ln_2 (weight, bias)
        + 3 * c * c
        + 3 * c * b  # attention: q, k, v
        + c * c
        + c * b  # attention output projection
        + 4 * c * c
        + 4 * c * b  # MLP up
        + 4 * c * c
        + c * b  # MLP down
    )
    return vocab_size * c + model.n_layer * per_layer + c * (1 + b)  # tied wte + layers + ln_f


@dataclass(frozen=True)
class Estimate:
    iters: int
    n_evals: int
    train_flops: float
    eval_flops: float
    train_s: float
    eval_s: float

    @property
    def total_s(self) -> float:
        return self.train_s + self.eval_s


def estimate(
    scenario,
    vocab_size: int,
    peak_flops: float,
    mfu: float,
    *,
    iters: int | None = None,
    floor_s_per_iter: float = 0.0,
) -> Estimate:
    """Seconds for `iters` iterations (default: the scenario's) and their evaluations, at
    `mfu` of `peak_flops` (FLOP/s), each iteration and evaluation batch taking at least
    `floor_s_per_iter`."""
    if peak_flops <= 0 or not 0 < mfu <= 1:
        raise ValueError("peak_flops must be positive and mfu in (0, 1]")
    m, t, e = scenario.model, scenario.train, scenario.eval
    iters = t.max_iters if iters is None else iters
    per_token = flops_per_token(
        n_params(m, vocab_size), m.n_layer, m.n_head, m.n_embd // m.n_head, m.block_size
    )
    step_tokens = t.batch_size * t.grad_accum * m.block_size
    eval_tokens = t.batch_size * m.block_size  # one evaluation batch
    # iteration 0 and the last
    n_evals = iters // e.interval + (0 if iters % e.interval == 0 else 1) + 1
    rate = peak_flops * mfu
    step_s = max(per_token * step_tokens / rate, floor_s_per_iter)
    eval_batch_s = max(per_token / 3 * eval_tokens / rate, floor_s_per_iter / 3)
    eval_batches = n_evals * EVAL_SPLITS * e.iters
    return Estimate(
        iters=iters,
        n_evals=n_evals,
        train_flops=per_token * step_tokens * iters,
        eval_flops=per_token / 3 * eval_tokens * eval_batches,
        train_s=step_s * iters,
        eval_s=eval_batch_s * eval_batches,
    )
