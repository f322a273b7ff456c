"""How nanobench writes files: safe names, containment, atomic replacement, the cache folder.

Scenario files, result metadata and checkpoints may come from someone else, so nothing read
from them decides where a file goes:

- a name that becomes part of a path (scenario name, run id, checkpoint name) must be a
  *safe name*: letters, digits, `.`, `_` and `-`, at most MAX_NAME_CHARS characters, not
  starting with `.` (so no `/`, no `..`, no hidden or absolute names);
- a path about to be written is resolved (symlinks included) and must lie inside the folder
  the user named (`--out`, `-o`, the recover folder);
- a file is replaced by writing a fresh temporary file beside it (created exclusively, never
  through a symlink), syncing it, then renaming it over the target: a reader sees the old
  file or the new one, never half of one, and a symlink planted at the target name is
  replaced, not followed.

This module is a leaf: it imports nothing from nanobench but `errors`.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nanobench.errors import InputError

MAX_NAME_CHARS = 200  # with a temporary-file prefix and suffix still under the usual 255
SAFE_NAME_RULE = "letters, digits, '.', '_' and '-' only, not starting with '.'"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def name_problem(name: object, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """Why `name` cannot be part of a file name, or None when it can."""
    if not isinstance(name, str):
        return f"{name!r} is not a string"
    if not name:
        return "is empty"
    if not _SAFE_NAME.fullmatch(name):
        return f"{name!r} is not a safe name ({SAFE_NAME_RULE}): it becomes part of file names"
    if len(name) > max_chars:
        return f"{name[:20]!r}... is {len(name)} characters long (at most {max_chars}): it becomes part of file names"
    return None


def check_name(name: object, where: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """Return `name` if it is safe; else InputError '<where>: <problem>'."""
    problem = name_problem(name, max_chars)
    if problem:
        raise InputError(f"{where}: {problem}")
    return name


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether `path`, with every symlink and `..` resolved, lies in `folder` (resolved too)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_inside(path: str | Path, folder: str | Path, what: str = "") -> Path:
    """Return `path` if it lies inside `folder` after symlinks; else InputError, nothing written."""
    if not is_inside(path, folder):
        target = Path(path).resolve()
        raise InputError(
            f"{what + ' ' if what else ''}{path}: refused: it leads to {target}, outside {folder} "
            f"(through '..' or a symlink); nothing was written there"
        )
    return Path(path)


def write_atomic(
    path: str | Path,
    content: bytes | str | Callable[[BinaryIO], None],
    *,
    inside: str | Path | None = None,
) -> Path:
    """Replace `path` with `content` (bytes, UTF-8 text, or a function writing to a binary
    file), atomically. With `inside`, first refuse (InputError) a path that leads outside
    that folder. OSError from the file system propagates (see `write_cause`)."""
    path = Path(path)
    if inside is not None:
        check_inside(path, inside)
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    for _ in range(10):  # O_EXCL: a name someone else holds (or planted) is never reused
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask decides, as for any file the user writes
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no unused temporary name", str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)  # rename replaces a symlink at `path`; it never writes through it
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; a file system that cannot sync a folder is left as is."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def no_space(exc: OSError) -> bool:
    """The write failed for lack of space (disk full or quota)."""
    return exc.errno in _NO_SPACE


def write_cause(exc: OSError) -> str:
    """What a failed write ran into, in words a user acts on."""
    if no_space(exc):
        return f"no space left ({exc.strerror})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror})"
    if exc.errno == errno.EROFS:
        return f"read-only file system ({exc.strerror})"
    if exc.errno == errno.ENOENT:
        return f"the folder is missing ({exc.strerror}; removed while nanobench ran?)"
    return exc.strerror or str(exc)


def cache_dir() -> Path:
    """nanobench's per-user cache folder: $XDG_CACHE_HOME/nanobench, else ~/.cache/nanobench.
    A relative XDG_CACHE_HOME is ignored, as the XDG Base Directory specification asks."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "nanobench"
