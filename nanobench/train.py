"""The training loop: one function, top to bottom, with its instrumentation in plain sight.

`train()` runs one seeded scenario on one device and records every iteration to a result
file (see results.py). Runs on different devices differ only in what cannot be identical
(dropout masks drawn on the device, kernel order); the metadata says which.
"""

from __future__ import annotations

import math
import os
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nanobench import device as dev
from nanobench import environment, peaks
from nanobench.data import Batches, derive_seed, generator, load_dataset
from nanobench.errors import InputError
from nanobench.metrics import PendingStep, flops_per_token, interpolate_energy, to_host
from nanobench.model import GPT, GPTConfig
from nanobench.results import RunWriter, utc_now
from nanobench.scenario import Scenario, TrainConfig

WARMUP_ITERS = 5  # first iterations marked `warmup`: allocator growth, cache misses, compile


@dataclass(frozen=True)
class RunOptions:
    """The platform of a run (never its mathematics): what `nanobench run` takes."""

    device: str = "cpu"
    dtype: str = "fp32"
    compile: bool = False
    threads: int | None = None
    seed: int | None = None  # None: the scenario's train.seed
    max_iters: int | None = None  # truncate the scenario's schedule (the lr schedule is kept)
    overrides: tuple[str, ...] = ()  # the --set strings, recorded as given
    out_dir: str = "results"


@dataclass
class Outcome:
    path: Path
    status: str
    reason: str | None
    summary: dict = field(default_factory=dict)


def lr_at(it: int, t: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr at lr_decay_iters, then min_lr (nanoGPT)."""
    if it < t.warmup_iters:
        return t.learning_rate * (it + 1) / (t.warmup_iters + 1)
    if it > t.lr_decay_iters:
        return t.min_lr
    ratio = (it - t.warmup_iters) / max(1, t.lr_decay_iters - t.warmup_iters)
    return t.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (t.learning_rate - t.min_lr)


def make_optimizer(model: GPT, t: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (2-D: linear weights, embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=t.learning_rate, betas=(t.beta1, t.beta2), fused=fused or None)


@torch.no_grad()
def evaluate(model, eval_sets: dict, autocast) -> dict:
    """Mean loss over each split's fixed batches; eval_sets[split] is (n, B, T + 1)."""
    model.eval()
    out = {}
    for split, windows in eval_sets.items():
        losses = torch.zeros(windows.shape[0], device=windows.device)
        for i, w in enumerate(windows):
            with autocast:
                _, loss = model(w[:, :-1], w[:, 1:])
            losses[i] = loss
        out[split] = losses.mean().item()
    model.train()
    return out


def make_run_id(scenario: str, device_type: str, dtype: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{scenario}-{stamp}-{device_type}-{dtype}-s{seed}-{secrets.token_hex(3)}"


def sample_text(model: GPT, scenario: Scenario, dataset) -> str:
    """Generate the run's text sample on the CPU in fp32 from a fixed seed, so the sample
    depends on the final weights alone, not on the device's random generator."""
    cpu_model = GPT(model.config, torch.Generator()).eval()
    cpu_model.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    s = scenario.sample
    prompt = torch.tensor([dataset.encode(s.prompt)], dtype=torch.long)
    gen = generator(s.seed, "sample")
    ids = cpu_model.generate(prompt, s.length, temperature=s.temperature, top_k=s.top_k, gen=gen)
    return dataset.decode(ids[0].tolist())


def train(scenario: Scenario, opts: RunOptions, progress=None) -> Outcome:
    """Train `scenario` on `opts.device`, recording every iteration. Returns where it went.

    `progress`, if given, has `.update(row)` and `.log(text)`; it only displays.
    """
    # ---- platform -----------------------------------------------------------------------
    device = dev.resolve(opts.device)
    dev.check_dtype(device, opts.dtype)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    precision_flags = dev.configure_precision(device, opts.dtype)
    autocast = dev.autocast(device, opts.dtype)
    seed = scenario.train.seed if opts.seed is None else opts.seed
    t, m, e = scenario.train, scenario.model, scenario.eval
    max_iters = opts.max_iters or t.max_iters

    # ---- data and model: drawn on the CPU from the seed, then moved ---------------------
    dataset = load_dataset(scenario.data.dataset)
    batches = Batches(dataset, t.batch_size, m.block_size, t.grad_accum, seed)
    eval_sets = {split: batches.fixed(split, e.iters).to(device) for split in ("train", "val")}
    cfg = GPTConfig(dataset.vocab_size, m.block_size, m.n_layer, m.n_head, m.n_embd, m.dropout, m.bias)
    model = GPT(cfg, generator(seed, "init")).to(device)
    optimizer = make_optimizer(model, t, fused=dev.fused_adamw(device))
    scaler = dev.grad_scaler(device, opts.dtype)
    step_model = torch.compile(model) if opts.compile else model
    torch.manual_seed(derive_seed(seed, "dropout"))  # dropout masks: the device's own generator

    tokens_per_iter = t.batch_size * t.grad_accum * m.block_size
    n_params = model.num_params()
    flops_per_iter = flops_per_token(n_params, m.n_layer, m.n_head, m.n_embd // m.n_head, m.block_size) * tokens_per_iter
    spec_peak = peaks.spec_peak(device, opts.dtype)
    measured_peak = peaks.measured_peak(device, opts.dtype)
    energy = dev.energy_meter(device)  # read once per host-read window, like device memory
    device_memory = dev.device_memory_reader(device)

    run_id = make_run_id(scenario.name, device.type, opts.dtype, seed)
    writer = RunWriter(Path(opts.out_dir), run_id, {
        "scenario": scenario.to_dict(),
        "options": dict(asdict(opts), seed=seed, max_iters=max_iters),
        "started_at": utc_now(),
        "pid": os.getpid(),
        "pid_host": os.uname().nodename,
        "device": {"spec": opts.device, "type": device.type, "name": dev.name(device)},
        "dataset": dataset.identity(),
        "model": {"n_params": n_params, "n_params_with_pos_emb": model.num_params(False)},
        "flops": {"per_iter": flops_per_iter, "per_token": flops_per_iter // tokens_per_iter,
                  "method": "6N + 12*L*H*Q*T per token (nanoGPT, PaLM appendix B)"},
        "peak_flops": {"spec": asdict(spec_peak), "measured": asdict(measured_peak),
                       "note": peaks.consistency_note(spec_peak, measured_peak)},
        "energy": energy.describe(),
        "precision": precision_flags,
        "environment": environment.collect(device),
        "not_identical_across_devices": [
            "dropout masks (drawn by the device's generator)" if m.dropout > 0 else None,
            "kernel choice and reduction order (floating-point sums differ in the last bits)",
        ],
        "warmup_iters": WARMUP_ITERS,
    })
    timer = dev.step_timer(device)
    read_every = dev.host_read_interval(device)

    # ---- the loop ------------------------------------------------------------------------
    pending: list[PendingStep] = []
    evals: dict[int, dict] = {}
    state = {"train_time_s": 0.0, "tokens": 0, "rows": 0, "step_times": [], "vals": [], "last_loss": None,
             "first_step_s": None, "energy_at": (0.0, 0.0)}
    status, reason = "completed", None
    t0 = time.perf_counter()

    def record(rows: list[dict]) -> None:
        """Derived columns (cumulative time, tokens, MFU, energy) for rows read to the host."""
        energy_now = (time.perf_counter() - t0, energy.read_j())  # one counter read per window
        if energy_now[1] is not None and rows:
            interpolate_energy(rows, state["energy_at"], energy_now)
            state["energy_at"] = energy_now
        mem_device = device_memory() if rows else None
        for row in rows:
            row["mem_device_bytes"] = mem_device
            step_s = row.get("step_time_s")
            if step_s is not None:
                state["train_time_s"] += step_s
                state["tokens"] += tokens_per_iter
            row["train_time_s"] = state["train_time_s"]
            row["tokens"] = state["tokens"]
            row["tokens_per_s"] = tokens_per_iter / step_s if step_s else None
            row["mfu"] = flops_per_iter / step_s / spec_peak.flops if step_s and spec_peak.flops else None
            row["mfu_measured"] = flops_per_iter / step_s / measured_peak.flops if step_s and measured_peak.flops else None
            row["warmup"] = row["iter"] < WARMUP_ITERS
            if step_s is not None:
                state["first_step_s"] = state["first_step_s"] or step_s
                state["last_loss"] = row["loss"]
                if not row["warmup"]:
                    state["step_times"].append(step_s)
            ev = evals.pop(row["iter"], None)
            if ev:
                row["eval_train_loss"], row["eval_val_loss"] = ev["train"], ev["val"]
                state["vals"].append((row["iter"], ev["val"]))
        writer.append(rows)
        state["rows"] += len(rows)

    try:
        for it in range(max_iters + 1):
            if it % e.interval == 0 or it == max_iters:  # evaluation sees the model after `it` steps
                evals[it] = evaluate(step_model, eval_sets, autocast)
                if progress:
                    progress.log(f"iter {it}: train {evals[it]['train']:.4f}, val {evals[it]['val']:.4f}")
            if it == max_iters:  # the last row carries the final evaluation only: no step
                record(to_host(pending, timer))
                pending = []
                mem, mem_peak = dev.memory_bytes(device)
                record([{"iter": it, "wall_time_s": time.perf_counter() - t0, "mem_bytes": mem, "mem_peak_bytes": mem_peak}])
                break

            lr = lr_at(it, t)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = batches.train(it)  # (grad_accum, B, T) int64 on the CPU
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)

            timer.start()
            loss_sum = torch.zeros((), device=device)
            for micro in range(t.grad_accum):
                with autocast:
                    _, loss = step_model(x[micro], y[micro])
                scaler.scale(loss / t.grad_accum).backward()
                loss_sum += loss.detach()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            timing = timer.stop()

            mem, mem_peak, mem_reserved = dev.memory_sample(device)
            pending.append(PendingStep(it, lr, loss_sum / t.grad_accum, grad_norm, timing,
                                       time.perf_counter() - t0, mem, mem_peak, mem_reserved))
            if len(pending) >= read_every:
                rows = to_host(pending, timer)  # the one CPU-GPU sync point per read window
                pending = []
                record(rows)
                if progress:
                    progress.update(rows[-1], max_iters)
                bad = next((r for r in rows if not math.isfinite(r["loss"])), None)
                if bad:
                    status, reason = "diverged", f"loss became {bad['loss']} at iteration {bad['iter']}"
                    break
    except KeyboardInterrupt:
        status, reason = "interrupted", f"interrupted (Ctrl-C or SIGTERM) after {state['rows'] + len(pending)} iterations"
    except Exception as exc:
        if not dev.is_out_of_memory(exc):
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
            raise  # a bug: keep the rows, and the traceback
        status, reason = "failed", f"out of memory on {device}: {str(exc).splitlines()[0]}"
        pending = []  # values still on the device may be lost with it

    # ---- finish: keep every row, say how it ended ----------------------------------------
    if status != "failed":
        record(to_host(pending, timer))
    sample = sample_text(model, scenario, dataset) if status in ("completed", "interrupted") else None
    summary = summarize(state, tokens_per_iter, compiled=opts.compile)
    path = writer.finish(status, reason, sample=sample, summary=summary, total_wall_time_s=time.perf_counter() - t0)
    return Outcome(path, status, reason, summary)


def summarize(state: dict, tokens_per_iter: int, compiled: bool = False) -> dict:
    """Headline numbers for the metadata and the command line (warm-up steps excluded).

    compile_time_s (with --compile): the first step's time minus the median steady step,
    i.e. what tracing and compiling the training graph cost. Compiling the evaluation graph
    happens in the first evaluation, outside step times; it shows in wall_time_s only.
    """
    steps, vals = state["step_times"], state["vals"]
    median_s = statistics.median(steps) if steps else None
    first_s = state.get("first_step_s")
    energy_read_at_s, energy_j = state.get("energy_at", (0.0, 0.0))  # (0, 0) until a counter was read
    return {
        "iterations": state["tokens"] // tokens_per_iter,
        "final_loss": state["last_loss"],
        "final_val_loss": vals[-1][1] if vals else None,
        "final_val_iter": vals[-1][0] if vals else None,
        "best_val_loss": min(v for _, v in vals) if vals else None,
        "median_step_time_s": median_s,
        "median_tokens_per_s": tokens_per_iter / median_s if median_s else None,
        "train_time_s": state["train_time_s"],
        "first_step_time_s": first_s,
        "compile_time_s": max(0.0, first_s - median_s) if compiled and first_s and median_s else None,
        "energy_j": energy_j if energy_read_at_s > 0 else None,
    }
