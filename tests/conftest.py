"""Shared test setup: GPU tests skip themselves without CUDA; slow tests are opt-in; `nb`
runs the command line as a user does."""

import os
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


class Nanobench:
    """`python -m nanobench ARGS` in a fresh interpreter, as a user runs it: the output
    captured as text, `env` added to this process's environment. `cmd` is the command
    itself, for tests that start a run with Popen and signal it."""

    cmd = (sys.executable, "-m", "nanobench")

    def __call__(
        self, *args, env=None, cwd=None, timeout=120, check=False
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.cmd, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=check,
        )


@pytest.fixture(scope="session")
def nb():
    return Nanobench()
