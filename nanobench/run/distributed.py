"""Data-parallel runs through PyTorch's own launcher (torchrun) and DistributedDataParallel.

`nanobench run --nproc N` re-launches itself under `python -m torch.distributed.run`;
each worker finds its rank in the environment torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK) and joins the process group here. The scenario's global batch is split
across ranks, so the loss curve does not depend on N beyond reduction order. Rank 0
records; the step time of an iteration is the slowest rank's.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

from nanobench.errors import InputError
from nanobench.measure.device import DeviceSpec, cuda_device_count

CHILD_ENV = "NANOBENCH_DDP_CHILD"  # set by the launcher: this process is a torchrun worker
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

    def shard(self, batch_size: int) -> slice:
        """This rank's slice of each micro-batch (B,): contiguous, equal-sized."""
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def mean(self, value):
        """All-reduce average of a 0-d tensor (the step's loss) across ranks."""
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(value, op=tdist.ReduceOp.AVG if self.backend == "nccl" else tdist.ReduceOp.SUM)
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

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend,
                "nnodes": int(os.environ.get("GROUP_WORLD_SIZE", "1") or 1),
                "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world_size)))}


def from_environment(device) -> Dist | None:
    """Join the process group when this process is a nanobench torchrun worker; `device`
    (a Device) chooses the backend."""
    if not os.environ.get(CHILD_ENV) or int(os.environ.get("WORLD_SIZE", "1")) < 1:
        return None
    import torch.distributed as tdist

    backend = device.ddp_backend
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), backend)


def shutdown(dist: Dist | None) -> None:
    if dist is None:
        return
    import torch.distributed as tdist

    if tdist.is_initialized():
        # Leave together: a rank that tears its group down while rank 0 is still writing
        # its result file can abort at exit (gloo threads), and torchrun then kills rank 0.
        try:
            tdist.barrier()
        except Exception:  # a peer is gone (the rank-died path): nothing to wait for
            pass
        tdist.destroy_process_group()


def is_comm_error(exc: BaseException) -> bool:
    """A collective failed: another rank died or the network broke."""
    import torch.distributed as tdist

    return isinstance(exc, getattr(tdist, "DistError", ())) or any(
        word in str(exc) for word in ("Connection closed by peer", "Connection reset", "NCCL", "Gloo", "gloo")
    )


def check_launch(nproc: int, nnodes: int, device: DeviceSpec, batch_size: int, grad_accum: int) -> None:
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
            raise InputError(f"--device {device.text}: with --nproc each rank takes cuda:LOCAL_RANK; use --device cuda")
    elif device.kind == "cpu":
        cores = os.cpu_count() or 1
        if nproc > cores:
            raise InputError(f"--nproc {nproc}: more CPU ranks than cores ({cores}); each rank would share a core")
    else:
        raise InputError(f"--device {device.text}: --nproc supports cpu (gloo) and cuda (nccl)")


def torchrun_command(nproc: int, rdzv: dict, run_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run [launcher options] -m nanobench run ...`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    if rdzv.get("rdzv_endpoint") or (rdzv.get("nnodes") or 1) > 1:
        for key in ("nnodes", "node_rank", "rdzv_backend", "rdzv_endpoint", "rdzv_id"):
            if rdzv.get(key) is not None:
                cmd.append(f"--{key.replace('_', '-')}={rdzv[key]}")
    else:
        cmd.append("--standalone")  # one machine: torchrun picks a free local port
    return [*cmd, "-m", "nanobench", "run", *run_args]


def launch(nproc: int, rdzv: dict, run_args: list[str], threads: int | None) -> int:
    """Run `nanobench run RUN_ARGS` under torchrun, one worker per rank, and wait for it;
    returns its exit code (130 when stopped by Ctrl-C or SIGTERM). Rank 0 prints the outcome."""
    import signal
    import subprocess

    env = dict(os.environ, **{CHILD_ENV: "1"})
    if threads is None and "OMP_NUM_THREADS" not in env:  # share the cores out, not 1 each
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = torchrun_command(nproc, rdzv, run_args)
    print(f"launching {nproc} ranks: {' '.join(cmd[1:])}", file=sys.stderr)
    # torchrun gets a session of its own, so a Ctrl-C here does not reach it (it would end its
    # workers from outside and print its own traceback). The launcher passes the stop on to
    # the workers: each ends its loop, rank 0 completes its file as `interrupted`, and every
    # worker exits 0, so torchrun ends quietly.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopped = []

    def stop_workers(signum=None, frame=None):
        import psutil

        stopped.append(signum)
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                child.send_signal(signal.SIGINT)
            except psutil.Error:
                pass

    signal.signal(signal.SIGINT, stop_workers)
    signal.signal(signal.SIGTERM, stop_workers)
    rc = proc.wait()
    return 130 if stopped else rc
