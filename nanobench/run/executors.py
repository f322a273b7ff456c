"""Who runs a plan's cells (run/plan.py): this process, submitit, or Ray.

- `run_local`: the cells one after another in this process (the default, as `nanobench run`
  always did); a stop (Ctrl-C, SIGTERM) ends the plan after the interrupted run's file is
  complete, and every finished cell keeps its result.
- `run_submitit`: each cell one task of a submitit job array (submitit.AutoExecutor): a SLURM
  array where SLURM is present, one array per device kind so each kind can have its own
  partition and GPUs; a local process per cell where it is not (this is the same code path).
- `run_ray`: each cell one Ray task asking for what its device needs (CPUs, GPUs, an
  accelerator type), on the cluster at `address` or a local one.

Every executor ends in `run_cell`, so every cell writes the same result file wherever it
runs; a data-parallel cell is launched by torchrun from there (run/distributed.py). Nothing
here schedules: the order, placement and retries belong to the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from nanobench import process
from nanobench.errors import InputError
from nanobench.run import plan as plans

CELL_ENV = "NANOBENCH_PLAN_CELL"  # a torchrun worker's cell id (its group id: NANOBENCH_GROUP_ID)
GROUP_ENV = "NANOBENCH_GROUP_ID"


@dataclass(frozen=True)
class CellResult:
    """What running one cell gave: its result file and status, as the executor learnt them."""

    cell: str
    status: str  # a result status (completed, interrupted, failed, ...), or failed without one
    reason: str | None = None
    path: str | None = None
    summary: dict = field(default_factory=dict)
    stop_requested: bool = False  # a stop came while the result was being finished


@dataclass(frozen=True)
class Deadline:
    """A time budget for the cells of a plan (`explain --run --budget`): a cell is started
    only while more than a second of it is left, and the one running when it ends is stopped
    at its next read window, its result completed as `interrupted` with `why` as the reason."""

    at_s: float  # time.monotonic() when the budget ends
    why: str  # e.g. "stopped at the end of the 10m budget"

    @classmethod
    def after(cls, budget_s: float, why: str) -> Deadline:
        return cls(time.monotonic() + budget_s, why)

    def left_s(self) -> float:
        return self.at_s - time.monotonic()

    def __call__(self) -> str | None:
        """train()'s stop question: the reason to stop now, or None."""
        return self.why if self.left_s() <= 0 else None


class StopOnce:
    """Ctrl-C or SIGTERM (Windows: Ctrl-Break): the first stops the run (KeyboardInterrupt,
    which completes the result file with status `interrupted`); later ones only say that it
    is finishing."""

    def __init__(self):
        self.stopping = False

    def __call__(self, signum, frame):
        if self.stopping:
            print(
                "nanobench: finishing the result file; it is written in a moment",
                file=sys.stderr,
                flush=True,
            )
            return
        self.stopping = True
        raise KeyboardInterrupt


def best_settings(cell: plans.Cell, scenario, log=None, nnodes: int = 1) -> plans.Cell:
    """A `--best` cell with the device's tune record's settings (tuning first where there is
    none, its rounds run here by `run_quietly` into the cache's tune folder), on the machine
    that runs it; any other cell as it is. A data-parallel cell's are those of one rank's
    share of the batch, looked up in a child process (its CUDA context gone with it before
    the ranks start)."""
    if not cell.best or cell.dtype is not None:
        return cell
    from nanobench.run import tune

    runs = tune.TuneRuns(cell.scenario, cell.overrides, str(tune.runs_dir()), run_quietly)
    if cell.nproc:
        world = cell.nproc * nnodes
        found = tune.best_settings_for_ranks(
            scenario, cell.device, world, runs, verbose=log is not None
        )
    else:
        found = tune.best_settings(scenario, cell.device, runs, log=log)
    return replace(cell, **found.options())


def worker_args(cell: plans.Cell, out_dir: str, quiet: bool, as_json: bool) -> list[str]:
    """The `nanobench run` arguments of each torchrun worker of a data-parallel cell: the
    cell's, with its settings resolved (the launcher's env carries the plan and cell ids)."""
    args = [
        cell.scenario,
        "--device",
        cell.device,
        "--dtype",
        cell.dtype,
        "--out",
        out_dir,
        "--compile" if cell.compile else "--no-compile",
    ]
    for flag, value in (
        ("--threads", cell.threads),
        ("--seeds", cell.seed),
        ("--max-iters", cell.max_iters),
        ("--compile-mode", cell.compile_mode),
        ("--optimizer", cell.optimizer),
        ("--sdpa", cell.sdpa),
    ):
        if value is not None:
            args += [flag, str(value)]
    for item in cell.overrides:
        args += ["--set", item]
    return (
        args + ["--quiet"] * quiet + ["--json"] * as_json + ["--from-tune-record"] * bool(cell.best)
    )


def run_options(plan: plans.Plan, cell: plans.Cell):
    """The RunOptions of a single-process cell (the device is resolved here)."""
    from nanobench.run.train import RunOptions

    given = {k: getattr(cell, k) for k in ("optimizer", "sdpa") if getattr(cell, k) is not None}
    return RunOptions(
        device=cell.device,
        dtype=cell.dtype,
        compile=cell.compile,
        threads=cell.threads,
        seed=cell.seed,
        max_iters=cell.max_iters,
        overrides=cell.overrides,
        out_dir=plan.out_dir,
        group_id=plan.plan_id,
        checkpoint_every=cell.checkpoint_every,
        resume=cell.resume,
        compile_mode=cell.compile_mode,
        best=cell.best,
        cell=cell.id,
        **given,
    )


def run_cell(
    plan: plans.Plan,
    cell: plans.Cell,
    progress=None,
    log=None,
    quiet=True,
    as_json=False,
    scenario=None,
    stop=None,
) -> CellResult:
    """Run one cell here: trained in this process, or launched by torchrun when it is
    data-parallel (its rank 0 writes the result, read back from OUT). scenario: the cell's,
    when the caller loaded it already; stop: train()'s stop question (a Deadline), for a
    cell trained in this process."""
    scenario = scenario or cell.load_scenario()
    cell = best_settings(cell, scenario, log, dict(plan.rdzv).get("nnodes") or 1)
    plans.clear_failure(plan, cell.id)
    if cell.nproc:
        return _run_distributed(plan, cell, scenario, quiet, as_json)
    from nanobench.run.train import train

    outcome = train(scenario, run_options(plan, cell), progress, stop=stop)
    return CellResult(
        cell.id,
        outcome.status,
        outcome.reason,
        str(outcome.path) if outcome.path is not None else None,
        outcome.summary,
        outcome.stop_requested,
    )


def _run_distributed(plan, cell, scenario, quiet: bool, as_json: bool) -> CellResult:
    from nanobench.measure.device import parse_device
    from nanobench.run import distributed

    rdzv = dict(plan.rdzv)
    device = parse_device(cell.device)
    distributed.check_launch(
        cell.nproc,
        rdzv.get("nnodes") or 1,
        device,
        scenario.train.batch_size,
        scenario.train.grad_accum,
    )
    rc = distributed.launch(
        cell.nproc,
        rdzv,
        worker_args(cell, plan.out_dir, quiet, as_json),
        cell.threads,
        device.kind,
        env={GROUP_ENV: plan.plan_id, CELL_ENV: cell.id},
    )
    state = {s.cell.id: s for s in plans.cell_states(plan)}[cell.id]
    # on a machine that is not global rank 0's, torchrun's exit 0 is all there is to see
    if state.state == "completed" or (rc == 0 and state.state == "not started"):
        return CellResult(cell.id, "completed", None, state.path)
    if rc == 130:
        return CellResult(cell.id, "interrupted", state.reason, state.path, stop_requested=True)
    return CellResult(cell.id, "failed", state.reason or f"torchrun exited {rc}", state.path)


# ---- in this process ------------------------------------------------------------------------


def run_local(
    plan: plans.Plan,
    cells: list[plans.Cell],
    progress,
    report,
    quiet: bool,
    as_json: bool,
    scenario=None,
    sweep: bool = True,
    deadline: Deadline | None = None,
):
    """The cells in order, in this process; stop at the first interrupted one. progress(label)
    is a context manager for a run's display, report(CellResult) is told each result.
    sweep: first publish the killed runs OUT holds (not in a torchrun worker, whose launcher
    did it). deadline: no cell starts with a second or less of it left (each such cell is
    reported `not started`), and the one running when it ends is stopped."""
    from nanobench.store import results

    if sweep:
        recovered, warnings = results.recover_killed(plan.out_dir)
        for line in warnings:
            print(f"nanobench: warning: {line}", file=sys.stderr)
        for path in recovered:
            print(f"recovered a killed run: {path}", file=sys.stderr)
    done = []
    for cell in cells:
        if deadline is not None and deadline.left_s() <= 1:
            result = CellResult(cell.id, "not started", f"not run: {deadline.why}")
        else:
            with progress(cell.label) as shown:
                result = run_cell(
                    plan, cell, shown, process.stderr_log(quiet), quiet, as_json, scenario, deadline
                )
        done.append(result)
        report(result)
        if result.status == "interrupted" or result.stop_requested:
            break
    return done


def run_quietly(plan: plans.Plan, cells: list[plans.Cell]) -> list[CellResult]:
    """run_local with no display and nothing printed: the rounds of a tune that `run --best`
    starts where the device has no record yet (a module-level function: it is pickled into
    the child process of a data-parallel `--best`)."""
    no_display = lambda label: contextlib.nullcontext()  # noqa: E731
    return run_local(plan, cells, no_display, lambda result: None, True, False, sweep=False)


# ---- on another engine: one cell per task -------------------------------------------------


def remote_cell(plan_file: str, cell_id: str) -> CellResult:
    """What a submitit job or a Ray task runs: the stored plan's cell, here. A cell that
    fails before its result file says so (bad input, a device missing on this node) leaves
    a failure record, so `status` can tell why without the engine's logs."""
    out_dir = Path(plan_file).parent.parent  # OUT/plans/<id>.json: OUT as this node sees it
    plan = plans.load(out_dir, Path(plan_file).stem)
    cell = plan.cell(cell_id)
    # SIGTERM (a scheduler's stop, a preemption) completes the result as `interrupted`
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, StopOnce()) if main else None
    where = f"on {process.host_name()}, pid {os.getpid()}"
    try:
        return run_cell(plan, cell)
    except InputError as exc:
        plans.record_failure(plan, cell.id, f"bad input {where}: {exc}", "nanobench")
        return CellResult(cell.id, "failed", str(exc))
    except KeyboardInterrupt:
        plans.record_failure(plan, cell.id, f"stopped {where} before its result existed", "signal")
        raise
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        plans.record_failure(plan, cell.id, f"{last} ({where})", "nanobench")
        raise
    finally:
        if main:  # the engine's own handler again (a debug executor runs in its caller)
            signal.signal(signal.SIGTERM, before)


@dataclass(frozen=True)
class SubmititOptions:
    """submitit's parameters. Per device kind (cpu, cuda, mps) where a dict is given."""

    cluster: str | None = None  # None: submitit picks (slurm where SLURM is, else local)
    partition: dict = field(default_factory=dict)  # kind -> SLURM partition ("" key: every kind)
    gres: dict = field(default_factory=dict)  # kind -> SLURM gres, e.g. gpu:1
    timeout_min: int = 60
    extra: dict = field(default_factory=dict)  # more AutoExecutor parameters (tests)


def _for_kind(table: dict, kind: str):
    return table.get(kind, table.get(""))


def submit_submitit(plan: plans.Plan, cells: list[plans.Cell], options: SubmititOptions, log):
    """One job array per device kind, each cell one task running `remote_cell`; returns the
    jobs (cell id -> job), whose ids are also written to OUT/plans/<id>/jobs.json."""
    import submitit

    folder = plan.records / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=options.cluster)
    jobs = {}
    by_kind: dict[str, list[plans.Cell]] = {}
    for cell in cells:
        by_kind.setdefault(cell.device_kind, []).append(cell)
    plan_file = str(plan.path.resolve())
    for kind, group in by_kind.items():
        # one task per cell: a data-parallel cell's torchrun starts its own ranks
        params = dict(
            name=f"nanobench-{plan.plan_id}-{kind}",
            timeout_min=options.timeout_min,
            tasks_per_node=1,
            nodes=1,
        )
        if _for_kind(options.partition, kind):
            params["slurm_partition"] = _for_kind(options.partition, kind)
        if _for_kind(options.gres, kind):
            params["slurm_gres"] = _for_kind(options.gres, kind)
        elif kind == "cuda":  # a GPU per rank, unless --slurm-gres says otherwise
            params["gpus_per_node"] = max(c.nproc or 1 for c in group)
        executor.update_parameters(**params, **options.extra)
        with executor.batch():
            submitted = [executor.submit(remote_cell, plan_file, c.id) for c in group]
        for cell, job in zip(group, submitted):
            jobs[cell.id] = job
            plans.clear_failure(plan, cell.id)
    ids = {
        cid: {"engine": f"submitit-{executor.cluster}", "job": j.job_id} for cid, j in jobs.items()
    }
    _write_jobs(plan, ids)
    if log:
        log(
            f"submitted {len(jobs)} cells to submitit ({executor.cluster}): jobs "
            f"{', '.join(sorted({j.job_id.split('_')[0] for j in jobs.values()}))}; logs in {folder}"
        )
    return jobs


def wait_submitit(plan: plans.Plan, jobs: dict, log) -> list[CellResult]:
    """Wait for every job; a job that ended without a result (killed, timed out, preempted
    for good) is recorded as failed with submitit's reason."""
    done = []
    for cell_id, job in jobs.items():
        error = job.exception()  # waits
        if error is None:
            result = job.result()
        else:
            reason = _short(str(error))
            if not plans.failure_path(plan, cell_id).is_file():
                plans.record_failure(
                    plan, cell_id, f"submitit job {job.job_id}: {reason}", "submitit"
                )
            result = CellResult(cell_id, "failed", f"submitit job {job.job_id}: {reason}")
        done.append(result)
        if log:
            log(f"{cell_id} {plan.cell(cell_id).label}: {result.status}")
    return done


def _short(text: str) -> str:
    """An engine's error in one line, without the logs it quotes: submitit's "has not
    produced any output (state: ...)" for a job that died, the exception a task raised, or
    the error's first line."""
    rows = [r.strip() for r in text.strip().splitlines() if r.strip() and set(r.strip()) != {"-"}]
    if not rows:
        return "no reason given"
    for row in rows:
        if "has not produced any output" in row:
            state = re.search(r"\(state: ([^)]*)\)", row)
            return "ended without a result" + (f", state {state.group(1)}" if state else "")
    if "with trace:" in rows[0]:
        trace = [r for r in rows[1:] if not r.startswith(("You can check", "or at paths", "- "))]
        return f"raised {trace[-1]}" if trace else rows[0]
    return rows[0]


def _write_jobs(plan: plans.Plan, ids: dict) -> None:
    from nanobench import files

    path = plan.records / "jobs.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update(ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, json.dumps(known, indent=1) + "\n", inside=plan.out_dir)


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local cluster
    num_cpus: int | None = None  # a local cluster's CPUs (None: Ray counts them)
    accelerator: dict = field(default_factory=dict)  # kind -> Ray accelerator type, e.g. A100


def run_ray(plan: plans.Plan, cells: list[plans.Cell], options: RayOptions, log):
    """Every cell one Ray task asking for its device: its threads as CPUs (1 by default),
    its ranks as GPUs on CUDA, the accelerator type named for its kind. Ray tasks end with
    their driver, so this waits for all of them."""
    import ray

    init = {"address": options.address} if options.address else {"num_cpus": options.num_cpus}
    ray.init(**init, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(remote_cell)
        plan_file = str(plan.path.resolve())
        refs = {}
        for cell in cells:
            kind = cell.device_kind
            ask = {"num_cpus": cell.threads or 1, "max_retries": 0, "name": f"{cell.id}"}
            if kind == "cuda":
                ask["num_gpus"] = cell.nproc or 1
            if _for_kind(options.accelerator, kind):
                ask["accelerator_type"] = _for_kind(options.accelerator, kind)
            plans.clear_failure(plan, cell.id)
            refs[cell.id] = task.options(**ask).remote(plan_file, cell.id)
        if log:
            log(f"submitted {len(refs)} cells to Ray ({ray.get_runtime_context().gcs_address})")
        done = []
        for cell_id, ref in refs.items():
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                reason = f"Ray task: {_short(str(exc))}"
                if not plans.failure_path(plan, cell_id).is_file():
                    plans.record_failure(plan, cell_id, reason, "ray")
                result = CellResult(cell_id, "failed", reason)
            done.append(result)
            if log:
                log(f"{cell_id} {plan.cell(cell_id).label}: {result.status}")
        return done
    finally:
        ray.shutdown()
