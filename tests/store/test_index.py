"""The summary index (store/index.py): a board reads only new or changed files, counted here
by the files the process opens (builtins.open, through which every result read goes), not by
the index's own counter; a damaged, foreign or copied index is rebuilt; two boards at once,
and a run published during a board, leave a valid index."""

import builtins
import os
import shutil
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nanobench.analyze import board
from nanobench.store import index

REPO = Path(__file__).resolve().parents[2]


def refresh(*paths, **kw):
    return index.refresh(
        [str(s) for s in paths], board.summarize, board.SUMMARY_SCHEMA, board.SUMMARY_VERSION, **kw
    )


@pytest.fixture
def opened(monkeypatch):
    """The result files (*.parquet) this process opens from now on."""
    seen = []
    real = builtins.open

    def counting(file, *args, **kwargs):
        if str(file).endswith(".parquet"):
            seen.append(Path(file).name)
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    return seen


@pytest.fixture
def folder(tmp_path, handmade):
    runs = tmp_path / "runs"
    for k in range(4):
        handmade(runs, f"run{k}", seed=k)
    return runs


def stored_paths(folder: Path) -> list[str]:
    return sorted(pq.ParquetFile(folder / index.INDEX_NAME).read().column("path").to_pylist())


def test_second_refresh_reads_nothing_then_only_what_changed(folder, handmade, opened):
    first = refresh(folder)
    assert sorted(opened) == [f"run{k}.parquet" for k in range(4)] and first.n_read == 4
    assert stored_paths(folder) == [f"run{k}.parquet" for k in range(4)]
    opened.clear()
    second = refresh(folder)
    assert opened == [] and second.n_read == 0
    assert second.table.column("run_id").to_pylist() == first.table.column("run_id").to_pylist()
    # a new run: only it is read
    handmade(folder, "run9", seed=9)
    refresh(folder)
    assert opened == ["run9.parquet"]
    # a run replaced by another file of the same name (a re-sync): only it is read
    opened.clear()
    handmade(folder / "other", "run1", seed=1, step_s=0.2)
    os.replace(folder / "other" / "run1.parquet", folder / "run1.parquet")
    shutil.rmtree(folder / "other")
    table = refresh(folder).table
    assert opened == ["run1.parquet"]
    tps = dict(zip(table.column("run_id").to_pylist(), table.column("tokens_per_s").to_pylist()))
    assert tps["run1"] == pytest.approx(768 / 0.2)  # the new content, not the indexed one
    # a removed run leaves the index
    (folder / "run2.parquet").unlink()
    refresh(folder)
    assert "run2.parquet" not in stored_paths(folder)


def test_a_refused_file_is_remembered_not_read_again(folder, opened):
    (folder / "bad.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    first = refresh(folder)
    refused = dict(
        zip(first.table.column("path").to_pylist(), first.table.column("refused").to_pylist())
    )
    assert "bad.parquet" in refused["bad.parquet"] and refused["run0.parquet"] is None
    opened.clear()
    refresh(folder)
    assert opened == []


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda p: p.write_bytes(b"garbage, not parquet"), "unreadable"),
        (lambda p: p.write_bytes(p.read_bytes()[:-20]), "unreadable"),  # cut short
    ],
)
def test_a_damaged_index_is_rebuilt(folder, opened, damage, why):
    refresh(folder)
    damage(folder / index.INDEX_NAME)
    opened.clear()
    result = refresh(folder)
    assert len(opened) == 4 and any(why in n and "rebuilt" in n for n in result.notes)
    assert stored_paths(folder) == [f"run{k}.parquet" for k in range(4)]


def test_an_index_of_another_summary_version_is_rebuilt(folder, opened):
    index.refresh([str(folder)], board.summarize, board.SUMMARY_SCHEMA, "board-0")
    opened.clear()
    result = refresh(folder)
    assert len(opened) == 4 and any("another summary" in n for n in result.notes)


def test_an_index_copied_with_its_folder_is_not_trusted(folder, opened, tmp_path):
    refresh(folder)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # copy2: sizes and modification times kept, inodes new
    opened.clear()
    refresh(copy)
    assert len(opened) == 4


def test_an_index_that_cannot_be_written_is_a_note(folder):
    (folder / index.INDEX_NAME).mkdir()  # the name taken by a folder: the rename fails
    result = refresh(folder)
    assert result.table.num_rows == 4 and any("index not written" in n for n in result.notes)


def test_two_boards_at_once_leave_a_valid_index(folder):
    out, errors = [], []

    def one():
        try:
            out.append(refresh(folder).table.num_rows)
        except Exception as exc:  # noqa: BLE001  (the test reports any failure)
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and out == [4, 4, 4]
    assert stored_paths(folder) == [f"run{k}.parquet" for k in range(4)]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_a_run_published_during_a_board(folder, handmade, opened):
    """A run that finishes while the board reads: this board may not see it, the index stays
    valid, and the next board reads that run alone."""
    published = []

    def summarize(paths):
        if not published:
            published.append(handmade(folder, "late", seed=7))
        return board.summarize(paths)

    first = index.refresh([str(folder)], summarize, board.SUMMARY_SCHEMA, board.SUMMARY_VERSION)
    assert first.table.num_rows == 4
    opened.clear()
    second = refresh(folder)
    assert [o for o in opened if o != "late.parquet"] == [] and second.table.num_rows == 5


def test_bench_runs_at_a_small_size_second_board_reads_one_file(tmp_path, opened):
    """bench/test_bench_board.py's measurement at CI size: 40 runs of 20 machines through the
    real writer; after one more run, the next board opens that file and no other."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import board_runs
    finally:
        sys.path.remove(str(REPO / "bench"))
    runs = tmp_path / "bench"
    board_runs.make_runs(runs, 40, 30)
    b, _ = board.board_files([str(runs)])
    assert sum(t.runs for t in b.tables[0].rows) + b.noisy_left_out == 40
    machines = {r.run_ids[0] for r in b.tables[0].rows}
    assert len(machines) == len(b.tables[0].rows)
    [new] = board_runs.make_runs(runs, 1, 30, start=40)
    opened.clear()
    b2, refreshed = board.board_files([str(runs)])
    assert opened == [new.name] and refreshed.n_read == 1


@pytest.mark.parametrize("copies", [1, index.FEW_ROWS + 1])
def test_rows_to_arrow_through_duckdb_and_pyarrow(copies):
    """Python rows as an Arrow table of the index's schema, through DuckDB (a few rows: no
    pandas import) and through pyarrow (many): the same values, written out by hand, nested
    lists and nulls included (a column null in its first rows and set later, as CUDA's
    version on a board of CPU runs first, GPU runs after, keeps its type)."""
    import duckdb
    import pyarrow as pa

    schema = pa.schema(
        [
            ("path", pa.string()),
            ("ino", pa.uint64()),
            ("cuda", pa.string()),
            ("ok", pa.bool_()),
            ("reasons", pa.list_(pa.string())),
            (
                "evaluations",
                pa.list_(pa.struct([("iter", pa.int64()), ("val_loss", pa.float64())])),
            ),
        ]
    )
    first = {
        "path": "a.parquet",
        "ino": 2**63 + 5,
        "cuda": None,
        "ok": True,
        "reasons": [],
        "evaluations": [{"iter": 0, "val_loss": 4.5}, {"iter": 250, "val_loss": None}],
    }
    last = {
        "path": "b.parquet",
        "ino": 7,
        "cuda": "12.8",
        "ok": None,
        "reasons": ["other processes"],
        "evaluations": [],
    }
    rows = [first] * copies + [last]
    table = index.to_arrow(duckdb.connect(), rows, schema)
    assert table.schema == schema
    assert table.to_pylist() == rows
