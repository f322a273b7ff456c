"""What the ranks of tests/run/test_distributed.py run: two processes joined by gloo
through a file rendezvous (no torchrun), each calling one function below with its rank and
a Dist. Kept apart from the test module so that a rank imports torch and nanobench only."""

import time

from nanobench.run import distributed


def main(rank, rendezvous, target, answers):
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        value = globals()[target](rank, distributed.Dist(rank, 2, rank, "gloo"))
    except Exception as exc:
        value = f"error on rank {rank}: {type(exc).__name__}: {exc}"
    if value is not None:
        answers.put((rank, value))


class Meter:
    """Stands for one rank's energy counter (NVML on its own GPU): reads what it was given."""

    source, reason = "stand-in", None

    def __init__(self, joules):
        self.joules = joules

    def read_j(self):
        return self.joules

    def describe(self):
        return {"source": self.source, "reason": None}


class Device:
    """Stands for a Device: only its energy counter and whether each rank has its own."""

    def __init__(self, energy_per_rank, joules):
        self.energy_per_rank, self.joules = energy_per_rank, joules

    def energy_meter(self):
        return Meter(self.joules)


def energy_reads(rank, dist):
    own = dist.energy_meter(Device(True, 10.0 * (rank + 1)))  # a GPU each: 10 J and 20 J
    shared = dist.energy_meter(
        Device(False, 10.0 * (rank + 1))
    )  # one CPU package that both ranks read
    blind = dist.energy_meter(
        Device(True, None if rank == 1 else 5.0)
    )  # rank 1 cannot read its GPU
    return own.read_j(), shared.read_j(), blind.read_j(), own.describe()["job"]


def rank1_never_leaves(rank, dist):
    if rank == 1:
        time.sleep(120)  # alive but never at the barrier: a hung peer (the test ends it)
        return None
    t0 = time.perf_counter()
    distributed.shutdown(dist, timeout_s=2)
    return time.perf_counter() - t0


def rank1_hangs_in_the_loop(rank, dist):
    """Rank 1 alive but never at the next collective (under NCCL a dead peer looks like this
    to its peers: nothing fails, the collective waits). After `steady`, rank 0's collective
    gives up after its timeout and fails as a communication error."""
    import torch

    if rank == 1:
        time.sleep(120)  # the test ends it
        return None
    dist.steady(timeout_s=2)
    t0 = time.perf_counter()
    try:
        dist.mean(torch.tensor(1.0))
    except Exception as exc:
        return time.perf_counter() - t0, distributed.is_comm_error(exc), str(exc).splitlines()[0]
    return "the collective returned without its peer"
