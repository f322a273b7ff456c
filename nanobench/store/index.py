"""The summary index: one row per result file, kept next to the results, so that a board over
thousands of runs reads only the files that are new or changed since the last one.

Where: `.nanobench-index` in each folder a board is given (for a file or a glob, in the
file's own folder). It is a parquet file (without the .parquet suffix, so that a search of
the folder for results never takes it for one) holding, per result file under that folder,
the file's path relative to the folder, its size, modification time (ns) and inode (the
*stat key*), and either the summary columns the caller's `summarize` made from it or the one
line saying why the file was refused (a refused file that has not changed is not read again).

A refresh lists the files and stats each (before reading it: a file replaced while it is read
has a new key and is read again next time); DuckDB joins that listing with the index on the
relative path and the stat key; the rows that match are used as they are, every other file
is read. Rows of files a listed folder no longer holds are dropped. The new index is written
through `files.write_atomic`: two boards at once each write a whole, valid index (the last
rename wins, and a row only the other one added is read again next time), and a run that
finishes during a board is seen whole or not at all, since results are published by rename.

An index is never trusted beyond its stat keys: one that cannot be read, of another format or
summary version, or lacking a column is rebuilt from the files. The inode in the key means an
index copied or synced from another machine with its folder matches nothing there: every file
is read once on the new machine (moving the folder on one file system keeps it valid).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nanobench import files
from nanobench.errors import InputError
from nanobench.store import results

INDEX_NAME = ".nanobench-index"
INDEX_FORMAT = 1
INDEX_KEY = b"nanobench_index"
STAT_COLUMNS = pa.schema(
    [
        ("path", pa.string()),  # relative to the index's folder, with '/' separators
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("ino", pa.uint64()),
        ("refused", pa.string()),  # why the file cannot be used; null for a usable one
    ]
)


@dataclass
class Refreshed:
    """The summaries of the files asked for (one row each, in the order listed), and what it took."""

    table: pa.Table  # the stat columns, the summary columns, and `file`: the path as listed
    n_files: int
    n_read: int  # files read this time (new, changed, or every one when an index was rebuilt)
    notes: list[str] = field(default_factory=list)  # an index rebuilt or left unwritten, and why


def _roots(paths: list[str]) -> list[tuple[Path, str, bool, os.stat_result | None]]:
    """(folder whose index holds it, result file, whether the folder was listed whole, its
    stat) for each file the paths name, a file reached twice (two arguments, or a symlink) listed
    once."""
    out, seen = [], set()
    for given in paths:
        folder = Path(given) if Path(given).is_dir() else None
        for path, st in results.expand_paths_stat([given]):  # each file once within one argument
            if len(paths) > 1:
                key = (st.st_dev, st.st_ino) if st else Path(path).resolve()
                if key in seen:
                    continue
                seen.add(key)
            out.append((folder or Path(path).parent, path, folder is not None, st))
    return out


def _relative(path: Path, root: Path) -> str:
    """The path below root with '/' (string work: pathlib's relative_to costs more than the
    stat, ten thousand times)."""
    text, base = str(path), str(root).rstrip(os.sep) + os.sep
    rel = text[len(base) :] if text.startswith(base) else text
    return rel.replace(os.sep, "/")


def _load_index(index: Path, schema: pa.Schema, version: str) -> tuple[pa.Table | None, str | None]:
    """The index at `index` if it can be trusted as a cache, else (None, why not)."""
    if not index.exists():
        return None, None
    try:
        table = pq.ParquetFile(index).read()  # not pq.read_table: it imports pandas (~1 s)
    except (OSError, pa.ArrowInvalid) as exc:
        return None, f"unreadable ({str(exc)[:80]})"
    try:
        stamp = json.loads((table.schema.metadata or {}).get(INDEX_KEY, b"{}"))
    except ValueError:
        stamp = {}
    if stamp != {"format": INDEX_FORMAT, "summary": version}:
        return None, f"written for another summary ({str(stamp)[:80]}; this one is {version})"
    wanted = _index_schema(schema)
    if not set(wanted.names) <= set(table.column_names):
        return None, "a column is missing"
    try:
        return table.select(wanted.names).cast(wanted), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        return None, f"a column has another type ({str(exc)[:80]})"


def _index_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(list(STAT_COLUMNS) + [f for f in schema if f.name not in STAT_COLUMNS.names])


def _empty(schema: pa.Schema) -> pa.Table:
    """A table of no rows (Schema.empty_table goes through pa.array, which imports pandas)."""
    return pa.Table.from_batches([], schema)


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type (the few an index holds)."""
    if pa.types.is_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        return f"STRUCT({', '.join(f'{f.name} {duckdb_type(f.type)}' for f in t)})"
    names = {
        pa.string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.uint64(): "UBIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }
    return names[t]


# Up to this many rows, to_arrow converts through DuckDB; more, through pyarrow.
FEW_ROWS = 200


def to_arrow(con, rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Python rows (dicts holding `schema`'s columns) as an Arrow table of that schema.

    pyarrow's own conversion (Table.from_pylist) imports pandas on its first call, a third of
    a second: where that would be most of the work (the few files new since the last board),
    DuckDB converts instead, scanning numpy object columns. It infers their types from every
    value, which over thousands of rows costs more than the import; there pyarrow converts.
    The two differ in one way: DuckDB makes a float NaN null (both mean "no value" to the
    board)."""
    if not rows:
        return _empty(schema)
    if len(rows) > FEW_ROWS:  # column by column: Table.from_pylist costs five times more
        arrays = [pa.array([r.get(f.name) for r in rows], f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)
    data = {}
    for name in schema.names:
        column = np.empty(len(rows), dtype=object)
        column[:] = [r.get(name) for r in rows]
        data[name] = column
    # every value sampled: a column empty in the rows sampled (no CUDA version on CPU runs)
    # would be taken for NULL
    con.execute(f"SET pandas_analyze_sample = {len(rows)}")
    con.register("_rows", data)
    try:
        casts = ", ".join(
            f'"_rows"."{f.name}"::{duckdb_type(f.type)} AS "{f.name}"' for f in schema
        )
        return con.sql(f"SELECT {casts} FROM _rows").to_arrow_table().cast(schema)
    finally:
        con.unregister("_rows")


def refresh(
    paths: list[str],
    summarize: Callable[[list[Path]], list],
    schema: pa.Schema,
    version: str,
    *,
    write: bool = True,
) -> Refreshed:
    """Summaries of every result file the paths name (files, folders searched recursively,
    globs), from each folder's index where a file is unchanged, else from `summarize(paths)`
    (for each path in order, a dict of `schema`'s columns, or the InputError that refuses it:
    the error's line becomes the row's `refused`). With `write`, each folder's index is
    rewritten when anything in it changed."""
    import duckdb  # imported here: only the board needs it, and it takes ~0.2 s

    full = _index_schema(schema)
    listing = _roots(paths)
    by_root: dict[Path, list[tuple[int, Path, bool, os.stat_result | None]]] = {}
    for n, (root, path, whole, st) in enumerate(listing):
        by_root.setdefault(root, []).append((n, path, whole, st))
    parts, notes, n_read = [], [], 0
    con = duckdb.connect()
    for root, entries in by_root.items():
        index_path = root / INDEX_NAME
        old, why = _load_index(index_path, schema, version)
        if why:
            notes.append(f"{index_path}: not trusted ({why}); rebuilt from the files")
        old = old if old is not None else _empty(full)
        rels = [_relative(p, root) for _, p, _, _ in entries]
        listed = {  # numpy columns: DuckDB scans them as they are (no pyarrow conversion)
            "path": np.array(rels, dtype=object),
            "size": np.array([st.st_size if st else -1 for *_, st in entries], np.int64),
            "mtime_ns": np.array([st.st_mtime_ns if st else -1 for *_, st in entries], np.int64),
            "ino": np.array([st.st_ino if st else 0 for *_, st in entries], np.uint64),
            "file": np.array([p for _, p, _, _ in entries], dtype=object),
            "n": np.array([n for n, *_ in entries], np.int64),
        }
        con.register("listed", listed)
        con.register("old_index", old)
        # rows still valid: the same relative path and the same stat key as the file has now
        kept = con.sql(
            f"SELECT {', '.join('old_index.' + c for c in full.names)} "
            "FROM old_index JOIN listed USING (path, size, mtime_ns, ino)"
        ).to_arrow_table()
        kept = kept.cast(full) if kept.num_rows else _empty(full)
        valid = set(kept.column("path").to_pylist())
        fresh, to_read = [], []
        for (_, path, _, st), rel in zip(entries, rels):
            if rel in valid:
                continue
            base = {"path": rel, "size": -1, "mtime_ns": -1, "ino": 0}
            if st is None:
                fresh.append(dict(base, refused=f"{path}: vanished while the board was listing it"))
                continue
            base.update(size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)
            to_read.append((path, base))
        n_read += len(to_read)
        summaries = summarize([Path(path) for path, _ in to_read]) if to_read else []
        for (_, base), summary in zip(to_read, summaries, strict=True):
            if isinstance(summary, InputError):
                fresh.append(dict(base, refused=str(summary)))
            else:
                fresh.append(dict(summary, **base, refused=None))
        new = to_arrow(con, fresh, full)
        merged = pa.concat_tables([kept, new]) if new.num_rows else kept
        con.register("merged", merged)
        stored = merged
        if not all(whole for _, _, whole, _ in entries):
            # a file or glob named part of the folder: its index keeps the other rows for later
            others = con.sql(
                "SELECT * FROM old_index WHERE path NOT IN (SELECT path FROM merged)"
            ).to_arrow_table()
            stored = pa.concat_tables([merged, others.cast(full)]) if others.num_rows else merged
        if write and (fresh or why or old.num_rows != stored.num_rows):
            note = _write(index_path, root, stored, version)
            if note:
                notes.append(note)
        parts.append(
            con.sql("SELECT merged.*, listed.file, listed.n FROM merged JOIN listed USING (path)")
            .to_arrow_table()
            .cast(full.append(pa.field("file", pa.string())).append(pa.field("n", pa.int64())))
        )
        for name in ("listed", "old_index", "merged"):
            con.unregister(name)
    con.close()
    table = pa.concat_tables(parts).sort_by("n").drop_columns(["n"])
    return Refreshed(table, len(listing), n_read, notes)


def _write(index_path: Path, root: Path, table: pa.Table, version: str) -> str | None:
    """Write the index atomically; a folder that cannot take it (read-only, full) gets a note."""
    table = table.sort_by("path").replace_schema_metadata(
        {INDEX_KEY: json.dumps({"format": INDEX_FORMAT, "summary": version}).encode()}
    )
    try:
        files.write_atomic(index_path, lambda f: pq.write_table(table, f), inside=root)
    except (OSError, InputError) as exc:
        cause = files.write_cause(exc) if isinstance(exc, OSError) else str(exc)
        return f"{index_path}: index not written ({cause}); the next board reads these files again"
    return None
