"""Lockstep parity: train two configurations (device:dtype) side by side in one process,
from the same initial weights on the same batches, and record per step how far apart
their losses and parameters drift. llm.c checks itself against PyTorch this way; here
the two sides are any two devices or dtypes.

The output is a parquet file of kind `parity` (one row per step), not a run result.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nanobench import files
from nanobench.errors import InputError
from nanobench.measure.device import DeviceRequest, parse_device
from nanobench.measure.precision import DTYPES, Precision
from nanobench.run.data import Batches, derive_seed, generator, load_dataset
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import Scenario
from nanobench.run.settings import (
    StepContext,
    adamw_choice,
    check,
    compile_model,
    keeps_process_state,
)
from nanobench.run.train import lr_at, make_optimizer, set_lr, train_step
from nanobench.store.meta import Settings

PARITY_SUFFIX = ".parity.parquet"


@dataclass(frozen=True)
class Side:
    """One side of a parity run: a device as written (read by parse_device) and a dtype."""

    device: DeviceRequest
    dtype: str

    @classmethod
    def parse(cls, text: str, flag: str) -> Side:
        device, sep, dtype = text.rpartition(":")  # the dtype is last: cuda:0:tf32
        if not sep or not device or dtype not in DTYPES:
            raise InputError(
                f"{flag} {text}: expected DEVICE:DTYPE, e.g. cpu:fp32, cuda:bf16 or cuda:0:tf32"
            )
        return cls(parse_device(device), dtype)

    def label(self) -> str:
        return f"{self.device.text}:{self.dtype}"


class Trainer:
    """One side: a model, its optimizer, its precision and speed settings, stepped on given
    batches. `speed` (run/settings.py) defaults to a plain run's settings in `side.dtype`;
    its thread count None means the count torch has when the trainer is made."""

    def __init__(
        self,
        side: Side,
        scenario: Scenario,
        vocab_size: int,
        seed: int,
        speed: Settings | None = None,
    ):
        self.device = side.device.resolve()
        self.speed = speed or Settings(dtype=side.dtype)
        self.threads = self.speed.threads or torch.get_num_threads()
        check(
            self.device,
            self.speed.optimizer,
            self.speed.sdpa,
            self.speed.compile,
            self.speed.compile_mode,
            self.speed.dtype,
            scenario.train.grad_accum,
            scenario.model.dropout,
        )
        self.precision = Precision.for_device(self.speed.dtype, self.device)
        self.t = scenario.train
        cfg = GPTConfig.from_scenario(scenario, vocab_size)
        # same CPU draw on both sides
        self.model = GPT(cfg, generator(seed, "init")).to(self.device.torch)
        self.optimizer = make_optimizer(
            self.model, self.t, **adamw_choice(self.speed.optimizer, self.device)
        )
        self.scaler = self.precision.grad_scaler(self.device)
        self.step_model = compile_model(self.model, self.speed.compile, self.speed.compile_mode)
        self.context = StepContext(self.precision.autocast(self.device), self.speed.sdpa)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """One optimizer step on x, y of shape (grad_accum, B, T); returns the mean loss (a
        0-d tensor on the device: reading it is the caller's sync)."""
        # Precision flags and the thread count are global in torch: set this side's each step.
        self.precision.apply_matmul_flags()
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        set_lr(self.optimizer, lr)
        # pinned, non-blocking copies as in train.py: a pageable copy would make the host wait
        # for the GPU every step, and the timings would not be those of a run
        loss, _ = train_step(
            self.step_model,
            self.model,
            self.optimizer,
            self.scaler,
            self.device.to_device(x),
            self.device.to_device(y),
            self.context,
            self.t.grad_clip,
        )
        return loss

    def params_cpu(self) -> list[torch.Tensor]:
        return [p.detach().float().cpu() for p in self.model.parameters()]


def relative_drift(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """||a - b|| / ||a|| over all parameters taken as one vector (fp64 sums)."""
    num = sum(float(((pa.double() - pb.double()) ** 2).sum()) for pa, pb in zip(a, b))
    den = sum(float((pa.double() ** 2).sum()) for pa in a)
    return math.sqrt(num / den) if den else math.nan


@keeps_process_state  # each side sets threads and flags per step, and dropout seeds
def run_parity(
    scenario: Scenario,
    a: Side,
    b: Side,
    iters: int,
    out_dir: str,
    seed: int | None = None,
    progress=None,
) -> tuple[Path, dict]:
    """Step both sides in lockstep for `iters` iterations; write and summarise the record."""
    if iters < 1:
        raise InputError(f"--iters {iters}: must be >= 1")
    seed = scenario.train.seed if seed is None else seed
    dataset = load_dataset(scenario.data.dataset)
    t, m = scenario.train, scenario.model
    batches = Batches(dataset, t.batch_size, m.block_size, t.grad_accum, seed)
    side_a = Trainer(a, scenario, dataset.vocab_size, seed)
    side_b = Trainer(b, scenario, dataset.vocab_size, seed)

    rows = []
    start = time.perf_counter()
    for it in range(iters):
        x, y = batches.train(it)  # one CPU batch, fed to both sides
        lr = lr_at(it, t)
        # Dropout masks come from each side's device generator, reseeded per step so that
        # the two sides draw the same masks when they share a device type.
        torch.manual_seed(derive_seed(seed, "dropout", it))
        loss_a = side_a.step(x, y, lr).item()
        torch.manual_seed(derive_seed(seed, "dropout", it))
        loss_b = side_b.step(x, y, lr).item()
        rows.append(
            {
                "iter": it,
                "loss_a": loss_a,
                "loss_b": loss_b,
                "loss_diff": loss_b - loss_a,
                "param_rel_drift": relative_drift(side_a.params_cpu(), side_b.params_cpu()),
            }
        )
        if progress:
            progress(rows[-1], iters)

    summary = summarize_parity(rows)
    meta = {
        "kind": "parity",
        "schema_version": 1,
        "scenario": scenario.to_dict(),
        "seed": seed,
        "a": a.label(),
        "b": b.label(),
        "iters": iters,
        "dataset": dataset.identity(),
        "wall_time_s": time.perf_counter() - start,
        "summary": summary,
        "note": "dropout masks are identical only when both sides run on the same device type",
    }
    sides = f"{a.label()}-vs-{b.label()}"
    return _write_record(Path(out_dir), scenario.name, sides, rows, meta), summary


def _write_record(out: Path, scenario: str, sides: str, rows: list[dict], meta: dict) -> Path:
    """The parity record, written atomically as OUT/<scenario>-<time>-<a>-vs-<b>-<random>
    .parity.parquet (colons of device names made underscores), its metadata under `nanobench`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{scenario}-{stamp}-{sides}-{secrets.token_hex(3)}".replace(":", "_")
    path = out / f"{name}{PARITY_SUFFIX}"
    table = pa.Table.from_pylist(rows).replace_schema_metadata(
        {"nanobench": json.dumps(meta, default=str)}
    )
    files.write_atomic(path, lambda f: pq.write_table(table, f), inside=out)
    return path


def summarize_parity(rows: list[dict]) -> dict:
    diffs = [abs(r["loss_diff"]) for r in rows]
    return {
        "iters": len(rows),
        "max_abs_loss_diff": max(diffs),
        "max_abs_loss_diff_iter": rows[diffs.index(max(diffs))]["iter"],
        "final_loss_diff": rows[-1]["loss_diff"],
        "final_param_rel_drift": rows[-1]["param_rel_drift"],
        "bit_identical_losses": all(d == 0.0 for d in diffs),
    }
