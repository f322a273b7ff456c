"""Many result files read at once, for summaries over thousands of runs (the board).

`results.read_run_columns` reads one file through pyarrow in about 1.5 ms for 2,000 rows, and
most of that is pyarrow's per-file Python work (opening the file, converting its schema,
resolving the columns), not decoding. Here DuckDB reads the same columns of hundreds of files
in one query, on its own threads and outside the GIL, about three times faster per file.

Each file comes out as `read_run_columns` would give it, because nothing is taken on trust:

1. Its first and last bytes are checked first, by the same `results.check_ends`.
2. Its `nanobench` metadata and its Arrow schema come from its footer's key-value pairs
   (DuckDB's parquet_kv_metadata): the metadata checked by the same `results.checked_meta`,
   the schema decoded from `ARROW:schema`, which is where pyarrow itself takes the column
   types from. A file without one is read on its own.
3. Files are read in one query only when their schemas are identical, with the columns wanted
   of plain numeric or boolean types (no conversion can differ), and the table DuckDB returns
   must have exactly those names and types.
4. Each file's rows are cut where DuckDB's `file_row_number` restarts at 0, and the file name
   DuckDB gives at each cut must be the file expected there, in order; a gap in the numbers,
   or a file of no rows, fails this.

Every other case is read by `read_run_columns`, so its refusal says what it says there: a file
whose path DuckDB would take for a glob or a URL, a file DuckDB reports no metadata for under
its name, a group whose check fails, every file of a query DuckDB refuses (one damaged
footer), and a file whose stat changed while it was read (a run published over it), read
again on its own.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from nanobench.errors import InputError
from nanobench.store import results

# Below this many files, a query's own cost (a few ms) outweighs what it saves.
FEW_FILES = 8
# A query reads at most this many files, or this many bytes of them: the batch's columns are
# held in memory at once (2,000 rows x 14 columns is ~220 KiB a file).
BATCH_FILES = 500
BATCH_BYTES = 256 * 2**20
_PLAIN = {
    pa.float64(),
    pa.float32(),
    pa.int64(),
    pa.int32(),
    pa.int16(),
    pa.int8(),
    pa.uint64(),
    pa.uint32(),
    pa.uint16(),
    pa.uint8(),
    pa.bool_(),
}
_ARROW_SCHEMA = b"ARROW:schema"


def read_runs_columns(
    paths: list[Path], columns: tuple[str, ...]
) -> Iterator[tuple[int, results.Run | InputError]]:
    """(n, Run or the InputError refusing it) for each paths[n], as `read_run_columns(paths[n],
    columns)` gives it, in no set order, one batch at a time (a batch's rows are freed once
    its runs are dropped)."""
    if len(paths) < FEW_FILES:
        for n, path in enumerate(paths):
            yield n, _one(path, columns)
        return
    import duckdb  # imported here: only the board reads in bulk, and it takes ~0.2 s

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")  # the default; the cuts rely on it
    batch, size = [], 0
    for n, path in enumerate(paths):
        path = Path(path)
        try:
            st = results.check_ends(path)
        except InputError as exc:
            yield n, exc
            continue
        if not _plain_path(str(path)):
            yield n, _one(path, columns)
            continue
        batch.append((n, path, st))
        size += st.st_size
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield from _read_batch(con, batch, columns)
            batch, size = [], 0
    if batch:
        yield from _read_batch(con, batch, columns)
    con.close()


def _one(path: Path, columns: tuple[str, ...]) -> results.Run | InputError:
    try:
        return results.read_run_columns(Path(path), columns)
    except InputError as exc:
        return exc


def _plain_path(text: str) -> bool:
    """Whether DuckDB takes the path for the file it names: not a glob, a URL or ~home."""
    return not (any(ch in text for ch in "*?[]{}") or "://" in text or text.startswith("~"))


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _read_batch(con, batch: list[tuple[int, Path, os.stat_result]], columns: tuple[str, ...]):
    import duckdb

    try:
        kv_rows = con.sql(
            "SELECT file_name, key, value FROM parquet_kv_metadata("
            + _sql_list([p for _, p, _ in batch])
            + ") WHERE key IN ('nanobench', 'ARROW:schema')"
        ).fetchall()
    except duckdb.Error:  # a footer DuckDB cannot read: each file on its own says which
        for n, path, _ in batch:
            yield n, _one(path, columns)
        return
    kv_of: dict[str, dict[bytes, bytes]] = {}
    for name, key, value in kv_rows:
        kv_of.setdefault(name, {})[bytes(key)] = bytes(value)
    groups: dict[tuple, list] = {}
    for n, path, st in batch:
        kv = kv_of.get(str(path))
        if kv is None:  # neither key, or DuckDB named the file otherwise: alone, it says which
            yield n, _one(path, columns)
            continue
        try:
            meta = results.checked_meta(path, kv)
        except InputError as exc:
            yield n, exc
            continue
        schema = _arrow_schema(kv)
        if schema is None or len(set(schema.names)) != len(schema.names):
            yield n, _one(path, columns)
            continue
        try:
            results.missing_columns(path, schema.names)
        except InputError as exc:
            yield n, exc
            continue
        wanted = [c for c in columns if c in schema.names]
        if any(schema.field(c).type not in _PLAIN for c in wanted):
            yield n, _one(path, columns)
            continue
        key = tuple((f.name, str(f.type)) for f in schema)
        groups.setdefault(key, []).append((n, path, st, meta, schema, wanted))
    for members in groups.values():
        yield from _read_group(con, members, columns)


def _arrow_schema(kv: dict[bytes, bytes]) -> pa.Schema | None:
    """The Arrow schema pyarrow stored in the file (what pq.ParquetFile.schema_arrow restores),
    or None where there is none or it does not decode."""
    stored = kv.get(_ARROW_SCHEMA)
    if stored is None:
        return None
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
    except (ValueError, pa.ArrowInvalid):
        return None


def _read_group(con, members: list, columns: tuple[str, ...]):
    """The runs of files with one schema, read in one query and cut per file (checks 3 and 4
    of the module's docstring); any check failing, each file read on its own."""
    _, _, _, _, schema, wanted = members[0]
    paths = [str(m[1]) for m in members]
    table = _query(con, paths, wanted)
    cuts = _cuts(table, paths, schema, wanted) if table is not None else None
    if cuts is None:
        for n, path, *_ in members:
            yield n, _one(path, columns)
        return
    rows = table.drop_columns([table.column_names[0], table.column_names[1]])
    for (n, path, st, meta, _, _), (start, stop) in zip(members, cuts, strict=True):
        if _stat_key(path) != (st.st_size, st.st_mtime_ns, st.st_ino):
            yield n, _one(path, columns)  # replaced since its metadata was read
            continue
        try:
            info = results.parse_meta(meta, path)
        except InputError as exc:
            yield n, exc
            continue
        yield n, results.Run(path=path, info=info, rows=rows.slice(start, stop - start))


def _query(con, paths: list[str], wanted: list[str]) -> pa.Table | None:
    """Each row's number within its file, the file's name on its first row, and the wanted
    columns, of all the files in order, one chunk per column (analyze/runs reads it as numpy);
    None where DuckDB refuses the query."""
    import duckdb

    select = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted)
    try:
        table = con.sql(
            "SELECT file_row_number, CASE WHEN file_row_number = 0 THEN filename END, "
            f"{select} FROM read_parquet({_sql_list(paths)}, file_row_number = true)"
        ).to_arrow_table(batch_size=1 << 30)  # one chunk: no copy to join chunks afterwards
    except duckdb.Error:
        return None
    return table.combine_chunks() if any(c.num_chunks > 1 for c in table.columns) else table


def _cuts(table: pa.Table, paths: list[str], schema: pa.Schema, wanted: list[str]):
    """[(start, stop)] of each file's rows in `table`, or None where the table is not
    exactly the files' rows, in order, with their types."""
    if table.column_names[2:] != wanted or any(
        table.schema.field(c).type != schema.field(c).type for c in wanted
    ):
        return None
    if table.num_rows == 0 or table.column(0).null_count or table.schema.types[0] != pa.int64():
        return None
    arr = table.column(0).chunk(0)  # its buffer as numpy (to_numpy would import pandas)
    number = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr), offset=arr.offset * 8)
    starts = np.flatnonzero(number == 0)
    if len(starts) != len(paths) or starts[0] != 0:
        return None
    # each file's numbers run 0, 1, 2, ... without a gap
    if not np.all((np.diff(number) == 1) | (number[1:] == 0)):
        return None
    names = table.column(1).chunk(0)
    if [names[int(i)].as_py() for i in starts] != paths:
        return None
    stops = [*starts[1:].tolist(), table.num_rows]
    return list(zip(starts.tolist(), stops))


def _stat_key(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)
