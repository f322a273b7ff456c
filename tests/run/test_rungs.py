"""`nanobench explain --run`'s runner (run/rungs.py): each planned command in its own
`nanobench run` process, stopped with SIGTERM when the budget is spent, and nothing started after."""

from nanobench.run.rungs import run_commands


def test_the_runner_runs_the_commands_and_stops_at_the_budget(tmp_path):
    endless = (
        "smoke",
        "--device",
        "cpu",
        "--max-iters",
        "1000000",
        "--out",
        str(tmp_path / "stopped"),
    )
    short = ("smoke", "--device", "cpu", "--max-iters", "2", "--out", str(tmp_path / "ok"))
    lines = []
    stopped, never = run_commands([endless, short], budget_s=3, log=lines.append)
    assert (
        stopped.stopped and stopped.returncode is not None
    )  # it ran and was stopped at the budget
    assert never.returncode is None and not never.stopped  # no budget left: never started
    assert lines[-1].startswith("not run (budget spent): nanobench smoke")
    [ok] = run_commands([short], budget_s=300, log=lines.append)
    assert ok.returncode == 0 and not ok.stopped
    [result] = (tmp_path / "ok").glob("*.parquet")
    assert "-cpu-fp32-" in result.name
