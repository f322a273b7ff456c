"""A fork server for the command-line tests: `python -m nanobench ARGS` without paying for
torch's import in every test (about 1.5 s of each command's 2 s here).

Run as a script by tests/conftest.py, it imports the heavy third-party libraries (torch,
numpy, pandas, pyarrow, scipy, rich) and every nanobench module once, none of which reads
the environment when imported (tests/test_process.py holds nanobench to that), and then serves one
request per line on stdin, a JSON object {argv, env, cwd, stdout, stderr}:

- it forks; the child takes the request's environment and working folder, points fds 0/1/2
  at /dev/null and the two output files, and runs `nanobench` as `python -m` would (runpy,
  `__main__`), and leaves with the status and output an interpreter would (SystemExit's
  code, or an uncaught exception's traceback on stderr and status 1) after the atexit
  handlers, skipping only the teardown of the imported modules;
- it writes `{"pid": PID}` when the child starts and `{"status": CODE}` when it ends (a
  negative code is the signal that killed it, as subprocess reports it).

What a forked child cannot stand for, the caller runs in a real fresh interpreter instead:
anything decided at interpreter or library start (PYTHON*, LD_*, OMP/MKL thread counts,
CUDA_VISIBLE_DEVICES), signals sent to the command, and import-time behaviour.
"""

import atexit
import importlib
import json
import os
import pkgutil
import runpy
import sys

import numpy  # noqa: F401
import pandas  # noqa: F401
import pyarrow.parquet  # noqa: F401
import rich.console  # noqa: F401
import scipy.stats  # noqa: F401
import torch  # noqa: F401  (imported only: no op runs here, so no thread pool exists to fork)

import nanobench


def _import_nanobench() -> None:
    """Every nanobench module, imported once: none reads the environment or the machine when
    imported (tests/test_process.py holds them to it), so a command
    forked with another environment gets the same modules a fresh interpreter would make."""
    for found in pkgutil.walk_packages(nanobench.__path__, "nanobench."):
        if not found.name.endswith("__main__"):
            importlib.import_module(found.name)


def _child(request: dict) -> None:
    os.environ.clear()
    os.environ.update(request["env"])
    if request.get("cwd"):
        os.chdir(request["cwd"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115  (the child's own stdin: /dev/null)
    sys.argv = ["nanobench", *request["argv"]]
    try:
        runpy.run_module("nanobench", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as leaving:
        code = _exit_status(leaving.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())  # the traceback a fresh interpreter would print
        code = 1
    # What interpreter shutdown does that a command can see (atexit handlers, flushed
    # output), without tearing down torch's modules, which takes most of a second.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_status(code) -> int:
    """The status Python leaves with for `raise SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def serve() -> None:
    # The protocol goes through fds 0 and 1 directly, so Python's buffered sys.stdout holds
    # nothing a child would inherit and flush into its own output.
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            reply.close()
            try:
                _child(request)  # leaves through os._exit
            finally:
                os._exit(127)  # a request it could not even start: never back into this loop
        reply.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        reply.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    _import_nanobench()
    serve()
