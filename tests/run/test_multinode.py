"""Two torchrun "nodes" on this host: `--nnodes 2`, one process each, gloo, a c10d rendezvous
on a free local port, as two machines would start them (README, "Several processes or
machines"). Their run must follow the one-process curve of the same global batch."""

import socket
import subprocess

import pytest

from nanobench.store import results

ITERS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# fast in the default suite: test_distributed's test_two_ranks_reproduce_the_single_process_curve
# (one torchrun, two ranks) and test_torchrun_command_passes_rendezvous_through
@pytest.mark.slow
def test_two_nodes_follow_the_one_process_curve(nb, tmp_path):
    port = free_port()
    common = ["--max-iters", ITERS, "--threads", "1", "--quiet"]
    nodes = [
        subprocess.Popen(
            [
                *nb.cmd,
                "run",
                "smoke",
                "--nproc",
                "1",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "twonodes",
                "--out",
                str(tmp_path / "two"),
                *map(str, common),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    one = nb("run", "smoke", "--out", tmp_path / "one", *common, timeout=300)
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, err
    assert one.returncode == 0, one.stderr
    [two_path] = (tmp_path / "two").glob("*.parquet")  # global rank 0 alone records
    [one_path] = (tmp_path / "one").glob("*.parquet")
    two, single = results.read_run(two_path), results.read_run(one_path)
    assert two.meta["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
        "nnodes": 2,
        "local_world_size": 1,
    }
    # the machines of one job share their --rdzv-id as the plan id, so both stored one plan
    assert two.meta["group_id"] == "twonodes" and two.meta["options"]["cell"] == "c000"
    assert len(two.rows) == len(single.rows) == ITERS + 1  # and the final evaluation's row
    # Same global batch split over 2 ranks: only the reduction order differs (measured here:
    # see the closing note of issue 29); the bound is test_distributed's.
    diff = (two.rows["loss"] - single.rows["loss"]).abs().max()
    print(f"max |loss difference|, two nodes vs one process: {diff:.3e}")
    assert diff < 1e-5
    assert (two.rows["eval_val_loss"] - single.rows["eval_val_loss"]).abs().max() < 1e-5
