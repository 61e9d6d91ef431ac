"""Many dense autoencoders of one shape at once: their weights stacked, run in NumPy float32.

A bank of many small classes (the 8x8 digits' dense autoencoders: Flatten, Dense layers, Reshape) called
one LiteRT interpreter per class per batch. Stacked, a block of classes' first layers is one matrix
product of the batch against their kernels side by side, and each later layer one batched product
``np.matmul`` over a (classes, images, width) stack; each class's activation as Keras applies it, then
its per-pixel mean squared error as :func:`bank.nets.runtime.mse` computes it (in float32: to about 1e-7
of LiteRT and Keras). 1,000 digit classes: about 4 times the images/s of the LiteRT calls, as many
multiply-adds a second as 10 classes (``benchmarks/classes.py``).

Where the weights come from: a plain ``.npy`` vector written at registration beside the Keras model and
its LiteRT twins (:func:`write`, checked against Keras to :data:`TOLERANCE` first), each layer's units and
activation in the card. Reading them from the ``.keras`` file instead (a zip of ``config.json`` and
``model.weights.h5``, which h5py reads without Keras) takes about 1.7 ms a class (h5py opening the file
and walking its groups), plus up to 0.1 s to import h5py: it would have doubled the load of a 1,000-class
bank (0.8 s). The ``.npy`` takes 0.01 ms (its header compared with the one written, no parse). The LiteRT
flatbuffers hold the weights too, but the interpreter does not say which activation each op fuses. Entries
registered before this file (or whose check failed, or with an activation this module does not know)
answer as they did, one LiteRT call a class; so do conv autoencoders.

Memory stays bounded whatever the number of classes: the classes run in blocks and the images in chunks
of :data:`ROWS`, a layer's activations for a block about :data:`BLOCK_FLOATS` floats (1 MB: a core's
cache; 1,000 classes at batch 256 would otherwise hold 65 MB a layer, and ran 30% slower). The chunks of
a large batch are shared among one thread per core, each running BLAS on one thread: OpenBLAS's own
threads made these small products up to 40 times slower on cores shared with other work.
"""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..machine import cores, one_blas_thread

#: Activations run as Keras runs them (its names); a network with another is not stacked.
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")
#: Largest relative difference of the errors accepted between the stacked network and Keras at registration.
TOLERANCE = 1e-5
#: Images a chunk, and floats of one layer's activations for a block of classes (about 1 MB).
ROWS = 128
BLOCK_FLOATS = 1 << 18
#: Multiply-adds a chunk from which a batch's chunks are shared among the cores (30 classes of 8x8 digits:
#: 1.2 times the images/s, 1,000: 1.0-1.7 times on 2 cores shared with other work; 10 classes: 0.9 times).
#: A call of one chunk shares its blocks of classes instead from a quarter of it on (one MNIST digit through
#: ten 784-512-128-32 networks, 9.4 million multiply-adds: 1.69 -> 1.24 ms on 2 cores).
PARALLEL_MACS = 1 << 24

ErrorFn = Callable[[np.ndarray], np.ndarray]

_POOL: list = []  # the threads of _pool, made once


def _pool():
    """The threads, one per core, that share a batch's chunks of images."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(cores(), thread_name_prefix="bank-stacked"))
    return _POOL[0]


@dataclass(frozen=True)
class DenseNet:
    """One dense autoencoder: images of ``shape`` flattened, then layers ``x @ kernel + bias`` and their
    activations; the last layer's output is the image again."""

    shape: tuple[int, ...]
    kernels: tuple[np.ndarray, ...]  #: (in, out) float32 each
    biases: tuple[np.ndarray, ...]  #: (out,) float32 each
    activations: tuple[str, ...]

    @property
    def signature(self) -> tuple:
        """What networks must share to be stacked: input shape, kernel shapes and activations."""
        return self.shape, tuple(k.shape for k in self.kernels), self.activations

    @property
    def macs(self) -> int:
        """Multiply-adds per image."""
        return sum(k.size for k in self.kernels)

    def layout(self) -> list[list]:
        """Each layer's ``[units, activation]``: what the card keeps beside the weights file."""
        return [[int(k.shape[1]), a] for k, a in zip(self.kernels, self.activations)]

    def to_bytes(self) -> bytes:
        """The weights as one float32 ``.npy`` vector: each layer's kernel (row-major) then its bias."""
        flat = np.concatenate([a.astype("<f4").ravel() for k, b in zip(self.kernels, self.biases) for a in (k, b)])
        buf = io.BytesIO()
        np.save(buf, flat, allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, layout: object, shape: tuple[int, ...]) -> DenseNet | None:
        """The network from :meth:`to_bytes`'s bytes and :meth:`layout`; None when it has an activation this
        module does not know (the caller answers another way). InputError when the two do not agree."""
        if not (isinstance(layout, list) and layout and all(
                isinstance(u, list) and len(u) == 2 and type(u[0]) is int and u[0] > 0 and isinstance(u[1], str)
                for u in layout)):
            raise InputError(f"the dense layers must be a list of [units, activation], got {str(layout)[:100]}")
        size = math.prod(shape)
        if layout[-1][0] != size:
            raise InputError(f"the last dense layer has {layout[-1][0]} units, the image {size} values")
        if any(a not in ACTIVATIONS for _, a in layout):
            return None
        widths = [size] + [u for u, _ in layout]
        need = sum(i * o + o for i, o in zip(widths, widths[1:]))
        head = _npy_header(need)  # the header this NumPy writes: np.load's parse would cost 0.05 ms a class
        if data.startswith(head) and len(data) == len(head) + 4 * need:
            flat = np.frombuffer(data, dtype="<f4", offset=len(head))  # read-only, on the checked bytes
        else:  # another NumPy's header, or not the vector at all
            try:
                flat = np.load(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError):
                flat = None
            if not isinstance(flat, np.ndarray) or flat.dtype != np.dtype("<f4") or flat.shape != (need,):
                raise InputError(f"the dense weights are not the float32 .npy vector of {need} numbers the "
                                 "layers need")
        kernels, biases, at = [], [], 0
        for i, o in zip(widths, widths[1:]):
            kernels.append(flat[at : at + i * o].reshape(i, o))
            biases.append(flat[at + i * o : at + i * o + o])
            at += i * o + o
        return cls(tuple(int(s) for s in shape), tuple(kernels), tuple(biases), tuple(a for _, a in layout))


@functools.lru_cache(maxsize=16)
def _npy_header(n: int) -> bytes:
    """The .npy header of a float32 vector of ``n`` numbers, as ``np.save`` writes it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
    return buf.getvalue()


def from_keras(model, shape: tuple[int, ...]) -> DenseNet | None:
    """The dense network of a Keras autoencoder (Input, Flatten, Dense layers, Reshape to ``shape``), or None
    for another architecture (conv layers, an activation not in :data:`ACTIVATIONS`, extra weights)."""
    layers = list(model.layers)
    names = [type(layer).__name__ for layer in layers]
    if len(names) < 4 or names[:2] != ["InputLayer", "Flatten"] or names[-1] != "Reshape" or \
            any(n != "Dense" for n in names[2:-1]) or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    if tuple(layers[-1].get_config().get("target_shape") or ()) != tuple(shape):
        return None
    kernels, biases, acts = [], [], []
    for layer in layers[2:-1]:
        cfg, weights = layer.get_config(), [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
        if cfg.get("activation") not in ACTIVATIONS or len(weights) != (2 if cfg.get("use_bias", True) else 1):
            return None
        kernels.append(weights[0])
        biases.append(weights[1] if len(weights) == 2 else np.zeros(weights[0].shape[1], np.float32))
        acts.append(cfg["activation"])
    widths = [math.prod(shape)] + [k.shape[1] for k in kernels]
    if [k.shape[0] for k in kernels] != widths[:-1] or widths[-1] != widths[0]:
        return None
    return DenseNet(tuple(int(s) for s in shape), tuple(kernels), tuple(biases), tuple(acts))


def check(model, net: DenseNet, seed: int = 0) -> float:
    """Largest relative difference between the Keras model's errors and the stacked network's on random
    images; raises InputError past :data:`TOLERANCE`. Needs TensorFlow."""
    from .runtime import error_fn

    x = np.random.default_rng(seed).random((7, *net.shape), dtype=np.float32)
    ref = np.asarray(error_fn([model], net.shape)(x))[:, 0]
    got = Stacked([net])(x)[:, 0]
    diff = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)))
    if not np.all(np.isfinite(got)) or diff > TOLERANCE:
        raise InputError(f"the stacked dense network's errors differ from Keras by {diff:.2g} (relative), "
                         f"more than {TOLERANCE:g}")
    return diff


def write(model, shape: tuple[int, ...], folder: Path, file: str, name: str) -> dict | None:
    """Write a dense Keras autoencoder's weights to ``folder / file`` once they are checked against Keras
    (:func:`check`); the card's field: ``file``, ``layers`` (:meth:`DenseNet.layout`) and ``max_rel_diff``,
    or ``skipped`` and a warning naming ``name`` when the check fails. None for another architecture."""
    net = from_keras(model, shape)
    if net is None:
        return None
    try:
        diff = check(model, net)
    except InputError as err:
        warnings.warn(f"{name}: registered without its stacked weights ({err}); it answers one class at a time",
                      stacklevel=3)
        return {"skipped": str(err)}
    with open(Path(folder) / file, "wb") as fh:
        fh.write(net.to_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    return {"file": file, "layers": net.layout(), "max_rel_diff": diff}


def read(field: object, files: dict[str, bytes], shape: tuple[int, ...], kind: str) -> DenseNet | None:
    """The network a card's field (:func:`write`'s) names, from the checked bytes of its ``files``; None when
    there is none (an older entry, a skipped one) or it is not stackable here. InputError naming ``kind``
    when the field or the file is broken."""
    if not isinstance(field, dict) or "file" not in field:
        return None
    if field["file"] not in files:
        raise InputError(f"{kind} model: missing file {field['file']}")
    try:
        return DenseNet.from_bytes(files[field["file"]], field.get("layers"), shape)
    except InputError as err:
        raise InputError(f"{kind} model: {field['file']}: {err}") from None


def _activate(h: np.ndarray, name: str) -> None:
    """Keras's activation ``name``, in place."""
    if name == "relu":
        np.maximum(h, 0, out=h)
    elif name == "sigmoid":  # 1 / (1 + exp(-h)): exp overflows to inf for h < -88, and 1 / inf is 0
        np.negative(h, out=h)
        np.exp(h, out=h)
        h += 1
        np.reciprocal(h, out=h)
    elif name == "tanh":
        np.tanh(h, out=h)


class Stacked:
    """The per-image errors of images under every one of ``nets`` (one :attr:`DenseNet.signature`), (N, K)
    float64: blocks of classes side by side in each product, the images in chunks of :data:`ROWS`."""

    def __init__(self, nets: Sequence[DenseNet]):
        nets = list(nets)
        if not nets or len({n.signature for n in nets}) != 1:
            raise InputError("stacking needs one or more dense networks of one shape")
        first = nets[0]
        self.shape, self.activations, self.k = first.shape, first.activations, len(nets)
        self.widths = [int(k.shape[1]) for k in first.kernels]
        self.macs = first.macs * self.k  #: multiply-adds per image, every class
        step = max(1, BLOCK_FLOATS // (ROWS * max(self.widths)))
        self._blocks = []  # (columns, first kernels side by side (in, k * w1), their biases, later layers stacked)
        for s in range(0, self.k, step):
            part = nets[s : s + step]
            rest = [(np.stack([n.kernels[i] for n in part]), np.stack([n.biases[i] for n in part])[:, None, :])
                    for i in range(1, len(self.widths))]
            self._blocks.append((slice(s, s + len(part)), np.concatenate([n.kernels[0] for n in part], axis=1),
                                 np.concatenate([n.biases[0] for n in part]), rest))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
        out = np.empty((len(x), self.k), dtype=np.float64)
        chunks = [slice(s, s + ROWS) for s in range(0, len(x), ROWS)]
        n = cores()
        with one_blas_thread():
            if len(chunks) > 1 and n > 1 and self.macs * ROWS >= PARALLEL_MACS:  # NumPy releases the GIL
                jobs = [_pool().submit(self._chunk, x[c], out[c]) for c in chunks]
            elif len(chunks) == 1 and len(self._blocks) > 1 and n > 1 and self.macs * len(x) >= PARALLEL_MACS // 4:
                # a few images through large networks: each core reads its share of the classes' weights
                jobs = [_pool().submit(self._chunk, x, out, self._blocks[i::n]) for i in range(n)]
            else:
                jobs = []
                for c in chunks:
                    self._chunk(x[c], out[c])
            for done in jobs:
                done.result()  # re-raises a worker's error here
        return out

    def _chunk(self, xs: np.ndarray, out: np.ndarray, blocks: list | None = None) -> None:
        """The errors of a chunk of images ``xs`` (n, pixels) into ``out`` (n, K), block by block (``blocks``:
        these of the classes' blocks only)."""
        with np.errstate(over="ignore"):
            for cols, w1, b1, rest in self._blocks if blocks is None else blocks:
                h = xs @ w1
                h += b1
                _activate(h, self.activations[0])
                h = h.reshape(len(xs), -1, self.widths[0]).transpose(1, 0, 2)  # (classes, images, width)
                for (w, b), act in zip(rest, self.activations[1:]):
                    h = np.matmul(h, w)
                    h += b
                    _activate(h, act)
                h -= xs  # the reconstruction's error, as bank.nets.runtime.mse: float32 mean of squares
                np.square(h, out=h)
                out[:, cols] = h.mean(axis=2).T


class GroupErrors:
    """The (N, K) errors of a group of autoencoders: the dense networks of each shape stacked
    (:class:`Stacked`), the rest (None in ``nets``) scored by ``fallback(columns)``, today's way."""

    def __init__(self, nets: Sequence[DenseNet | None], fallback: Callable[[list[int]], ErrorFn]):
        self.k = len(nets)
        shapes: dict[tuple, list[int]] = {}
        for j, net in enumerate(nets):
            if net is not None:
                shapes.setdefault(net.signature, []).append(j)
        #: (columns, function): one per stacked shape, and one for the columns left to ``fallback``.
        self.parts: list[tuple[list[int], ErrorFn]] = [(cols, Stacked([nets[j] for j in cols]))
                                                       for cols in shapes.values()]
        rest = [j for j, net in enumerate(nets) if net is None]
        if rest:
            self.parts.append((rest, fallback(rest)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(self.parts) == 1 and len(self.parts[0][0]) == self.k:
            return self.parts[0][1](x)
        out = np.empty((len(x), self.k), dtype=np.float64)
        for cols, fn in self.parts:
            out[:, cols] = fn(x)
        return out
