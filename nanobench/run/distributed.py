"""Data-parallel runs through PyTorch's own launcher (torchrun) and DistributedDataParallel.

`nanobench run --nproc N` re-launches itself under `python -m torch.distributed.run`;
each worker finds its rank in the environment torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK) and joins the process group here. The scenario's global batch is split
across ranks, so the loss curve does not depend on N beyond reduction order. Rank 0
records; the step time of an iteration is the slowest rank's.

A rank that dies: under gloo its peers' next collective fails at once (the connection
closes). Under NCCL nothing fails: a dead peer's collective waits on the GPU for ever, and the
next stop check is itself a collective with it. So once the warm-up (compilation) is over,
every rank shortens its process group's collective timeout to STEADY_TIMEOUT_S (`Dist.steady`),
and the launcher asks NCCL's watchdog to abort the communicator at that timeout rather than
end the process (TORCH_NCCL_ASYNC_ERROR_HANDLING=2, "abort the communicator only", in torch's
ProcessGroupNCCL.hpp; torchrun otherwise gives each worker 1, which tears the process down:
elastic/agent/server/local_elastic_agent.py, and so would torch's own default, 3). The
launcher's value reaches the workers because torchrun's agent reads it from its own
environment. The waiting collective then
fails in rank 0 like gloo's, and rank 0 finishes its file as `failed` before torchrun's SIGKILL
(30 s after its SIGTERM to the surviving ranks: elastic/multiprocessing/api.py, `_close`).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from nanobench import process
from nanobench.errors import InputError
from nanobench.measure.device import DeviceRequest, cuda_device_count

CHILD_ENV = "NANOBENCH_DDP_CHILD"  # set by the launcher: this process is a torchrun worker
# How long a rank waits at the end for the others (rank 0 may still be writing its result and
# sampling text); past it, a rank that never came is taken as dead and this one leaves anyway.
SHUTDOWN_TIMEOUT_S = 300.0
# A collective's longest wait once the warm-up is over: short enough that rank 0 finishes its
# file within torchrun's 30 s grace, long enough for any rank's read window of queued steps
# (the timeout runs from when the CPU queues the collective; `steady` lengthens it for slow steps).
STEADY_TIMEOUT_S = 15.0
# the launcher's choice for NCCL's watchdog (see the module's docstring); a user's own setting wins
NCCL_ERROR_HANDLING = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "2"}
_stop = threading.Event()


def request_stop(signum=None, frame=None) -> None:
    """A worker's SIGINT/SIGTERM handler: note the stop; `Dist.should_stop` shares it."""
    _stop.set()


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    side_group: object = (
        None  # gloo group for the leaving barrier under NCCL (None: the default group)
    )

    def steady(self, step_s: float = 0.0, read_every: int = 1, timeout_s: float | None = None):
        """After the warm-up: a collective now waits at most max(timeout_s, 3 x a read window of
        `read_every` steps of `step_s`) for the other ranks, then fails in this rank (gloo: it
        raises; NCCL: the watchdog aborts the communicator and the next collective raises).
        Every rank calls it at the same iteration. Returns the timeout set, in seconds."""
        from datetime import timedelta

        from torch.distributed.distributed_c10d import _set_pg_timeout

        seconds = max(STEADY_TIMEOUT_S if timeout_s is None else timeout_s, 3 * read_every * step_s)
        _set_pg_timeout(timedelta(seconds=seconds))
        return seconds

    def shard(self, batch_size: int) -> slice:
        """This rank's slice of each micro-batch (B,): contiguous, equal-sized."""
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def mean(self, value):
        """All-reduce average of a 0-d tensor (the step's loss) across ranks."""
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(
            value, op=tdist.ReduceOp.AVG if self.backend == "nccl" else tdist.ReduceOp.SUM
        )
        return value if self.backend == "nccl" else value / self.world_size  # gloo has no AVG

    def should_stop(self) -> bool:
        """Whether any rank was asked to stop: every rank calls it at the same read window
        and gets the same answer, so all leave the loop at the same iteration."""
        import torch
        import torch.distributed as tdist

        flag = torch.tensor([1.0 if _stop.is_set() else 0.0])
        if self.backend == "nccl":
            flag = flag.cuda(self.local_rank)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag.item())

    def gather_step_times(self, step_times_s: list[float]) -> list[list[float]]:
        """Every rank's step times for the same window: (world, window) as nested lists."""
        import torch
        import torch.distributed as tdist

        local = torch.tensor(step_times_s, dtype=torch.float64)
        if self.backend == "nccl":
            local = local.cuda(self.local_rank)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        tdist.all_gather(gathered, local)
        return [g.cpu().tolist() for g in gathered]

    def energy_meter(self, device) -> JobEnergyMeter:
        """The job's energy meter on this rank: the device's own counter, summed over ranks
        by every read (see JobEnergyMeter)."""
        return JobEnergyMeter(device.energy_meter(), self, per_rank=device.energy_per_rank)

    def describe(self) -> dict:
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "nnodes": int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1),
            "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world_size))),
        }


class JobEnergyMeter:
    """The energy of a whole data-parallel job, not of rank 0's device alone.

    Every rank reads its meter at the same point of each read window (Recorder.record) and
    the readings are all-reduced: one counter per GPU is summed over ranks; a counter the
    node's ranks share (the CPU package) is counted by local rank 0 only. Any counted rank
    that cannot read makes the window's job energy None: a part is not the whole."""

    def __init__(self, meter, dist: Dist, per_rank: bool):
        self._meter, self._dist, self._per_rank = meter, dist, per_rank
        self._counted = per_rank or dist.local_rank == 0  # a shared counter: once per node
        self.source, self.reason = meter.source, meter.reason

    def read_j(self) -> float | None:
        import torch
        import torch.distributed as tdist

        joules = self._meter.read_j() if self._counted else 0.0
        # (sum, missing)
        both = torch.tensor([joules or 0.0, 1.0 if joules is None else 0.0], dtype=torch.float64)
        if self._dist.backend == "nccl":
            both = both.cuda(self._dist.local_rank)
        tdist.all_reduce(both, op=tdist.ReduceOp.SUM)
        total, missing = both.tolist()
        return None if missing else total

    def describe(self) -> dict:
        job = (
            f"summed over the {self._dist.world_size} ranks' own counters"
            if self._per_rank
            else "one counter per node, shared by its ranks: read by local rank 0, summed over nodes"
        )
        return dict(self._meter.describe(), job=job)


def from_environment(device) -> Dist | None:
    """Join the process group when this process is a nanobench torchrun worker; `device`
    (a Device) chooses the backend."""
    if not os.environ.get(CHILD_ENV) or int(os.environ.get("WORLD_SIZE", "1")) < 1:
        return None
    import torch.distributed as tdist

    backend = device.ddp_backend
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    # NCCL's barrier cannot time out (it hangs on a dead rank); gloo's monitored one can
    side = tdist.new_group(backend="gloo") if backend == "nccl" else None
    return Dist(
        tdist.get_rank(),
        tdist.get_world_size(),
        int(os.environ.get("LOCAL_RANK", "0")),
        backend,
        side,
    )


def shutdown(
    dist: Dist | None, peer_failed: bool = False, timeout_s: float = SHUTDOWN_TIMEOUT_S
) -> None:
    """Leave the process group together, waiting at most `timeout_s` for the other ranks;
    with `peer_failed` (this rank saw a collective fail) there is no one to wait for."""
    if dist is None:
        return
    from datetime import timedelta

    import torch.distributed as tdist

    if tdist.is_initialized():
        # Leave together: a rank that tears its group down while rank 0 is still writing
        # its result file can abort at exit (gloo threads), and torchrun then kills rank 0.
        # A monitored barrier (gloo, also under NCCL through the side group) raises after
        # timeout_s instead of hanging, so a dead rank cannot keep the others from exiting
        # with the status their result already records.
        if not peer_failed:
            try:
                tdist.monitored_barrier(group=dist.side_group, timeout=timedelta(seconds=timeout_s))
            except Exception:  # a peer is gone or never came: nothing more to wait for
                pass
        elif dist.backend == "nccl":
            # the communicator may wait on a dead peer: abort it (torch's NCCL-only call), a
            # plain destroy could wait again
            from torch.distributed.distributed_c10d import _abort_process_group

            try:
                _abort_process_group()
                return
            except Exception:
                pass
        tdist.destroy_process_group()


def is_comm_error(exc: BaseException) -> bool:
    """A collective failed: another rank died or the network broke."""
    import torch.distributed as tdist

    return isinstance(exc, getattr(tdist, "DistError", ())) or any(
        word in str(exc)
        for word in ("Connection closed by peer", "Connection reset", "NCCL", "Gloo", "gloo")
    )


def check_launch(
    nproc: int, nnodes: int, device: DeviceRequest, batch_size: int, grad_accum: int
) -> None:
    """Refuse, before anything starts, a world the device or the batch cannot take."""
    if nproc < 1:
        raise InputError(f"--nproc {nproc}: must be >= 1")
    world = nproc * nnodes
    if batch_size % world:
        raise InputError(
            f"--nproc {nproc}: the global batch (train.batch_size = {batch_size}, x grad_accum {grad_accum}) "
            f"does not split evenly over {world} ranks; choose N dividing {batch_size}"
        )
    if device.kind == "cuda":
        have = cuda_device_count()
        if nproc > have:
            raise InputError(f"--nproc {nproc}: more CUDA ranks than GPUs on this machine ({have})")
        if device.index is not None:
            raise InputError(
                f"--device {device.text}: with --nproc each rank takes cuda:LOCAL_RANK; use --device cuda"
            )
    elif device.kind == "cpu":
        cores = os.cpu_count() or 1
        if nproc > cores:
            raise InputError(
                f"--nproc {nproc}: more CPU ranks than cores ({cores}); each rank would share a core"
            )
    else:
        raise InputError(
            f"--device {device.text}: --nproc supports cpu (gloo) and cuda (nccl on Linux; "
            f"gloo elsewhere, NCCL is Linux-only)"
        )


def torchrun_command(nproc: int, rdzv: dict, run_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run [launcher options] -m nanobench run ...`."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
    ]
    if rdzv.get("rdzv_endpoint") or (rdzv.get("nnodes") or 1) > 1:
        for key in ("nnodes", "node_rank", "rdzv_backend", "rdzv_endpoint", "rdzv_id"):
            if rdzv.get(key) is not None:
                cmd.append(f"--{key.replace('_', '-')}={rdzv[key]}")
    else:
        cmd.append("--standalone")  # one machine: torchrun picks a free local port
    if sys.platform == "win32" and _torch_version() >= (2, 9):
        # Ctrl-Break reaches every process of the console; without a handler torchrun would
        # die at once instead of waiting for its workers to finish their result file.
        cmd.append("--signals-to-handle=SIGINT,SIGTERM,SIGBREAK")
    return [*cmd, "-m", "nanobench", "run", *run_args]


def _torch_version() -> tuple[int, int]:
    """torch's (major, minor) without importing it; torchrun's --signals-to-handle is 2.9+."""
    from importlib.metadata import version

    major, minor = version("torch").split(".")[:2]
    return int(major), int(minor)


def launch(
    nproc: int,
    rdzv: dict,
    run_args: list[str],
    threads: int | None,
    device_kind: str = "cpu",
    env: dict | None = None,
) -> int:
    """Run `nanobench run RUN_ARGS` under torchrun, one worker per rank, and wait for it;
    returns its exit code (130 when stopped by Ctrl-C or SIGTERM, Ctrl-Break on Windows).
    Rank 0 prints the outcome. env: more environment for the workers (the plan and cell ids)."""
    import signal
    import subprocess

    env = {**NCCL_ERROR_HANDLING, **os.environ, **(env or {}), CHILD_ENV: "1"}
    if threads is None and "OMP_NUM_THREADS" not in env:  # share the cores out, not 1 each
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = torchrun_command(nproc, rdzv, run_args)
    print(f"launching {nproc} ranks: {' '.join(cmd[1:])}", file=sys.stderr)
    if sys.platform != "linux" and device_kind == "cuda":
        print(
            "NCCL is Linux-only: the CUDA ranks use gloo here (slower all-reduce)", file=sys.stderr
        )
    # POSIX: torchrun gets a session of its own, so a Ctrl-C here does not reach it (it would
    # end its workers from outside and print its own traceback). The launcher passes the stop
    # on to the workers: each ends its loop, rank 0 completes its file as `interrupted`, and
    # every worker exits 0, so torchrun ends quietly.
    # Windows has no sessions and no signal to send to one process (os.kill with SIGINT there
    # terminates it): the console already delivers Ctrl-C and Ctrl-Break to every process
    # attached to it, workers included, so the launcher only notes the stop.
    windows = sys.platform == "win32"
    proc = subprocess.Popen(cmd, env=env, **({} if windows else {"start_new_session": True}))
    stopped = []

    def stop_workers(signum=None, frame=None):
        import psutil

        stopped.append(signum)
        if windows:
            return
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                child.send_signal(signal.SIGINT)
            except psutil.Error:
                pass

    for signum in process.stop_signals():
        signal.signal(signum, stop_workers)
    rc = proc.wait()
    return 130 if stopped else rc
