"""The training loop: one function, top to bottom, with its instrumentation in plain sight.

`train()` runs one seeded scenario on one device and records every iteration to a result
file (see results.py). Runs on different devices differ only in what cannot be identical
(dropout masks drawn on the device, kernel order); the metadata says which.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from nanobench import process
from nanobench.errors import InputError
from nanobench.measure import environment, noise, peaks
from nanobench.measure.device import Device, is_out_of_memory, parse_device
from nanobench.measure.metrics import PendingStep, Recorder, to_host, work_per_iter
from nanobench.measure.precision import Precision
from nanobench.run import checkpoint, distributed, settings
from nanobench.run.data import Batches, derive_seed, generator, load_dataset
from nanobench.run.model import GPT, GPTConfig
from nanobench.run.scenario import Scenario, TrainConfig
from nanobench.store.meta import machine_record
from nanobench.store.results import RunWriter, utc_now

WARMUP_ITERS = 5  # first iterations marked `warmup`: allocator growth, cache misses, compile
MEMORY_COLUMNS = ("mem_bytes", "mem_peak_bytes", "mem_reserved_bytes")  # Device.memory_sample()


@dataclass(frozen=True)
class Platform:
    """Where and in what precision a run computes: resolved and validated together."""

    device: Device
    precision: Precision


@dataclass(frozen=True)
class RunOptions:
    """How and where one run runs (never its mathematics): what `nanobench run` takes.

    `device` and `dtype` are recorded as given; making the options resolves them once into
    `platform` (the Device found here, the Precision checked against it), or raises
    InputError naming the device or dtype. The speed settings (dtype, compile, compile_mode,
    threads, optimizer, sdpa) are those of `Settings` (store/meta.py), under the same names.
    """

    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    dtype: str = "fp32"
    compile: bool = False
    threads: int | None = None
    seed: int | None = None  # None: the scenario's train.seed
    max_iters: int | None = None  # truncate the scenario's schedule (the lr schedule is kept)
    overrides: tuple[str, ...] = ()  # the --set strings, recorded as given
    out_dir: str = "results"
    group_id: str | None = None  # shared by the runs of one `--seeds` invocation
    checkpoint_every: int | None = None  # write OUT/checkpoints/<run_id>.pt every N iterations
    resume: str | None = None  # a checkpoint to continue from (see checkpoint.py)
    # speed settings (run/settings.py): how the step runs, searched by `nanobench tune`
    compile_mode: str | None = None  # torch.compile's mode; None: its default
    optimizer: str = "auto"  # AdamW implementation: auto, fused, foreach or for-loop
    sdpa: str = "auto"  # attention backend: auto, math, flash, efficient or cudnn
    best: bool = False  # these settings came from the tune record (`run --best`)
    cell: str | None = None  # the plan cell this run is (run/plan.py): `status`, `--continue`
    platform: Platform = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        device = parse_device(self.device).resolve()
        settings.check(
            device, self.optimizer, self.sdpa, self.compile, self.compile_mode, self.dtype
        )
        object.__setattr__(
            self, "platform", Platform(device, Precision.for_device(self.dtype, device))
        )
        problem = environment.compile_problem(device) if self.compile else None
        if problem:
            raise InputError(f"--compile: {problem}; run without --compile")

    def recorded(self) -> dict:
        """The options as a result's metadata records them: the strings as given."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}


@dataclass
class Outcome:
    path: Path
    status: str
    reason: str | None
    summary: dict = field(default_factory=dict)
    stop_requested: bool = False  # Ctrl-C/SIGTERM came while the result was being finished


def lr_at(it: int, t: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr at lr_decay_iters, then min_lr (nanoGPT)."""
    if it < t.warmup_iters:
        return t.learning_rate * (it + 1) / (t.warmup_iters + 1)
    if it > t.lr_decay_iters:
        return t.min_lr
    ratio = (it - t.warmup_iters) / max(1, t.lr_decay_iters - t.warmup_iters)
    return t.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (t.learning_rate - t.min_lr)


def make_optimizer(
    model: GPT, t: TrainConfig, fused: bool | None = None, foreach: bool | None = None
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (2-D: linear weights, embeddings) only; `fused` and
    `foreach` as torch takes them (settings.adamw_choice), None for torch's default."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=t.learning_rate, betas=(t.beta1, t.beta2), fused=fused or None, foreach=foreach
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(
    step_model,
    model,
    optimizer,
    scaler,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast,
    grad_clip: float,
    ddp=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over x, y of shape (grad_accum, B, T), already on the device:
    forward and backward per micro-batch, clip, AdamW. Returns the mean micro-batch loss and
    the gradient norm before clipping, both 0-d tensors still on the device (no sync).

    `step_model` is what runs forward (compiled, or DDP-wrapped); `model` owns the parameters.
    """
    grad_accum = x.shape[0]
    loss_sum = torch.zeros((), device=x.device)
    for micro in range(grad_accum):
        if ddp:  # all-reduce gradients only on the last micro-step
            step_model.require_backward_grad_sync = micro == grad_accum - 1
        with autocast:
            _, loss = step_model(x[micro], y[micro])
        scaler.scale(loss / grad_accum).backward()
        loss_sum += loss.detach()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / grad_accum, grad_norm


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


class _DeferSignals:
    """The stop signals (Ctrl-C; SIGTERM, or Ctrl-Break on Windows) wait while the result file
    is finished: a second Ctrl-C (or the first, arriving just then) must not lose the run.
    Only the main thread can set handlers."""

    def __enter__(self):
        self.received = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._note) for s in process.stop_signals()}
        return self

    def _note(self, signum, frame):
        self.received = True

    def __exit__(self, *exc):
        if self.old:
            for s, handler in self.old.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def _setup_out_of_memory(device: Device):
    """Out of memory before the first step: no rows to keep, so one line saying what to shrink."""
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise InputError(
            f"--device {device}: out of memory placing the model and evaluation batches "
            f"({str(exc).splitlines()[0][:120]}); use a smaller model or eval.iters, or another device"
        ) from None


def _new_writer(
    out_dir: Path, scenario: str, device_type: str, dtype: str, seed: int, meta: dict
) -> RunWriter:
    """A writer under a fresh run id; another run that drew the same id (same second, same
    random suffix) or left a file by that name makes us draw again, never overwrite."""
    for _ in range(10):
        try:
            return RunWriter(out_dir, make_run_id(scenario, device_type, dtype, seed), meta)
        except FileExistsError:
            continue
    raise InputError(
        f"--out {out_dir}: could not find an unused run id after 10 tries; is the clock or the random source stuck?"
    )


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


@settings.keeps_process_state  # threads, random stream and matmul flags: this run's only
def train(scenario: Scenario, opts: RunOptions, progress=None, stop=None) -> Outcome:
    """Train `scenario` on `opts.device`, recording every iteration. Returns where it went.

    `progress`, if given, has `.update(row)` and `.log(text)`; it only displays. `stop`, if
    given, is asked at every read window why the run should end now (a time budget spent:
    run/executors.Deadline); a reason ends it as `interrupted`, like Ctrl-C, with that reason.
    Under torchrun (`--nproc`) every rank trains its share; rank 0 alone records.
    """
    # ---- platform: resolved and checked when the options were made ----------------------
    device, precision = opts.platform.device, opts.platform.precision
    # RunOptions checked the settings; these limits need the scenario (CUDA graphs and
    # grad_accum, cuDNN attention and dropout)
    problem = settings.unsupported(
        device,
        opts.sdpa,
        opts.compile_mode,
        opts.dtype,
        scenario.train.grad_accum,
        scenario.model.dropout,
        settings.cudnn_version,
    )
    if problem:
        raise InputError(problem)
    ddp = distributed.from_environment(device)  # None unless launched by `--nproc`
    if ddp:
        device = device.for_rank(ddp.local_rank)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    precision_flags = precision.apply_matmul_flags()
    autocast = settings.StepContext(precision.autocast(device), opts.sdpa)  # + attention backend
    seed = scenario.train.seed if opts.seed is None else opts.seed
    t, m, e = scenario.train, scenario.model, scenario.eval
    max_iters = opts.max_iters or t.max_iters
    # What else the machine does while we time it: a reading now, one at the end of setup
    # (the start check), then about one a second at the loop's host reads (noise.py).
    noise_watch = noise.watch(device, threads=torch.get_num_threads(), last_iter=max_iters, ddp=ddp)

    # ---- data and model: drawn on the CPU from the seed, then moved ---------------------
    dataset = load_dataset(scenario.data.dataset)
    batches = Batches(dataset, t.batch_size, m.block_size, t.grad_accum, seed)
    ckpt = checkpoint.load(opts.resume) if opts.resume else None
    if ckpt:
        checkpoint.check_compatible(ckpt, opts.resume, scenario.to_dict(), dataset.sha256, seed)
        checkpoint.check_left(ckpt, opts.resume, max_iters)
    cfg = GPTConfig.from_scenario(scenario, dataset.vocab_size)
    with _setup_out_of_memory(device):
        eval_sets = {s: batches.fixed(s, e.iters).to(device.torch) for s in ("train", "val")}
        model = GPT(cfg, generator(seed, "init")).to(device.torch)
    optimizer = make_optimizer(model, t, **settings.adamw_choice(opts.optimizer, device))
    adamw = settings.implementation(optimizer)  # what torch runs, not what was asked
    scaler = precision.grad_scaler(device)
    step_model = settings.compile_model(model, opts.compile, opts.compile_mode)
    rank = ddp.rank if ddp else 0
    progress = progress if rank == 0 else None
    # dropout masks: the device's own generator
    torch.manual_seed(derive_seed(seed, "dropout", rank))
    start_it = 0
    if ckpt:  # weights, moments, scaler and random streams as they were before iteration start_it
        same_stream = checkpoint.restore(ckpt, model, optimizer, scaler, device)
        start_it = ckpt["iter"]
    if ddp:  # gradients all-reduced across ranks during backward
        step_model = torch.nn.parallel.DistributedDataParallel(
            step_model, device_ids=device.ddp_device_ids
        )
    eval_model = model if ddp else step_model  # every rank scores the full fixed set alike
    shard = ddp.shard(t.batch_size) if ddp else slice(None)  # this rank's part of each micro-batch

    tokens_per_iter, flops_per_iter = work_per_iter(t, m, model.num_params())
    raw_spec_peak = peaks.spec_peak(device, precision)
    measured_peak = peaks.measured_peak(device, precision)
    spec_peak = peaks.spec_for_mfu(raw_spec_peak, measured_peak)  # null, not wrong, if contradicted
    peak_scale = device.devices_in_job(ddp.world_size if ddp else 1)  # MFU of the whole job
    # read once per host-read window, like device memory; a DDP job's is every rank's
    energy = ddp.energy_meter(device) if ddp else device.energy_meter()
    noise_at_start = noise_watch.start_check(noise.governors())  # busy already? said below

    meta = _metadata(
        scenario,
        opts,
        seed=seed,
        max_iters=max_iters,
        device=device,
        dataset=dataset,
        model=model,
        flops_per_iter=flops_per_iter,
        tokens_per_iter=tokens_per_iter,
        peaks_found=(raw_spec_peak, measured_peak, spec_peak),
        energy=energy,
        adamw=adamw,
        precision_flags=precision_flags,
        noise_at_start=noise_at_start,
        ddp=ddp,
        lineage=_lineage(ckpt, opts.resume, start_it, same_stream) if ckpt else None,
    )
    # rank 0 records; the other ranks of a torchrun job only train
    writer, ckpt_path = None, None
    if rank == 0:
        # a checkpoints folder leading outside OUT: refused before any row
        if opts.checkpoint_every:
            checkpoint.folder(opts.out_dir)
        writer = _new_writer(
            Path(opts.out_dir), scenario.name, device.kind, precision.name, seed, meta
        )
        if opts.checkpoint_every:
            ckpt_path = checkpoint.path_for(opts.out_dir, writer.run_id)
            ckpt_info = {
                "run_id": writer.run_id,
                "scenario": scenario.to_dict(),
                "model_config": asdict(cfg),
                "dataset_sha256": dataset.sha256,
                "seed": seed,
                "options": writer.meta["options"],
                "device": writer.meta["device"],
            }
    timer = device.step_timer()
    read_every = device.host_read_interval
    # after every input check, so that bad input gets its one line only
    if progress and noise_at_start["warning"]:
        progress.log(f"warning: {noise_at_start['warning']}")
    # bf16 on a CPU without bf16 hardware
    emulated = peaks.emulation_warning(device, precision) if progress else None
    if emulated:
        progress.log(emulated)  # before the first step, not after hours of slow ones
    # every memory column the run's own: not the calibration's matrices, nor an earlier
    # seed's or cell's cache
    device.release_memory()

    # ---- the loop ------------------------------------------------------------------------
    status, reason = "completed", None
    # a resumed run's clock goes on
    t0 = time.perf_counter() - (ckpt["info"]["recorder"]["wall_time_s"] if ckpt else 0.0)
    rec = Recorder(
        writer=writer,
        tokens_per_iter=tokens_per_iter,
        flops_per_iter=flops_per_iter,
        spec_peak_flops=spec_peak.flops and spec_peak.flops * peak_scale,
        measured_peak_flops=measured_peak.flops and measured_peak.flops * peak_scale,
        warmup_iters=WARMUP_ITERS,
        energy=energy,
        device_memory=device.device_memory_reader(),
        t0=t0,
        ddp=ddp,
        totals=ckpt["info"]["recorder"] if ckpt else None,
        noise=noise_watch,
    )
    pending: list[PendingStep] = []
    steady = None  # the collective timeout after the warm-up (distributed.Dist.steady)

    try:
        for it in range(start_it, max_iters + 1):
            if ckpt_path and it > start_it and it % opts.checkpoint_every == 0:
                # Before iteration `it`; every earlier row was read at the end of the last step.
                info = {**ckpt_info, "recorder": rec.totals()}
                checkpoint.save(
                    ckpt_path,
                    it=it,
                    model=model,
                    optimizer=optimizer,
                    scaler=scaler,
                    device=device,
                    info=info,
                )
                writer.update_meta(checkpoint={"path": str(ckpt_path), "iter": it})
            if it % e.interval == 0 or it == max_iters:  # sees the model after `it` steps
                ev = rec.evals[it] = evaluate(eval_model, eval_sets, autocast)
                if progress:
                    progress.log(f"iter {it}: train {ev['train']:.4f}, val {ev['val']:.4f}")
            if it == max_iters:  # the last row carries the final evaluation only: no step
                window, pending = pending, []
                rec.record(to_host(window, timer))
                mem = dict(zip(MEMORY_COLUMNS, device.memory_sample()))
                rec.record([{"iter": it, "wall_time_s": time.perf_counter() - t0, **mem}])
                break

            lr = lr_at(it, t)
            set_lr(optimizer, lr)
            x, y = batches.train(it)  # (grad_accum, B, T) int64 on the CPU: the global batch
            x, y = device.to_device(x[:, shard]), device.to_device(y[:, shard])

            timer.start()
            loss, grad_norm = train_step(
                step_model, model, optimizer, scaler, x, y, autocast, t.grad_clip, ddp
            )
            timing = timer.stop()

            loss_mean = ddp.mean(loss) if ddp else loss  # every rank's loss: its shard's
            wall_s = time.perf_counter() - t0
            pending.append(
                PendingStep(it, lr, loss_mean, grad_norm, timing, wall_s, *device.memory_sample())
            )
            checkpoint_next = ckpt_path and (it + 1) % opts.checkpoint_every == 0
            if len(pending) >= read_every or checkpoint_next:
                # Taken off `pending` first: a Ctrl-C inside record() must not make the finish
                # path record these steps a second time (a row appears at most once).
                window, pending = pending, []
                rows = rec.record(to_host(window, timer))  # the one CPU-GPU sync point per window
                if progress:
                    progress.update(rows[-1], max_iters)
                bad = next((r for r in rows if not math.isfinite(r["loss"])), None)
                if bad:
                    status = "diverged"
                    reason = f"loss became {bad['loss']} at iteration {bad['iter']}"
                    break
                if ddp and ddp.should_stop():  # Ctrl-C reached a rank: all stop at this window
                    raise KeyboardInterrupt
                why = stop() if stop else None
                if why:
                    status, reason = "interrupted", f"{why} after {_iterations(rec.state['rows'])}"
                    break
                if ddp and not steady and it >= WARMUP_ITERS:  # compiled: a dead peer fails fast
                    steady = ddp.steady(rows[-1]["step_time_s"] or 0.0, read_every)
    except KeyboardInterrupt:
        status, reason = "interrupted", _stopped_after(rec.state["rows"] + len(pending))
    except Exception as exc:
        status, reason = _failure(exc, device, ddp, writer)  # re-raises what is not a run's end
        if is_out_of_memory(exc) and not ddp:
            try:  # steps finished before the failing one hold valid values: keep them if readable
                rec.record(to_host(pending, timer))
            except Exception:
                pass
        pending = []  # values still on the device may be lost with it

    # ---- finish: keep every row, say how it ended ----------------------------------------
    # A second Ctrl-C, or torchrun's SIGTERM, waits until the result file is complete.
    with _DeferSignals() as deferred:
        if status != "failed":
            rec.record(to_host(pending, timer))
        summary = rec.summary(compiled=opts.compile)
        beaten = _peak_beaten(summary, device, precision)
        if beaten and writer:
            writer.meta["peak_flops"]["measured_beaten"] = beaten
        if beaten and progress:
            progress.log(f"warning: {beaten}")
        path = None
        if writer:
            kept = status in ("completed", "interrupted")
            path = writer.finish(
                status,
                reason,
                sample=sample_text(model, scenario, dataset) if kept else None,
                summary=summary,
                total_wall_time_s=time.perf_counter() - t0,
                noise={"at_start": noise_at_start, **noise_watch.verdict()},
            )
    distributed.shutdown(ddp, peer_failed=status == "failed")
    return Outcome(path, status, reason, summary, stop_requested=deferred.received)


def _failure(exc: Exception, device: Device, ddp, writer) -> tuple[str, str]:
    """How a run that raised `exc` ended: out of memory, or a collective that failed, is a
    run's end, recorded as "failed" with what happened. Anything else is a bug or a refused
    write, and raised again (a bug keeps its traceback; a failed write is one line) after
    the result file, if any, is finished as failed."""
    if is_out_of_memory(exc):
        return "failed", f"out of memory on {device}: {str(exc).splitlines()[0]}"
    if ddp and distributed.is_comm_error(exc):
        return "failed", f"a collective failed (another rank died?): {str(exc).splitlines()[0]}"
    if writer:
        try:
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
        except InputError:
            pass  # the disk refuses writes: the original error says so, the rows stay in .partial
    raise exc


def _peak_beaten(summary: dict, device: Device, precision: Precision) -> str | None:
    """A run whose median step beat its own measured "peak" shows the calibration was taken
    under load: it is forgotten (the next run measures again) and the reason returned."""
    mfu = summary["mfu_measured"] or 0
    if mfu <= 1.0:
        return None
    peaks.forget_measured(device, precision)
    return (
        f"the run's median step beat the measured peak ({mfu:.2f}): the calibration was low "
        f"(taken under load?); it is dropped, the next run measures again"
    )


def _metadata(
    scenario: Scenario,
    opts: RunOptions,
    *,
    seed: int,
    max_iters: int,
    device: Device,
    dataset,
    model: GPT,
    flops_per_iter: int,
    tokens_per_iter: int,
    peaks_found: tuple,
    energy,
    adamw: str,
    precision_flags: dict,
    noise_at_start: dict,
    ddp,
    lineage: dict | None,
) -> dict:
    """What a result file says about its run, written before the first row (docs/results.md,
    "Metadata"); the status, summary and noise verdict are added when the run ends."""
    raw_spec_peak, measured_peak, spec_peak = peaks_found
    env = environment.collect(device)
    return {
        "scenario": scenario.to_dict(),
        "options": dict(opts.recorded(), seed=seed, max_iters=max_iters),
        "group_id": opts.group_id or f"{scenario.name}-{secrets.token_hex(4)}",
        "started_at": utc_now(),
        "pid": os.getpid(),
        "pid_host": process.host_name(),
        "device": {"spec": opts.device, "type": device.kind, "name": device.name},
        "dataset": dataset.identity(),
        "model": {"n_params": model.num_params(), "n_params_with_pos_emb": model.num_params(False)},
        "flops": {
            "per_iter": flops_per_iter,
            "per_token": flops_per_iter // tokens_per_iter,
            "method": "6N + 12*L*H*Q*T per token (nanoGPT, PaLM appendix B)",
        },
        "peak_flops": {
            "spec": asdict(raw_spec_peak),
            "measured": asdict(measured_peak),
            "used_for_mfu": asdict(spec_peak),
            "note": peaks.consistency_note(raw_spec_peak, measured_peak),
        },
        "energy": energy.describe(),
        "optimizer": {
            "name": "AdamW",
            "implementation": adamw,  # fused, foreach or for-loop
            "fused": adamw == "fused",
            "decay": "weight_decay on 2-D parameters (matmul weights, embeddings) only",
        },
        "precision": precision_flags,
        "environment": env,
        # the hardware fingerprint and machine id (docs/results.md, "The machine")
        "machine": machine_record(env, {"type": device.kind, "name": device.name}),
        "not_identical_across_devices": (
            ["dropout masks (drawn by the device's generator)"]
            if scenario.model.dropout > 0
            else []
        )
        + ["kernel choice and reduction order (floating-point sums differ in the last bits)"],
        "warmup_iters": WARMUP_ITERS,
        "noise": {"at_start": noise_at_start},  # the run's verdict is added when it ends
        "distributed": ddp.describe() if ddp else None,
        # Lineage: this file continues `run_id` from `iter`; its rows start there.
        "resumed_from": lineage,
    }


def _lineage(ckpt: dict, resume, start_it: int, same_stream: bool) -> dict:
    parent = ckpt["info"]
    return {
        "run_id": parent["run_id"],
        "iter": start_it,
        "checkpoint": str(resume),
        "device": parent["device"],
        "dtype": parent["options"]["dtype"],
        "same_random_streams": same_stream,
    }


def _stopped_after(n_iters: int) -> str:
    """The reason of an interrupted run; the status itself already says "interrupted"."""
    return f"stopped by {process.stop_signal_names()} after {_iterations(n_iters)}"


def _iterations(n: int) -> str:
    return f"{n} iteration{'s' * (n != 1)}"
