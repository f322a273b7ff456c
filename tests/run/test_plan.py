"""Run plans (run/plan.py): the cells a request becomes, the stored plan, and each cell's
state as its output folder holds it (real result files and partial folders, written by the
store's own writer)."""

import dataclasses
import json
import os

import pytest

from nanobench.errors import InputError
from nanobench.run import plan as plans
from nanobench.run.scenario import load
from nanobench.store import results


def request(**given):
    base = dict(
        scenario="smoke",
        overrides=("train.learning_rate=3e-4",),
        device="cpu",
        dtype="fp32",
        seeds=(1, 2, 3),
        speed={"threads": 1},
    )
    return plans.Request(**{**base, **given})


def make_plan(tmp_path, n_seeds=3) -> plans.Plan:
    cells, _ = plans.build_cells(
        request(dtype="fp32,bf16", seeds=tuple(range(1, n_seeds + 1))), load("smoke"), here=False
    )
    return plans.Plan("smoke-abcd0123", str(tmp_path), tuple(cells), (("nnodes", 2),), "now")


def test_cells_are_devices_then_dtypes_then_seeds_each_with_its_own_id():
    cells, said = plans.build_cells(
        request(device="cpu,cuda", dtype="fp32,bf16", seeds=(1, 2)), load("smoke"), here=False
    )
    # a cluster's cells: taken as spelled (no CUDA is needed here to plan CUDA cells)
    assert [(c.device, c.dtype, c.seed) for c in cells] == [
        ("cpu", "fp32", 1),
        ("cpu", "fp32", 2),
        ("cpu", "bf16", 1),
        ("cpu", "bf16", 2),
        ("cuda", "fp32", 1),
        ("cuda", "fp32", 2),
        ("cuda", "bf16", 1),
        ("cuda", "bf16", 2),
    ]
    assert [c.id for c in cells] == [f"c{i:03d}" for i in range(8)]
    assert {c.threads for c in cells} == {1} and said == []
    assert cells[0].overrides == ("train.learning_rate=3e-4",)


def test_a_speed_flag_this_machines_device_lacks_skips_its_cells():
    # planned here, the flags go to the device matrix: the CPU has no cuDNN attention, so
    # every cell is skipped, which leaves nothing to run (a plain run's refusal, exit 2)
    with pytest.raises(InputError, match="--sdpa cudnn: not a backend of cpu"):
        plans.build_cells(
            request(dtype="fp32,bf16", speed={"sdpa": "cudnn"}), load("smoke"), here=True
        )


def test_best_makes_one_cell_per_device_whose_settings_come_later():
    cells, _ = plans.build_cells(
        request(device="cpu,cuda", speed={}, best=True, seeds=(7,)), load("smoke"), here=False
    )
    assert [(c.device, c.dtype, c.best) for c in cells] == [
        ("cpu", None, True),
        ("cuda", None, True),
    ]


@pytest.mark.parametrize(
    "given, message",
    [
        (dict(device="all"), "--device all: means this machine's devices"),
        (dict(device="gpu"), "gpu"),
        (dict(dtype="fp8"), "fp8"),
        (dict(best=True), "--best: it chooses"),
        (dict(nproc=2, dtype="fp32,bf16"), "--nproc: a data-parallel job runs one device"),
        (dict(nproc=3), "does not split evenly"),
    ],
)
def test_a_request_a_plan_cannot_hold_is_bad_input(given, message):
    with pytest.raises(InputError, match=message):
        plans.build_cells(request(**given), load("smoke"), here=False)


def test_a_stored_plan_reads_back_as_written_and_a_newer_schema_is_refused(tmp_path):
    plan = make_plan(tmp_path)
    path = plan.save()
    assert path == tmp_path / "plans" / "smoke-abcd0123.json"
    assert plans.load(tmp_path) == plan
    assert plans.load(tmp_path, "smoke-abcd0123").cells[4].overrides == (
        "train.learning_rate=3e-4",
    )
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, schema_version=2)))
    with pytest.raises(InputError, match="schema_version 2, this nanobench reads 1"):
        plans.load(tmp_path)
    with pytest.raises(InputError, match="no plan stored there"):
        plans.load(tmp_path / "elsewhere")


def test_continue_finds_the_plan_of_the_same_cells_only(tmp_path):
    plan = make_plan(tmp_path)
    plan.save()
    assert plans.matching(tmp_path, list(plan.cells)) == plan
    other = [dataclasses.replace(c, seed=c.seed + 10) for c in plan.cells]
    assert plans.matching(tmp_path, other) is None


def write(plan, cell_id, status=None, pid=4242, host="here", group=None):
    """A real result (finished with `status`) or, with status None, a partial folder."""
    meta = {
        "group_id": group or plan.plan_id,
        "options": {"cell": cell_id},
        "pid": pid,
        "pid_host": host,
    }
    writer = results.RunWriter(plan.out_dir, f"run-{cell_id}-{status}-{group}", meta)
    writer.append([])
    if status is None:
        return writer.partial
    return writer.finish(status, None if status == "completed" else f"{status} on purpose")


def test_each_cell_state_comes_from_what_the_folder_holds(tmp_path):
    plan = make_plan(tmp_path)
    plan.save()
    c = [cell.id for cell in plan.cells]
    done = write(plan, c[0], "completed")
    write(plan, c[1], "failed")
    write(plan, c[1], "completed")  # a later completed result of the same cell wins
    write(plan, c[2], "diverged")
    running = write(plan, c[3], None, pid=1001)
    killed = write(plan, c[4], None, pid=1002)
    plans.record_failure(plan, c[4], "submitit job 7: killed by signal 9", "submitit")
    elsewhere = write(plan, c[5], None, pid=1003, host="node7")
    write(plan, c[5], "completed", group="another-plan")  # another plan's result: not this cell's
    states = plans.cell_states(plan, host="here", alive=lambda pid: pid == 1001)
    got = {s.cell.id: (s.state, s.path, s.reason) for s in states}
    assert got[c[0]] == ("completed", str(done), None)
    assert got[c[1]][0] == "completed"
    assert got[c[2]][0] == "failed" and got[c[2]][2] == "diverged: diverged on purpose"
    assert got[c[3]] == ("running", str(running), "pid 1001")
    assert got[c[4]][:2] == ("failed", str(killed))
    assert "killed: its process (pid 1002) ended" in got[c[4]][2]
    assert "submitit job 7: killed by signal 9" in got[c[4]][2]
    assert got[c[5]] == ("running", str(elsewhere), "on node7, pid 1003")
    # --continue: the failed and killed cells; running and completed ones are left alone
    assert [cell.id for cell in plans.to_run(plan, states)] == [c[2], c[4]]


def test_a_failure_record_alone_fails_the_cell_and_a_new_start_clears_it(tmp_path):
    plan = make_plan(tmp_path, n_seeds=1)
    first = plan.cells[0].id
    path = plans.record_failure(
        plan, first, "bad input on node3: --device cuda: no CUDA device", "nanobench"
    )
    entry = json.loads(path.read_text())  # OUT/plans/<plan id>/failed/<cell>.json
    assert path == tmp_path / "plans" / plan.plan_id / "failed" / f"{first}.json"
    assert (entry["cell"], entry["source"]) == (first, "nanobench")
    states = plans.cell_states(plan, host="here", alive=lambda pid: False)
    assert (states[0].state, states[0].reason) == (
        "failed",
        "bad input on node3: --device cuda: no CUDA device",
    )
    assert states[1].state == "not started"
    plans.clear_failure(plan, first)
    assert plans.cell_states(plan, host="here")[0].state == "not started"


def test_a_submitted_cell_not_started_names_its_job(tmp_path):
    plan = make_plan(tmp_path, n_seeds=1)
    plan.records.mkdir(parents=True)
    jobs = {plan.cells[0].id: {"engine": "submitit-slurm", "job": "4242_0"}}
    (plan.records / "jobs.json").write_text(json.dumps(jobs))
    first, second = plans.cell_states(plan, host="here")
    assert (first.state, first.reason) == ("not started", "submitted: submitit-slurm job 4242_0")
    assert (second.state, second.reason) == ("not started", None)


def test_status_all_lists_every_stored_plan_oldest_first(nb, tmp_path):
    older = make_plan(tmp_path, n_seeds=1)
    older.save()
    newer = dataclasses.replace(older, plan_id="smoke-newer000")
    newer.save()
    os.utime(older.path, (1, 1))  # written long before
    proc = nb("status", tmp_path, "--all", "--json")
    assert proc.returncode == 4  # nothing completed
    shown = json.loads(proc.stdout)
    assert [p["plan_id"] for p in shown] == ["smoke-abcd0123", "smoke-newer000"]
    assert shown[0]["counts"] == {"completed": 0, "running": 0, "failed": 0, "not started": 2}
    newest = json.loads(nb("status", tmp_path, "--json").stdout)
    assert newest["plan_id"] == "smoke-newer000"


def test_a_refused_new_plan_takes_away_only_what_saving_it_made(tmp_path):
    plan = dataclasses.replace(make_plan(tmp_path), out_dir=str(tmp_path / "new" / "out"))
    made = plans.folders_to_make(plan)
    assert made == [tmp_path / "new" / "out" / "plans", tmp_path / "new" / "out", tmp_path / "new"]
    plan.save()
    assert plans.discard(plan, made) and sorted(tmp_path.iterdir()) == []
    plan.save()
    write(plan, plan.cells[0].id, "completed")  # a cell left a result: the plan stays
    assert not plans.discard(plan, made) and plan.path.is_file()
