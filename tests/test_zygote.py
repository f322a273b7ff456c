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
