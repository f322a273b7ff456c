"""Storage: one parquet file per run, written crash-safe, read version-checked.

While a run is going, its rows live in `OUT/.partial/<run_id>/` as closed parquet segment
files (each written to a temporary name, then renamed) plus `meta.json`. A segment is
flushed every FLUSH_EVERY_ITERS iterations or FLUSH_EVERY_S seconds, whichever comes
first, so a SIGKILL or power loss loses at most that window. When the run ends, the
segments are joined into `OUT/<run_id>.parquet`, again through a temporary name and a
rename: a result file under its final name is always complete. `recover()` turns a
partial folder left by a killed run into a result with status `killed`.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nanobench import files, process
from nanobench.errors import InputError
from nanobench.store.meta import RunMeta

SCHEMA_VERSION = 1
META_KEY = b"nanobench"
PARTIAL_DIR = ".partial"
FLUSH_EVERY_ITERS = 100
FLUSH_EVERY_S = 10.0
STATUSES = ("running", "completed", "interrupted", "diverged", "failed", "killed", "imported")
# Statuses whose rows cover the whole schedule. `imported` (a log of another trainer, see
# nanobench/ingest) does unless its metadata says where the log was cut off.
COMPLETE_STATUSES = ("completed", "imported")

SCHEMA = pa.schema(
    [
        ("iter", pa.int64()),
        ("loss", pa.float64()),
        ("lr", pa.float64()),
        ("step_time_s", pa.float64()),
        ("train_time_s", pa.float64()),
        ("wall_time_s", pa.float64()),
        ("tokens", pa.int64()),
        ("tokens_per_s", pa.float64()),
        ("mfu", pa.float64()),
        ("mfu_measured", pa.float64()),
        ("grad_norm", pa.float64()),
        ("mem_bytes", pa.int64()),
        ("mem_peak_bytes", pa.int64()),
        ("mem_reserved_bytes", pa.int64()),
        ("mem_device_bytes", pa.int64()),
        ("energy_j", pa.float64()),
        ("eval_train_loss", pa.float64()),
        ("eval_val_loss", pa.float64()),
        ("warmup", pa.bool_()),
        ("rank_step_time_s", pa.list_(pa.float64())),
        # noise samples (measure/noise.py): set on the row where a reading was taken, else null
        ("other_cpu_cores", pa.float64()),
        ("cpu_steal_frac", pa.float64()),
        ("load_1m", pa.float64()),
        ("cpu_freq_hz", pa.float64()),
        ("on_battery", pa.bool_()),
        ("gpu_sm_clock_mhz", pa.int64()),
        ("gpu_clock_event_mask", pa.int64()),
        ("gpu_temp_c", pa.int64()),
        # imported runs only (null otherwise): the trainer's own MFU as printed, and whether
        # the printed step time includes an evaluation (then timing statistics leave it out)
        ("mfu_reported", pa.float64()),
        ("step_includes_eval", pa.bool_()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def _write_json_atomic(path: Path, data: dict) -> None:
    files.write_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str))


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)


def _publish(out_dir: Path, run_id: str, table: pa.Table, meta: dict) -> Path:
    """Write the final file under a temporary name, then rename: never seen half-written.
    A final name that leads outside out_dir (a planted symlink) is refused (InputError)."""
    table = table.replace_schema_metadata(
        {META_KEY: json.dumps(meta, sort_keys=True, default=str).encode()}
    )
    return files.write_atomic(
        out_dir / f"{run_id}.parquet", lambda f: pq.write_table(table, f), inside=out_dir
    )


def _advice(exc: OSError, partial: Path, n_rows: int, out_dir: Path) -> str:
    """What to do after a failed write of a run's files: `recover` only while the rows are
    still in the partial folder, "free space" only when space ran out."""
    if not partial.is_dir():
        return f"{partial} is gone, and the rows with it"
    fix = "free space, then " if files.no_space(exc) else "once that is fixed, "
    return (
        f"the {n_rows} rows flushed before are intact in {partial}; "
        f"{fix}`nanobench recover {out_dir}` publishes them"
    )


class RunWriter:
    """Buffers rows and flushes them to segment files; `finish` publishes the result."""

    def __init__(
        self,
        out_dir: Path,
        run_id: str,
        meta: dict,
        flush_every_iters: int = FLUSH_EVERY_ITERS,
        flush_every_s: float = FLUSH_EVERY_S,
        clock=time.monotonic,
    ):
        self.clock = clock  # seconds, for the flush window; a test passes its own
        self.out_dir = Path(out_dir)
        self.run_id = run_id
        self.meta = dict(meta, schema_version=SCHEMA_VERSION, run_id=run_id, status="running")
        self.flush_every_iters = flush_every_iters
        self.flush_every_s = flush_every_s
        files.check_name(run_id, "run id")
        self.partial = self.out_dir / PARTIAL_DIR / run_id
        try:
            (self.out_dir / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"--out {self.out_dir}: cannot create the results folder ({files.write_cause(exc)})"
            ) from None
        # OUT/.partial may be a symlink leading away
        files.check_inside(self.partial, self.out_dir, "--out")
        if (self.out_dir / f"{run_id}.parquet").exists():
            raise FileExistsError(run_id)  # a result by that name: the caller draws another id
        try:
            # atomic: of two runs drawing one id, only one gets it
            self.partial.mkdir(exist_ok=False)
        except FileExistsError:
            raise
        except OSError as exc:
            raise InputError(
                f"--out {self.out_dir}: cannot create {self.partial} ({files.write_cause(exc)})"
            ) from None
        self._buffer: list[dict] = []
        self._n_segments = 0
        self.n_rows_flushed = 0
        self._last_flush = self.clock()
        self._write_meta()

    def append(self, rows: list[dict]) -> None:
        self._buffer.extend(rows)
        if (
            len(self._buffer) >= self.flush_every_iters
            or self.clock() - self._last_flush >= self.flush_every_s
        ):
            self.flush()

    def flush(self) -> None:
        self._last_flush = self.clock()
        if not self._buffer:
            return
        seg = self.partial / f"seg-{self._n_segments:06d}.parquet"
        table = _table(self._buffer)
        try:
            files.write_atomic(seg, lambda f: pq.write_table(table, f))
        except OSError as exc:
            raise InputError(
                f"{seg}: could not write results ({files.write_cause(exc)}); "
                f"{_advice(exc, self.partial, self.n_rows_flushed, self.out_dir)}"
            ) from None
        # The buffer is emptied first, right after the write: a Ctrl-C arriving here must not
        # leave written rows in the buffer for finish() to write a second time.
        rows, self._buffer = self._buffer, []
        self._n_segments += 1
        self.n_rows_flushed += len(rows)

    def _write_meta(self) -> None:
        try:
            _write_json_atomic(self.partial / "meta.json", self.meta)
        except OSError as exc:
            raise InputError(
                f"{self.partial / 'meta.json'}: could not write ({files.write_cause(exc)}); "
                f"{_advice(exc, self.partial, self.n_rows_flushed, self.out_dir)}"
            ) from None

    def update_meta(self, **fields) -> None:
        self.meta.update(fields)
        self._write_meta()

    def finish(self, status: str, reason: str | None = None, **fields) -> Path:
        """Flush, join the segments into the final file, and remove the partial folder."""
        assert status in STATUSES, status
        self.flush()
        self.meta.update(fields, status=status, status_reason=reason, finished_at=utc_now())
        self._write_meta()
        try:
            path = _publish(self.out_dir, self.run_id, _read_segments(self.partial), self.meta)
        except OSError as exc:
            raise InputError(
                f"{self.out_dir / self.run_id}.parquet: could not write the result ({files.write_cause(exc)}); "
                f"{_advice(exc, self.partial, self.n_rows_flushed, self.out_dir)}"
            ) from None
        shutil.rmtree(self.partial, ignore_errors=True)
        _remove_if_empty(self.partial.parent)
        return path


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only succeeds when empty: another run's partial keeps it
    except OSError:
        pass


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read_segments(partial: Path) -> pa.Table:
    tables = []
    for seg in sorted(partial.glob("seg-*.parquet")):
        try:
            tables.append(pq.read_table(seg, schema=SCHEMA))
        except (OSError, pa.ArrowInvalid):
            continue  # only a segment torn mid-rename could fail; later rows are lost with it
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def find_partials(out_dir: Path) -> list[Path]:
    """Partial folders left by runs that did not finish (killed, or still running)."""
    root = Path(out_dir) / PARTIAL_DIR
    return sorted(p for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []


def recover(partial: Path, *, force: bool = False) -> Path | None:
    """Publish what a killed run recorded, with status `killed`. Skips a run still alive
    (its pid and host are in meta.json) unless force is set; returns None then."""
    try:
        meta = json.loads((partial / "meta.json").read_text())
        meta["run_id"], meta["schema_version"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{partial / 'meta.json'}: damaged, so this partial run cannot be recovered; "
            f"its rows are in {partial}/seg-*.parquet; move the folder away"
        ) from None
    # The metadata is data, never a path: the run id is this folder's own name, and a
    # meta.json naming another (or an unsafe one), or a folder leading away, is left alone.
    out_dir = partial.parent.parent
    run_id = partial.name
    if not files.is_inside(partial, out_dir):
        raise InputError(
            f"{partial}: refused to recover: it leads to {partial.resolve()}, outside {out_dir} "
            f"(a symlink); left where it is"
        )
    if meta["run_id"] != run_id or files.name_problem(run_id):
        raise InputError(
            f"{partial}: refused to recover: its meta.json names run id {meta['run_id']!r}; a result is "
            f"published only under its folder's own safe name (metadata never decides where); left where it is"
        )
    same_host = meta.get("pid_host") == process.host_name()
    if (
        not force
        and same_host
        and process.pid_alive(meta.get("pid"))
        and meta.get("pid") != os.getpid()
    ):
        return None
    table = _read_segments(partial)
    last = table.column("iter")[-1].as_py() if table.num_rows else None
    reason = (
        f"the process ended without finishing (SIGKILL, crash or power loss); recovered "
        f"{table.num_rows} rows, last iteration {last}; up to {FLUSH_EVERY_ITERS} iterations "
        f"or {FLUSH_EVERY_S:g} s after it were lost"
    )
    meta.update(status="killed", status_reason=reason, recovered_at=utc_now())
    try:
        path = _publish(out_dir, run_id, table, meta)
    except OSError as exc:
        fix = "free space and retry" if files.no_space(exc) else "retry once that is fixed"
        raise InputError(
            f"{out_dir / run_id}.parquet: could not write the recovered result ({files.write_cause(exc)}); "
            f"the rows stay in {partial}; {fix}"
        ) from None
    shutil.rmtree(partial, ignore_errors=True)
    _remove_if_empty(partial.parent)
    return path


def recover_killed(out_dir: Path) -> tuple[list[Path], list[str]]:
    """The sweep before new runs: publish every killed run under `out_dir` (runs still alive
    are left alone). Returns (results written, one line per leftover that could not be
    recovered: damaged, or refused as leading elsewhere): such a leftover must not block new runs."""
    recovered, damaged = [], []
    for partial in find_partials(out_dir):
        try:
            path = recover(partial)
        except InputError as exc:
            damaged.append(str(exc))
            continue
        if path:
            recovered.append(path)
    return recovered, damaged


@dataclass
class Run:
    """One result file as read: its metadata parsed once (`info`) and its rows."""

    path: Path
    info: RunMeta
    rows: pandas.DataFrame  # noqa: F821  (read_run_columns: a pyarrow Table of a few columns)

    @property
    def meta(self) -> dict:
        """The metadata exactly as on disk, for keys `info` does not type."""
        return self.info.raw

    @property
    def run_id(self) -> str:
        return self.info.run_id


# A result's footer holds its schema and row-group statistics (tens of KiB) and its metadata a
# few KiB of JSON. Files from strangers may hold anything: more than these is refused before
# it is parsed, so a planted file cannot make a reader allocate or recurse without bound.
MAX_FOOTER_BYTES = 16 * 2**20
MAX_META_BYTES = 2**20


def read_meta(path: Path) -> dict:
    """The `nanobench` metadata of a result file, checked. Raises InputError naming the file."""
    path = Path(path)
    check_ends(path)
    try:
        kv = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid) as exc:
        raise _unreadable(path, exc) from None
    return checked_meta(path, kv)


def check_ends(path: Path) -> os.stat_result:
    """The checks before parquet parses anything: the path is a non-empty file whose first
    and last bytes are parquet's and whose footer is not absurdly long. Its stat, or an
    InputError naming the file."""
    try:
        st = os.stat(path)  # one stat for the three questions: a board asks them 10,000 times
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder; give result files or let compare search it")
    if st.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not a nanobench result; delete it")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if head != b"PAR1":
        raise InputError(
            f"{path}: not a parquet file (a CSV or other file renamed?); not a nanobench result"
        )
    if len(tail) < 8 or tail[4:] != b"PAR1":
        raise InputError(
            f"{path}: truncated parquet file (no footer); if a run was killed, "
            f"`nanobench recover` rebuilds results from its .partial folder"
        )
    footer = int.from_bytes(tail[:4], "little")
    if footer > MAX_FOOTER_BYTES:
        raise InputError(
            f"{path}: parquet footer of {footer} bytes (a result's is tens of KiB, at most "
            f"{MAX_FOOTER_BYTES} read); refused as malformed"
        )
    return st


def _unreadable(path: Path, exc: Exception) -> InputError:
    return InputError(f"{path}: unreadable parquet file ({exc}); not a nanobench result")


def checked_meta(path: Path, kv: dict) -> dict:
    """The `nanobench` metadata in a file's key-value metadata `kv` (bytes to bytes), checked:
    present, of a sane size, a JSON object, a run's, of the schema version this reads."""
    if META_KEY not in kv:
        raise InputError(
            f"{path}: a parquet file without nanobench metadata; not a nanobench result"
        )
    if len(kv[META_KEY]) > MAX_META_BYTES:
        raise InputError(
            f"{path}: nanobench metadata of {len(kv[META_KEY])} bytes (at most {MAX_META_BYTES}); "
            f"refused as malformed"
        )
    try:
        meta = json.loads(kv[META_KEY])
    except (ValueError, RecursionError):
        raise InputError(
            f"{path}: nanobench metadata is not valid JSON; the file is damaged"
        ) from None
    if not isinstance(meta, dict):
        raise InputError(
            f"{path}: nanobench metadata is a JSON {type(meta).__name__}, not an object; the file is damaged"
        )
    if meta.get("kind", "run") != "run":
        raise InputError(
            f"{path}: a nanobench {meta['kind']!s:.40} record, not a run result; leave it out of compare/report"
        )
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise InputError(
                f"{path}: schema_version {version} is newer than this nanobench reads "
                f"({SCHEMA_VERSION}); upgrade nanobench to read it (a checkout: git pull, then "
                f"make install; an installed package: pip install -U nanobench)"
            )
        raise InputError(
            f"{path}: schema_version {version!r:.40} is not one this nanobench reads ({SCHEMA_VERSION}); "
            f"re-run the scenario with this version"
        )
    return meta


def parse_meta(meta: dict, path: Path) -> RunMeta:
    """RunMeta.parse, with a value of the wrong type anywhere (a list where a number belongs,
    an object where a string does) as one line naming the file, never a traceback."""
    try:
        return RunMeta.parse(meta, path)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise InputError(
            f"{path}: malformed nanobench metadata ({type(exc).__name__}: {str(exc)[:120]}); refused"
        ) from None


def read_run(path: Path) -> Run:
    """Load one result file: metadata (checked, then parsed into RunMeta) and rows (a pandas DataFrame)."""
    path = Path(path)
    meta = read_meta(path)
    try:
        rows = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: rows unreadable ({exc}); the file is damaged") from None
    missing_columns(path, rows.columns)
    return Run(path=path, info=parse_meta(meta, path), rows=rows)


def read_checked(path: Path) -> tuple[dict, pq.ParquetFile, pa.Schema]:
    """A result file's metadata, checked as `read_meta` does (its first and last bytes before
    parquet parses anything), and the file opened with its footer parsed once, with its Arrow
    schema (each ParquetFile.schema_arrow converts it anew): for a reader that goes on to read
    columns."""
    path = Path(path)
    check_ends(path)
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowInvalid) as exc:
        raise _unreadable(path, exc) from None
    return checked_meta(path, schema.metadata or {}), parquet, schema


RUN_COLUMNS = ("iter", "loss", "step_time_s", "eval_val_loss")  # what every result has


def missing_columns(path: Path, names) -> None:
    """InputError when a file lacks a column every run result has."""
    missing = [c for c in RUN_COLUMNS if c not in names]
    if missing:
        raise InputError(
            f"{path}: missing columns {missing}; not a nanobench result of schema {SCHEMA_VERSION}"
        )


def read_run_columns(path: Path, columns: tuple[str, ...]) -> Run:
    """One result file read for a summary: its first and last bytes and metadata checked as
    `read_run` does, then only `columns` (those the file has) read, as a pyarrow Table in
    `Run.rows` (analyze/runs reads either form): the other columns' bytes are never read.
    A few times faster than read_run where a summary needs a dozen columns and no pandas."""
    meta, parquet, schema = read_checked(path)
    path = Path(path)
    try:
        have = set(schema.names)
        rows = parquet.read(columns=[c for c in columns if c in have])
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: rows unreadable ({exc}); the file is damaged") from None
    missing_columns(path, have)
    return Run(path=path, info=parse_meta(meta, path), rows=rows)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files, folders (searched recursively for *.parquet) and globs -> result paths.

    A glob or folder that matches nothing is an error naming it; partial folders of
    running or killed runs are skipped (see `recover`).
    """
    return [Path(path) for path, _ in expand_paths_stat(paths)]


def expand_paths_stat(paths: list[str]) -> list[tuple[str, os.stat_result | None]]:
    """expand_paths (as strings: ten thousand Path objects cost more than the stats), each
    with its stat (None where it vanished or cannot be stat'ed):
    the one stat that tells a file reached twice (a symlink, two arguments) from two files is
    also the index's key (store/index.py), so a board stats each file once."""
    out: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            # Folders hold run results; parity records (*.parity.parquet) are another kind.
            # os.walk (scandir) rather than Path.rglob: a tenth of the time over 10,000 files;
            # like rglob it does not descend into symlinked folders.
            found = []
            for folder, subfolders, names in os.walk(p):
                if PARTIAL_DIR in Path(folder).parts:
                    subfolders.clear()
                    continue
                found += [
                    os.path.join(folder, n)
                    for n in names
                    if n.endswith(".parquet") and not n.endswith(".parity.parquet")
                ]
            if not found:
                raise InputError(f"{given}: folder holds no .parquet result files")
            found.sort()  # strings: Path's own comparison costs 10x more, per pair
            out.extend(found)
        elif any(ch in given for ch in "*?["):
            found = sorted(Path(q) for q in globlib.glob(given, recursive=True))
            if not found:
                raise InputError(f"{given}: no file matches this pattern")
            out.extend(map(str, found))
        else:
            if not p.exists():
                raise InputError(f"{given}: no such file")
            out.append(str(p))
    seen, unique = set(), []
    for text in out:
        try:
            st = os.stat(text)
            key = (st.st_dev, st.st_ino)
        except OSError:
            st, key = None, Path(text).resolve()
        if key not in seen:
            seen.add(key)
            unique.append((text, st))
    return unique


def file_key(path: Path):
    """What makes two paths one file: device and inode (one stat; resolving every symlink
    and `..` costs a syscall per path component, many seconds over ten thousand files)."""
    try:
        st = os.stat(path)
    except OSError:
        return path.resolve()
    return (st.st_dev, st.st_ino)
