"""The bulk reader (store/bulk.py): many result files read through DuckDB must give, file by
file, what store/results.read_run_columns gives reading each through pyarrow (the independent
truth here: another engine, another code path), for every kind of file a board meets: runs of
several lengths and schemas, files no DuckDB query may take (a glob character in the name, no
Arrow schema), files refused for what they are, and a file replaced while it is read."""

import math
import os
import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanobench.analyze import board
from nanobench.errors import InputError
from nanobench.store import bulk, results

COLUMNS = board.READ_COLUMNS


def per_file(path):
    try:
        return results.read_run_columns(path, COLUMNS)
    except InputError as exc:
        return exc


def read_in_bulk(paths):
    out = [None] * len(paths)
    for n, run in bulk.read_runs_columns(paths, COLUMNS):
        assert out[n] is None, f"{paths[n]} given twice"
        out[n] = run
    assert all(r is not None for r in out)
    return out


def assert_same(got, want):
    """Two reads of one file agree: the same refusal, or the same metadata and the same
    columns (names, types, values, nulls and NaNs where they are)."""
    if isinstance(want, InputError):
        assert isinstance(got, InputError) and str(got) == str(want)
        return
    assert not isinstance(got, InputError), str(got)
    assert got.path == want.path and got.info.raw == want.info.raw
    assert got.rows.schema.remove_metadata() == want.rows.schema.remove_metadata()
    for name in want.rows.column_names:
        assert got.rows.column(name).to_pylist() == pytest.approx(
            want.rows.column(name).to_pylist(), nan_ok=True
        ), name
    # and the summary made from each (analyze/runs reads a slice through its buffers' offsets)
    a, b = board._summary_of_run(got), board._summary_of_run(want)
    assert a.keys() == b.keys()
    for key in a:
        same = a[key] == b[key] or (
            isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])
        )
        assert same, (key, a[key], b[key])


def rewrite(src, dst, edit):
    """dst: src's table passed through edit (another column order, fewer columns, float32),
    with src's metadata, written by pyarrow."""
    table = pq.read_table(src)
    pq.write_table(edit(table).replace_schema_metadata(table.schema.metadata), dst)
    return dst


@pytest.fixture
def varied(tmp_path, handmade):
    """Runs a board meets, all readable: one schema in most, and the odd ones."""
    runs = tmp_path / "runs"
    for k in range(9):

        def longer(rows, k=k):  # runs of different lengths; a NaN loss in one
            for _ in range(k):
                rows.append(dict(rows[-1], iter=rows[-1]["iter"] + 1))
            if k == 3:
                rows[4]["loss"] = float("nan")

        handmade(runs, f"run{k}", seed=k, step_s=0.1 + 0.01 * k, rows_hook=longer)
    src = runs / "run0.parquet"
    rewrite(src, runs / "reordered.parquet", lambda t: t.select(list(reversed(t.column_names))))
    rewrite(
        src,
        runs / "narrow.parquet",  # no energy, no mfu columns, and loss as float32
        lambda t: t.drop_columns(["energy_j", "mfu", "mfu_measured"]).set_column(
            t.schema.get_field_index("loss"), "loss", t.column("loss").cast(pa.float32())
        ),
    )
    # the same column names as the runs, loss as float32: a schema of its own, not their query's
    rewrite(
        src,
        runs / "float32.parquet",
        lambda t: t.set_column(
            t.schema.get_field_index("loss"), "loss", t.column("loss").cast(pa.float32())
        ),
    )
    # a type DuckDB reads as another (float16 comes back float32): read alone
    rewrite(
        src,
        runs / "half.parquet",
        lambda t: t.set_column(
            t.schema.get_field_index("mfu"), "mfu", t.column("mfu").cast(pa.float16())
        ),
    )
    # DuckDB would take this name for a pattern, and read run0.parquet in its place
    shutil.copy(runs / "run5.parquet", runs / "run[0].parquet")
    shutil.copy(src, runs / "it's.parquet")  # a quote in the SQL list
    # written by DuckDB: no ARROW:schema among its key-value pairs
    meta = pq.read_schema(src).metadata[b"nanobench"].decode()
    duckdb.sql(
        f"COPY (SELECT * FROM read_parquet('{src}')) TO '{runs / 'duck.parquet'}' "
        f"(FORMAT parquet, KV_METADATA {{nanobench: '{meta.replace(chr(39), chr(39) * 2)}'}})"
    )
    return sorted(runs.glob("*.parquet"))


def test_each_file_as_read_run_columns_reads_it(varied):
    got = read_in_bulk(varied)
    assert not [r for r in got if isinstance(r, InputError)]
    for path, run in zip(varied, got):
        assert_same(run, per_file(path))
    # and the one-schema runs did come from one query: their rows are slices of its table
    offsets = [
        run.rows.column("iter").chunk(0).offset
        for run in got
        if run.path.stem in {f"run{k}" for k in range(9)}
    ]
    assert len(offsets) == 9 and sum(o > 0 for o in offsets) >= 8


def _edit_meta(src, dst, edit):
    """dst: src with its nanobench metadata (JSON text) passed through edit."""
    table = pq.read_table(src)
    meta = table.schema.metadata[b"nanobench"]
    edited = edit(meta)
    assert edited != meta
    pq.write_table(table.replace_schema_metadata({b"nanobench": edited}), dst)


def test_refused_files_say_what_they_say_read_alone(varied, handmade):
    """Refused files among readable ones, in one batch: each refusal is the one-file reader's,
    word for word, and the others are still read right."""
    runs = varied[0].parent
    src = runs / "run0.parquet"  # a run of the main schema: these go through DuckDB's metadata
    (runs / "csv.parquet").write_text("iter,loss\n0,3.0\n")
    pq.write_table(pa.table({"x": [1, 2]}), runs / "foreign.parquet")
    pq.write_table(pa.table({"x": [1, 2]}), runs / "bare.parquet", store_schema=False)  # no kv
    _edit_meta(
        src,
        runs / "future.parquet",
        lambda m: m.replace(b'"schema_version": 1', b'"schema_version": 99'),
    )
    # written as the runs are (one query with them), with metadata RunMeta cannot parse
    handmade(runs, "malformed", env={"gpu_state_at_start": "not an object"})
    rewrite(src, runs / "lossless.parquet", lambda t: t.drop_columns(["loss"]))
    data = src.read_bytes()
    (runs / "truncated.parquet").write_bytes(data[: len(data) // 2])
    paths = sorted(runs.glob("*.parquet"))
    got = read_in_bulk(paths)
    refused = {p.name for p, r in zip(paths, got) if isinstance(r, InputError)}
    assert refused == {
        "bare.parquet",
        "csv.parquet",
        "foreign.parquet",
        "future.parquet",
        "lossless.parquet",
        "malformed.parquet",
        "truncated.parquet",
    }
    for path, run in zip(paths, got):
        assert_same(run, per_file(path))
    assert "gpu_state_at_start" in str(got[paths.index(runs / "malformed.parquet")])


def _damage(src, dst, start, length):
    data = bytearray(src.read_bytes())
    data[start : start + length] = b"\xff" * length
    dst.write_bytes(bytes(data))


def test_damaged_files_fail_their_query_and_are_read_alone(varied):
    """A footer DuckDB cannot parse fails its batch's metadata query, and rows it cannot
    decode fail their group's query: the files are then read one by one, each refused or
    read as the one-file reader does."""
    runs = varied[0].parent
    src = runs / "run1.parquet"  # of the main schema: its damage fails the main query
    footer = int.from_bytes(src.read_bytes()[-8:-4], "little")
    size = src.stat().st_size
    _damage(src, runs / "footer.parquet", size - 8 - footer, footer // 2)  # magic intact
    paths = sorted(runs.glob("*.parquet"))
    for path, run in zip(paths, read_in_bulk(paths)):
        assert_same(run, per_file(path))
    (runs / "footer.parquet").unlink()
    _damage(src, runs / "rows.parquet", 4, 64)  # the first page header, footer intact
    paths = sorted(runs.glob("*.parquet"))
    got = read_in_bulk(paths)
    assert isinstance(got[paths.index(runs / "rows.parquet")], InputError)
    for path, run in zip(paths, got):
        assert_same(run, per_file(path))


def first_rows(runs) -> list[int]:
    """Which runs start their query's table (a slice at offset 0): one per query."""
    return [k for k, run in enumerate(runs) if run.rows.column("iter").chunk(0).offset == 0]


def test_few_files_are_read_alone(tmp_path, handmade):
    runs = tmp_path / "runs"
    for k in range(bulk.FEW_FILES - 2):
        handmade(runs, f"run{k}", seed=k)
    (runs / "z-csv.parquet").write_text("iter,loss\n")
    paths = sorted(runs.glob("*.parquet"))
    got = read_in_bulk(paths)
    for path, run in zip(paths, got):
        assert_same(run, per_file(path))
    assert first_rows(got[:-1]) == list(range(bulk.FEW_FILES - 2))  # no query: none a slice


def test_batches_close_at_their_file_count_or_byte_size(tmp_path, handmade, monkeypatch):
    runs = tmp_path / "runs"
    for k in range(9):
        handmade(runs, f"run{k}", seed=k)
    paths = sorted(runs.glob("*.parquet"))
    monkeypatch.setattr(bulk, "BATCH_FILES", 3)
    got = read_in_bulk(paths)
    assert first_rows(got) == [0, 3, 6]
    for path, run in zip(paths, got):
        assert_same(run, per_file(path))
    monkeypatch.setattr(bulk, "BATCH_FILES", 1000)
    monkeypatch.setattr(bulk, "BATCH_BYTES", sum(p.stat().st_size for p in paths[:3]))
    assert first_rows(read_in_bulk(paths))[:2] == [0, 3]  # closed when the third reached it


def test_a_file_replaced_while_read_is_read_again(tmp_path, handmade):
    """A run published over a file after its metadata was read (between the two queries of
    its batch) is read again whole: its new metadata with its new rows, never a mix."""
    runs = tmp_path / "runs"
    for k in range(9):
        handmade(runs, f"run{k}", seed=k)
    paths = sorted(runs.glob("*.parquet"))
    later = paths[5]
    handmade(tmp_path / "new", "replacement", seed=42, step_s=0.3)
    reader = bulk.read_runs_columns(paths, COLUMNS)
    got = dict([next(reader)])  # the batch's metadata and rows are read by now
    os.replace(tmp_path / "new" / "replacement.parquet", later)
    got.update(reader)
    assert sorted(got) == list(range(9))  # and every other file still read
    run = got[paths.index(later)]
    assert run.run_id == "replacement"
    assert run.rows.column("step_time_s").to_pylist()[0] == pytest.approx(0.3)


def table_of(numbers, names, values=None):
    values = values if values is not None else [float(k) for k in range(len(numbers))]
    return pa.table(
        {
            "file_row_number": pa.array(numbers, pa.int64()),
            "first": pa.array(names, pa.string()),
            "loss": pa.array(values, pa.float64()),
        }
    )


SCHEMA = pa.schema([("loss", pa.float64())])


@pytest.mark.parametrize(
    "numbers, names, paths, cuts",
    [
        # two files of 3 and 2 rows, in order: cut at row 3 (by hand)
        ([0, 1, 2, 0, 1], ["a", None, None, "b", None], ["a", "b"], [(0, 3), (3, 5)]),
        ([0, 1, 2, 0, 1], ["b", None, None, "a", None], ["a", "b"], None),  # another order
        ([0, 1, 3, 0, 1], ["a", None, None, "b", None], ["a", "b"], None),  # a row missing
        ([0, 1, 2, 3, 4], ["a", None, None, None, None], ["a", "b"], None),  # b had no rows
        ([1, 2, 0, 1, 2], [None, None, "a", None, None], ["a"], None),  # not from the start
        ([], [], ["a"], None),
    ],
)
def test_cuts_of_a_bulk_table(numbers, names, paths, cuts):
    assert bulk._cuts(table_of(numbers, names), paths, SCHEMA, ["loss"]) == cuts


def test_cuts_refuse_another_type_or_column():
    table = table_of([0, 1], ["a", None])
    assert bulk._cuts(table, ["a"], SCHEMA, ["loss"]) == [(0, 2)]
    numbers = table.set_column(0, "file_row_number", pa.array([0, 1], pa.int32()))
    assert bulk._cuts(numbers, ["a"], SCHEMA, ["loss"]) is None
    numbers = table.set_column(0, "file_row_number", pa.array([0, None], pa.int64()))
    assert bulk._cuts(numbers, ["a"], SCHEMA, ["loss"]) is None
    assert bulk._cuts(table, ["a"], pa.schema([("loss", pa.float32())]), ["loss"]) is None
    assert bulk._cuts(table, ["a"], SCHEMA, ["tokens"]) is None


def test_cuts_of_a_table_sliced_from_a_longer_one():
    """Row numbers read from the slice's own place in its buffer: the rows 2-6 of 0 1 | 0 1 2 |
    0 1 2 are 0 1 2 | 0 1 (by hand)."""
    whole = table_of([0, 1, 0, 1, 2, 0, 1, 2], ["z", None, "a", None, None, "b", None, None])
    part = whole.slice(2, 5)
    assert bulk._cuts(part, ["a", "b"], SCHEMA, ["loss"]) == [(0, 3), (3, 5)]
    assert bulk._cuts(whole.slice(2, 3), ["a"], SCHEMA, ["loss"]) == [(0, 3)]  # not past its end


def test_sliced_bitmaps_read_from_their_offset():
    """A bool or nullable column sliced deep into a shared buffer (every run of a bulk read
    but the first) reads its own bits, at every offset within a byte."""
    from nanobench.analyze.runs import ArrowColumns

    rng = np.random.default_rng(0)
    flags = [bool(b) if rng.random() > 0.2 else None for b in rng.integers(0, 2, 400)]
    losses = [float(x) if f is not None else None for x, f in zip(rng.random(400), flags)]
    whole = pa.table({"warmup": pa.array(flags), "loss": pa.array(losses)})
    for start in (0, 1, 7, 8, 9, 203):
        part = ArrowColumns(whole.slice(start, 61))
        want = flags[start : start + 61]
        assert part.flags("warmup").tolist() == [bool(f) for f in want]
        got = part.floats("loss")
        assert [math.isnan(x) for x in got] == [f is None for f in want]


@pytest.mark.parametrize(
    "path, plain",
    [
        ("runs/a.parquet", True),
        ("runs/X-1.parquet", True),
        ("runs/it's.parquet", True),  # quoted in the SQL list, not a pattern
        ("runs/run[0].parquet", False),  # DuckDB would read runs/run0.parquet
        ("runs/*.parquet", False),
        ("runs/a?.parquet", False),
        ("runs/{a,b}.parquet", False),
        ("s3://bucket/a.parquet", False),
        ("~/runs/a.parquet", False),
    ],
)
def test_paths_duckdb_would_read_as_something_else_are_read_alone(path, plain):
    assert bulk._plain_path(path) is plain
