"""Executors (run/executors.py): the same cells run here, through submitit and through Ray
write the same results; a failed or killed cell is reported with its reason; `--continue`
runs only what has no completed result."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanobench.run import executors
from nanobench.run import plan as plans
from nanobench.run.scenario import load
from nanobench.store import results


def smoke_cells(seeds=(1, 2), dtype="fp32", iters=3):
    request = plans.Request(
        scenario="smoke",
        overrides=(),
        device="cpu",
        dtype=dtype,
        seeds=seeds,
        speed={"threads": 1},
        max_iters=iters,
    )
    return plans.build_cells(request, load("smoke"), here=False)[0]


def losses(folder) -> dict:
    """cell id -> (status, loss curve as raw float64 bytes: bit for bit) of each result."""
    found = {}
    for path in sorted(folder.glob("*.parquet")):
        run = results.read_run(path)
        curve = run.rows["loss"].to_numpy(dtype="float64").tobytes()
        found[run.meta["options"]["cell"]] = (run.meta["status"], curve)
    return found


def test_submitit_runs_each_cell_as_the_local_executor_does(tmp_path):
    """submitit's debug cluster runs the jobs in this process through the same submit and
    wait calls as SLURM or local processes; every cell's losses equal the local run's."""
    cells = smoke_cells()
    here = plans.Plan("here", str(tmp_path / "here"), tuple(cells))
    here.save()
    done = executors.run_local(
        here, cells, lambda label: contextlib.nullcontext(), lambda r: None, True, False
    )
    assert [r.status for r in done] == ["completed", "completed"]
    there = plans.Plan("there", str(tmp_path / "there"), tuple(cells))
    there.save()
    jobs = executors.submit_submitit(there, cells, executors.SubmititOptions(cluster="debug"), None)
    got = executors.wait_submitit(there, jobs, None)
    assert [(r.cell, r.status) for r in got] == [("c000", "completed"), ("c001", "completed")]
    assert losses(tmp_path / "there") == losses(tmp_path / "here")
    assert len(losses(tmp_path / "here")) == 2
    recorded = json.loads((there.records / "jobs.json").read_text())
    assert set(recorded) == {"c000", "c001"}
    assert {r["engine"] for r in recorded.values()} == {"submitit-debug"}
    assert [s.state for s in plans.cell_states(there)] == ["completed", "completed"]


def test_a_cell_its_node_cannot_run_fails_with_the_reason(tmp_path):
    """tf32 on a CPU is refused on any host: the task records why before any result exists."""
    [cell] = smoke_cells(seeds=(1,), dtype="tf32")
    plan = plans.Plan("bad", str(tmp_path), (cell,))
    plan.save()
    jobs = executors.submit_submitit(plan, [cell], executors.SubmititOptions(cluster="debug"), None)
    [result] = executors.wait_submitit(plan, jobs, None)
    assert result.status == "failed" and "--dtype tf32" in result.reason
    [state] = plans.cell_states(plan)
    assert state.state == "failed"
    assert state.reason.startswith("bad input on ") and "--dtype tf32" in state.reason
    assert state.path == str(plans.failure_path(plan, cell.id))


def test_local_continue_runs_only_the_cell_without_a_completed_result(nb, tmp_path):
    out = tmp_path / "out"
    command = ["run", "smoke", "--seeds", "1,2", "--max-iters", "2", "--threads", "1"]
    first = nb(*command, "--quiet", "--out", out)
    assert first.returncode == 0, first.stderr
    by_cell = {
        c: p for p in out.glob("*.parquet") for c in [results.read_meta(p)["options"]["cell"]]
    }
    assert sorted(by_cell) == ["c000", "c001"]
    by_cell["c001"].unlink()
    status = nb("status", out, "--json")
    assert status.returncode == 4
    states = {c["cell"]: c["state"] for c in json.loads(status.stdout)["cells"]}
    assert states == {"c000": "completed", "c001": "not started"}
    again = nb(*command, "--quiet", "--out", out, "--continue")
    assert again.returncode == 0, again.stderr
    assert "1 of 2 cells have a completed result or still run; running 1" in again.stderr
    now = sorted(out.glob("*.parquet"))
    assert len(now) == 2 and by_cell["c000"] in now  # c000 was not measured again
    assert nb("status", out).returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["status", "{tmp}/none"], "{tmp}/none: no such folder"),
        (["status", "{tmp}"], "no plan stored there"),
        (
            ["run", "smoke", "--executor", "submitit", "--slurm-partition", "gpu=a100"],
            "--slurm-partition gpu=a100: expected VALUE or KIND=VALUE with KIND cpu, cuda or mps",
        ),
        (["run", "smoke", "--executor", "ray", "--device", "all"], "--device all: means this"),
        (["run", "smoke", "--executor", "ray", "--ray-cpus", "0"], "--ray-cpus 0: must be >= 1"),
    ],
)
def test_plan_and_status_mistakes_are_one_line_exit_2(nb, tmp_path, args, message):
    out = ["--out", tmp_path / "o"] if args[0] == "run" else []
    proc = nb(*[a.format(tmp=tmp_path) for a in args], *out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was stored
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("nanobench: error: ") and message.format(tmp=tmp_path) in line


def wait_for_partial(out, cell_id, timeout_s=120):
    """The meta.json of the cell's run while it is being written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for meta in out.glob(".partial/*/meta.json"):
            try:
                data = json.loads(meta.read_text())
            except ValueError:
                continue  # being replaced
            if data.get("options", {}).get("cell") == cell_id:
                return data
        time.sleep(0.1)
    raise AssertionError(f"no partial of {cell_id} in {out} after {timeout_s} s")


# fast in the default suite: test_submitit_runs_each_cell_as_the_local_executor_does (the same
# submit and wait calls, in process), test_plan's test_each_cell_state_comes_from_what_the_folder_holds
@pytest.mark.slow
def test_a_killed_submitit_cell_is_failed_with_its_reason_and_continue_reruns_it_alone(
    nb, tmp_path
):
    out = tmp_path / "out"
    command = [
        *nb.cmd,
        "run",
        "smoke",
        "--seeds",
        "1,2",
        "--max-iters",
        "3000",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(out),
        "--executor",
        "submitit",
        "--submitit-cluster",
        "local",
    ]
    proc = subprocess.Popen(
        [*command, "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim = wait_for_partial(out, "c001")
    os.kill(victim["pid"], signal.SIGKILL)  # the task's own process, mid-run
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 4, stderr  # not every cell completed
    status = nb("status", out, "--json")
    assert status.returncode == 4
    cells = {c["cell"]: c for c in json.loads(status.stdout)["cells"]}
    assert cells["c000"]["state"] == "completed"
    assert cells["c001"]["state"] == "failed"
    reason = cells["c001"]["reason"]
    assert f"killed: its process (pid {victim['pid']}) ended without finishing" in reason
    assert "submitit job" in reason  # what submitit said, recorded by the waiting run
    print(f"status of the killed cell: {reason}")
    first = sorted(out.glob("*.parquet"))
    again = subprocess.run(
        [*command, "--wait", "--continue"], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert "1 of 2 cells have a completed result or still run; running 1" in again.stderr
    assert "submitted 1 cells to submitit" in again.stderr
    now = sorted(out.glob("*.parquet"))
    assert len(now) == 2 and first[0] in now
    assert nb("status", out).returncode == 0


# fast in the default suite: test_submitit_runs_each_cell_as_the_local_executor_does (remote_cell,
# what a Ray task runs, through submitit's in-process cluster)
@pytest.mark.slow
def test_ray_runs_each_cell_as_the_local_executor_does(nb, tmp_path):
    command = ["run", "smoke", "--seeds", "1,2", "--max-iters", "3", "--threads", "1", "--quiet"]
    here = nb(*command, "--out", tmp_path / "here")
    there = nb(
        *command, "--out", tmp_path / "ray", "--executor", "ray", "--ray-cpus", "2", timeout=600
    )
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    assert losses(tmp_path / "ray") == losses(tmp_path / "here")
    assert len(losses(tmp_path / "ray")) == 2


# fast in the default suite: test_submitit_runs_each_cell_as_the_local_executor_does (the same
# cells through submitit and the local executor, losses compared); this one starts Ray too
@pytest.mark.slow
def test_the_executor_bench_runs_at_a_tiny_size(tmp_path):
    """bench/executors.py, one cell of 2 iterations through local, submitit's local processes
    and a 2-CPU local Ray cluster: the same losses bit for bit, every cell completed."""
    script = Path(__file__).resolve().parents[2] / "bench" / "executors.py"
    figures = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--tiny", "--out", str(tmp_path), "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(figures.read_text())
    assert report["cells"] == 1 and list(report["identical_losses"].values()) == [True]
    assert report["statuses"] == {e: ["completed"] for e in ("local", "submitit", "ray")}


def test_an_engines_error_is_told_in_one_line_without_its_logs():
    # the two messages submitit's Job.exception() gives (submitit/core/core.py), by hand
    died = (
        "Job 1397 (task: 0) with path /o/plans/p/submitit/1397_0_result.pkl\n"
        "has not produced any output (state: PREEMPTED)\n"
        "Error stream produced:\n----------------------------------------\n"
        "submitit INFO (2026-12-03 15:21:41,687) - Starting with JobEnvironment(...)"
    )
    raised = (
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "RuntimeError: CUDA error: an illegal memory access\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        "  - /o/1397_0_log.err\n  - /o/1397_0_log.out"
    )
    assert executors._short(died) == "ended without a result, state PREEMPTED"
    assert executors._short(raised) == "raised RuntimeError: CUDA error: an illegal memory access"
    assert (
        executors._short("The worker died unexpectedly.\nmore") == "The worker died unexpectedly."
    )


# ---- a time budget (explain --run): the local executor stops at the deadline -------------------


def test_a_deadline_stops_the_running_cell_and_starts_no_other(tmp_path):
    """The budget of `explain --run`: the first cell would run a million iterations and is
    stopped at the deadline, its file completed as interrupted with the budget's reason; the
    next is never started (the runner this replaces ran each as a process and sent SIGTERM)."""
    endless, short = smoke_cells(seeds=(1, 2), iters=1_000_000)
    short = plans.Cell(**{**short.__dict__, "max_iters": 2})
    plan = plans.Plan("budget", str(tmp_path), (endless, short))
    plan.save()
    deadline = executors.Deadline.after(2, "stopped at the end of the 2s budget")
    done = executors.run_local(
        plan,
        list(plan.cells),
        lambda label: contextlib.nullcontext(),
        lambda result: None,
        True,
        False,
        deadline=deadline,
    )
    assert [d.status for d in done] == ["interrupted"]  # the first stopped: nothing after
    stopped = results.read_run(done[0].path)
    steps = int(stopped.rows["loss"].notna().sum())
    assert stopped.info.raw["status"] == "interrupted" and 0 < steps < 1_000_000
    reason = stopped.info.raw["status_reason"]
    assert reason == f"stopped at the end of the 2s budget after {steps} iteration" + "s" * (
        steps != 1
    )
    states = {s.cell.id: s.state for s in plans.cell_states(plan)}
    assert states == {"c000": "failed", "c001": "not started"}
    # spent before it starts: the cell is reported, never run
    late = executors.Deadline.after(0, "stopped at the end of the 0s budget")
    [never] = executors.run_local(
        plan,
        [short],
        lambda label: contextlib.nullcontext(),
        lambda r: None,
        True,
        False,
        deadline=late,
    )
    assert never.status == "not started" and never.path is None
    assert len(list(tmp_path.glob("*.parquet"))) == 1
