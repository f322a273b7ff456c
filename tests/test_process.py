"""Linux, macOS and Windows from this Linux machine: each platform's difference is injected
(sys.platform, a missing `resource` or `os.uname`, macOS's ru_maxrss unit, Windows' os.kill)
and the portable code must give the right answer without touching the POSIX call."""

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types
from collections import namedtuple

import psutil  # imported before any test pretends to be another OS
import pytest

from nanobench import process
from nanobench.store import results


@pytest.fixture(scope="module")
def every_module_imported():
    """One fresh interpreter imports every nanobench module (pkgutil) as a Windows Python
    would find it (no `resource`, `fcntl` or `os.uname`), recording every read of the
    environment with the file that made it. Gives {"modules": n, "env_reads": [(key, file)]}."""
    code = textwrap.dedent("""
        import importlib, importlib.abc, json, os, pkgutil, sys, traceback

        class NotOnWindows(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name in ("resource", "fcntl"):
                    raise ImportError(f"No module named {name!r} (blocked: not on Windows)")
                return None

        reads = []

        class Watched(type(os.environ)):
            def __getitem__(self, key):
                # the reader: the innermost frame outside this class, os and Mapping.get
                frames = traceback.extract_stack()[:-1]
                skip = ("os.py", "_collections_abc.py", "<frozen os>", "<frozen _collections_abc>")
                reader = next(f for f in reversed(frames) if not f.filename.endswith(skip))
                reads.append((repr(key), reader.filename))
                return super().__getitem__(key)

        # Third-party libraries branch on the real platform themselves (numpy reads os.uname,
        # one of them loads resource, on Linux only) and read their environment: load them
        # first, then take away from nanobench's imports what a Windows Python lacks.
        import matplotlib, numpy, pandas, psutil, pyarrow, pyarrow.parquet, rich, scipy.stats, torch
        for name in ("resource", "fcntl"):
            sys.modules.pop(name, None)
        sys.meta_path.insert(0, NotOnWindows())
        del os.uname
        e = os.environ
        os.environ = Watched(e._data, e.encodekey, e.decodekey, e.encodevalue, e.decodevalue)
        import nanobench
        names = [
            m.name
            for m in pkgutil.walk_packages(nanobench.__path__, "nanobench.")
            if not m.name.endswith("__main__")
        ]
        for name in names:
            importlib.import_module(name)
        assert "resource" not in sys.modules and "fcntl" not in sys.modules
        print(json.dumps({"modules": len(names), "env_reads": reads}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_module_imports_without_resource_fcntl_or_uname(every_module_imported):
    """What a Windows Python lacks: the import of every nanobench module must not need it."""
    assert every_module_imported["modules"] >= 40  # every module, not an empty walk


def test_no_module_reads_the_environment_when_imported(every_module_imported):
    """tests/zygote.py imports every nanobench module once for all the commands it forks,
    each of which brings its own environment: a module that read os.environ (or os.getenv)
    when imported would keep the zygote's. None of the reads may come from nanobench."""
    ours = {
        key
        for key, where in every_module_imported["env_reads"]
        if "/nanobench/" in where and "/tests/" not in where
    }
    assert ours == set()


def test_host_name_without_os_uname(monkeypatch):
    monkeypatch.delattr(os, "uname")
    monkeypatch.setattr(
        platform, "_uname_cache", None
    )  # platform caches uname(): make it ask again
    assert process.host_name() == socket.gethostname()


def _partial(tmp_path, run_id, pid):
    w = results.RunWriter(
        tmp_path, run_id, {"pid": pid, "pid_host": process.host_name()}, flush_every_iters=1
    )
    w.append([{"iter": 0, "loss": 3.0, "step_time_s": 0.01}])
    return w.partial


def test_liveness_check_sends_no_signal_windows_style_kill(monkeypatch, tmp_path):
    """On Windows os.kill(pid, 0) terminates pid: recovery must ask psutil, never os.kill."""
    killed = []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with monkeypatch.context() as m:
            m.setattr(sys, "platform", "win32")
            m.setattr(os, "kill", lambda pid, sig: killed.append(pid))  # Windows: TerminateProcess
            assert (
                results.recover(_partial(tmp_path, "r-alive", child.pid)) is None
            )  # alive: left alone
        assert child.poll() is None and killed == []
    finally:
        child.kill()
        child.wait()
    with monkeypatch.context() as m:
        m.setattr(sys, "platform", "win32")
        m.setattr(os, "kill", lambda pid, sig: killed.append(pid))
        assert (
            not process.pid_alive(child.pid)
            and not process.pid_alive(None)
            and not process.pid_alive(True)
        )
        assert (
            results.recover(_partial(tmp_path, "r-ended", child.pid)).name == "r-ended.parquet"
        )  # ended: recovered
    assert killed == []


def _rusage(ru_maxrss):
    return types.SimpleNamespace(
        RUSAGE_SELF=0, getrusage=lambda who: types.SimpleNamespace(ru_maxrss=ru_maxrss)
    )


@pytest.mark.parametrize("os_name, expected", [("linux", 5_000 * 1024), ("darwin", 5_000)])
def test_peak_rss_unit_per_os(monkeypatch, os_name, expected):
    """ru_maxrss is KiB on Linux and bytes on macOS."""
    monkeypatch.setattr(sys, "platform", os_name)
    monkeypatch.setitem(sys.modules, "resource", _rusage(5_000))
    assert process.peak_rss_bytes() == expected


def test_peak_rss_on_windows_is_psutils_peak_working_set(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` raises ImportError
    mem = namedtuple("pmem", "rss peak_wset")(100, 7_654_321)
    monkeypatch.setattr(psutil.Process, "memory_info", lambda self: mem)
    assert process.peak_rss_bytes() == 7_654_321


def test_cpu_memory_sample_without_resource(monkeypatch):
    from nanobench.measure.device import Device

    monkeypatch.setitem(
        sys.modules, "resource", None
    )  # a Python without it: the peak is the RSS then
    rss, peak, reserved = Device("cpu", None, "a CPU").memory_sample()
    assert rss > 0 and peak >= rss and reserved is None


def test_stop_signals_per_os(monkeypatch):
    assert process.stop_signals() == (signal.SIGINT, signal.SIGTERM)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)  # Windows' Ctrl-Break
    assert process.stop_signals() == (signal.SIGINT, 21)
    assert process.stop_signal_names() == "Ctrl-C or Ctrl-Break"


def test_result_file_finishing_defers_windows_stop_signals(monkeypatch):
    from nanobench.run import train

    installed = {}
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    monkeypatch.setattr(signal, "signal", lambda s, h: installed.setdefault(s, h))
    with train._DeferSignals():
        pass
    assert set(installed) == {signal.SIGINT, 21}


class FakeKernel32:
    """Stands for Windows' kernel32: records the console handler nanobench registers."""

    def __init__(self):
        self.handler = None

    def SetConsoleCtrlHandler(self, handler, add):
        self.handler = handler if add else None
        return 1


def test_console_close_stops_the_run_and_waits_for_the_file(monkeypatch):
    import _thread

    raised, finished, kernel32 = [], threading.Event(), FakeKernel32()
    assert (
        process.on_console_close(finished, kernel32=kernel32) is None
    )  # not Windows: nothing registered
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    monkeypatch.setattr(_thread, "interrupt_main", raised.append)
    keep = process.on_console_close(finished, kernel32=kernel32)
    assert keep is not None and kernel32.handler is keep
    assert kernel32.handler(0) == 0 and raised == []  # Ctrl-C: left to Python's own SIGINT handler
    threading.Timer(0.2, finished.set).start()  # the result file is complete 0.2 s later
    answer = []
    waiter = threading.Thread(target=lambda: answer.append(kernel32.handler(2)))  # CTRL_CLOSE_EVENT
    waiter.start()
    waiter.join(0.1)
    assert waiter.is_alive() and raised == [
        21
    ]  # stop asked (SIGBREAK in the main thread), still holding
    waiter.join(process.CLOSE_GRACE_S)
    assert answer == [1]


def test_the_stderr_log_writes_each_line_with_its_prefix_and_is_none_when_quiet(capsys):
    assert process.stderr_log(quiet=True) is None
    log = process.stderr_log(prefix="nanobench: ")
    log("one")
    log("two")
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "nanobench: one\nnanobench: two\n")
