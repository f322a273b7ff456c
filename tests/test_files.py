"""files.py: safe names, containment after symlinks, atomic replacement, failure causes."""

import errno
import os

import pytest

from nanobench import files
from nanobench.errors import InputError


@pytest.mark.parametrize(
    "name", ["smoke", "shakespeare_char_cpu", "a.b-c_1", "X" * files.MAX_NAME_CHARS, "-x"]
)
def test_safe_names_pass(name):
    assert files.name_problem(name) is None and files.check_name(name, "k") == name


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "..",
        ".",
        ".hidden",
        "/abs",
        "a/b",
        "a\\b",
        "",
        "a b",
        "a\x00b",
        "café",
        "X" * (files.MAX_NAME_CHARS + 1),
        7,
        None,
    ],
)
def test_unsafe_names_are_refused_naming_the_key(name):
    assert files.name_problem(name) is not None
    with pytest.raises(InputError, match=r"^f\.toml: name: "):
        files.check_name(name, "f.toml: name")


def test_containment_follows_symlinks_and_dotdot(tmp_path):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "out" / "away").symlink_to(tmp_path / "outside")
    (tmp_path / "out" / "here").symlink_to(tmp_path / "out" / "sub")
    out = tmp_path / "out"
    assert files.is_inside(out / "sub" / "f", out) and files.is_inside(out / "here" / "f", out)
    assert files.is_inside(
        out / "not-yet" / "f", out
    )  # a path to create: checked as it will resolve
    assert not files.is_inside(out / "away" / "f", out)
    assert not files.is_inside(out / "sub" / ".." / ".." / "f", out)
    with pytest.raises(
        InputError, match=f"refused: it leads to {tmp_path / 'outside' / 'f'}, outside {out}"
    ):
        files.check_inside(out / "away" / "f", out)


def test_atomic_write_replaces_a_planted_symlink_without_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "index.html"
    target.symlink_to(victim)
    files.write_atomic(target, "new page")
    assert not target.is_symlink() and target.read_text() == "new page"
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.html"
    ]  # no temporary left


def test_atomic_write_inside_a_folder_refuses_a_symlink_leading_out(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.parquet").symlink_to(victim)
    with pytest.raises(InputError, match="refused"):
        files.write_atomic(tmp_path / "out" / "r.parquet", b"x", inside=tmp_path / "out")
    assert victim.read_text() == "precious\n" and (tmp_path / "out" / "r.parquet").is_symlink()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "meta.json"
    files.write_atomic(path, "old")

    def fails(f):
        f.write(b"half of it")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        files.write_atomic(path, fails)
    assert files.no_space(info.value) and files.write_cause(info.value).startswith("no space left")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_a_write_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(OSError) as info:
        files.write_atomic(tmp_path / "gone" / "seg-000000.parquet", b"x")
    assert files.write_cause(info.value).startswith("the folder is missing") and not files.no_space(
        info.value
    )


@pytest.mark.parametrize(
    "code, cause",
    [
        (errno.EDQUOT, "no space left"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EROFS, "read-only file system"),
        (errno.EFBIG, "File too large"),
    ],
)
def test_write_causes_in_words(code, cause):
    exc = OSError(code, os.strerror(code))
    assert files.write_cause(exc).startswith(cause)
    assert files.no_space(exc) == (code == errno.EDQUOT)


def test_cache_dir_follows_xdg_and_ignores_a_relative_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert files.cache_dir() == tmp_path / "nanobench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert files.cache_dir() == tmp_path / "home" / ".cache" / "nanobench"
