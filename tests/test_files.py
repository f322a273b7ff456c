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


def test_each_refusal_says_what_is_wrong():
    assert files.name_problem("") == "is empty"
    assert files.name_problem(7) == "7 is not a string"
    assert files.name_problem("a/b") == (
        "'a/b' is not a safe name (letters, digits, '.', '_' and '-' only, not starting with "
        "'.'): it becomes part of file names"
    )
    long = "abcdefghij" * 3  # 30 characters: the first 20 are quoted
    assert files.name_problem(long, max_chars=25) == (
        "'abcdefghijabcdefghij'... is 30 characters long (at most 25): it becomes part of file names"
    )
    assert files.check_name("abcdef", "k", max_chars=6) == "abcdef"
    with pytest.raises(InputError, match=r"^k: 'abcdefg'\.\.\. is 7 characters long \(at most 6\)"):
        files.check_name("abcdefg", "k", max_chars=6)


def test_a_refusal_to_leave_the_folder_names_the_option(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    away = out / ".." / "elsewhere"
    expected = (
        f"{away}: refused: it leads to {tmp_path / 'elsewhere'}, outside {out} "
        f"(through '..' or a symlink); nothing was written there"
    )
    with pytest.raises(InputError) as named:
        files.check_inside(away, out, "--out")
    assert str(named.value) == f"--out {expected}"
    with pytest.raises(InputError) as bare:
        files.check_inside(away, out)
    assert str(bare.value) == expected
    assert files.check_inside(out / "r.parquet", out) == out / "r.parquet"


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


def predictable_temporary_names(monkeypatch, *tokens):
    """Make write_atomic's random part of the temporary name a known sequence, as an attacker
    who guessed it would know it; returns the list of tokens drawn."""
    drawn, queue = [], list(tokens)

    def token_hex(nbytes):
        assert nbytes == 4  # eight hex digits: 2**32 names to guess, not a handful
        drawn.append(queue.pop(0) if len(queue) > 1 else queue[0])
        return drawn[-1]

    monkeypatch.setattr(files.secrets, "token_hex", token_hex)
    return drawn


def test_a_symlink_planted_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    """O_EXCL: the temporary file is created, never opened; the name is skipped, not reused."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".index.html.guessed.tmp").symlink_to(victim)
    drawn = predictable_temporary_names(monkeypatch, "guessed", "fresh")
    files.write_atomic(out / "index.html", "new page")
    assert victim.read_text() == "precious\n" and (out / "index.html").read_text() == "new page"
    assert drawn == ["guessed", "fresh"]
    assert (out / ".index.html.guessed.tmp").is_symlink()  # someone else's: left alone


def test_a_hard_link_planted_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    """What O_NOFOLLOW alone would not stop: an existing file (a hard link to the victim)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, tmp_path / ".meta.json.guessed.tmp")
    predictable_temporary_names(monkeypatch, "guessed", "fresh")
    files.write_atomic(tmp_path / "meta.json", "{}")
    assert victim.read_text() == "precious\n" and (tmp_path / "meta.json").read_text() == "{}"


def test_ten_taken_temporary_names_give_up_naming_the_folder(tmp_path, monkeypatch):
    (tmp_path / ".r.parquet.taken.tmp").write_text("someone else's")
    drawn = predictable_temporary_names(monkeypatch, "taken")
    with pytest.raises(FileExistsError, match="no unused temporary name") as info:
        files.write_atomic(tmp_path / "r.parquet", b"x")
    assert len(drawn) == 10 and info.value.filename == str(tmp_path)
    assert info.value.errno == errno.EEXIST and info.value.strerror == "no unused temporary name"
    assert not (tmp_path / "r.parquet").exists()
    assert (tmp_path / ".r.parquet.taken.tmp").read_text() == "someone else's"


def test_the_umask_decides_the_mode_as_for_any_file_the_user_writes(tmp_path):
    old = os.umask(0o002)  # masks only others' write: any other mode bit shows through
    try:
        path = files.write_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o664  # 0o666 less the umask's 0o002


def test_content_as_bytes_text_or_a_writer_function(tmp_path):
    assert files.write_atomic(tmp_path / "b", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert files.write_atomic(tmp_path / "t", "é").read_bytes() == "é".encode()
    files.write_atomic(tmp_path / "f", lambda f: f.write(b"from a function"))
    assert (tmp_path / "f").read_bytes() == b"from a function"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "f", "t"]


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


def test_a_cause_without_an_os_message_is_the_exception_itself():
    assert files.write_cause(OSError("the disk said no")) == "the disk said no"


def test_cache_dir_without_xdg_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert files.cache_dir() == tmp_path / ".cache" / "nanobench"


def test_cache_dir_follows_xdg_and_ignores_a_relative_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert files.cache_dir() == tmp_path / "nanobench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert files.cache_dir() == tmp_path / "home" / ".cache" / "nanobench"
