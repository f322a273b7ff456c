"""Data-parallel runs through torchrun (gloo on the CPU), as a user starts them."""

import os
import queue
import signal
import subprocess
import time
import types

import psutil
import pytest

from nanobench.errors import InputError
from nanobench.measure.device import parse_device
from nanobench.run import distributed
from nanobench.store import results


def _on_two_gloo_ranks(tmp_path, target, answering=(0, 1), timeout_s=60):
    """Run gloo_ranks.TARGET(rank, dist) in two new processes joined by gloo (a file
    rendezvous, no torchrun); returns {rank: its answer} from the `answering` ranks, or fails
    naming the ranks that did not answer within timeout_s. Every process is ended after."""
    import multiprocessing

    import gloo_ranks  # beside this file: what the spawned ranks import (torch, not pandas or pytest)

    # One fresh server process imports torch once per session and the ranks fork from it (a
    # spawned rank would import torch itself, seconds each). Python 3.11's server ignores
    # sys.path, so it preloads what PYTHONPATH reaches; the ranks find gloo_ranks themselves.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch.distributed", "nanobench.run.distributed"])
    answers = ctx.Queue()
    procs = [
        ctx.Process(
            target=gloo_ranks.main,
            args=(rank, str(tmp_path / "rendezvous"), target, answers),
            daemon=True,
        )
        for rank in range(2)
    ]
    for proc in procs:
        proc.start()
    got = {}
    try:
        deadline = time.time() + timeout_s
        while set(got) != set(answering) and time.time() < deadline:
            try:
                rank, value = answers.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:  # out of time
                break
            assert not isinstance(value, str) or not value.startswith("error"), value
            got[rank] = value
    finally:
        for proc in procs:
            proc.join(timeout=1 if set(got) == set(answering) else 0)
            if proc.is_alive():
                proc.kill()
    assert set(got) == set(answering), (
        f"ranks {sorted(set(answering) - set(got))} did not answer in {timeout_s} s"
    )
    return got


def test_a_jobs_energy_sums_every_ranks_counter(tmp_path):
    got = _on_two_gloo_ranks(tmp_path, "energy_reads")
    assert (
        got[0][:3] == got[1][:3] == (30.0, 10.0, None)
    )  # each GPU's, summed; the shared one once; no partial sums
    assert got[0][3] == "summed over the 2 ranks' own counters"


def test_leaving_does_not_wait_for_a_rank_that_never_comes(tmp_path):
    """The leaving barrier times out (gloo's monitored barrier; under NCCL the same on a gloo
    side group) instead of hanging, so rank 0 exits with the status its file records."""
    got = _on_two_gloo_ranks(tmp_path, "rank1_never_leaves", answering=(0,), timeout_s=45)
    assert 1.5 < got[0] < 20  # rank 0 waited out its 2 s timeout, not gloo's 30 minutes


def test_after_the_warm_up_a_collective_with_a_silent_peer_fails_within_its_timeout(tmp_path):
    """The mechanism behind a dead rank under NCCL, on gloo (NCCL cannot run here): once
    Dist.steady has shortened the collective timeout, rank 0's collective with a peer that
    never comes raises after it (2 s here, not gloo's 30 minutes), and train() takes the error
    for a failed peer (status `failed`, its file finished)."""
    got = _on_two_gloo_ranks(tmp_path, "rank1_hangs_in_the_loop", answering=(0,), timeout_s=45)
    waited, comm_error, message = got[0]
    assert 1.5 < waited < 20, message
    assert comm_error, message


def test_the_launcher_asks_nccl_to_abort_the_communicator_not_the_process(monkeypatch):
    """TORCH_NCCL_ASYNC_ERROR_HANDLING=2 (torch's ProcessGroupNCCL.hpp: abort the communicator
    only): at the steady timeout rank 0's collective fails instead of its process being torn
    down (torchrun's default for its workers, 1) with its file unfinished. A user's own
    value is kept."""
    seen = []

    class FakeTorchrun:  # stands for the torchrun process: records the environment it was given
        pid = 4242

        def __init__(self, cmd, env, **kwargs):
            seen.append(env)

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeTorchrun)
    monkeypatch.setattr(signal, "signal", lambda s, h: None)
    monkeypatch.delenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", raising=False)
    monkeypatch.setenv(distributed.CHILD_ENV, "stale")  # never a duplicate key
    assert distributed.launch(2, {}, ["smoke"], 1, "cuda") == 0
    assert (
        seen[0]["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "2" and seen[0][distributed.CHILD_ENV] == "1"
    )
    monkeypatch.setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    distributed.launch(2, {}, ["smoke"], 1, "cuda")
    assert seen[1]["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"


@pytest.fixture(scope="module")
def single_and_ddp(tmp_path_factory, nb, two_rank_host):
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
    assert (
        two.meta["distributed"]["world_size"] == 2 and two.meta["distributed"]["backend"] == "gloo"
    )
    steps = two.rows.iloc[:-1]
    per_rank = steps["rank_step_time_s"]
    assert all(len(r) == 2 for r in per_rank)
    assert (steps["step_time_s"] == per_rank.map(max)).all()  # the slowest rank's time


def test_two_ranks_count_the_global_batch_once(single_and_ddp):
    """smoke's batch of 4 is the job's, split 2 + 2 over the ranks: 4 x 16 = 64 tokens an
    iteration, not 128. FLOPs an iteration: N = 13,248 for smoke's model on 27 characters
    (tests/measure/test_metrics.py), 6N + 12*1*2*16*16 = 85,632 per token, x 64 = 5,480,448.
    On the CPU both ranks share one processor, so MFU divides by one CPU's peak, not two."""
    one, two = single_and_ddp
    steps = two.rows.iloc[:-1]
    assert steps["tokens"].tolist() == [64 * (i + 1) for i in range(30)]
    assert steps["tokens"].tolist() == one.rows["tokens"].iloc[:-1].tolist()
    assert two.meta["flops"]["per_iter"] == 5_480_448
    assert steps["tokens_per_s"].tolist() == pytest.approx((64 / steps["step_time_s"]).tolist())
    peak = two.meta["peak_flops"]["measured"]["flops"]  # this host's calibration, an input
    assert steps["mfu_measured"].tolist() == pytest.approx(
        (5_480_448 / steps["step_time_s"] / peak).tolist()
    )


def test_a_one_core_host_skips_the_two_rank_tests(monkeypatch):
    # by path: `import conftest` finds whichever conftest.py pytest imported first
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "tests_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    top = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(top)
    cores_for_ranks = top.cores_for_ranks

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    with pytest.raises(pytest.skip.Exception, match="needs 2 cores .* this host has 1"):
        cores_for_ranks(2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cores_for_ranks(2)  # enough: no skip


def test_launch_checks(monkeypatch):
    monkeypatch.setattr(
        distributed, "cuda_device_count", lambda: 2
    )  # a machine with 2 GPUs and 4 cores, on any host
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    with pytest.raises(InputError, match="does not split evenly over 3 ranks"):
        distributed.check_launch(3, 1, parse_device("cpu"), 4, 1)
    distributed.check_launch(2, 1, parse_device("cuda"), 4, 1)
    with pytest.raises(InputError, match=r"more CUDA ranks than GPUs on this machine \(2\)"):
        distributed.check_launch(4, 1, parse_device("cuda"), 4, 1)
    distributed.check_launch(4, 1, parse_device("cpu"), 4, 1)
    with pytest.raises(InputError, match=r"more CPU ranks than cores \(4\)"):
        distributed.check_launch(8, 1, parse_device("cpu"), 8, 1)
    with pytest.raises(InputError, match="--device auto: --nproc supports cpu"):
        distributed.check_launch(1, 1, parse_device("auto"), 4, 1)


def test_bad_nproc_is_exit_2_without_traceback(nb, tmp_path):
    out = nb("run", "smoke", "--nproc", "3", "--out", str(tmp_path), timeout=180)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "does not split evenly" in out.stderr


def test_torchrun_command_passes_rendezvous_through():
    cmd = distributed.torchrun_command(
        4,
        {
            "nnodes": 2,
            "node_rank": 1,
            "rdzv_endpoint": "10.0.0.1:29500",
            "rdzv_backend": "c10d",
            "rdzv_id": "job7",
        },
        ["smoke"],
    )
    assert (
        "--nnodes=2" in cmd and "--node-rank=1" in cmd and "--rdzv-endpoint=10.0.0.1:29500" in cmd
    )
    assert "--standalone" not in cmd and cmd[-3:] == ["nanobench", "run", "smoke"]
    assert "--standalone" in distributed.torchrun_command(2, {}, ["smoke"])


@pytest.mark.slow  # fast in the default suite: test_leaving_does_not_wait_for_a_rank_that_never_comes
def test_a_rank_dying_keeps_rank0_rows(nb, tmp_path, two_rank_host):
    """SIGKILL rank 1 mid-run: every rank ends, rank 0's rows survive with a status."""
    proc = subprocess.Popen(
        [
            *nb.cmd,
            "run",
            "smoke",
            "--nproc",
            "2",
            "--set",
            "train.max_iters=100000",
            "--set",
            "eval.interval=100000",
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while not list((tmp_path / results.PARTIAL_DIR).glob("*/seg-*.parquet")):
            assert time.time() < deadline and proc.poll() is None, "run did not start recording"
            time.sleep(0.2)
        rank1 = next(
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if p.environ().get("RANK") == "1" and "nanobench" in " ".join(p.cmdline())
        )
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
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ], "every rank must end"


# fast in the default suite: test_faults' Ctrl-C flood (one process), and
# test_leaving_does_not_wait_for_a_rank_that_never_comes
@pytest.mark.slow
def test_ctrl_c_ends_every_rank_and_keeps_rank0_rows(nb, tmp_path, two_rank_host):
    """A terminal's Ctrl-C (SIGINT to the launcher's process group): rank 0 publishes its rows
    as `interrupted`, every process ends, exit 130, and no traceback from torchrun."""
    proc = subprocess.Popen(
        [
            *nb.cmd,
            "run",
            "smoke",
            "--nproc",
            "2",
            "--set",
            "train.max_iters=100000",
            "--set",
            "eval.interval=100000",
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
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
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]


def test_windows_launch_starts_no_session_and_sends_no_signal(monkeypatch, capsys):
    """Windows: no sessions, and os.kill/send_signal with SIGINT would terminate a worker; the
    console already gives Ctrl-C and Ctrl-Break to every process, so the launcher only notes it."""
    import sys

    handlers, sent = {}, []

    class FakeTorchrun:  # stands for the torchrun process: the user presses Ctrl-Break while it runs
        def __init__(self, cmd, **kwargs):
            self.cmd, self.kwargs, self.pid = cmd, kwargs, 4242

        def wait(self):
            handlers[21](21, None)
            return 0

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    monkeypatch.setattr(signal, "signal", lambda s, h: handlers.__setitem__(s, h))
    monkeypatch.setattr(subprocess, "Popen", FakeTorchrun)
    monkeypatch.setattr(distributed, "_torch_version", lambda: (2, 13))
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(
        psutil.Process, "send_signal", lambda self, sig: sent.append((self.pid, sig))
    )
    assert distributed.launch(2, {}, ["smoke"], 1, "cuda") == 130
    assert set(handlers) == {signal.SIGINT, 21} and sent == []
    assert "NCCL is Linux-only" in capsys.readouterr().err
    cmd = distributed.torchrun_command(2, {}, ["smoke"])
    assert (
        "--signals-to-handle=SIGINT,SIGTERM,SIGBREAK" in cmd
    )  # torchrun waits for its workers on Ctrl-Break


def test_posix_launch_forwards_the_stop_to_the_workers_only(monkeypatch):
    handlers, popen_kwargs = {}, {}

    class FakeTorchrun:
        pid = 4242

        def __init__(self, cmd, **kwargs):
            popen_kwargs.update(kwargs)

        def wait(self):
            handlers[signal.SIGTERM](signal.SIGTERM, None)
            return 0

    sent = []
    monkeypatch.setattr(signal, "signal", lambda s, h: handlers.__setitem__(s, h))
    monkeypatch.setattr(subprocess, "Popen", FakeTorchrun)
    monkeypatch.setattr(
        psutil,
        "Process",
        lambda pid: types.SimpleNamespace(
            children=lambda recursive: (
                [types.SimpleNamespace(send_signal=lambda sig: sent.append(sig))] * 2
            )
        ),
    )
    assert distributed.launch(2, {}, ["smoke"], 1) == 130
    assert popen_kwargs["start_new_session"] is True and sent == [signal.SIGINT, signal.SIGINT]
    assert not any(
        "signals-to-handle" in part for part in distributed.torchrun_command(2, {}, ["smoke"])
    )
