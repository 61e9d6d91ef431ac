"""A registry's upkeep: checking every entry (``bank registry verify``) and finding what interrupted writes and
removals left (``bank registry gc``).

A writer killed at any point leaves at most hidden leftovers, which readers ignore: an entry's temporary folder
(``<class>/.tmp-<random>/``) whose writer no longer holds its lock, an ``.active-`` file written outside the
class lock, a removal's ``.trash-`` folder, and shared files (``.shared/``) that no version's card names any
more. Each is found here only once no live process can still be using it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..nets import runtime as rt
from .cards import SHARED_DIR, RegistryError, shared_path, validate_class_name
from .locks import LOCK_FILE, TMP_PREFIX, _is_free, _is_stale


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a registry, found by :func:`verify`."""

    class_name: str
    version: int | None
    reason: str

    def __str__(self) -> str:
        where = f"class {self.class_name!r}" + (f" version {self.version}" if self.version is not None else "")
        return self.reason if self.reason.startswith(where) else f"{where}: {self.reason}"


def verify(registry, load: bool = True) -> list[Problem]:
    """Check every version of every class of ``registry``; return what is wrong (empty when healthy).

    Checks names, cards, checksums, ``ACTIVE``, and (with ``load``) that
    each model loads in Keras safe mode with the card's input shape, and
    its LiteRT flatbuffers (when the entry has them and LiteRT is installed) too.
    """
    if not registry.root.is_dir():
        raise registry.missing()
    problems: list[Problem] = []
    for d in sorted(registry.root.iterdir()):
        if d.name.startswith("."):
            continue
        try:
            name = validate_class_name(d.name)
            if name != d.name:
                raise RegistryError(f"folder {d.name!r} is not in Unicode NFC form")
            registry._class_dir(name)
        except RegistryError as err:
            if d.is_dir() or d.is_symlink():
                problems.append(Problem(d.name, None, str(err)))
            continue
        if not d.is_dir():
            continue
        versions = registry.versions(name)
        for v in versions:
            try:
                if load:
                    registry.load_detector(name, v, runtime="keras")  # parses the card, checks the checksums first
                    if registry.entry(name, v).has_litert and rt.available():
                        registry.load_detector(name, v, runtime="litert")
                else:
                    registry.check_model(registry.entry(name, v))
            except RegistryError as err:
                problems.append(Problem(name, v, str(err)))
        try:
            if versions:
                registry.active_version(name)
        except RegistryError as err:
            problems.append(Problem(name, None, str(err)))
    return problems


#: A shared file or a lonely writer's lock younger than this may belong to a registration under way.
YOUNG_SECONDS = 60


def leftovers(registry) -> list[Path]:
    """The hidden remains of interrupted writes and removals in ``registry`` (a :class:`~bank.registry.store.Registry`),
    not in use by a live writer, sorted."""
    root = registry.root
    if not root.is_dir():
        return []
    found = trash(root)
    shared = root / SHARED_DIR
    if shared.is_dir() and not shared.is_symlink():  # shared files no card names, a minute old at least
        named = shared_in_use(registry)
        found += [p for p in shared.iterdir() if time.time() - p.lstat().st_mtime > YOUNG_SECONDS
                  and (p.name.startswith(TMP_PREFIX) or (named is not None and p.name not in named))]
    for d in root.iterdir():
        if not d.name.startswith(".") and d.is_dir() and not d.is_symlink():
            found += class_leftovers(d)
    return sorted(found)


def shared_in_use(registry) -> set[str] | None:
    """The names in the shared folder that some version's card names; None when a card cannot be read (then
    nothing shared counts as unused)."""
    named = set()
    for c in registry.classes():
        for v in registry.versions(c):
            try:
                e = registry.entry(c, v)
            except RegistryError:
                return None
            named |= {shared_path(registry.root, f, sha).name for f, sha in e.shared_files}
    return named


def trash(root: Path) -> list[Path]:
    """Removed entries not yet deleted; removal renames first, so they are never read again."""
    return [p for p in Path(root).iterdir() if p.name.startswith(".trash-")]


def class_leftovers(cdir: Path) -> list[Path]:
    """A class folder's leftovers: temporary entries and activations whose writers are gone."""
    found = []
    now = time.time()
    for p in cdir.iterdir():
        try:
            age = now - p.lstat().st_mtime
            if p.name.startswith(".active-"):
                # written and renamed while holding the class lock
                stale = _is_stale(cdir / LOCK_FILE, age)
            elif p.name.startswith(TMP_PREFIX) and p.name.endswith(".lock"):
                # a lock whose folder is gone; young ones may belong to a writer about to start
                stale = age > YOUNG_SECONDS and not (cdir / p.name[: -len(".lock")]).exists() and _is_free(p)
            elif p.name.startswith(TMP_PREFIX):
                lock = cdir / f"{p.name}.lock"
                stale = _is_stale(lock, age)
                if stale and lock.exists():
                    found.append(lock)
            else:
                continue
        except FileNotFoundError:  # finished or cleaned meanwhile
            continue
        if stale:
            found.append(p)
    return found
