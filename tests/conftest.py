"""Shared test setup: GPU tests skip themselves without CUDA; slow tests are opt-in; `nb`
runs the command line as a user does."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    # Point the loader at the shared corpus when the environment has not chosen one.
    if not os.environ.get("NANOBENCH_DATA_DIR") and SHARED_DATA.is_dir():
        os.environ["NANOBENCH_DATA_DIR"] = str(SHARED_DATA)
    # Matmul calibrations (peaks.json) go to a per-session cache, never the user's.
    import tempfile

    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nanobench-test-cache-")


def pytest_collection_modifyitems(config, items):
    import torch

    has_cuda = torch.cuda.is_available()
    for item in items:
        # Markers, not keywords: item.keywords also holds folder names (a checkout under .../gpu/).
        if item.get_closest_marker("gpu") and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none here"))
        if item.get_closest_marker("slow") and not config.getoption("--slow"):
            item.add_marker(pytest.mark.skip(reason="slow; run with --slow"))


def _process_state() -> dict:
    """What torch and numpy keep for the whole process, which a test must hand on as it found
    it: a later test would otherwise run with another thread count, matmul precision or random
    stream depending on which tests ran before it. (Python's own `random` is left out: rich
    draws from it once, when first imported, whichever test that is; nanobench never uses it.)"""
    import numpy as np
    import torch

    return {
        "torch.get_num_threads()": torch.get_num_threads(),
        "torch's CPU random state": torch.random.get_rng_state(),
        "numpy's global random state": np.random.get_state(),
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
    }


def _restore_process_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(state["torch.get_num_threads()"])
    torch.random.set_rng_state(state["torch's CPU random state"])
    np.random.set_state(state["numpy's global random state"])
    torch.backends.cuda.matmul.allow_tf32 = state["torch.backends.cuda.matmul.allow_tf32"]
    torch.backends.cudnn.allow_tf32 = state["torch.backends.cudnn.allow_tf32"]
    torch.set_float32_matmul_precision(state["torch.get_float32_matmul_precision()"])


def _same(a, b) -> bool:
    import numpy as np

    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(np.array_equal(a, b)) if hasattr(a, "shape") or hasattr(b, "shape") else a == b


@pytest.fixture(scope="session")
def _process_state_at_start():
    return _process_state()


@pytest.fixture(autouse=True)
def leaves_the_process_as_it_found_it(_process_state_at_start):
    """Fails a test that leaves process-wide state (torch's threads, the random streams, TF32
    and matmul precision flags) other than the session found it, its fixtures' setup
    included; restores it either way, so the next test starts as the first did."""
    yield
    after = _process_state()
    changed = [
        name for name, value in _process_state_at_start.items() if not _same(value, after[name])
    ]
    if changed:
        _restore_process_state(_process_state_at_start)
        pytest.fail(f"the test left {', '.join(changed)} changed", pytrace=False)


# Environment a forked child can take on after torch is imported: anything else is read at
# interpreter or library start, so a command given it runs in a fresh interpreter.
_FORKABLE_ENV = re.compile(r"NANOBENCH_\w*|NO_COLOR|COLUMNS|LINES|TERM|HOME|XDG_\w+|TMPDIR|CXX|CC")


def _forkable(key: str) -> bool:
    """Whether a command given this environment variable can run forked from the zygote.
    CUDA_VISIBLE_DEVICES is read when CUDA starts, which a CPU-only torch never does."""
    import torch

    if key == "CUDA_VISIBLE_DEVICES":
        return torch.version.cuda is None
    return bool(_FORKABLE_ENV.fullmatch(key))


class Nanobench:
    """`python -m nanobench ARGS` as a user runs it: the output captured as text, `env` added to
    this process's environment, the exit status. By default the command runs in a child forked
    from tests/zygote.py, an interpreter that has imported torch, the other heavy libraries
    and nanobench's modules once (the same command, without their import time in every
    test); with `fresh=True`, or an `env` key that only a starting interpreter reads (see
    _forkable), in a fresh interpreter. `cmd` is the fresh command itself, for tests that
    start a run with Popen and signal it."""

    cmd = (sys.executable, "-m", "nanobench")

    def __init__(self):
        import threading

        self._zygote = None
        self._one_at_a_time = threading.Lock()  # the zygote serves one command at a time

    def __call__(
        self, *args, env=None, cwd=None, timeout=120, check=False, fresh=False
    ) -> subprocess.CompletedProcess:
        argv = [*map(str, args)]
        full_env = {**os.environ, **(env or {})}
        # Linux only: macOS forbids forking a process that has loaded its Objective-C
        # runtime (torch's Metal backend does), and Windows cannot fork.
        forkable = sys.platform == "linux" and all(_forkable(k) for k in env or {})
        if fresh or not forkable or os.environ.get("NANOBENCH_TESTS_FRESH") == "1":
            done = subprocess.run(
                [*self.cmd, *argv],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=full_env,
                cwd=cwd,
            )
        else:
            with self._one_at_a_time:
                done = self._forked(argv, full_env, cwd, timeout)
        if check:
            done.check_returncode()
        return done

    def _forked(self, argv, env, cwd, timeout) -> subprocess.CompletedProcess:
        import json
        import signal
        import tempfile

        if self._zygote is None or self._zygote.poll() is not None:
            self._zygote = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("zygote.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._replies = b""
        with tempfile.TemporaryDirectory(prefix="nanobench-cli-") as folder:
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"argv": argv, "env": env, "cwd": str(cwd) if cwd else None}
            request |= {"stdout": str(out), "stderr": str(err)}
            self._zygote.stdin.write(json.dumps(request).encode() + b"\n")
            self._zygote.stdin.flush()
            pid = json.loads(self._reply(60))["pid"]
            try:
                status = json.loads(self._reply(timeout))["status"]
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self._reply(60)
                raise subprocess.TimeoutExpired(["nanobench", *argv], timeout) from None
            return subprocess.CompletedProcess(
                ["nanobench", *argv], status, out.read_text(), err.read_text()
            )

    def _reply(self, timeout) -> bytes:
        """The zygote's next line, read from its raw pipe (a buffered reader could hold a line
        that select() would then wait for in vain)."""
        import select

        fd = self._zygote.stdout.fileno()
        while b"\n" not in self._replies:
            if not select.select([fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired("zygote", timeout)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("tests/zygote.py ended; its stderr says why")
            self._replies += chunk
        line, self._replies = self._replies.split(b"\n", 1)
        return line

    def close(self):
        if self._zygote is not None:
            self._zygote.stdin.close()
            self._zygote.wait(timeout=30)


@pytest.fixture
def one_thread():
    """One torch thread for the test (the same summation order every time, the thread count a
    cache key holds); the process's own count after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def own_random_stream():
    """For a test that draws from torch's global stream (default layer initialisers,
    torch.randn): the process's stream as it was, after it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        yield


def cores_for_ranks(n: int) -> None:
    """Skip, saying why, where this host has fewer cores than `--nproc n` CPU ranks: nanobench
    refuses more CPU ranks than cores (run/distributed.check_launch), so such a host cannot
    run the test, and must not fail it."""
    cores = os.cpu_count() or 1
    if cores < n:
        pytest.skip(f"--nproc {n} needs {n} cores (one per CPU rank); this host has {cores}")


@pytest.fixture(scope="session")
def two_rank_host():
    cores_for_ranks(2)


@pytest.fixture(scope="session")
def nb():
    runner = Nanobench()
    yield runner
    runner.close()


# ---- hand-made result files for the board's tests (written through the real writer) ----------

TOKENS_PER_STEP = 768


def handmade_run(
    folder,
    run_id: str,
    *,
    device_type: str = "cpu",
    device_name: str = "AMD EPYC",
    dtype: str = "fp32",
    seed: int | None = 1,
    step_s: float = 0.1,
    vals: dict | None = None,
    scenario: dict | None = None,
    sha: str = "a" * 64,
    torch: str = "2.13.0",
    env: dict | None = None,
    options: dict | None = None,
    noise: str | None = None,
    flops_per_iter: float | None = None,
    peak_flops: dict | None = None,
    status: str = "completed",
    rows_hook=None,
):
    """A finished run of 8 steps (iterations 0-7, the first two warm-up) and a final row 8,
    every step `step_s` seconds, evaluations `vals` ({iter: val loss}; default 3.0 @0, 2.0 @4,
    1.6 @8), written through RunWriter. `env` is merged into a CPU machine's environment;
    `rows_hook(rows)` may edit the rows before they are written."""
    from nanobench.store.meta import machine_record
    from nanobench.store.results import RunWriter

    vals = vals or {0: 3.0, 4: 2.0, 8: 1.6}
    environment = {
        "hostname": "localhost",
        "os": "Linux-6.8.0-x86_64-with-glibc2.39",
        "os_family": "Linux",
        "machine_arch": "x86_64",
        "machine_token": "0" * 16,
        "cpu_model": device_name if device_type == "cpu" else "AMD EPYC 9654",
        "cpu_flags": ["avx", "avx2", "fma"],
        "cpu_physical_cores": 2,
        "cpu_logical_cores": 2,
        "memory_total_bytes": 24 * 2**30,
        "gpus": [{"name": device_name, "memory_bytes": 80 * 2**30}]
        if device_type == "cuda"
        else [],
        "torch": torch,
        "nanobench": "0.1.0",
        **(env or {}),
    }
    device = {"spec": device_type, "type": device_type, "name": device_name}
    meta = {
        "scenario": scenario
        or {
            "name": "tiny",
            "targets": {"val_loss": [2.0, 1.5]},
            "train": {"learning_rate": 1e-3, "max_iters": 8},
            "eval": {"interval": 4},
        },
        "options": {
            "device": device_type,
            "dtype": dtype,
            "compile": False,
            "seed": seed,
            "overrides": [],
            **(options or {}),
        },
        "device": device,
        "dataset": {"name": "fixture", "sha256": sha},
        "environment": environment,
        "machine": machine_record(environment, device),
    }
    if flops_per_iter is not None:
        meta["flops"] = {"per_iter": flops_per_iter}
    if peak_flops is not None:
        meta["peak_flops"] = peak_flops
    if noise:
        meta["noise"] = {"verdict": noise, "reasons": [{"text": "other processes used 1.9 cores"}]}
    rows, train = [], 0.0
    for i in range(8):
        train += step_s
        rows.append(
            {
                "iter": i,
                "loss": 3.0 - 0.1 * i,
                "step_time_s": step_s,
                "train_time_s": train,
                "wall_time_s": train + 0.5,
                "tokens": TOKENS_PER_STEP * (i + 1),
                "tokens_per_s": TOKENS_PER_STEP / step_s,
                "mem_peak_bytes": 100 * 2**20,
                "eval_val_loss": vals.get(i),
                "warmup": i < 2,
            }
        )
    rows.append(
        {
            "iter": 8,
            "train_time_s": train,
            "wall_time_s": train + 0.5,
            "tokens": TOKENS_PER_STEP * 8,
            "eval_val_loss": vals.get(8),
            "warmup": False,
        }
    )
    if rows_hook:
        rows_hook(rows)
    w = RunWriter(folder, run_id, meta)
    w.append(rows)
    return w.finish(status)


@pytest.fixture
def handmade():
    return handmade_run
