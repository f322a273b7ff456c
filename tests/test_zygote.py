"""The `nb` fixture's forked commands (tests/zygote.py) stand for fresh interpreters: the same
exit status, stdout and stderr as `python -m nanobench` started anew, for a command that
succeeds, one that refuses its input, and one that crashes with a traceback."""

import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="nb forks on Linux only")


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),  # exit 0, usage on stdout
        ("compare", "/no/such/folder"),  # exit 2, one line on stderr
        ("report",),  # argparse's own refusal: exit 2, usage on stderr
    ],
)
def test_a_forked_command_exits_and_prints_as_a_fresh_one(nb, args):
    forked, fresh = nb(*args), nb(*args, fresh=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


def test_a_forked_command_sees_its_own_folder_and_environment(nb, tmp_path):
    # A relative path is found from the command's folder: the damaged file is named, not
    # reported missing.
    (tmp_path / "bad.parquet").write_text("not parquet")
    forked = nb("compare", "bad.parquet", cwd=tmp_path)
    fresh = nb("compare", "bad.parquet", cwd=tmp_path, fresh=True)
    assert forked.returncode == fresh.returncode == 2
    assert forked.stderr == fresh.stderr and "no such file" not in forked.stderr
    # The environment is the command's: a group id leading out of --out is refused by name.
    args = ("run", "smoke", "--max-iters", "1", "--out", tmp_path / "out")
    env = {"NANOBENCH_GROUP_ID": "../../g"}
    forked, fresh = nb(*args, env=env), nb(*args, env=env, fresh=True)
    assert forked.returncode == fresh.returncode == 2
    assert forked.stderr == fresh.stderr and "NANOBENCH_GROUP_ID" in forked.stderr


def test_no_nanobench_module_reads_the_environment_when_imported():
    """The zygote imports every nanobench module once for all commands, each of which brings
    its own environment: a module that read os.environ (or os.getenv) at import would keep
    the zygote's. In a fresh interpreter, with the third-party libraries imported first, every
    read of the environment during the import of nanobench's modules is recorded with the
    file that made it; none may come from nanobench."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import importlib, os, pkgutil, sys, traceback
        import matplotlib, numpy, pandas, pyarrow.parquet, rich.console, scipy.stats, torch

        reads = []

        class Watched(type(os.environ)):
            def __getitem__(self, key):
                # the reader: the innermost frame outside this class, os and Mapping.get
                frames = traceback.extract_stack()[:-1]
                skip = ("os.py", "_collections_abc.py", "<frozen os>", "<frozen _collections_abc>")
                reader = next(f for f in reversed(frames) if not f.filename.endswith(skip))
                reads.append((key, reader.filename))
                return super().__getitem__(key)

        watched = Watched(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                          os.environ.encodevalue, os.environ.decodevalue)
        os.environ = watched
        import nanobench
        for m in pkgutil.walk_packages(nanobench.__path__, "nanobench."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
        ours = sorted({k for k, f in reads if "/nanobench/" in f and "/tests/" not in f})
        print(ours)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
