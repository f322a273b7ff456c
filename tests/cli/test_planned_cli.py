"""`tune` and `explain --run` hand their runs to the local executor as plans, as `run` does:
their cells are listed by `nanobench status`, and what has a completed result is not run
again. The expected files, plan ids and cells are read here from the folder itself (the
plans' JSON with json, the results' metadata with pyarrow), not through nanobench."""

import json

import pyarrow.parquet as pq
import pytest

from nanobench import cli


def meta_of(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"nanobench"])


def stored_plans(out) -> list[dict]:
    files = sorted((out / "plans").glob("*.json"), key=lambda f: f.stat().st_mtime)
    return [json.loads(f.read_text()) for f in files]


def figures(table: str) -> list[str]:
    """tune's table without its load line (the host's load average when it ran, not a figure)."""
    return [line for line in table.splitlines() if "load average" not in line]


def test_explain_run_turns_its_commands_into_the_cells_run_makes():
    """Fast: the command explain prints for a missing rung, parsed as `run` parses it, gives
    the cell (one per seed) that `nanobench run` with it would run."""
    from nanobench.run import plan as plans

    argv = ("smoke", "--device", "cpu", "--dtype", "fp32", "--max-iters", "30", "--seeds", "1,2")
    argv += ("--set", "eval.interval=10", "--out", "DIR")
    scenario, request = cli._run_request(cli.build_parser().parse_args(["run", *argv]), False)
    cells = plans.numbered(plans.build_cells(request, scenario, here=False)[0] * 2)
    assert [(c.id, c.seed, c.max_iters, c.overrides) for c in cells] == [
        ("c000", 1, 30, ("eval.interval=10",)),
        ("c001", 2, 30, ("eval.interval=10",)),
        ("c002", 1, 30, ("eval.interval=10",)),
        ("c003", 2, 30, ("eval.interval=10",)),
    ]
    assert {(c.scenario, c.device, c.dtype, c.compile) for c in cells} == {
        ("smoke", "cpu", "fp32", False)
    }


# fast counterparts: tests/run/test_tune.py::test_a_round_is_a_plan_read_back_from_its_result_files_and_continued,
# tests/run/test_executors.py::test_a_deadline_stops_the_running_cell_and_starts_no_other
@pytest.mark.slow
def test_tune_rounds_are_plans_status_lists_and_continue_finishes(tmp_path, capsys):
    """How many rounds a tune makes depends on the timings (a kept change adds a round of the
    combination); what is asserted holds for any number."""
    out = tmp_path / "tune"
    tune = ["tune", "smoke", "--iters", "12", "--axes", "optimizer", "--passes", "1"]
    tune += ["--out", str(out), "--dry-run", "--quiet"]
    assert (cli.main(tune) or 0) == 0
    table = capsys.readouterr().out
    rounds = stored_plans(out)
    files = sorted(out.glob("*.parquet"))
    cells = {(p["plan_id"], c["id"]) for p in rounds for c in p["cells"]}
    recorded = {(meta_of(f)["group_id"], meta_of(f)["options"]["cell"]) for f in files}
    assert rounds and recorded == cells and len(files) == len(cells)
    assert all(p["plan_id"].startswith("tune-smoke-") for p in rounds)
    assert cli.main(["status", str(out), "--all", "--json"]) == 0  # every cell completed
    listed = json.loads(capsys.readouterr().out)
    assert {(p["plan_id"], c["cell"]) for p in listed for c in p["cells"]} == cells
    # --continue with every cell completed: nothing runs, the same figures are read back
    assert (cli.main([*tune, "--continue"]) or 0) == 0
    assert figures(capsys.readouterr().out) == figures(table)
    assert sorted(out.glob("*.parquet")) == files and stored_plans(out) == rounds
    # the last round's last run lost its result: --continue runs it again
    last = (rounds[-1]["plan_id"], rounds[-1]["cells"][-1]["id"])
    [lost] = [f for f in files if (meta_of(f)["group_id"], meta_of(f)["options"]["cell"]) == last]
    lost.unlink()
    assert cli.main(["status", str(out), "--all"]) == cli.EXIT_INCOMPLETE
    capsys.readouterr()
    assert (cli.main([*tune, "--continue"]) or 0) == 0
    again = set(out.glob("*.parquet"))
    assert set(files) - {lost} <= again  # nothing else was measured again
    assert last in {(meta_of(f)["group_id"], meta_of(f)["options"]["cell"]) for f in again}
    # its new figures may keep a change and so add a round; the rounds before are continued
    assert stored_plans(out)[: len(rounds)] == rounds


@pytest.mark.slow
def test_explain_run_is_a_plan_in_out_that_status_lists(tmp_path, capsys):
    a, d = tmp_path / "a", tmp_path / "DIR"
    made = ["run", "smoke", "--max-iters", "20", "--seeds", "1", "--out", str(a), "--quiet"]
    assert (cli.main(made) or 0) == 0
    capsys.readouterr()
    explain = ["explain", str(a), "smoke:cpu:fp32", "--results", str(d), "--run", "--json"]
    assert (cli.main([*explain, "--budget", "3m"]) or 0) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["b"]["kind"] == "measured" and data["missing"] == []
    rungs = stored_plans(d)
    assert rungs[0]["plan_id"].startswith("explain-")
    assert [[(c["seed"], c["max_iters"]) for c in p["cells"]] for p in rungs] == [[(1, 30)]]
    [made_by_explain] = [
        f for f in d.glob("*.parquet") if meta_of(f)["group_id"] == rungs[0]["plan_id"]
    ]
    assert meta_of(made_by_explain)["options"]["max_iters"] == 30
    assert cli.main(["status", str(d), "--plan", rungs[0]["plan_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["completed"] == 1
    # run again: the rung has its result, nothing is planned or run
    assert (cli.main([*explain, "--budget", "3m"]) or 0) == 0
    assert "nothing to run here within the budget" in capsys.readouterr().err
    assert len(list(d.glob("*.parquet"))) == 1 and len(stored_plans(d)) == 1
