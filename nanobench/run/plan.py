"""A run plan: every unit of work one `nanobench run` asked for, frozen before anything runs.

A cell is one scenario (with its `--set` overrides) on one device, in one dtype, with one
set of speed settings and one seed: one result file. A plan is the cells, the output folder
and the plan's id, which every result of the plan records as its `group_id`. Executors
(run/executors.py) run the cells: in this process, as a submitit job array, or as Ray tasks.

The plan is stored in OUT/plans/<plan_id>.json before any cell starts, so `nanobench status
OUT` can say, for each cell, whether its result is completed, still being written (its
`.partial` folder), failed (with the reason) or not started, and `run --continue` can run
only the cells without a completed result. Each result records its cell's id in its
options (`cell`), which is how a file is matched to its cell.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from nanobench import files, process
from nanobench.errors import InputError
from nanobench.store import results

PLAN_SCHEMA_VERSION = 1
PLANS_DIR = "plans"  # OUT/plans/<plan_id>.json, and OUT/plans/<plan_id>/ for executor records
STATES = ("completed", "running", "failed", "not started")


@dataclass(frozen=True)
class Cell:
    """One run of a plan: what `RunOptions` gets, plus the scenario and the data-parallel size."""

    id: str  # "c000": unique in its plan, recorded in the result's options as `cell`
    scenario: str  # a shipped name or a .toml path, as given
    overrides: tuple[str, ...]  # the --set strings
    device: str  # as given: cpu, cuda, cuda:1, mps (resolved where the cell runs)
    dtype: str | None  # None: the device's tune record chooses (`--best`)
    seed: int | None  # None: the scenario's train.seed
    compile: bool = False
    threads: int | None = None
    compile_mode: str | None = None
    optimizer: str | None = None
    sdpa: str | None = None
    best: bool = False  # the speed settings come from the device's tune record
    max_iters: int | None = None
    checkpoint_every: int | None = None
    resume: str | None = None
    nproc: int | None = None  # ranks of a data-parallel cell (torchrun); None: one process

    @property
    def label(self) -> str:
        seed = f" s{self.seed}" if self.seed is not None else ""
        ranks = f" nproc {self.nproc}" if self.nproc else ""
        return f"{self.scenario} {self.device} {self.dtype or 'best'}{seed}{ranks}"

    @property
    def device_kind(self) -> str:
        """cpu, cuda or mps, read from the spelling alone (nothing is probed)."""
        from nanobench.measure.device import parse_device

        return parse_device(self.device).kind

    def load_scenario(self):
        """The cell's scenario with its overrides: by name or path, or a resumed run's own
        (the one its checkpoint recorded)."""
        from nanobench.run import scenario as scen

        if self.scenario or not self.resume:
            return scen.load(self.scenario, list(self.overrides))
        from nanobench.run import checkpoint

        info = checkpoint.load(self.resume)["info"]
        return scen.from_dict(
            info["scenario"], list(self.overrides), f"{self.resume} (its scenario)"
        )

    def work(self) -> tuple:
        """Everything but the id: two cells with the same work are the same measurement."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "id")


@dataclass(frozen=True)
class Plan:
    plan_id: str  # every result of the plan records it as its group_id
    out_dir: str  # as given (--out)
    cells: tuple[Cell, ...]
    # torchrun's rendezvous for data-parallel cells across machines (nnodes, node_rank, ...)
    rdzv: tuple[tuple[str, object], ...] = ()
    created_utc: str = ""

    @property
    def path(self) -> Path:
        return plan_path(self.out_dir, self.plan_id)

    @property
    def records(self) -> Path:
        """Where executors keep what they know of a cell beyond its result file."""
        return Path(self.out_dir) / PLANS_DIR / self.plan_id

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise InputError(f"{self.path}: plan {self.plan_id} has no cell {cell_id!r}")

    def to_json(self) -> dict:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "plan_id": self.plan_id,
            "out_dir": self.out_dir,
            "created_utc": self.created_utc,
            "rdzv": dict(self.rdzv),
            "cells": [dict(asdict(c), overrides=list(c.overrides)) for c in self.cells],
        }

    def save(self) -> Path:
        """Write OUT/plans/<plan_id>.json atomically (a reader sees the whole plan or none)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return files.write_atomic(
                self.path, json.dumps(self.to_json(), indent=1) + "\n", inside=self.out_dir
            )
        except OSError as exc:
            raise InputError(
                f"--out {self.out_dir}: cannot create the results folder ({files.write_cause(exc)})"
            ) from None


def folders_to_make(plan: Plan) -> list[Path]:
    """The folders saving `plan` will create (none of them exists yet), deepest first."""
    missing, folder = [], plan.path.parent
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def discard(plan: Plan, made: list[Path]) -> bool:
    """Remove a plan none of whose cells left a trace (its first cell was refused as bad
    input), and the folders its saving made, so a refused command leaves OUT as it found it.
    Returns whether it did."""
    if any(s.state != "not started" or s.reason for s in cell_states(plan)):
        return False
    plan.path.unlink(missing_ok=True)
    for folder in [plan.records, *made]:
        try:
            folder.rmdir()  # only an empty one: what another plan or run wrote stays
        except OSError:
            pass
    return True


def plan_path(out_dir: str | Path, plan_id: str) -> Path:
    return Path(out_dir) / PLANS_DIR / f"{plan_id}.json"


def new_plan_id(scenario_name: str) -> str:
    return f"{scenario_name}-{secrets.token_hex(4)}"


def from_json(data: dict, where: Path) -> Plan:
    """A stored plan; one this version cannot read is refused with what to do."""
    if not isinstance(data, dict) or data.get("schema_version") != PLAN_SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise InputError(
            f"{where}: plan schema_version {version!r}, this nanobench reads "
            f"{PLAN_SCHEMA_VERSION}; use the nanobench version that wrote it"
        )
    try:
        names = {f.name for f in fields(Cell)}
        cells = tuple(
            Cell(**{k: (tuple(v) if k == "overrides" else v) for k, v in c.items() if k in names})
            for c in data["cells"]
        )
        plan = Plan(
            files.check_name(data["plan_id"], f"{where}: plan_id"),
            str(data["out_dir"]),
            cells,
            tuple(sorted((data.get("rdzv") or {}).items())),
            str(data.get("created_utc", "")),
        )
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where}: not a nanobench plan ({type(exc).__name__}: {exc})") from None
    return plan


def load(out_dir: str | Path, plan_id: str | None = None) -> Plan:
    """The plan `plan_id` stored in OUT (None: the newest one there), with OUT as its folder
    (the folder may have moved since the plan was written)."""
    if plan_id is not None:
        files.check_name(plan_id, "--plan")
        candidates = [plan_path(out_dir, plan_id)]
    else:
        candidates = stored(out_dir)
    if not candidates or not candidates[-1].is_file():
        what = f"plan {plan_id}" if plan_id else "no plan"
        raise InputError(
            f"{out_dir}: {what} stored there (OUT/{PLANS_DIR}/*.json is written by "
            f"`nanobench run ... --out {out_dir}`)"
        )
    where = candidates[-1]
    try:
        data = json.loads(where.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: unreadable plan ({exc})") from None
    return replace(from_json(data, where), out_dir=str(out_dir))


def stored(out_dir: str | Path) -> list[Path]:
    """The plans stored in OUT, oldest first (by the time each was written)."""
    root = Path(out_dir) / PLANS_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("*.json") if p.is_file()), key=lambda p: p.stat().st_mtime)


def matching(out_dir: str | Path, cells: list[Cell]) -> Plan | None:
    """The newest plan stored in OUT with exactly these cells (same work, same order):
    what `run --continue` continues."""
    want = [c.work() for c in cells]
    for path in reversed(stored(out_dir)):
        try:
            candidate = load(out_dir, path.stem)
        except InputError:
            continue
        if [c.work() for c in candidate.cells] == want:
            return candidate
    return None


def make_cells(
    scenario: str,
    overrides: tuple[str, ...],
    pairs: list[tuple[str, str | None]],
    seeds: list[int | None],
    settings: dict,
) -> list[Cell]:
    """Every (device, dtype) pair for every seed, in that order (the local executor's order:
    a pair's seeds one after another). settings: the other Cell fields, shared by every cell."""
    cells = []
    for device, dtype in pairs:
        for seed in seeds:
            cells.append(
                Cell(
                    id=f"c{len(cells):03d}",
                    scenario=scenario,
                    overrides=tuple(overrides),
                    device=device,
                    dtype=dtype,
                    seed=seed,
                    **settings,
                )
            )
    return cells


def numbered(cells: list[Cell]) -> list[Cell]:
    """Cells gathered from several requests (explain --run's commands), numbered anew in
    order: a cell id is unique in its plan."""
    return [replace(c, id=f"c{i:03d}") for i, c in enumerate(cells)]


SPEED_FLAGS = {
    "dtype": "--dtype",
    "compile": "--compile",
    "threads": "--threads",
    "compile_mode": "--compile-mode",
    "optimizer": "--optimizer",
    "sdpa": "--sdpa",
}


@dataclass(frozen=True)
class Request:
    """What `nanobench run` was asked, before it is a plan (the CLI's parsed flags)."""

    scenario: str  # name or path ("" for a resumed run's own scenario)
    overrides: tuple[str, ...]
    device: str
    dtype: str
    seeds: tuple[int | None, ...]
    speed: dict  # the speed flags given (SPEED_FLAGS keys, values not None)
    best: bool = False
    from_tune_record: bool = False  # a torchrun worker of a `--best` job
    max_iters: int | None = None
    checkpoint_every: int | None = None
    resume: str | None = None
    nproc: int | None = None
    nnodes: int | None = None
    allow_slow: bool = False


def build_cells(request: Request, scenario, here: bool = True) -> tuple[list[Cell], list[str]]:
    """The cells of a request, and the lines to say before they run (cells skipped, with
    why; an emulated dtype that runs anyway). here: the cells run on this machine, so each
    device is resolved and a cell it cannot run is skipped (run/matrix.py); otherwise (a
    cluster) devices are taken as spelled and checked where each cell runs.

    With --best each device's cell gets its settings from the device's tune record where it
    runs (dtype None until then)."""
    from nanobench.measure.device import parse_device
    from nanobench.measure.precision import Precision
    from nanobench.run import distributed, matrix

    r = request
    if r.best:
        given = [SPEED_FLAGS[k] for k in r.speed]
        if given:
            raise InputError(
                f"--best: it chooses {', '.join(SPEED_FLAGS.values())} from the tune record; "
                f"drop {', '.join(given)}"
            )
        if r.resume:
            raise InputError("--best: a resumed run keeps its checkpoint's settings; drop --best")
    is_matrix = matrix.wants_matrix(r.device, r.dtype)
    if r.nproc is not None:
        if r.resume or r.checkpoint_every:
            raise InputError(
                "--nproc: checkpoints and --resume are single-process for now; drop one of them"
            )
        if is_matrix:
            raise InputError(
                "--nproc: a data-parallel job runs one device and dtype; give one --device and --dtype"
            )
        distributed.check_launch(
            r.nproc,
            r.nnodes or 1,
            parse_device(r.device),
            scenario.train.batch_size,
            scenario.train.grad_accum,
        )
    said: list[str] = []
    if r.resume:
        pairs = [(r.device, r.dtype)]
    elif here:
        # a flag a device cannot take (`--sdpa cudnn` on the CPU) skips its cells, like a dtype
        flags = {k: v for k, v in r.speed.items() if k in ("optimizer", "sdpa", "compile_mode")}
        flags["compile"] = bool(r.speed.get("compile"))
        found = matrix.expand(
            r.device, r.dtype, allow_slow=r.allow_slow, speed=flags, scenario=scenario
        )
        said = found.skipped + found.notes
        pairs = [(e.device, e.dtype) for e in found.entries]
    else:
        if r.device == "all":
            raise InputError(
                "--device all: means this machine's devices; on a cluster name them, e.g. "
                "--device cpu,cuda"
            )
        devices = [d.strip() for d in r.device.split(",") if d.strip()]
        for d in devices:
            parse_device(d)  # a misspelt one is bad input now, not on a node later
        pairs = [(d, t) for d in dict.fromkeys(devices) for t in matrix.parse_dtypes(r.dtype)]
        for _, dtype in pairs:
            Precision(dtype)
    speed = {k: v for k, v in r.speed.items() if k != "dtype"}
    if r.best:
        # one cell per device, its dtype and settings from the record
        pairs = [(d, None) for d in dict.fromkeys(d for d, _ in pairs)]
        speed = {"best": True}
    elif r.from_tune_record:
        speed["best"] = True
    shared = dict(
        speed,
        max_iters=r.max_iters,
        checkpoint_every=r.checkpoint_every,
        resume=r.resume,
        nproc=r.nproc,
    )
    return make_cells(r.scenario, r.overrides, pairs, list(r.seeds), shared), said


# ---- status: what OUT holds for each cell ---------------------------------------------------


@dataclass(frozen=True)
class CellState:
    cell: Cell
    state: str  # one of STATES
    path: str | None = None  # the completed result, the failed one, or the .partial folder
    reason: str | None = None  # why it failed; where it runs


def failure_path(plan: Plan, cell_id: str) -> Path:
    return plan.records / "failed" / f"{cell_id}.json"


def record_failure(plan: Plan, cell_id: str, reason: str, source: str) -> Path:
    """What an executor learnt about a cell that left no result saying so (a task that raised
    before its result existed, a job the scheduler killed): one JSON file per cell."""
    path = failure_path(plan, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"cell": cell_id, "reason": reason, "source": source, "at_utc": results.utc_now()}
    return files.write_atomic(path, json.dumps(entry, indent=1) + "\n", inside=plan.out_dir)


def clear_failure(plan: Plan, cell_id: str) -> None:
    """A cell starts again: an earlier executor record no longer describes it."""
    failure_path(plan, cell_id).unlink(missing_ok=True)


def _results_of(plan: Plan) -> dict[str, list[tuple[float, Path, dict]]]:
    """The result files in OUT that belong to the plan, per cell id: (mtime, path, meta)."""
    found: dict[str, list[tuple[float, Path, dict]]] = {}
    for path in sorted(Path(plan.out_dir).glob("*.parquet")):
        try:
            meta = results.read_meta(path)
        except InputError:
            continue  # not ours to judge here; `compare` names it
        options = meta.get("options") or {}
        if meta.get("group_id") == plan.plan_id and options.get("cell"):
            found.setdefault(options["cell"], []).append((path.stat().st_mtime, path, meta))
    return found


def _partials_of(plan: Plan) -> dict[str, tuple[Path, dict]]:
    found = {}
    for partial in results.find_partials(Path(plan.out_dir)):
        try:
            meta = json.loads((partial / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        options = meta.get("options") or {}
        if meta.get("group_id") == plan.plan_id and options.get("cell"):
            found[options["cell"]] = (partial, meta)
    return found


def cell_states(plan: Plan, host: str | None = None, alive=process.pid_alive) -> list[CellState]:
    """Each cell's state from what OUT holds: a completed result wins; then a `.partial`
    whose process lives (running; on another host it is taken as running); a `.partial` of
    a process gone from this host is a killed run; then the newest of a failed result and
    an executor's failure record; else not started. host and alive: this machine's name and
    the pid check (tests pass their own)."""
    host = host or process.host_name()
    finished, partials, submitted = _results_of(plan), _partials_of(plan), _submitted(plan)
    states = []
    for cell in plan.cells:
        done = sorted(finished.get(cell.id, []), key=lambda t: t[0])
        completed = [t for t in done if t[2].get("status") == "completed"]
        if completed:
            states.append(CellState(cell, "completed", str(completed[-1][1])))
            continue
        if cell.id in partials:
            partial, meta = partials[cell.id]
            pid, where = meta.get("pid"), meta.get("pid_host")
            if where != host:
                states.append(CellState(cell, "running", str(partial), f"on {where}, pid {pid}"))
                continue
            if alive(pid):
                states.append(CellState(cell, "running", str(partial), f"pid {pid}"))
                continue
            engine = _recorded_failure(plan, cell.id)
            states.append(
                CellState(
                    cell,
                    "failed",
                    str(partial),
                    f"killed: its process (pid {pid}) ended without finishing its result"
                    + (f" ({engine[1]})" if engine else "")
                    + f"; `nanobench recover {plan.out_dir}` publishes the rows it wrote",
                )
            )
            continue
        candidates = [
            (mtime, str(path), f"{meta.get('status')}: {meta.get('status_reason') or 'no reason'}")
            for mtime, path, meta in done
        ]
        record = _recorded_failure(plan, cell.id)
        if record:
            candidates.append((failure_path(plan, cell.id).stat().st_mtime, *record))
        if candidates:
            _, path, reason = max(candidates)
            states.append(CellState(cell, "failed", path, reason))
        else:
            job = submitted.get(cell.id)
            queued = f"submitted: {job.get('engine')} job {job.get('job')}" if job else None
            states.append(CellState(cell, "not started", None, queued))
    return states


def _submitted(plan: Plan) -> dict:
    """cell id -> the engine's job for it, as the executor recorded (jobs.json)."""
    try:
        jobs = json.loads((plan.records / "jobs.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in jobs.items() if isinstance(v, dict)} if isinstance(jobs, dict) else {}


def _recorded_failure(plan: Plan, cell_id: str) -> tuple[str, str] | None:
    """(path, reason) of an executor's failure record of the cell, if there is one."""
    record = failure_path(plan, cell_id)
    if not record.is_file():
        return None
    try:
        return str(record), str(json.loads(record.read_text())["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return str(record), "an executor recorded a failure (its record is unreadable)"


def to_run(plan: Plan, states: list[CellState] | None = None) -> list[Cell]:
    """`--continue`: the cells without a completed result (running ones are left alone)."""
    states = states if states is not None else cell_states(plan)
    return [s.cell for s in states if s.state in ("failed", "not started")]
