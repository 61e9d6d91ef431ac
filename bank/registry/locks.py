"""File locks and careful file-system steps, for the registry's crash-safe writes.

An exclusive ``flock`` marks what a live process is using; the operating
system drops it when its holder dies, so a lock is never left stale, and what
a free lock guards is a leftover anyone may remove. Without locks (not POSIX)
a leftover counts as abandoned once it is :data:`STALE_SECONDS` old. Files are
written with ``fsync``, ready to be renamed into place; a lock file is never
opened through a symbolic link, and :func:`_no_link` refuses one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # not POSIX: no locks; gc then only clears leftovers older than a day
    fcntl = None
from pathlib import Path

from ..errors import RegistryError

#: A class's lock file, held while a version number is picked, renamed into place and activated.
LOCK_FILE = ".lock"
#: The prefix of an entry being written (a hidden folder beside its final place) and of its writer's lock.
TMP_PREFIX = ".tmp-"

STALE_SECONDS = 86400  # without locks, a leftover this old is abandoned


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def _locked(path: Path, blocking: bool = True, create: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if need be); yields whether it was taken.

    The operating system drops the lock when its holder dies, even by SIGKILL,
    so a lock is never left stale.
    """
    flags = os.O_RDWR | (os.O_CREAT if create else 0) | getattr(os, "O_NOFOLLOW", 0)  # never a link out
    fd = os.open(path, flags, 0o644)
    try:
        if fcntl is None:
            yield True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _no_link(path: Path, what: str) -> Path:
    """``path`` itself, refusing a symbolic link (it could lead out of the registry)."""
    if path.is_symlink():
        raise RegistryError(f"{what}: {path} is a symbolic link; the registry does not follow links")
    return path


def _is_free(lock: Path) -> bool:
    """True when no live process holds ``lock`` (or it does not exist)."""
    try:
        with _locked(lock, blocking=False, create=False) as taken:
            return taken
    except FileNotFoundError:
        return True


def _is_stale(lock: Path, age: float) -> bool:
    """Whether what ``lock`` guards is abandoned: no live process holds ``lock``; without locks,
    ``age`` (seconds since it was last written) is over :data:`STALE_SECONDS`."""
    return _is_free(lock) if fcntl is not None else age > STALE_SECONDS


def _remove_path(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
