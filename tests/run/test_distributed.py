"""Data-parallel runs through torchrun (gloo on the CPU), as a user starts them."""

import os
import signal
import subprocess
import time

import psutil
import pytest

from nanobench.errors import InputError
from nanobench.measure.device import cuda_device_count, parse_device
from nanobench.run import distributed
from nanobench.store import results

@pytest.fixture(scope="module")
def single_and_ddp(tmp_path_factory, nb):
    d = tmp_path_factory.mktemp("ddp")
    one = nb("run", "smoke", "--threads", "1", "--out", str(d / "one"), timeout=180)
    two = nb("run", "smoke", "--nproc", "2", "--out", str(d / "two"), timeout=180)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return [results.read_run(next((d / n).glob("*.parquet"))) for n in ("one", "two")]


def test_two_ranks_reproduce_the_single_process_curve(single_and_ddp):
    one, two = single_and_ddp
    assert len(one.rows) == len(two.rows)
    # Same global batch split over 2 ranks: only the reduction order differs. Measured here:
    # at most 2.4e-7 over 30 iterations; the bound leaves room for other BLAS builds.
    assert (one.rows["loss"] - two.rows["loss"]).abs().max() < 1e-5
    assert (one.rows["eval_val_loss"] - two.rows["eval_val_loss"]).abs().max() < 1e-5


def test_rank0_records_world_and_per_rank_step_times(single_and_ddp):
    _, two = single_and_ddp
    assert two.meta["distributed"]["world_size"] == 2 and two.meta["distributed"]["backend"] == "gloo"
    steps = two.rows.iloc[:-1]
    per_rank = steps["rank_step_time_s"]
    assert all(len(r) == 2 for r in per_rank)
    assert (steps["step_time_s"] == per_rank.map(max)).all()  # the slowest rank's time


def test_launch_checks():
    with pytest.raises(InputError, match="does not split evenly over 3 ranks"):
        distributed.check_launch(3, 1, parse_device("cpu"), 4, 1)
    with pytest.raises(InputError, match="more CUDA ranks than GPUs"):
        ranks = cuda_device_count() + 1
        distributed.check_launch(ranks, 1, parse_device("cuda"), 4 * ranks, 1)
    with pytest.raises(InputError, match="more CPU ranks than cores"):
        cores = os.cpu_count() or 1
        distributed.check_launch(cores + 1, 1, parse_device("cpu"), 4 * (cores + 1), 1)
    with pytest.raises(InputError, match="--device auto: --nproc supports cpu"):
        distributed.check_launch(1, 1, parse_device("auto"), 4, 1)


def test_bad_nproc_is_exit_2_without_traceback(nb, tmp_path):
    out = nb("run", "smoke", "--nproc", "3", "--out", str(tmp_path), timeout=180)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "does not split evenly" in out.stderr


def test_torchrun_command_passes_rendezvous_through():
    cmd = distributed.torchrun_command(4, {"nnodes": 2, "node_rank": 1, "rdzv_endpoint": "10.0.0.1:29500",
                                           "rdzv_backend": "c10d", "rdzv_id": "job7"}, ["smoke"])
    assert "--nnodes=2" in cmd and "--node-rank=1" in cmd and "--rdzv-endpoint=10.0.0.1:29500" in cmd
    assert "--standalone" not in cmd and cmd[-3:] == ["nanobench", "run", "smoke"]
    assert "--standalone" in distributed.torchrun_command(2, {}, ["smoke"])


def test_a_rank_dying_keeps_rank0_rows(nb, tmp_path):
    """SIGKILL rank 1 mid-run: every rank ends, rank 0's rows survive with a status."""
    proc = subprocess.Popen([*nb.cmd, "run", "smoke", "--nproc", "2", "--set", "train.max_iters=100000",
                             "--set", "eval.interval=100000", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while not list((tmp_path / results.PARTIAL_DIR).glob("*/seg-*.parquet")):
            assert time.time() < deadline and proc.poll() is None, "run did not start recording"
            time.sleep(0.2)
        rank1 = next(p for p in psutil.Process(proc.pid).children(recursive=True)
                     if p.environ().get("RANK") == "1" and "nanobench" in " ".join(p.cmdline()))
        rank1.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    files = list(tmp_path.glob("*.parquet"))
    if not files:  # rank 0 was ended before it could finish: the next run's recovery keeps the rows
        nb("recover", tmp_path, check=True)
        files = list(tmp_path.glob("*.parquet"))
    run_ = results.read_run(files[0])
    assert run_.meta["status"] in ("failed", "interrupted", "killed")
    assert run_.meta["status_reason"]
    assert len(run_.rows) >= 100  # at least the flushed segment
    print("status:", run_.meta["status"], run_.meta["status_reason"], len(run_.rows), "rows")
    time.sleep(1)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])], \
        "every rank must end"


def test_ctrl_c_ends_every_rank_and_keeps_rank0_rows(nb, tmp_path):
    """A terminal's Ctrl-C (SIGINT to the launcher's process group): rank 0 publishes its rows
    as `interrupted`, every process ends, exit 130, and no traceback from torchrun."""
    proc = subprocess.Popen([*nb.cmd, "run", "smoke", "--nproc", "2", "--set", "train.max_iters=100000",
                             "--set", "eval.interval=100000", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 90
        while not list((tmp_path / results.PARTIAL_DIR).glob("*/seg-*.parquet")):
            assert time.time() < deadline and proc.poll() is None, "run did not start recording"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    [path] = tmp_path.glob("*.parquet")
    run_ = results.read_run(path)
    assert run_.meta["status"] == "interrupted" and len(run_.rows) >= 100
    time.sleep(1)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
