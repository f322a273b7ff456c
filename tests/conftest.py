"""Shared test setup: GPU tests skip themselves without CUDA; slow tests are opt-in."""

import os
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
