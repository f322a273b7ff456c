"""Processes as the operating system sees them, the same way on Linux, macOS and Windows:
this host's name, whether a process still lives, this process's peak memory, which signals
ask a run to stop, and the log lines a process writes on its stderr.

The POSIX calls that differ by platform live here, each behind the platform it belongs to:
`resource` does not exist on Windows, `os.uname` neither, and `os.kill(pid, 0)` there does
not probe a process but ends it. This module is a leaf: it imports nothing from nanobench.
"""

from __future__ import annotations

import platform
import signal
import sys


def stderr_log(quiet: bool = False, prefix: str = ""):
    """The `log` a function takes (a callable of one line, or None for silence): each line on
    this process's stderr with `prefix`, flushed at once, so a job's log file or a parent
    reading the pipe sees it as it happens; None when `quiet`."""
    if quiet:
        return None

    def log(text: str) -> None:
        print(f"{prefix}{text}", file=sys.stderr, flush=True)

    return log


def host_name() -> str:
    """This machine's network name (uname's nodename on Linux/macOS, the computer name on Windows)."""
    return platform.node()


def pid_alive(pid) -> bool:
    """Whether process `pid` exists and has not ended, without sending it anything.

    psutil asks the process table (/proc, sysctl, OpenProcess); a zombie (ended, not yet
    reaped by its parent) counts as ended. A process we may not inspect exists."""
    import psutil

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory in bytes, or None where the OS keeps no peak.

    Windows: psutil's peak working set. Linux and macOS: getrusage's ru_maxrss, which Linux
    counts in KiB and macOS in bytes."""
    if sys.platform == "win32":
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", None)
    try:
        import resource
    except ImportError:  # a POSIX Python built without it
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def stop_signals() -> tuple[int, ...]:
    """The signals that ask a run to stop and complete its result file.

    Ctrl-C (SIGINT) everywhere. POSIX: SIGTERM, what `kill`, systemd and batch schedulers
    send. Windows has no SIGTERM from outside: Ctrl-Break and a closing console arrive as
    SIGBREAK (see `on_console_close` for the close)."""
    if sys.platform == "win32":
        return (signal.SIGINT, signal.SIGBREAK)
    return (signal.SIGINT, signal.SIGTERM)


def stop_signal_names() -> str:
    """The stop signals in words, for messages: 'Ctrl-C or SIGTERM' / 'Ctrl-C or Ctrl-Break'."""
    return "Ctrl-C or Ctrl-Break" if sys.platform == "win32" else "Ctrl-C or SIGTERM"


CONSOLE_CLOSE_EVENTS = (2, 5, 6)  # CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT
CLOSE_GRACE_S = 4.5  # Windows ends a process about 5 s after a close event, whatever it does


def on_console_close(finished, *, kernel32=None):
    """Windows: a closing console window (or logoff, shutdown) stops the run like Ctrl-Break.

    Windows ends the process as soon as the console handlers return, so the SIGBREAK that the
    C runtime raises for a close would never reach Python. This handler raises SIGBREAK in the
    main thread (its Python handler stops the run) and holds the process until `finished` (a
    threading.Event) is set, i.e. the result file is complete, or the grace Windows gives runs
    out. Returns the handler, which the caller keeps (ctypes must not free it); None elsewhere.
    """
    if sys.platform != "win32":
        return None
    import _thread
    import ctypes

    def handle(event: int) -> int:
        if event not in CONSOLE_CLOSE_EVENTS:
            return 0  # Ctrl-C, Ctrl-Break: the next handler (Python's signals) takes them
        _thread.interrupt_main(signal.SIGBREAK)
        finished.wait(CLOSE_GRACE_S)
        return 1

    # the stdcall type exists on Windows only
    functype = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
    handler = functype(ctypes.c_int, ctypes.c_uint)(handle)
    (kernel32 or ctypes.windll.kernel32).SetConsoleCtrlHandler(handler, True)
    return handler
