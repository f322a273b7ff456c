"""One run: its evaluations and step times from the rows, the per-run numbers of the compare
table, and time to target. Also the one place that reads result files for analysis.

Every statistic is computed from the rows (docs/results.md), never from the metadata's
`summary`, so a hand-built or recovered file is measured the same way.

Row semantics used throughout: an evaluation on row i scores the model after i steps, so
the train time at which it was reached is `train_time_s - step_time_s` of that row (the
final row has no step: its own train_time_s); likewise for wall time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nanobench.analyze.config import Config, config_of, group_key
from nanobench.analyze.noise import RunNoise, recorded, slow_outliers
from nanobench.errors import InputError
from nanobench.store import results


@dataclass(frozen=True)
class Evaluation:
    iter: int
    val_loss: float
    train_loss: float | None
    train_time_s: float  # train time at which the evaluated model existed
    wall_time_s: float
    tokens: float | None = (
        None  # training tokens the evaluated model had seen: iter x tokens per iteration
    )
    flops: float | None = None  # model FLOPs spent on them: iter x the metadata's flops.per_iter
    energy_j: float | None = (
        None  # the energy counter at the evaluation's wall time (None: no counter)
    )


@dataclass(eq=False)
class RunStats:
    """The numbers of one run, with the run itself (metadata and rows) for plots and pages."""

    run_id: str
    path: str
    scenario: str
    dataset: str
    dataset_sha256: str
    config: Config
    seed: int | None
    threads: int | None
    torch_version: str | None
    status: str
    targets: tuple[float, ...]
    iterations: int
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    median_step_s: float | None
    p90_step_s: float | None
    tokens_per_s: float | None
    mfu: float | None
    mem_peak_bytes: int | None
    energy_j: float | None
    train_time_s: float
    wall_time_s: float
    evaluations: tuple[Evaluation, ...]
    step_times_s: np.ndarray = field(repr=False)  # warm-up excluded, (n_steps,)
    # None only for hand-built stats in tests
    run: results.Run | None = field(default=None, repr=False)
    overrides: tuple[str, ...] = ()  # the run's --set strings, as given
    tokens_per_iter: float | None = None
    flops_per_iter: float | None = None  # model FLOPs of one iteration (metadata flops.per_iter)
    # the verdict the run recorded (analyze/noise.py)
    noise: RunNoise = RunNoise("unknown", (), None)
    slow_outliers: int = 0  # timed steps above Q3 + 3 x IQR
    mfu_measured: float | None = None  # median over timed steps, against the measured peak
    # the rows' columns, each converted once (run_stats fills it as it reads them)
    columns: object = field(default=None, repr=False, compare=False)

    def column(self, name: str) -> np.ndarray:
        """A column of the rows as float64, NaN for null (all NaN where absent), converted once
        per run however many statistics and figures read it."""
        return _col(self.rows if self.columns is None else self.columns, name)

    @property
    def rows(self):
        """The run's rows (a pandas DataFrame), for curves drawn from every step."""
        return self.run.rows

    @property
    def info(self):
        """The run's metadata (store/meta.RunMeta), for what the numbers above do not hold."""
        return self.run.info


def percentile(values, q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation between order statistics
    (numpy's default, Hyndman-Fan type 7). None for no values."""
    values = np.asarray(values, dtype=float)
    return float(np.percentile(values, q)) if values.size else None


# fixed-width numeric Arrow types and their numpy dtypes: columns read through their buffers
_NUMPY_OF = {
    pa.float64(): np.float64,
    pa.float32(): np.float32,
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.int16(): np.int16,
    pa.int8(): np.int8,
    pa.uint64(): np.uint64,
    pa.uint32(): np.uint32,
    pa.uint16(): np.uint16,
    pa.uint8(): np.uint8,
}


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """`length` bits of an Arrow bitmap from bit `offset`, as bools. Only the bytes holding them
    are unpacked: an array sliced from a bulk read (store/bulk) starts deep into its buffer."""
    first = offset // 8
    data = np.frombuffer(buffer, dtype=np.uint8, count=(offset % 8 + length + 7) // 8, offset=first)
    return np.unpackbits(data, count=offset % 8 + length, bitorder="little")[offset % 8 :].astype(
        bool
    )


def _valid(arr: pa.Array) -> np.ndarray:
    """Where an Arrow array has a value (not null), from its validity bitmap."""
    return _bits(arr.buffers()[0], arr.offset, len(arr))


class ArrowColumns:
    """A pyarrow Table's columns as numpy, each converted once: floats with NaN for null,
    flags with False for null. Read through the Arrow buffers, because pyarrow's to_numpy
    imports pandas (a second of a board's start) and costs more per call than the statistics."""

    def __init__(self, table: pa.Table):
        self.table, self.num_rows = table, table.num_rows
        self._names = set(table.column_names)
        self._cache: dict = {}

    def has(self, name: str) -> bool:
        return name in self._names

    def _numpy(self, name: str, arrow_type, fill, dtype) -> np.ndarray:
        key = (name, dtype)
        if key in self._cache:
            return self._cache[key]
        column = self.table.column(name)
        exact = column.type == arrow_type or (
            arrow_type == pa.float64() and column.type in _NUMPY_OF  # ints and float32: exact
        )
        if column.num_chunks == 1 and exact and column.type in _NUMPY_OF and len(column):
            # the common case (a file's own column, already of this type): its buffers as they
            # are, nulls set from the validity bitmap: a third of the time of pyarrow's compute
            # functions below, run a dozen times per file over ten thousand files
            arr, stored = column.chunk(0), _NUMPY_OF[column.type]
            size, offset = len(arr), arr.offset
            values = np.frombuffer(
                arr.buffers()[1],
                dtype=stored,
                count=size,
                offset=offset * np.dtype(stored).itemsize,
            ).astype(dtype, copy=False)  # an int64 column read as floats (tokens, bytes)
            if arr.null_count:
                values = np.where(_valid(arr), values, fill)
            self._cache[key] = values
            return values
        arr = pc.fill_null(column.cast(arrow_type), fill).combine_chunks()
        data = arr.buffers()[1]
        self._cache[key] = (
            np.frombuffer(
                data, dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize
            )
            if len(arr)
            else np.empty(0, dtype=dtype)
        )
        return self._cache[key]

    def floats(self, name: str) -> np.ndarray:
        return self._numpy(name, pa.float64(), float("nan"), np.float64)

    def flags(self, name: str) -> np.ndarray:
        key = (name, bool)
        if key not in self._cache:
            column = self.table.column(name)
            if column.num_chunks == 1 and column.type == pa.bool_() and len(column):
                arr = column.chunk(0)  # bits, as the floats above: no compute function
                flags = _bits(arr.buffers()[1], arr.offset, len(arr))
                self._cache[key] = flags & _valid(arr) if arr.null_count else flags
            else:
                self._cache[key] = self._numpy(name, pa.uint8(), 0, np.uint8).astype(bool)
        return self._cache[key]

    def ints(self, name: str) -> np.ndarray:
        return self._numpy(name, pa.int64(), 0, np.int64)


def columns(rows):
    """`rows` ready for the helpers below, wrapped once so that each column is converted once:
    a pyarrow Table (read_run_columns) or a pandas DataFrame (read_run); a wrapped one as it is."""
    if isinstance(rows, pa.Table):
        return ArrowColumns(rows)
    if isinstance(rows, (ArrowColumns, _Columns)):
        return rows
    return _Columns(rows)


def _col(rows, name: str) -> np.ndarray:
    """A column as float64 with NaN for null (or all NaN when the column is absent): plain
    numpy, because pandas indexing per column costs more than the statistics here. `rows` is
    a pandas DataFrame (read_run), or a pyarrow Table of a few columns (read_run_columns),
    best wrapped by `columns` first (each column is then converted once)."""
    rows = columns(rows)
    if isinstance(rows, _Columns):
        return rows.get(name)
    return rows.floats(name) if rows.has(name) else np.full(rows.num_rows, np.nan)


class _Columns:
    """The rows' float columns, each converted once: run_stats reads step_time_s, loss and
    the times several times over, and each pandas conversion costs more than its use."""

    def __init__(self, rows):
        self.rows, self._done = rows, {}

    def get(self, name: str) -> np.ndarray:
        if name not in self._done:
            rows = self.rows
            self._done[name] = (
                rows[name].to_numpy(dtype=float, na_value=np.nan)
                if name in rows
                else np.full(len(rows), np.nan)
            )
        return self._done[name]

    # the DataFrame's own reads, for the few helpers that need more than float columns
    def __contains__(self, name) -> bool:
        return name in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name):
        return self.rows[name]


def _flag(rows, name: str) -> np.ndarray:
    """A boolean column with null (and absence) read as False."""
    rows = columns(rows)
    if isinstance(rows, _Columns):
        rows = rows.rows
    if isinstance(rows, ArrowColumns):
        return rows.flags(name) if rows.has(name) else np.zeros(rows.num_rows, dtype=bool)
    if name not in rows:
        return np.zeros(len(rows), dtype=bool)
    # one conversion whatever the column's dtype (bool, nullable boolean, or object where the
    # parquet column holds nulls); a null counts as not set
    return rows[name].to_numpy(dtype=bool, na_value=False)


def _warmup(rows) -> np.ndarray:
    return _flag(rows, "warmup")


def _untimed(rows) -> np.ndarray:
    """Rows left out of step-time statistics: warm-up, and imported steps whose printed time
    includes an evaluation (column `step_includes_eval`)."""
    return _warmup(rows) | _flag(rows, "step_includes_eval")


def _iters(rows) -> np.ndarray:
    rows = columns(rows)
    if isinstance(rows, ArrowColumns):
        return rows.ints("iter")
    return rows["iter"].to_numpy()


def evaluations(
    rows, tokens_per_iter: float | None = None, flops_per_iter: float | None = None
) -> tuple[Evaluation, ...]:
    """Evaluation points in iteration order, each with the time its model was reached, and
    the tokens, model FLOPs and energy spent to get there where those are known."""
    rows = columns(rows)
    val = _col(rows, "eval_val_loss")
    at = ~np.isnan(val)
    if not at.any():
        return ()
    step = np.nan_to_num(_col(rows, "step_time_s")[at], nan=0.0)
    train_t = _col(rows, "train_time_s")[at] - step
    wall_t = _col(rows, "wall_time_s")[at] - step
    tl = _col(rows, "eval_train_loss")[at]
    its = _iters(rows)[at]
    energy = _energy_at(rows, wall_t)
    per = lambda x, i: None if x is None else float(x) * int(i)  # noqa: E731  (a resumed run's iter counts from 0 too)
    return tuple(
        Evaluation(
            int(i),
            float(v),
            None if math.isnan(t) else float(t),
            float(a),
            float(w),
            per(tokens_per_iter, i),
            per(flops_per_iter, i),
            None if math.isnan(j) else float(j),
        )
        for i, v, t, a, w, j in zip(its, val[at], tl, train_t, wall_t, energy)
    )


def _energy_at(rows, wall_t: np.ndarray) -> np.ndarray:
    """The cumulative energy counter (`energy_j`, per row at its wall time) interpolated at each
    evaluation's wall time: joules from the run's start, evaluations included like wall time.
    NaN where the run has no energy or the time lies outside its readings."""
    energy, wall = _col(rows, "energy_j"), _col(rows, "wall_time_s")
    ok = ~np.isnan(energy) & ~np.isnan(wall)
    if not ok.any():
        return np.full(len(wall_t), np.nan)
    # before the first reading the counter started at 0 with the run (metrics.Recorder)
    xs, ys = np.concatenate([[0.0], wall[ok]]), np.concatenate([[0.0], energy[ok]])
    return np.interp(wall_t, xs, ys, right=np.nan)


def _last(values: np.ndarray) -> float | None:
    ok = values[~np.isnan(values)]
    return float(ok[-1]) if ok.size else None


def _max(values: np.ndarray) -> float | None:
    return float(np.nanmax(values)) if (~np.isnan(values)).any() else None


def run_stats(run: results.Run) -> RunStats:
    """The per-run numbers of the compare table, from the rows."""
    info, rows = run.info, columns(run.rows)
    cols = rows
    scenario, dataset_sha256 = group_key(info)
    # a step has a time or a loss (an imported llm.c log prints no times); the final row neither
    is_step = ~np.isnan(_col(cols, "step_time_s")) | ~np.isnan(_col(cols, "loss"))
    timed = ~np.isnan(_col(cols, "step_time_s")) & ~_untimed(rows)
    times = _col(cols, "step_time_s")[timed]
    # the quantiles of the step times in one numpy call (one partition, where four calls sort
    # four times: a third of this function's time over a board's ten thousand runs)
    q25, median_s, q75, p90 = (
        [float(q) for q in np.percentile(times, [25, 50, 75, 90])] if times.size else [None] * 4
    )
    # tokens is cumulative, from the parent's count in a resumed run: take a step's increment
    tokens = _col(cols, "tokens")[is_step]
    tokens = tokens[~np.isnan(tokens)]
    if tokens.size >= 2:
        tokens_per_iter = float(tokens[1] - tokens[0])
    elif tokens.size == 1 and int(_iters(rows)[is_step][0]) == 0:
        tokens_per_iter = float(tokens[0])
    else:
        tokens_per_iter = None
    evs = evaluations(cols, tokens_per_iter, info.flops_per_iter)
    mfu = _col(cols, "mfu")[timed]
    mfu = mfu[~np.isnan(mfu)]
    mfu_measured = _col(cols, "mfu_measured")[timed]
    mfu_measured = mfu_measured[~np.isnan(mfu_measured)]
    mem_peak = _max(_col(cols, "mem_peak_bytes"))
    return RunStats(
        run_id=info.run_id,
        path=str(run.path),
        scenario=scenario,
        dataset="?" if info.dataset.name is None else str(info.dataset.name),
        dataset_sha256=dataset_sha256,
        config=config_of(info),
        seed=info.options.seed,
        threads=info.environment.torch_num_threads,
        torch_version=info.environment.torch,
        status=info.shown_status,
        targets=info.val_loss_targets,
        iterations=int(is_step.sum()),
        final_train_loss=_last(_col(cols, "loss")[is_step]),
        final_val_loss=evs[-1].val_loss if evs else None,
        best_val_loss=min(e.val_loss for e in evs) if evs else None,
        median_step_s=median_s,
        p90_step_s=p90,
        tokens_per_s=tokens_per_iter / median_s if tokens_per_iter and median_s else None,
        mfu=float(np.median(mfu)) if mfu.size else None,
        mem_peak_bytes=int(mem_peak) if mem_peak is not None else None,
        energy_j=_last(_col(cols, "energy_j")),
        train_time_s=_max(_col(cols, "train_time_s")) or 0.0,
        wall_time_s=_max(_col(cols, "wall_time_s")) or 0.0,
        evaluations=evs,
        step_times_s=times,
        run=run,
        overrides=info.options.overrides,
        tokens_per_iter=tokens_per_iter,
        flops_per_iter=info.flops_per_iter,
        noise=recorded(info.raw),
        slow_outliers=slow_outliers(times, (q25, q75)),
        mfu_measured=float(np.median(mfu_measured)) if mfu_measured.size else None,
        columns=cols,
    )


def backwards(rows) -> str | None:
    """Where a run's iterations or clocks go backwards, which no real run does (a damaged or
    hand-edited file), in words; None for a run whose rows are in order."""
    rows = columns(rows)
    its = _iters(rows).astype(float)
    bad = np.flatnonzero(np.diff(its) <= 0)
    if bad.size:
        i = bad[0]
        return (
            f"iteration {its[i + 1]:.0f} follows iteration {its[i]:.0f}: iterations run backwards"
        )
    for name in ("train_time_s", "wall_time_s"):
        values = _col(rows, name)
        ok = ~np.isnan(values)
        v, at = values[ok], its[ok]
        bad = np.flatnonzero(np.diff(v) < 0)
        if bad.size:
            i = bad[0]
            return f"{name} runs backwards at iteration {at[i + 1]:.0f} ({v[i + 1]:.6g} s after {v[i]:.6g} s)"
    negative = np.flatnonzero(_col(rows, "step_time_s") < 0)
    if negative.size:
        return f"step_time_s is negative at iteration {its[negative[0]]:.0f}"
    return None


@dataclass(frozen=True)
class Hit:
    """When a val-loss target was first reached (the first evaluation with val <= target)."""

    iter: float
    train_time_s: float
    wall_time_s: float
    energy_j: float | None = None  # joules spent to get there, where an energy counter was read


def time_to_target(evals: tuple[Evaluation, ...], target: float) -> Hit | None:
    """The first evaluation at which val loss <= target; None when never reached."""
    for e in evals:
        if e.val_loss <= target:
            return Hit(e.iter, e.train_time_s, e.wall_time_s, e.energy_j)
    return None


def val_loss_at_iter(evals: tuple[Evaluation, ...], it: int) -> float | None:
    return next((e.val_loss for e in evals if e.iter == it), None)


def val_loss_at(evals: tuple[Evaluation, ...], x: float, axis) -> float | None:
    """Val loss where axis(evaluation) (train time, tokens, FLOPs) equals x, linearly
    interpolated between evaluation points; None outside them (no extrapolation) or where
    the axis is unknown."""
    if not evals or any(axis(e) is None for e in evals):
        return None
    xs = np.array([axis(e) for e in evals], dtype=float)
    vs = np.array([e.val_loss for e in evals])
    tol = 1e-12 * max(1.0, abs(xs[-1]))
    if x < xs[0] - tol or x > xs[-1] + tol:
        return None
    return float(np.interp(x, xs, vs))


# ---- loading: the one place analysis reads files ------------------------------------------------


def load_runs(paths: list[str], skip_bad: bool = False) -> tuple[list[results.Run], list[str]]:
    """Expand paths and read each run. Without skip_bad the first unreadable file raises
    InputError; with it, such files are listed (one line each) and left out."""
    runs, skipped = [], []
    for path in results.expand_paths(paths):
        try:
            runs.append(results.read_run(path))
        except InputError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    if not runs:
        raise InputError(
            f"{' '.join(paths)}: no readable result file"
            + (f" ({len(skipped)} skipped)" if skipped else "")
        )
    return runs, skipped
