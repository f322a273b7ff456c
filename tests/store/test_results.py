import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanobench.errors import InputError
from nanobench.store import results


def rows(n, start=0):
    return [
        {
            "iter": i,
            "loss": 3.0 - i * 0.01,
            "step_time_s": 0.01,
            "train_time_s": 0.01 * (i + 1),
            "wall_time_s": 0.02 * (i + 1),
            "eval_val_loss": 2.5 if i % 10 == 0 else None,
        }
        for i in range(start, start + n)
    ]


def test_round_trip_with_metadata_and_segments(tmp_path):
    w = results.RunWriter(tmp_path, "r1", {"scenario": {"name": "x"}}, flush_every_iters=10)
    w.append(rows(25))
    assert (
        len(list(w.partial.glob("seg-*.parquet"))) == 1
    )  # flushed once the buffer reached 10 rows
    w.append(rows(5, start=25))
    path = w.finish("completed", None, summary={"a": 1})
    assert path == tmp_path / "r1.parquet" and not w.partial.exists()
    run = results.read_run(path)
    assert run.rows["iter"].tolist() == list(range(30))
    assert run.meta["schema_version"] == results.SCHEMA_VERSION
    assert run.meta["status"] == "completed" and run.meta["summary"] == {"a": 1}
    assert list(run.rows.columns) == list(results.COLUMNS)
    assert run.rows["eval_val_loss"].notna().sum() == 3


def test_rows_reach_disk_before_the_run_ends(tmp_path):
    w = results.RunWriter(tmp_path, "r2", {}, flush_every_iters=100, flush_every_s=1e9)
    w.append(rows(99))
    assert not list(w.partial.glob("seg-*.parquet"))
    w.append(rows(1, start=99))
    segs = list(w.partial.glob("seg-*.parquet"))
    assert len(segs) == 1 and pq.read_table(segs[0]).num_rows == 100


def test_recover_publishes_a_killed_run(tmp_path):
    w = results.RunWriter(
        tmp_path, "r3", {"pid": 999_999_999, "pid_host": "elsewhere"}, flush_every_iters=10
    )
    w.append(rows(15))  # 15 buffered -> flushed at >=10; nothing left over
    w.append(rows(3, start=15))  # 3 rows only in memory: lost with the process
    [partial] = results.find_partials(tmp_path)
    path = results.recover(partial)
    run = results.read_run(path)
    assert run.meta["status"] == "killed" and "SIGKILL" in run.meta["status_reason"]
    assert run.rows["iter"].tolist() == list(range(15))
    assert not results.find_partials(tmp_path)


def test_reader_refuses_other_schema_versions(tmp_path):
    table = pa.table({"iter": [0]}).replace_schema_metadata(
        {"nanobench": json.dumps({"schema_version": 99})}
    )
    pq.write_table(table, tmp_path / "new.parquet")
    with pytest.raises(InputError, match="schema_version 99 is newer .* upgrade nanobench"):
        results.read_run(tmp_path / "new.parquet")
    table = table.replace_schema_metadata({"nanobench": json.dumps({"schema_version": 0})})
    pq.write_table(table, tmp_path / "old.parquet")
    with pytest.raises(InputError, match="re-run the scenario"):
        results.read_run(tmp_path / "old.parquet")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty file"),
        (b"iter,loss\n0,3.0\n", "not a parquet file"),
        (b"PAR1" + b"\0" * 100, "truncated parquet file"),
    ],
)
def test_reader_names_the_file_and_the_problem(tmp_path, content, match):
    p = tmp_path / "bad.parquet"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match) as err:
        results.read_run(p)
    assert str(p) in str(err.value)


def test_huge_metadata_and_an_unreadable_footer_are_refused_naming_file_and_cause(tmp_path):
    """Metadata over MAX_META_BYTES is refused with its size; a footer parquet cannot parse
    (magic bytes and length intact) with parquet's own words on why."""
    huge = json.dumps({"schema_version": 1, "pad": "x" * results.MAX_META_BYTES})
    pq.write_table(
        pa.table({"iter": [0]}).replace_schema_metadata({"nanobench": huge}),
        tmp_path / "huge.parquet",
    )
    with pytest.raises(InputError) as err:
        results.read_meta(tmp_path / "huge.parquet")
    assert str(err.value).startswith(
        f"{tmp_path / 'huge.parquet'}: nanobench metadata of {len(huge)} bytes"
    )
    pq.write_table(pa.table({"iter": [0]}), tmp_path / "ok.parquet")
    data = bytearray((tmp_path / "ok.parquet").read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[len(data) - 8 - footer : len(data) - 8] = b"\xff" * footer  # garbage where the footer is
    (tmp_path / "garbled.parquet").write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        results.read_meta(tmp_path / "garbled.parquet")
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'garbled.parquet'}: unreadable parquet file (")
    assert "not a nanobench result" in text and "(None)" not in text and len(text) > 80


def test_foreign_parquet_is_refused(tmp_path):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    with pytest.raises(InputError, match="without nanobench metadata"):
        results.read_run(tmp_path / "other.parquet")


def test_expand_paths(tmp_path):
    for name in ("a", "b"):
        results.RunWriter(tmp_path / "sub", name, {}).finish("completed")
    assert [p.name for p in results.expand_paths([str(tmp_path)])] == ["a.parquet", "b.parquet"]
    assert len(results.expand_paths([str(tmp_path / "sub" / "*.parquet")])) == 2
    with pytest.raises(InputError, match="no file matches"):
        results.expand_paths([str(tmp_path / "*.nothing")])
    with pytest.raises(InputError, match="no such file"):
        results.expand_paths([str(tmp_path / "missing.parquet")])


def test_the_sweep_before_a_run_recovers_the_killed_and_reports_the_damaged(tmp_path):
    w = results.RunWriter(tmp_path, "killed", {"scenario": {"name": "x"}}, flush_every_iters=10)
    w.append(rows(12))  # 10 rows flushed; the process then "dies": its pid is not alive
    meta = json.loads((w.partial / "meta.json").read_text())
    (w.partial / "meta.json").write_text(json.dumps(dict(meta, pid=2**22 + 1)))
    damaged = tmp_path / results.PARTIAL_DIR / "damaged"
    damaged.mkdir()
    (damaged / "meta.json").write_text('{"run_id": "d", "sche')
    recovered, warnings = results.recover_killed(tmp_path)
    assert (
        recovered == [tmp_path / "killed.parquet"]
        and results.read_run(recovered[0]).meta["status"] == "killed"
    )
    assert len(warnings) == 1 and "meta.json: damaged" in warnings[0] and damaged.is_dir()
