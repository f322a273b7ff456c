"""Micro-benchmarks (pytest-benchmark): `make bench-micro`. Not part of `make test`
(pyproject's testpaths is tests/). They measure; only the recorder's overhead is a gate."""

import os
import tempfile
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def pytest_configure(config):
    if not os.environ.get("NANOBENCH_DATA_DIR") and SHARED_DATA.is_dir():
        os.environ["NANOBENCH_DATA_DIR"] = str(SHARED_DATA)
    # the measured-peak calibration must not write to the user's cache from a benchmark
    os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="nanobench-bench-cache-"))
