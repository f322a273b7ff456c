"""`nanobench explain --run`: make the missing rungs of a ladder on this machine, within a time
budget. The plan (analyze/explain.py: which runs, in which order, with which command) is made
above this layer; here each planned command runs as its own `nanobench run` process, so what
runs is exactly the command explain printed.

A run that would outlast what is left of the budget is stopped with SIGTERM, which completes
its result file with status `interrupted` (run/train.py): nothing recorded is lost, and its
steps still serve as a probe for a projection.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass

GRACE_S = 30.0  # after SIGTERM: time to finish the result file before the process is killed


@dataclass(frozen=True)
class Done:
    argv: tuple[str, ...]
    returncode: int | None  # None: not started (no budget left)
    seconds: float
    stopped: bool  # stopped at the end of the budget


def run_commands(
    commands: list[tuple[str, ...]], budget_s: float, log=print, python: str = sys.executable
) -> list[Done]:
    """Run each `nanobench run` argument list in turn while budget is left; the one running when
    it ends is stopped (SIGTERM: its result file is completed as interrupted)."""
    deadline = time.monotonic() + budget_s
    done = []
    for argv in commands:
        left = deadline - time.monotonic()
        if left <= 1:
            log(f"not run (budget spent): nanobench {' '.join(argv)}")
            done.append(Done(argv, None, 0.0, False))
            continue
        log(f"running ({left:.0f} s of budget left): nanobench {' '.join(argv)}")
        t0 = time.monotonic()
        # its outcome lines go to stderr: explain's stdout is its own answer (--json stays JSON)
        proc = subprocess.Popen([python, "-m", "nanobench", "run", *argv, "--quiet"], stdout=2)
        stopped = False
        try:
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            raise
        done.append(Done(argv, proc.returncode, time.monotonic() - t0, stopped))
    return done
