"""Loading a registry entry's model: each file read once, checked, and built from the bytes checked.

Every file of an entry is read once and its SHA-256 compared with the card's;
the model is then built from those very bytes, never from the file read again
(which may have been swapped since), by its kind's ``load``: a network answers
through its LiteRT flatbuffers (no TensorFlow import) when the entry has them,
else through its Keras model loaded in safe mode; plain arrays are read without
pickles.

Kept apart from :mod:`bank.registry.store` (which finds, writes and removes entries)
so that the trust path from bytes on disk to a model in memory is in one place.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from .cards import Entry, RegistryError, shared_path
from ..errors import InputError
from ..kinds import kind_class
from .locks import _no_link

#: The runtimes a detector can be loaded for (see :func:`load_entry`).
RUNTIMES = ("auto", "litert", "keras")

#: Reads one of an entry's files and checks it: ``read(entry, file, sha256, keep)`` (see :func:`read_checked`).
Reader = Callable[..., bytes | None]


def check_runtime(runtime: str) -> None:
    """Raise :class:`InputError` unless ``runtime`` is one of :data:`RUNTIMES`."""
    if runtime not in RUNTIMES:
        raise InputError(f"runtime: expected one of {RUNTIMES}, got {runtime!r}")


def read_checked(e: Entry, file: str, sha256: str, keep: bool = True) -> bytes | None:
    """The bytes of one of the entry's files, read once and checked against ``sha256`` (None unless
    ``keep``: only the check). Raises :class:`RegistryError` when unreadable or changed."""
    where = f"class {e.class_name!r} version {e.version}"
    h, data = hashlib.sha256(), []
    try:
        fd = os.open(_no_link(e.path / file, where), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
                if keep:
                    data.append(block)
    except OSError as err:
        raise RegistryError(f"{where}: cannot read {file} ({err})") from None
    if h.hexdigest() != sha256:
        raise RegistryError(f"{where}: {file} checksum mismatch (file changed or corrupt); not loaded")
    return b"".join(data) if keep else None


_SHARED: dict[tuple[str, str, int, int], bytes] = {}  # checked shared files, by path, digest, mtime and size


def read_shared(e: Entry, file: str, sha256: str, keep: bool = True) -> bytes | None:
    """The bytes of a file the entry shares with other classes (a backbone), read from the registry's shared
    folder and checked against ``sha256`` (:func:`read_checked`); kept in memory once per process, so a
    hundred classes naming one backbone read it once (a file changed since is read and checked again)."""
    where = f"class {e.class_name!r} version {e.version}"
    path = shared_path(e.root, file, sha256)
    try:
        st = _no_link(path, where).stat()
    except OSError as err:
        raise RegistryError(f"{where}: cannot read its shared file {file} ({err}); train the class again to "
                            "write it") from None
    key = (str(path), sha256, st.st_mtime_ns, st.st_size)
    if key in _SHARED:
        return _SHARED[key] if keep else None
    try:
        data = read_checked(Entry(e.class_name, e.version, path.parent, e.card), path.name, sha256, keep=True)
    except RegistryError as err:
        raise RegistryError(f"{err} [{path}, shared by every class that names it; training such a class again "
                            "writes it anew]") from None
    _SHARED[key] = data
    return data if keep else None


def load_entry(e: Entry, runtime: str = "auto", read: Reader = read_checked):
    """The fitted class model of entry ``e``, every file checked by ``read`` (:func:`read_checked`) and built
    from the bytes checked by its kind's ``load``.

    ``runtime`` (checked by the caller, :func:`check_runtime`), for a kind that holds a network: "litert"
    runs the entry's LiteRT flatbuffers; "keras" loads the Keras model; "auto" takes LiteRT when the entry
    has it and ``ai-edge-litert`` is installed, else Keras. NumPy kinds answer the same whatever it is.
    """
    where = f"class {e.class_name!r} version {e.version}"
    data = {file: read(e, file, sha256) for file, sha256 in e.model_files}
    data.update({file: read_shared(e, file, sha256) for file, sha256 in e.shared_files})
    try:
        return kind_class(e.kind).load(e.card, data, runtime=runtime)
    except InputError as err:  # "<kind> model: ..." says what failed in the model: said for the entry
        said = str(err).removeprefix(f"{e.kind} model: ")
        raise RegistryError(f"{where}: {said}" if said != str(err) else
                            f"{where}: cannot load its {e.kind} model ({err})") from None
