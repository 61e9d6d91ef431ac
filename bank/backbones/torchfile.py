"""Reading a PyTorch state dict saved in the legacy (non-zip) format, without torch and without running code.

``torch.load`` unpickles whatever the file names, so a weight file could run any code. Here the
pickles go through an unpickler that knows only the few names a state dict needs (an ordered dict,
the tensor rebuilders, the storage types), each mapped to a harmless stand-in; any other name is
refused before it is looked up. The tensors come back as NumPy arrays (contiguous copies).

The format: pickles of the magic number, the protocol version, the system info, the state dict
(tensors point at storages through persistent ids) and the list of storage keys; then, per key in
that order, an 8-byte little-endian element count and the storage's raw bytes.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from ..digest import sha256_bytes
from ..errors import InputError

MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION

#: The storage types a state dict may hold, by name, and the NumPy dtype of their elements.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class _Refused(Exception):
    """A pickle that is not a plain state dict; turned into an InputError naming the file."""


class _RefusedGlobal(_Refused):
    """A pickle naming a global a state dict does not need."""


class _Stub:
    """Base of the stand-ins: no instance dictionary, and a pickle may not set their state (BUILD)."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Refused(f"it sets the state of {type(self).__name__.lstrip('_')}")


class _StorageType(_Stub):
    """Stands in for ``torch.FloatStorage`` and its kin: only its dtype is kept."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class _Storage(_Stub):
    """A storage named by a persistent id: its key, dtype, element count and, for a view, where it starts."""

    __slots__ = ("key", "dtype", "numel", "start")

    def __init__(self, key: str, dtype: np.dtype, numel: int, start: int = 0):
        self.key, self.dtype, self.numel, self.start = key, dtype, numel, start


class _Tensor(_Stub):
    """What the tensor rebuilders give here: where a tensor's elements are, made an array at the end."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _Function(_Stub):
    """A callable stand-in for a torch function (an object, so a pickle cannot change the function)."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


class _StateDict(dict):
    """Stands in for ``collections.OrderedDict`` (dicts keep their order); the state it is given (a state
    dict's ``_metadata``) is dropped."""

    def __setstate__(self, state: object) -> None:
        pass


def _rebuild_tensor(storage=None, offset=None, size=None, stride=None, *_ignored) -> _Tensor:
    """``torch._utils._rebuild_tensor(_v2)``: the tensor's place, checked when the storages are read."""
    if not isinstance(storage, _Storage):
        raise _Refused(f"a tensor built on {type(storage).__name__}, not on a storage")
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(isinstance(v, int) for v in (*size, *stride))):
        raise _Refused("a tensor whose offset, size or stride is not made of integers")
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data=None, *_ignored) -> _Tensor:
    """``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise _Refused("a parameter that is not a tensor")
    return data


#: Every global a state dict pickle may name, and what it becomes.
ALLOWED = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Function(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class StateDictUnpickler(pickle.Unpickler):
    """An unpickler that builds only the names in :data:`ALLOWED`, as harmless stand-ins, and takes only
    storage persistent ids; it records the storages it meets in ``storages`` (key -> storage)."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))  # Python 2 names,
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # as pickle itself reads them
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"it names the global {module}.{name}, which a state dict does not need "
                                 "(refused: it could run code)") from None

    def persistent_load(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)
                and pid[4] >= 0):
            raise _Refused(f"a persistent id that is not a storage: {str(pid)[:80]}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in self.storages:
            self.storages[key] = _Storage(key, kind.dtype, numel)
        root = self.storages[key]
        if root.dtype != kind.dtype or root.numel != numel:
            raise _Refused(f"storage {key} is named with two types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        return _view(root, view)


def _view(root: _Storage, view: object) -> _Storage:
    """A storage view of old files: (view key, start, size) within ``root``."""
    if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
        raise _Refused(f"a storage view that is not (key, start, size): {str(view)[:80]}")
    _, start, size = view
    if start < 0 or size < 0 or start + size > root.numel:
        raise _Refused(f"a view of storage {root.key} past its {root.numel} elements")
    return _Storage(root.key, root.dtype, size, start)


def _truncated(err: Exception) -> bool:
    """Whether an unpickling error says the data ended too soon."""
    return isinstance(err, EOFError) or (isinstance(err, pickle.UnpicklingError) and "truncated" in str(err))


def _load(f: io.BytesIO, where: str, what: str, unpickler: StateDictUnpickler | None = None) -> object:
    """One pickle from ``f``; InputError naming ``where`` and what was being read when it fails."""
    try:
        return (unpickler or StateDictUnpickler(f)).load()
    except _Refused as err:
        raise InputError(f"{where}: not a plain PyTorch state dict: {err}") from None
    except Exception as err:  # a broken pickle raises many kinds (UnpicklingError, ValueError, TypeError, ...)
        if _truncated(err):
            raise InputError(f"{where}: truncated: the data ends inside the {what}") from None
        raise InputError(f"{where}: cannot read the {what} ({type(err).__name__}: {err})") from None


def _header(f: io.BytesIO, data: bytes, where: str) -> None:
    """Check the magic number, the protocol version and that the file is little-endian."""
    if data[:4] == b"PK\x03\x04":
        raise InputError(f"{where}: a zip file (torch.save's newer format); only the legacy format is read")
    try:
        magic = StateDictUnpickler(f).load()
    except _RefusedGlobal:  # a pickle that would run code: say so
        raise
    except Exception as err:  # not a pickle: not this format, unless it is the start of the magic number
        if _truncated(err) and data[:3] == b"\x80\x02\x8a":
            raise InputError(f"{where}: truncated: the data ends inside the magic number") from None
        magic = None
    if magic != MAGIC:
        raise InputError(f"{where}: not a PyTorch legacy weight file (no magic number at the start)")
    if (version := _load(f, where, "protocol version")) != PROTOCOL:
        raise InputError(f"{where}: PyTorch serialisation protocol {version!r}, expected {PROTOCOL}")
    info = _load(f, where, "system info")
    if not (isinstance(info, dict) and info.get("little_endian") is True):
        raise InputError(f"{where}: not saved on a little-endian machine (or no system info)")


def _read_storages(f: io.BytesIO, data: bytes, storages: dict[str, _Storage], keys: object,
                   where: str) -> dict[str, np.ndarray]:
    """Each storage's elements (views of ``data``), in the order of ``keys``."""
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or sorted(keys) != sorted(storages):
        raise InputError(f"{where}: the list of storage keys does not match the storages the tensors use")
    out, pos = {}, f.tell()
    for key in keys:
        s = storages[key]
        if pos + 8 > len(data):
            raise InputError(f"{where}: truncated: the data ends before storage {key}")
        (count,) = struct.unpack_from("<q", data, pos)
        if count != s.numel:
            raise InputError(f"{where}: storage {key} holds {count} elements, but its tensors say {s.numel}")
        pos += 8
        end = pos + count * s.dtype.itemsize
        if end > len(data):
            raise InputError(f"{where}: truncated: storage {key} needs {end - pos} bytes, {len(data) - pos} left")
        out[key] = np.frombuffer(data, dtype=s.dtype, count=count, offset=pos)
        pos = end
    if pos != len(data):
        raise InputError(f"{where}: {len(data) - pos} bytes after the last storage (corrupt or not this format)")
    return out


def _array(name: str, t: _Tensor, flat: np.ndarray, where: str) -> np.ndarray:
    """The tensor ``t`` as a contiguous array, its size, stride and offset checked against its storage."""
    start = t.storage.start + t.offset
    if t.offset < 0 or any(v < 0 for v in (*t.size, *t.stride)):
        raise InputError(f"{where}: tensor {name} has a negative offset, size or stride")
    if 0 in t.size:
        return np.zeros(t.size, dtype=flat.dtype.newbyteorder("="))
    if math.prod(t.size) > t.storage.numel:  # a broadcast (stride 0) could ask for any memory
        raise InputError(f"{where}: tensor {name} has more elements than its storage {t.storage.key}")
    last = start + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= t.storage.start + t.storage.numel:
        raise InputError(f"{where}: tensor {name} reaches past the end of its storage {t.storage.key}")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[start:], shape=t.size, strides=[s * item for s in t.stride],
                                           writeable=False)
    return np.ascontiguousarray(view, dtype=flat.dtype.newbyteorder("="))


def read_state_dict(data: bytes, where: str) -> dict[str, np.ndarray]:
    """The state dict (name -> array) in ``data``, the bytes of a legacy ``torch.save`` file; InputError naming
    ``where`` when it is not this format, names a global a state dict does not need, is truncated, or its
    storages do not match their tensors."""
    data = bytes(data)
    f = io.BytesIO(data)
    try:
        _header(f, data, where)
    except _Refused as err:
        raise InputError(f"{where}: not a plain PyTorch state dict: {err}") from None
    unpickler = StateDictUnpickler(f)
    state = _load(f, where, "state dict", unpickler)
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, _Tensor)
                                            for k, v in state.items())):
        raise InputError(f"{where}: not a state dict (a mapping of names to tensors)")
    keys = _load(f, where, "list of storage keys")
    flat = _read_storages(f, data, unpickler.storages, keys, where)
    return {name: _array(name, t, flat[t.storage.key], where) for name, t in state.items()}


def read_checked(path: str | Path, sha256: str) -> dict[str, np.ndarray]:
    """The state dict in the file ``path``, read once: its SHA-256 must be ``sha256`` (InputError: changed
    or corrupt), and those same bytes are parsed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read it ({err.strerror or err})") from None
    got = sha256_bytes(data)
    if got != sha256.lower():
        raise InputError(f"{path}: changed or corrupt: its SHA-256 is {got}, expected {sha256.lower()}")
    return read_state_dict(data, str(path))
