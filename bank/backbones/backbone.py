"""A pretrained network as the bank runs it: built once from the weights a package ships, answered by LiteRT.

Training builds the network in Keras from the package's weights (TensorFlow is there) and converts it
to one LiteRT flatbuffer; the registry keeps that flatbuffer once, beside its classes, and answering
loads it from there without TensorFlow. Every class model of a process that names the same flatbuffer
shares one :class:`Backbone` (one interpreter, one pass per image whatever the number of classes).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field

import numpy as np

from ..digest import sha256_bytes
from ..errors import InputError

#: Backbone name -> the module that builds it (``NAME``, ``SIDE``, ``FEATURES``, ``WEIGHTS_SHA256``,
#: ``read_weights``, ``build``, ``flatbuffer``).
BACKBONES = {"efficientnet-lite0": "bank.backbones.efficientnet"}

#: The backbone a class gets when none is named.
DEFAULT = "efficientnet-lite0"

_CACHE: dict[tuple[str, str], Backbone] = {}
_LOCK = threading.Lock()


def check_backbone(name: object) -> str:
    """``name`` if it is a backbone this bank can build, else an InputError listing them."""
    if name not in BACKBONES:
        raise InputError(f"backbone: expected one of {', '.join(BACKBONES)}, got {name!r}")
    return name  # type: ignore[return-value]


def module(name: str):
    """The module that builds backbone ``name`` (imported now; it imports TensorFlow only when building)."""
    return importlib.import_module(BACKBONES[check_backbone(name)])


def file_name(name: str, weights_sha256: str) -> str:
    """The name a backbone's flatbuffer has in a registry's shared files: its network and weights."""
    return f"{name}-{weights_sha256[:16]}.tflite"


@dataclass
class Backbone:
    """A pretrained network that turns (N, side, side, 3) images in [0, 1] into (N, dim) features.

    ``model`` answers ``predict_on_batch`` (a LiteRT :class:`~bank.nets.runtime.LiteModel`, or the Keras model);
    ``flatbuffer`` is the LiteRT form the registry keeps (None when LiteRT could not be had), and
    ``sha256`` its digest: what a card names.
    """

    name: str
    weights_sha256: str
    side: int
    dim: int
    model: object
    flatbuffer: bytes | None = None
    sha256: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def file(self) -> str:
        """The flatbuffer's name among a registry's shared files."""
        return file_name(self.name, self.weights_sha256)

    def features(self, x: np.ndarray, mirror: bool = False, chunk: int = 64) -> np.ndarray:
        """(N, dim) float32 features of images ``x`` (N, side, side, 3) in [0, 1]; with ``mirror``, the mean
        of the image's and its left-right mirror's (a mirrored photo of a class is of the class)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (self.side, self.side, 3):
            raise InputError(f"{self.name}: expected images of shape (N, {self.side}, {self.side}, 3), "
                             f"got {x.shape}")
        out = np.empty((len(x), self.dim), dtype=np.float32)
        for i in range(0, len(x), chunk):
            part = x[i:i + chunk]
            with self._lock:  # one interpreter: calls take turns
                f = np.asarray(self.model.predict_on_batch(part), dtype=np.float32)
                if mirror:
                    f = 0.5 * (f + np.asarray(self.model.predict_on_batch(part[:, :, ::-1]), dtype=np.float32))
            out[i:i + len(part)] = f
        return out


def build(name: str = DEFAULT) -> Backbone:
    """The backbone ``name`` from its package's weights (checked), converted for LiteRT when LiteRT is
    installed: made once per process (about 10-20 s; needs TensorFlow)."""
    from ..nets import runtime as rt

    mod = module(name)
    key = ("build", name)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        net = mod.build(mod.read_weights())
        flat = model = None
        if rt.available():
            flat = mod.flatbuffer(net)
            model = rt.LiteModel({1: flat}, (mod.SIDE, mod.SIDE, 3), out_shape=(mod.FEATURES,))
        bb = Backbone(mod.NAME, mod.WEIGHTS_SHA256, mod.SIDE, mod.FEATURES, model or net, flat,
                      None if flat is None else sha256_bytes(flat))
        _CACHE[key] = bb
        if flat is not None:
            _CACHE[("lite", bb.sha256)] = bb
        return bb


def from_flatbuffer(name: str, weights_sha256: str, data: bytes, sha256: str) -> Backbone:
    """The backbone run by LiteRT from ``data``, a flatbuffer already checked against ``sha256`` (no
    TensorFlow): one per flatbuffer per process, however many classes name it."""
    from ..nets import runtime as rt

    mod = module(name)
    with _LOCK:
        if ("lite", sha256) not in _CACHE:
            try:
                model = rt.LiteModel({1: data}, (mod.SIDE, mod.SIDE, 3), out_shape=(mod.FEATURES,))
            except ImportError as err:
                raise InputError(f"the {name} backbone needs the LiteRT runtime ({err}): pip install "
                                 "ai-edge-litert, or use the keras runtime") from None
            except (ValueError, RuntimeError) as err:
                raise InputError(f"cannot load the {name} backbone's LiteRT model ({err})") from None
            _CACHE[("lite", sha256)] = Backbone(mod.NAME, weights_sha256, mod.SIDE, mod.FEATURES, model, data, sha256)
        return _CACHE[("lite", sha256)]


def keras_backbone(name: str, weights_sha256: str) -> Backbone:
    """The backbone run by Keras (TensorFlow), built from the installed package's weights, which must be the
    ones the class was fitted on (``weights_sha256``)."""
    mod = module(name)
    if weights_sha256 != mod.WEIGHTS_SHA256:
        raise InputError(f"the class was fitted on {name} weights {weights_sha256[:12]}, but this bank has "
                         f"{mod.WEIGHTS_SHA256[:12]}: retrain the class, or answer with the LiteRT runtime")
    with _LOCK:
        key = ("keras", name)
        if key not in _CACHE:
            net = mod.build(mod.read_weights())
            _CACHE[key] = Backbone(mod.NAME, mod.WEIGHTS_SHA256, mod.SIDE, mod.FEATURES, net)
        return _CACHE[key]
