"""`nanobench board`: every run given, from any number of machines, as one table per scenario
and recipe with one row per hardware x dtype x speed settings.

Two halves. `summarize(path)` reads one result file into one summary row (the per-run numbers
of analyze/runs.run_stats, time to each target, the machine it ran on, and what makes it
impossible, if anything); store/index keeps these rows next to the results so that the next
board reads only new or changed files. `build_board(table)` is a pure function over those
rows: it checks them against one another (dataset, recipe, duplicates), groups them into rows
(DuckDB over the Arrow table: medians, spreads, counts) and compares each row with a reference
row (the speedup of analyze/pairs, the seed-noise verdict of analyze/equivalence) and each
version with the one before it on the same hardware (Welch's test, analyze/equivalence).
docs/board.md says what every number means.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from nanobench.analyze import equivalence
from nanobench.analyze.config import recipe_diff, recipe_of, recipe_tag, reference_recipe
from nanobench.analyze.pairs import Speedup, speedup
from nanobench.analyze.runs import backwards, run_stats, time_to_target
from nanobench.analyze.seeds import runs_curves
from nanobench.errors import InputError
from nanobench.measure.peaks import gpu_spec_peak
from nanobench.run import scenario as scenarios
from nanobench.store import bulk, index, results
from nanobench.store.meta import Settings

# Bump when a summary column changes meaning: every index written before is then rebuilt.
SUMMARY_VERSION = "board-1"
# The columns a summary reads (analyze/runs.run_stats and the checks below); the rest of a
# file (noise samples, per-rank times, memory other than the peak) is never read.
READ_COLUMNS = (
    "iter",
    "loss",
    "step_time_s",
    "train_time_s",
    "wall_time_s",
    "tokens",
    "mfu",
    "mfu_measured",
    "mem_peak_bytes",
    "energy_j",
    "eval_val_loss",
    "eval_train_loss",
    "warmup",
    "step_includes_eval",
)
USABLE_STATUSES = results.COMPLETE_STATUSES  # an unfinished run's times to target mean nothing

_EVAL = pa.struct([("iter", pa.int64()), ("val_loss", pa.float64())])
_HIT = pa.struct(
    [
        ("target", pa.float64()),
        ("iter", pa.float64()),
        ("train_time_s", pa.float64()),
        ("wall_time_s", pa.float64()),
        ("energy_j", pa.float64()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("scenario", pa.string()),
        ("dataset_sha256", pa.string()),
        ("recipe", pa.string()),  # analyze/config.recipe_of as JSON
        ("overrides", pa.list_(pa.string())),
        ("targets", pa.list_(pa.float64())),
        ("device_type", pa.string()),
        ("device_name", pa.string()),
        ("hardware", pa.string()),  # the row's hardware, in words (hardware_of)
        ("dtype", pa.string()),
        ("compile", pa.bool_()),
        ("best", pa.bool_()),
        ("settings", pa.string()),  # the speed settings, in words (settings_of)
        ("program", pa.string()),  # "nanobench", or the trainer of an imported log
        ("continues", pa.string()),
        ("machine_id", pa.string()),
        ("hardware_id", pa.string()),
        ("machine_source", pa.string()),
        ("fingerprint", pa.string()),  # JSON
        ("torch", pa.string()),
        ("cuda", pa.string()),
        ("driver", pa.string()),
        ("nanobench", pa.string()),
        ("seed", pa.int64()),
        ("noise", pa.string()),
        ("noise_reasons", pa.list_(pa.string())),
        ("iterations", pa.int64()),
        ("median_step_s", pa.float64()),
        ("tokens_per_s", pa.float64()),
        ("mfu", pa.float64()),
        ("mfu_measured", pa.float64()),
        ("mem_peak_bytes", pa.float64()),
        ("energy_j", pa.float64()),
        ("tokens_per_j", pa.float64()),
        ("train_time_s", pa.float64()),
        ("impossible", pa.string()),  # why the run's own numbers cannot be true, or null
        ("evaluations", pa.list_(_EVAL)),
        ("hits", pa.list_(_HIT)),
    ]
)


# ---- one file -> one summary row ------------------------------------------------------------


def hardware_of(device_type: str, device_name: str, fingerprint: dict) -> str:
    """The hardware a row stands for: a GPU by its name; a CPU by its model, physical cores
    and SIMD class (one model name covers a 2-core VM and a 96-core host, an AVX2 and an
    AVX-512 one); Apple's GPU by its chip and core count."""
    if device_type == "cpu":
        model = fingerprint.get("cpu_model") or device_name
        cores = fingerprint.get("cpu_physical_cores")
        simd = fingerprint.get("simd")
        return " · ".join(
            [str(model)] + ([f"{cores} cores"] if cores else []) + ([str(simd)] if simd else [])
        )
    if device_type == "mps":
        named = [g[0] for g in fingerprint.get("gpus") or [] if str(g[0]).startswith(device_name)]
        return named[0] if named else device_name
    return device_name


def settings_of(settings: Settings, best: bool) -> str:
    """The speed settings of a run in words, its dtype aside (a row's own column): 'default',
    or what differs from the defaults."""
    parts = []
    if settings.compile:
        parts.append(f"compile {settings.compile_mode or 'default'}")
    for key in ("optimizer", "sdpa"):
        value = getattr(settings, key)
        if value != getattr(Settings, key):
            parts.append(f"{key} {value}")
    if settings.threads is not None:
        n = settings.threads
        parts.append(f"{n} thread{'s' * (n != 1)}")
    text = ", ".join(str(p) for p in parts)
    if best:
        return f"best ({text})" if text else "best"
    return text or "default"


def _positive(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def _peak_problem(stats, info, flops_per_iter: float) -> str | None:
    """Why a run's speed cannot be true: MFU above 1 against its measured peak (from its FLOPs
    and median step, or as its rows record it), or FLOP/s above its device's peak. For a GPU
    in nanobench's datasheet table that peak is the table's, which a file cannot change;
    otherwise the larger of the spec and measured peaks the file records."""
    if not stats.median_step_s:
        return None
    rate = flops_per_iter / stats.median_step_s  # FLOP/s of the median step
    peaks = info.peak_flops
    measured = _positive(peaks.measured.flops) if peaks else None
    spec = _positive(peaks.spec.flops) if peaks else None
    recorded = info.raw.get("peak_flops")
    beaten = isinstance(recorded, dict) and bool(recorded.get("measured_beaten"))
    if measured and not beaten:  # a run that beat its calibration says so (docs/results.md)
        for mfu, how in (
            (rate / measured, "from its FLOPs and median step"),
            (stats.mfu_measured, "as its rows record it"),
        ):
            if mfu is not None and mfu > 1.0:
                return f"MFU {mfu:.2f} against its measured peak ({measured / 1e9:,.1f} GFLOP/s; {how}): above 1"
    datasheet = None
    if stats.config.device_type == "cuda":
        datasheet = _positive(gpu_spec_peak(stats.config.device_name, stats.config.dtype).flops)
    recorded_peaks = [p for p in (spec, measured) if p]
    bound, whose = (
        (datasheet, f"the {stats.config.dtype} datasheet peak of {stats.config.device_name}")
        if datasheet
        else (max(recorded_peaks), "the largest peak the file records")
        if recorded_peaks
        else (None, "")
    )
    if bound and rate > bound:
        per_token = flops_per_iter / stats.tokens_per_iter if stats.tokens_per_iter else None
        how = (
            f"{stats.tokens_per_s:,.0f} tokens/s x {per_token:.4g} FLOPs/token"
            if stats.tokens_per_s and per_token
            else f"{flops_per_iter:.4g} FLOPs per {stats.median_step_s:.4g} s step"
        )
        return f"{how} = {rate / 1e9:,.1f} GFLOP/s, above {whose} ({bound / 1e9:,.1f} GFLOP/s)"
    return None


def summarize_file(path: Path) -> dict:
    """One result file as one summary row (SUMMARY_SCHEMA), through analyze/runs.run_stats.
    InputError for a file that cannot be read (naming it); a run whose numbers cannot be true
    gets `impossible`, not an error."""
    return _summary_of_run(results.read_run_columns(path, READ_COLUMNS))


_MALFORMED = (
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    OverflowError,
    ZeroDivisionError,
    pa.ArrowInvalid,
    pa.ArrowNotImplementedError,
)


def _summary_of_run(run: results.Run) -> dict:
    """The summary through run_stats, the definition of every per-run number. A value of the
    wrong type anywhere in a stranger's file is an InputError naming it, never a traceback:
    the board lists the file as left out."""
    try:
        stats = run_stats(run)
        return _summary(run.info, stats, backwards(stats.columns))
    except _MALFORMED as exc:
        raise InputError(
            f"{run.path}: malformed values ({type(exc).__name__}: {str(exc)[:120]}); refused"
        ) from None


def summarize(paths: list[Path]) -> list:
    """Summary rows of many result files (store/index.refresh's `summarize`): per path, in
    order, its row (SUMMARY_SCHEMA) or the InputError that refuses it. The files are read in
    bulk (store/bulk), each run as summarize_file reads it."""
    out: list = [None] * len(paths)
    for n, run in bulk.read_runs_columns(paths, READ_COLUMNS):
        if isinstance(run, InputError):
            out[n] = run
            continue
        try:
            out[n] = _summary_of_run(run)
        except InputError as exc:
            out[n] = exc
    return out


def _seed(seed) -> int | None:
    """A run's seed as the index keeps it (int64); ValueError, which refuses the file, for
    one no 64-bit column holds."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        return None
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed {seed} does not fit in 64 bits")
    return seed


def _summary(info, stats, impossible_rows: str | None) -> dict:
    """The summary row of a run from its metadata and its numbers (analyze/runs.RunStats);
    `impossible_rows` says how its rows go backwards (analyze/runs.backwards), if they do."""
    cfg = stats.config
    machine = info.machine
    fingerprint = machine.fingerprint
    flops_per_iter = _positive(stats.flops_per_iter)
    impossible = impossible_rows or (
        _peak_problem(stats, info, flops_per_iter) if flops_per_iter else None
    )
    tokens = stats.tokens_per_iter * stats.iterations if stats.tokens_per_iter else None
    hits = []
    for target in info.val_loss_targets:
        hit = time_to_target(stats.evaluations, target)
        if hit is not None:
            hits.append(
                {
                    "target": target,
                    "iter": hit.iter,
                    "train_time_s": hit.train_time_s,
                    "wall_time_s": hit.wall_time_s,
                    "energy_j": hit.energy_j,
                }
            )
    env = info.environment
    text = lambda v: None if v is None else str(v)  # noqa: E731  (a number where a string belongs)
    return {
        "run_id": info.run_id,
        "status": info.shown_status,
        "scenario": stats.scenario,
        "dataset_sha256": stats.dataset_sha256,
        "recipe": json.dumps(cfg.recipe),
        "overrides": [str(o) for o in stats.overrides],
        "targets": list(info.val_loss_targets),
        "device_type": cfg.device_type,
        "device_name": cfg.device_name,
        "hardware": hardware_of(cfg.device_type, cfg.device_name, fingerprint),
        "dtype": cfg.dtype,
        "compile": cfg.compile,
        "best": cfg.best,
        "settings": settings_of(info.options.settings, cfg.best),
        "program": cfg.imported or "nanobench",
        "continues": cfg.continues,
        "machine_id": machine.machine_id,
        "hardware_id": machine.hardware_id,
        "machine_source": machine.source,
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "torch": text(env.torch),
        "cuda": text(env.cuda_runtime),
        "driver": text(env.gpu_driver),
        "nanobench": text((info.raw.get("environment") or {}).get("nanobench")),
        "seed": _seed(stats.seed),
        "noise": stats.noise.verdict,
        "noise_reasons": list(stats.noise.reasons),
        "iterations": stats.iterations,
        "median_step_s": stats.median_step_s,
        "tokens_per_s": stats.tokens_per_s,
        "mfu": stats.mfu,
        "mfu_measured": stats.mfu_measured,
        "mem_peak_bytes": stats.mem_peak_bytes,
        "energy_j": stats.energy_j,
        "tokens_per_j": tokens / stats.energy_j if tokens and stats.energy_j else None,
        "train_time_s": stats.train_time_s,
        "impossible": impossible,
        "evaluations": [{"iter": e.iter, "val_loss": e.val_loss} for e in stats.evaluations],
        "hits": hits,
    }


# ---- summary rows -> the board ----------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """The median of per-run values and their range (min to max): the spread across the
    machines and seeds behind a row."""

    median: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class TargetTime:
    target: float
    reached: int  # runs that reached it
    runs: int  # runs in the row
    train_time_s: Spread | None  # over the runs that reached it
    energy_j: Spread | None  # over those of them that read an energy counter


@dataclass(frozen=True)
class LossVerdict:
    """Val loss at the last evaluation every run of the row and of the reference has, and the
    seed-noise verdict of the row against the reference there (analyze/equivalence)."""

    iter: int
    val_loss: float  # the row's mean
    reference_val_loss: float
    verdict: str  # equivalent | different | undecided
    design: str  # paired | unpaired
    diff: float  # row - reference


@dataclass(frozen=True)
class VersionChange:
    """tokens/s of one row's runs under one version against the version before it."""

    software: str  # "torch" or "nanobench"
    before: str
    after: str
    change: float  # median(after) / median(before) - 1
    p: float | None  # Welch's t test of the per-run tokens/s; None with one run on a side
    n_before: int
    n_after: int

    @property
    def beyond_noise(self) -> bool | None:
        return None if self.p is None else self.p < equivalence.ALPHA

    def sentence(self) -> str:
        where = (
            "one run on a side: not tested"
            if self.p is None
            else f"{'beyond' if self.beyond_noise else 'within'} noise (Welch p={self.p:.2g}, "
            f"{self.n_before} vs {self.n_after} runs)"
        )
        return (
            f"{self.software} {self.before} -> {self.after}: {self.change:+.0%} tokens/s, {where}"
        )


@dataclass
class BoardRow:
    key: str  # stable: a hash of what makes the row (hardware, dtype, settings, program)
    hardware: str
    device_type: str
    device_name: str
    dtype: str
    settings: str
    program: str
    machines: int
    runs: int
    seeds: int
    noisy: int  # noisy runs of this row: left out of every number unless include_noisy
    noisy_counted: bool  # include_noisy: the noisy runs are among `runs`
    run_ids: list[str]
    tokens_per_s: Spread | None
    step_s: Spread | None
    mfu: Spread | None
    mfu_measured: Spread | None
    mem_peak_bytes: Spread | None
    tokens_per_j: Spread | None
    targets: list[TargetTime]
    torch: list[str]
    cuda: list[str]
    driver: list[str]
    nanobench: list[str]
    speedup: Speedup | None = None  # reference median step / this row's (> 1: faster)
    loss: LossVerdict | None = None
    history: list[VersionChange] = field(default_factory=list)
    reference: bool = False
    _runs: list = field(default_factory=list, repr=False)  # the summary rows, for the verdicts

    @property
    def label(self) -> str:
        extra = "" if self.settings == "default" else f" [{self.settings}]"
        prog = "" if self.program == "nanobench" else f" from {self.program} log"
        return f"{self.hardware} {self.dtype}{extra}{prog}"


@dataclass
class BoardTable:
    """One scenario and recipe: the rows, sorted by time to the first target, then speed."""

    scenario: str
    dataset_sha256: str
    recipe_tag: str  # ' · learning_rate=3e-4' against the scenario's own recipe; '' for it
    targets: tuple[float, ...]
    rows: list[BoardRow]
    reference: BoardRow | None
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.scenario}{self.recipe_tag}"


@dataclass
class LeftOut:
    file: str
    reason: str
    kind: str  # unreadable | status | resumed | impossible | dataset | recipe | duplicate


@dataclass
class Board:
    tables: list[BoardTable]
    left_out: list[LeftOut]
    n_files: int
    n_used: int
    include_noisy: bool
    noisy_left_out: int
    margin: float
    notes: list[str] = field(default_factory=list)


# the summary columns build_board reads (the index keeps more: the stat key, the fingerprint,
# the noise reasons, iterations, energy and train time)
_BOARD_COLUMNS = (
    "file",
    "refused",
    "run_id",
    "status",
    "scenario",
    "dataset_sha256",
    "recipe",
    "overrides",
    "targets",
    "device_type",
    "device_name",
    "hardware",
    "dtype",
    "settings",
    "program",
    "continues",
    "machine_id",
    "machine_source",
    "torch",
    "cuda",
    "driver",
    "nanobench",
    "seed",
    "noise",
    "median_step_s",
    "tokens_per_s",
    "mfu",
    "mfu_measured",
    "mem_peak_bytes",
    "tokens_per_j",
    "impossible",
    "hits",
)


def _rows(table: pa.Table) -> list[dict]:
    """The summary rows as dicts of the columns the board reads, and per run `val_loss_at`
    ({iteration: val loss}) from its evaluations. Column by column, the evaluations flattened:
    pyarrow's to_pylist of the whole table makes a dict per nested value, the most of a second
    board's time over ten thousand runs."""
    import pyarrow.compute as pc

    names = [c for c in _BOARD_COLUMNS if c in table.column_names]
    values = [table.column(c).to_pylist() for c in names]
    rows = [dict(zip(names, v)) for v in zip(*values)]
    evaluations = table.column("evaluations")
    flat = pc.list_flatten(evaluations)
    iters = pc.struct_field(flat, "iter").to_pylist()
    losses = pc.struct_field(flat, "val_loss").to_pylist()
    for r in rows:
        r["val_loss_at"] = {}
    for parent, it, loss in zip(pc.list_parent_indices(evaluations).to_pylist(), iters, losses):
        rows[parent]["val_loss_at"][it] = loss
    return rows


def _spread(values) -> Spread | None:
    vals = [
        float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    if not vals:
        return None
    return Spread(float(np.median(vals)), min(vals), max(vals), len(vals))


def _row_key(r: dict) -> tuple:
    return (r["device_type"], r["hardware"], r["dtype"], r["settings"], r["program"])


def _shipped_recipe(name: str) -> tuple | None:
    """The recipe a shipped scenario of this name trains, or None for another name."""
    if name not in scenarios.list_shipped():
        return None
    return recipe_of(scenarios.load(name).to_dict())


def _checked(rows: list[dict]) -> tuple[list[dict], list[LeftOut]]:
    """Refusals that need more than one file: duplicates (one run id reached through two
    paths counts once), another dataset than the scenario's, and a recipe its scenario and
    its recorded --set overrides do not explain."""
    kept, out, first = [], [], {}
    for r in rows:
        if r["refused"]:
            out.append(LeftOut(r["file"], r["refused"], "unreadable"))
        elif r["run_id"] in first:
            out.append(
                LeftOut(
                    r["file"],
                    f"the same run ({r['run_id']}) as {first[r['run_id']]}: counted once",
                    "duplicate",
                )
            )
        else:
            first[r["run_id"]] = r["file"]
            kept.append(r)
    by_scenario: dict[str, list[dict]] = {}
    for r in kept:
        by_scenario.setdefault(r["scenario"], []).append(r)
    usable = []
    for name, runs in sorted(by_scenario.items()):
        counts: dict[str, set] = {}
        for r in runs:
            if r["dataset_sha256"] != "?":
                counts.setdefault(r["dataset_sha256"], set()).add(r["run_id"])
        # the checksum most of the scenario's runs record; a tie goes to the one sorted first
        sha = min(counts, key=lambda s: (-len(counts[s]), s)) if counts else None
        shipped = _shipped_recipe(name)
        parsed: dict[str, tuple] = {}  # thousands of runs share a handful of recipes
        for r in runs:
            if r["recipe"] not in parsed:
                parsed[r["recipe"]] = tuple(map(tuple, json.loads(r["recipe"])))
        recipes = [parsed[r["recipe"]] for r in runs]
        plain = [rec for rec, r in zip(recipes, runs) if not r["overrides"]]
        # a scenario nanobench does not ship: the recipe most runs without overrides record
        # (most runs, when every one has overrides)
        reference = shipped if shipped is not None else reference_recipe(recipes, plain)
        diffs: dict = {}
        for r, recipe in zip(runs, recipes):
            named = {o.partition("=")[0].strip() for o in r["overrides"]}
            if r["recipe"] not in diffs:
                diffs[r["recipe"]] = recipe_diff(recipe, reference)
            unexplained = [k for k in diffs[r["recipe"]] if k not in named]
            if sha and r["dataset_sha256"] not in (sha, "?"):
                out.append(
                    LeftOut(
                        r["file"],
                        f"dataset sha256 {r['dataset_sha256'][:12]}... is not scenario {name}'s "
                        f"({sha[:12]}..., {len(counts[sha])} runs): another corpus",
                        "dataset",
                    )
                )
            elif unexplained:
                out.append(
                    LeftOut(
                        r["file"],
                        f"recipe differs from scenario {name}'s in {', '.join(unexplained[:4])}"
                        f"{' ...' if len(unexplained) > 4 else ''}, which no recorded --set override names",
                        "recipe",
                    )
                )
            else:
                r["_recipe"], r["_reference"] = recipe, reference  # rows are build_board's own
                usable.append(r)
    return usable, out


def _group(rows: list[dict], include_noisy: bool) -> list[dict]:
    """The rows of the board, grouped with DuckDB over an Arrow table of the runs: per table
    (scenario, dataset, recipe) and row (hardware, dtype, settings, program), the medians and
    ranges of the per-run numbers and the counts of machines, runs and seeds."""
    import duckdb

    # a table key and a row key per run, numbered: DuckDB groups small integers, and the keys
    # (JSON, which the tables and rows carry on) are made once per distinct value
    tkeys: dict[tuple, int] = {}
    rkeys: dict[tuple, int] = {}
    t_of = [
        tkeys.setdefault((r["scenario"], r["dataset_sha256"], r["recipe"]), len(tkeys))
        for r in rows
    ]
    r_of = [rkeys.setdefault(_row_key(r), len(rkeys)) for r in rows]
    floats = {
        "tokens_per_s": "tokens_per_s",
        "step_s": "median_step_s",
        "mfu": "mfu",
        "mfu_measured": "mfu_measured",
        "mem": "mem_peak_bytes",
        "tpj": "tokens_per_j",
    }
    # numpy columns, which DuckDB scans as they are (pyarrow's own conversion imports pandas)
    machines: dict = {}
    seeds: dict = {None: -1}  # a run without a seed counts as a seed of its own (below)
    runs = {
        "n": np.arange(len(rows), dtype=np.int64),
        "tkey": np.array(t_of, dtype=np.int64),
        "rkey": np.array(r_of, dtype=np.int64),
        # numbered too: numpy object columns cost DuckDB a look at every value
        "machine_id": np.array([machines.setdefault(r["machine_id"], len(machines)) for r in rows]),
        "seed": np.array([seeds.setdefault(r["seed"], len(seeds)) for r in rows]),
        "noisy": np.array([r["noise"] == "noisy" for r in rows], dtype=bool),
        **{
            c: np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=np.float64)
            for c, k in floats.items()
        },
    }
    con = duckdb.connect()
    con.register("runs", runs)
    spread = ", ".join(
        f"median({c}) AS {c}_median, min({c}) AS {c}_low, max({c}) AS {c}_high, count({c}) AS {c}_n"
        for c in ("tokens_per_s", "step_s", "mfu", "mfu_measured", "mem", "tpj")
    )
    grouped = con.sql(
        f"""
        SELECT tkey, rkey, {spread},
               count(*) AS n_runs,
               count(DISTINCT machine_id) AS n_machines,
               count(DISTINCT seed) FILTER (WHERE seed >= 0)
                 + count(*) FILTER (WHERE seed < 0) AS n_seeds,
               list(n ORDER BY n) AS members
        FROM runs
        WHERE $include_noisy OR NOT noisy
        GROUP BY tkey, rkey
        ORDER BY tkey, rkey
        """,
        params={"include_noisy": include_noisy},
    ).to_arrow_table()
    noisy = con.sql(
        "SELECT tkey, rkey, count(*) AS k, list(n ORDER BY n) AS members FROM runs WHERE noisy GROUP BY tkey, rkey"
    ).to_arrow_table()
    con.close()
    noisy_of = {(r["tkey"], r["rkey"]): r for r in noisy.to_pylist()}
    out = grouped.to_pylist()
    for g in out:
        g["noisy"] = noisy_of.get((g["tkey"], g["rkey"]), {}).get("k", 0)
    # a row whose every run is noisy has no group above: it is named in the notes instead
    have = {(g["tkey"], g["rkey"]) for g in out}
    out += [
        {"tkey": k[0], "rkey": k[1], "n_runs": 0, "noisy": v["k"], "members": v["members"]}
        for k, v in noisy_of.items()
        if k not in have
    ]
    return out


def _spread_of(g: dict, col: str) -> Spread | None:
    if not g.get(f"{col}_n"):
        return None
    return Spread(g[f"{col}_median"], g[f"{col}_low"], g[f"{col}_high"], g[f"{col}_n"])


class _Run(NamedTuple):
    """What analyze/seeds.runs_curves reads of a run (tuples: thousands per verdict)."""

    run_id: str
    seed: int | None
    evaluations: tuple


class _Point(NamedTuple):
    """What runs_curves reads of an evaluation."""

    iter: int
    val_loss: float


def _curve_runs(runs: list[dict], it: int) -> list[_Run]:
    """The runs with their evaluation at iteration `it` only: all the verdict looks at."""
    return [
        _Run(
            r["run_id"],
            r["seed"],
            (_Point(it, r["val_loss_at"][it]),) if it in r["val_loss_at"] else (),
        )
        for r in runs
    ]


def common_iterations(runs: list[dict]) -> set[int]:
    """The evaluation iterations every one of the runs has."""
    return set.intersection(*(set(r["val_loss_at"]) for r in runs)) if runs else set()


def loss_verdict(
    row_runs: list[dict], ref_runs: list[dict], margin: float, ref_memo: dict | None = None
) -> LossVerdict | None:
    """Val loss at the last evaluation (after iteration 0) every run of both rows has, and the
    verdict there: analyze/equivalence at that one evaluation, paired by seed where two or more
    seeds ran on both sides once each, else Welch. `ref_memo`: a dict kept across the rows of
    one table, so that the reference's runs are gone through once, not once per row."""
    memo = {} if ref_memo is None else ref_memo
    if "common" not in memo:
        memo["common"] = common_iterations(ref_runs)
    common = (common_iterations(row_runs) & memo["common"]) - {0}
    if not common:
        return None
    it = max(common)
    # an imported log's seed pairs only with logs of its own trainer (analyze/seeds.run_keys)
    imported = lambda runs: "" if runs[0]["program"] == "nanobench" else runs[0]["program"]  # noqa: E731
    if it not in memo:
        memo[it] = runs_curves(_curve_runs(ref_runs, it), imported(ref_runs))[it]
    a = memo[it]
    b = runs_curves(_curve_runs(row_runs, it), imported(row_runs))[it]
    result = equivalence.compare_curves({it: a}, {it: b}, margin)
    point = result["final"]
    mean = lambda d: float(np.mean(list(d.values())))  # noqa: E731
    return LossVerdict(it, mean(b), mean(a), point.verdict, point.design, mean(b) - mean(a))


def _version_key(text: str):
    """'2.13.0+cu128' sorts after '2.12.1': the numbers in order, the local part last."""
    base, _, local = text.partition("+")
    parts = []
    for piece in base.replace("-", ".").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append((int(digits) if digits else -1, piece))
    return (parts, local)


def history(runs: list[dict], software: str) -> list[VersionChange]:
    """For one row's runs, each version of `software` ("torch", "nanobench") against the one
    before it: the change of median tokens/s, and Welch's t test of the per-run tokens/s
    (analyze/equivalence.welch, scipy's t distribution) when both sides have two runs or more."""
    by_version: dict[str, list[float]] = {}
    for r in runs:
        if r[software] is not None and r["tokens_per_s"] is not None:
            by_version.setdefault(r[software], []).append(r["tokens_per_s"])
    versions = sorted(by_version, key=_version_key)
    out = []
    for before, after in zip(versions, versions[1:]):
        a, b = by_version[before], by_version[after]
        p = equivalence.welch(a, b).p_zero if len(a) >= 2 and len(b) >= 2 else None
        out.append(
            VersionChange(
                software, before, after, float(np.median(b) / np.median(a) - 1), p, len(a), len(b)
            )
        )
    return out


def _distinct(runs: list[dict], key: str) -> list[str]:
    return sorted({str(r[key]) for r in runs if r[key] is not None}, key=_version_key)


def _choose_reference(rows: list[BoardRow], baseline: str | None) -> BoardRow | None:
    """--baseline TEXT: the row whose label holds TEXT (case-insensitive), the slowest of them;
    by default the slowest CPU row of nanobench's own runs, else the slowest row."""
    timed = [r for r in rows if r.step_s is not None]
    slowest = lambda rs: max(rs, key=lambda r: (r.step_s.median, r.label)) if rs else None  # noqa: E731
    if baseline:
        return slowest([r for r in timed if baseline.lower() in r.label.lower()])
    own_cpu = [r for r in timed if r.device_type == "cpu" and r.program == "nanobench"]
    return (
        slowest(own_cpu) or slowest([r for r in timed if r.device_type == "cpu"]) or slowest(timed)
    )


def _sort_key(row: BoardRow):
    first = row.targets[0] if row.targets else None
    t = (
        first.train_time_s.median
        if first and first.train_time_s and first.reached == first.runs
        else None
    )
    return (t is None, t or 0.0, row.step_s.median if row.step_s else math.inf, row.label)


def build_board(
    table: pa.Table,
    *,
    include_noisy: bool = False,
    baseline: str | None = None,
    margin: float = equivalence.DEFAULT_MARGIN,
) -> Board:
    """The board over summary rows (store/index.refresh's table, SUMMARY_SCHEMA plus `file`
    and `refused`). Pure: no file is read."""
    all_rows = _rows(table)
    left_out: list[LeftOut] = []
    first_pass = []
    for r in all_rows:
        if r["refused"]:
            first_pass.append(r)
        elif r["status"] not in USABLE_STATUSES:
            left_out.append(
                LeftOut(
                    r["file"], f"status {r['status']}: only finished runs are compared", "status"
                )
            )
        elif r["continues"]:
            left_out.append(
                LeftOut(
                    r["file"],
                    f"a resumed run (continues {r['continues']}): its history is its parent's",
                    "resumed",
                )
            )
        elif r["impossible"]:
            left_out.append(
                LeftOut(r["file"], f"numbers that cannot be true: {r['impossible']}", "impossible")
            )
        else:
            first_pass.append(r)
    usable, refused = _checked(first_pass)
    left_out = refused + left_out
    groups = _group(usable, include_noisy)
    tables: dict[str, BoardTable] = {}
    noisy_total = sum(1 for r in usable if r["noise"] == "noisy")
    notes = []
    for g in groups:
        members = [usable[i] for i in g["members"]]
        if not g["n_runs"]:
            notes.append(
                f"{members[0]['scenario']}: {members[0]['hardware']} {members[0]['dtype']}: all "
                f"{g['noisy']} runs recorded noisy (shown with --include-noisy)"
            )
            continue
        first = members[0]
        tkey = g["tkey"]
        if tkey not in tables:
            tables[tkey] = BoardTable(
                first["scenario"],
                first["dataset_sha256"],
                recipe_tag(first["_recipe"], first["_reference"]),
                tuple(first["targets"]),
                [],
                None,
            )
        hits = [{h["target"]: h for h in r["hits"]} for r in members]
        targets = [
            TargetTime(
                t,
                sum(1 for h in hits if t in h),
                len(members),
                _spread(h[t]["train_time_s"] for h in hits if t in h),
                _spread(h[t]["energy_j"] for h in hits if t in h),
            )
            for t in tables[tkey].targets
        ]
        row = BoardRow(
            key=json.dumps(_row_key(first)),
            hardware=first["hardware"],
            device_type=first["device_type"],
            device_name=first["device_name"],
            dtype=first["dtype"],
            settings=first["settings"],
            program=first["program"],
            machines=g["n_machines"],
            runs=g["n_runs"],
            seeds=g["n_seeds"],
            noisy=g["noisy"],
            noisy_counted=include_noisy,
            run_ids=[r["run_id"] for r in members],
            tokens_per_s=_spread_of(g, "tokens_per_s"),
            step_s=_spread_of(g, "step_s"),
            mfu=_spread_of(g, "mfu"),
            mfu_measured=_spread_of(g, "mfu_measured"),
            mem_peak_bytes=_spread_of(g, "mem"),
            tokens_per_j=_spread_of(g, "tpj"),
            targets=targets,
            torch=_distinct(members, "torch"),
            cuda=_distinct(members, "cuda"),
            driver=_distinct(members, "driver"),
            nanobench=_distinct(members, "nanobench"),
            history=history(members, "torch") + history(members, "nanobench"),
            _runs=members,
        )
        tables[tkey].rows.append(row)
    for t in tables.values():
        ref = _choose_reference(t.rows, baseline)
        if baseline and ref is None:
            t.notes.append(
                f"no row matches --baseline {baseline!r}: the slowest CPU row is the reference"
            )
            ref = _choose_reference(t.rows, None)
        t.reference = ref
        ref_memo: dict = {}
        for row in t.rows:
            row.reference = row is ref
            if ref is not None and row.step_s is not None:
                row.speedup = speedup(
                    [r["median_step_s"] for r in ref._runs if r["median_step_s"]],
                    [r["median_step_s"] for r in row._runs if r["median_step_s"]],
                )
            if ref is not None and row is not ref:
                row.loss = loss_verdict(row._runs, ref._runs, margin, ref_memo)
        t.rows.sort(key=_sort_key)
        machines = {r["machine_id"] for row in t.rows for r in row._runs}
        derived = sum(1 for row in t.rows for r in row._runs if r["machine_source"] != "recorded")
        if derived:
            t.notes.append(
                f"{derived} run(s) recorded no machine fingerprint (older files, imported logs): "
                f"theirs is derived from what they recorded"
            )
        n_runs = sum(r.runs for r in t.rows)
        t.notes.insert(
            0,
            f"{n_runs} run{'s' * (n_runs != 1)} from {len(machines)} machine{'s' * (len(machines) != 1)}",
        )
    if baseline and not any(
        t.reference and baseline.lower() in t.reference.label.lower() for t in tables.values()
    ):
        raise InputError(f"--baseline {baseline}: no row of any table has this in its label")
    ordered = sorted(tables.values(), key=lambda t: (t.scenario, t.recipe_tag != "", t.recipe_tag))
    return Board(
        ordered,
        sorted(left_out, key=lambda x: (x.kind, x.file)),
        len(all_rows),
        sum(t.runs for tb in ordered for t in tb.rows),
        include_noisy,
        0 if include_noisy else noisy_total,
        margin,
        notes,
    )


def board_files(
    paths: list[str],
    *,
    include_noisy: bool = False,
    baseline: str | None = None,
    margin: float = equivalence.DEFAULT_MARGIN,
    write_index: bool = True,
) -> tuple[Board, index.Refreshed]:
    """The board of result files, folders and globs: their summaries from each folder's index
    (store/index; only new or changed files are read), then build_board."""
    refreshed = index.refresh(paths, summarize, SUMMARY_SCHEMA, SUMMARY_VERSION, write=write_index)
    board = build_board(
        refreshed.table, include_noisy=include_noisy, baseline=baseline, margin=margin
    )
    board.notes = refreshed.notes + board.notes
    return board, refreshed


# ---- JSON (docs/board.md lists every key; they are stable) ----------------------------------


def _spread_json(s: Spread | None, scale: float = 1.0):
    return (
        None
        if s is None
        else {"median": s.median * scale, "min": s.low * scale, "max": s.high * scale, "n": s.n}
    )


def row_json(row: BoardRow) -> dict:
    return {
        "key": row.key,
        "label": row.label,
        "hardware": row.hardware,
        "device_type": row.device_type,
        "device_name": row.device_name,
        "dtype": row.dtype,
        "settings": row.settings,
        "program": row.program,
        "reference": row.reference,
        "machines": row.machines,
        "runs": row.runs,
        "seeds": row.seeds,
        "noisy_runs": row.noisy,
        "run_ids": row.run_ids,
        "tokens_per_s": _spread_json(row.tokens_per_s),
        "ms_per_iter": _spread_json(row.step_s, 1e3),
        "mfu": _spread_json(row.mfu),
        "mfu_measured": _spread_json(row.mfu_measured),
        "mem_peak_bytes": _spread_json(row.mem_peak_bytes),
        "tokens_per_joule": _spread_json(row.tokens_per_j),
        "targets": [
            {
                "val_loss": t.target,
                "reached": t.reached,
                "runs": t.runs,
                "train_time_s": _spread_json(t.train_time_s),
                "energy_j": _spread_json(t.energy_j),
            }
            for t in row.targets
        ],
        "speedup": None
        if row.speedup is None
        else {"ratio": row.speedup.ratio, "low": row.speedup.low, "high": row.speedup.high},
        "val_loss": None
        if row.loss is None
        else {
            "iter": row.loss.iter,
            "val_loss": row.loss.val_loss,
            "reference_val_loss": row.loss.reference_val_loss,
            "diff": row.loss.diff,
            "verdict": row.loss.verdict,
            "design": row.loss.design,
        },
        "versions": {
            "torch": row.torch,
            "cuda": row.cuda,
            "driver": row.driver,
            "nanobench": row.nanobench,
        },
        "history": [
            {
                "software": h.software,
                "before": h.before,
                "after": h.after,
                "change": h.change,
                "p": h.p,
                "beyond_noise": h.beyond_noise,
                "n_before": h.n_before,
                "n_after": h.n_after,
                "sentence": h.sentence(),
            }
            for h in row.history
        ],
    }


BOARD_JSON_VERSION = 1


def to_json(board: Board) -> dict:
    return {
        "board_version": BOARD_JSON_VERSION,
        "files": board.n_files,
        "runs_used": board.n_used,
        "include_noisy": board.include_noisy,
        "noisy_left_out": board.noisy_left_out,
        "margin": board.margin,
        "tables": [
            {
                "scenario": t.scenario,
                "dataset_sha256": t.dataset_sha256,
                "recipe": t.recipe_tag.removeprefix(" · "),
                "targets": list(t.targets),
                "reference": t.reference.key if t.reference else None,
                "notes": t.notes,
                "rows": [row_json(r) for r in t.rows],
            }
            for t in board.tables
        ],
        "left_out": [{"file": x.file, "kind": x.kind, "reason": x.reason} for x in board.left_out],
        "notes": board.notes,
    }
