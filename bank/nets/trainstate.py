"""The state a training resumes from: one folder per run, held by a lock while the run is alive.

A run is named by its key (:meth:`bank.kinds.autoencoder.AutoencoderModel.run_key`,
a digest of its images and settings). Its state (the loss log, the best
epoch's weights, a backup of the last finished epoch, and ``run.json``, the
stamp of the run) lives in ``<home>/<key prefix>[-N]/``, each folder held
through ``<home>/<key prefix>[-N].lock`` (``flock``; the system drops it when
its holder dies). A run takes, in order: a free folder of its key holding
state it can go on from (it resumes), else the first free name of its key.
A folder held by a live process is never touched, so identical runs at the
same time each train in a folder of their own.

Only the standard library is imported here: the registry, the detector and
the training module all use this module.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locks (one training per class at a time is then the user's care)
    fcntl = None

#: The stamp of the run whose state a folder holds: {"run": key, "finished": bool}.
STAMP_FILE = "run.json"
#: Hex digits of the run key that name its folders.
KEY_PREFIX = 16
LOCK_SUFFIX = ".lock"


def stamp(path: Path, value: dict | None = None) -> dict:
    """Read a run stamp ({} when missing or unreadable), or replace it atomically with ``value``."""
    if value is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value) + "\n")
        os.replace(tmp, path)
        return value
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


def resumable(folder: Path, run: str | None = None) -> bool:
    """Whether ``folder`` holds state a training of run ``run`` (any run when None) can go on from:
    a backup of a finished epoch, or a finished run's best weights (stopped before registering)."""
    s = stamp(Path(folder) / STAMP_FILE)
    if not s.get("run") or (run is not None and s["run"] != run):
        return False
    if s.get("finished"):
        return (Path(folder) / "best.weights.h5").exists()
    return any((Path(folder) / "backup").glob("training_metadata.json*"))


def _try_lock(lock: Path) -> int | None:
    """A descriptor holding an exclusive lock on ``lock`` (created if need be), or None when a live
    process holds it. A holder removes its lock file when done: when the path no longer names the
    file locked (removed, or created anew, between our open and our lock), it is opened again."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never a link out
    while True:
        fd = os.open(lock, flags, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            now, held = os.stat(lock, follow_symlinks=False), os.fstat(fd)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _folders(home: Path, base: str) -> list[str]:
    """The names of the state folders of key prefix ``base`` present in ``home``, in numbering order."""
    pattern = re.compile(re.escape(base) + r"(?:-([1-9][0-9]*))?")
    found = []
    for p in home.iterdir():
        m = pattern.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink():
            found.append((int(m.group(1) or 1), p.name))
    return [name for _, name in sorted(found)]


def _take(home: Path, key: str, fresh: bool) -> tuple[int, Path]:
    """Lock and return a state folder for run ``key``: a free one with state to resume (unless
    ``fresh``), else the first free name ``<prefix>``, ``<prefix>-2``, ..."""
    base = key[:KEY_PREFIX]
    while True:
        try:
            home.mkdir(parents=True, exist_ok=True)
            if not fresh:
                for name in _folders(home, base):
                    if resumable(home / name, key):
                        fd = _try_lock(home / f"{name}{LOCK_SUFFIX}")
                        if fd is not None:  # ours now (resumed, or started over if finished meanwhile)
                            return fd, home / name
            for n in itertools.count(1):
                name = base if n == 1 else f"{base}-{n}"
                fd = _try_lock(home / f"{name}{LOCK_SUFFIX}")
                if fd is not None:
                    return fd, home / name
        except FileNotFoundError:  # a run finishing meanwhile removed the emptied home: again
            continue


@contextmanager
def claim(home: str | os.PathLike, key: str, fresh: bool = False) -> Iterator[Path]:
    """Hold a state folder under ``home`` for the training run ``key`` while the block runs.

    ``fresh`` empties the folder taken (and only it). Afterwards only state a
    rerun can go on from is kept: otherwise the folder, its lock file and an
    emptied ``home`` are removed.
    """
    home = Path(home)
    if not re.fullmatch(f"[0-9a-f]{{{KEY_PREFIX},}}", key):
        raise ValueError(f"key: expected a hex digest of at least {KEY_PREFIX} digits, got {key!r}")
    fd, work = _take(home, key, fresh)
    lock = work.with_name(work.name + LOCK_SUFFIX)
    try:
        if work.is_symlink():  # never written through: the state stays under home
            work.unlink()
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(exist_ok=True)
        yield work
    finally:
        try:
            if not resumable(work):
                shutil.rmtree(work, ignore_errors=True)
            if not work.exists():
                lock.unlink(missing_ok=True)  # still held: a process that opened it meanwhile opens again
        finally:
            os.close(fd)
        try:
            home.rmdir()  # only when empty
        except OSError:
            pass
