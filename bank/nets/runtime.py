"""Answering without TensorFlow: each autoencoder as LiteRT flatbuffers.

At registration (TensorFlow is there: the model was just trained) each model
is converted once per batch size in :data:`BATCH_SIZES`, every shape fixed.
A free batch dimension would keep Keras's shape arithmetic (Flatten, Reshape,
Conv2DTranspose read the batch size at run time) in the graph, and LiteRT's
XNNPACK kernels then stay off: about 3 times slower (``benchmarks/speed.py``).
The conversion is checked against Keras before it is kept.

Answering loads the flatbuffers into ``ai_edge_litert`` interpreters (about
0.15 s to import, against 5-6 s for TensorFlow), runs full batches at the
large size and the remainder one image at a time, or padded to a batch when
that is cheaper. The error is the per-pixel mean squared error, as in
:func:`bank.nets.models.error_model`, the TensorFlow reference.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from .._quiet import quiet_stderr
from ..errors import InputError
from ..machine import cores

#: Batch sizes each model is converted for: one image, and four. On one core a model is
#: fastest per image at batch 4 (3,700 images/s against 2,500 at 32 and 1,350 at 1, 28x28
#: default model), and small batches keep a server's few gathered requests cheap too.
BATCH_SIZES = (1, 4)
#: Largest relative difference of the errors accepted between LiteRT and Keras at registration.
TOLERANCE = 1e-5
#: Interpreter threads: LiteRT's small kernels gain little past a few cores.
THREADS = max(1, min(4, os.cpu_count() or 1))  # one model alone; a bank runs one model per core instead

_QUIETED: list[bool] = []  # whether LiteRT's once-per-process start-up line has been muted


def available() -> bool:
    """Whether the LiteRT interpreter imports here."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def convert(model, shape: tuple[int, ...], batch: int) -> bytes:
    """A one-input Keras model as a LiteRT flatbuffer for inputs of (batch, *shape). Needs TensorFlow."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((batch, *shape), tf.float32)])
    # No trackable_obj: given the Keras 3 model, the converter keeps the weights as variables that
    # LiteRT never initialises (NaN under XNNPACK); without it they are frozen into constants. TF
    # calls this path deprecated (an absl warning, muted here); model.export then from_saved_model
    # gives the same flatbuffer about 5 times slower.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]).convert()
    finally:
        absl.setLevel(level)


def mse(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-image mean squared error over pixels and channels, shape (N,), float64."""
    x = np.asarray(x, dtype=np.float32)
    return np.mean(np.square(np.asarray(reconstruction, dtype=np.float32) - x), axis=(1, 2, 3)).astype(np.float64)


class LiteModel:
    """A network (an autoencoder by default) run by LiteRT from flatbuffers of fixed batch sizes.

    It answers ``predict_on_batch`` for any number of images, like a Keras
    model, so detectors and the router take either. Each batch size's
    interpreter gets its working memory on first use; calls from several
    threads take turns. ``out_shape``: each image's output, when it is not
    an image of ``shape`` (a classifier's logits).
    """

    def __init__(self, flatbuffers: dict[int, bytes], shape: tuple[int, ...], threads: int = THREADS,
                 out_shape: tuple[int, ...] | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if 1 not in flatbuffers:
            raise InputError("a LiteModel needs a flatbuffer for batch size 1")
        self.shape = tuple(int(s) for s in shape)
        self.out_shape = self.shape if out_shape is None else tuple(int(s) for s in out_shape)
        self.input_shape, self.output_shape = (None, *self.shape), (None, *self.out_shape)
        self._interpreters: dict[int, list] = {}  # batch -> [interpreter, input index, output index, allocated]
        self._lock = threading.Lock()  # an interpreter runs one call at a time
        self._flatbuffers = dict(flatbuffers)
        self._threads = threads
        self._make = Interpreter
        for batch in self._flatbuffers:  # refuse a flatbuffer of the wrong shape now, not at the first answer
            self._interpreter(batch, allocate=False)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self._flatbuffers)

    def with_threads(self, threads: int) -> LiteModel:
        """The same model with its own interpreters on ``threads`` threads."""
        return LiteModel(self._flatbuffers, self.shape, threads, self.out_shape)

    def _interpreter(self, batch: int, allocate: bool = True) -> list:
        if batch not in self._interpreters:
            it = self._make(model_content=self._flatbuffers[batch], num_threads=self._threads)
            ins, outs = it.get_input_details(), it.get_output_details()
            want, want_out = [batch, *self.shape], [batch, *self.out_shape]
            got = [[int(v) for v in d["shape"]] for d in (*ins, *outs)]
            if len(ins) != 1 or len(outs) != 1 or any(d["dtype"] != np.float32 for d in (*ins, *outs)):
                raise InputError(f"the batch-{batch} flatbuffer must map one float32 tensor to one; it has "
                                 f"{len(ins)} input(s) and {len(outs)} output(s) of "
                                 f"{sorted({np.dtype(d['dtype']).name for d in (*ins, *outs)})}")
            if got != [want, want_out]:
                raise InputError(f"the batch-{batch} flatbuffer maps {' and '.join(map(str, got[:len(ins)]))} to "
                                 f"{' and '.join(map(str, got[len(ins):]))}, expected {want} to {want_out}")
            self._interpreters[batch] = [it, ins[0]["index"], outs[0]["index"], False]
        entry = self._interpreters[batch]
        if allocate and not entry[3]:  # the working memory, only for the batch sizes used
            if _QUIETED:
                entry[0].allocate_tensors()
            else:
                with quiet_stderr():  # LiteRT prints a line when it makes its first delegate in a process
                    entry[0].allocate_tensors()
                _QUIETED.append(True)
            entry[3] = True
        return entry

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            it, i, o, _ = self._interpreter(len(x))
            it.set_tensor(i, x)
            it.invoke()
            return it.get_tensor(o).copy()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Outputs (reconstructions) of (N, *shape) images: full batches at the largest size, the rest one by one
        (or padded to a batch when that is cheaper)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        big = max(self._flatbuffers)
        out, start = [], 0
        while len(x) - start >= big:
            out.append(self._run(x[start : start + big]))
            start += big
        rest = len(x) - start
        if rest and big > 1 and 3 * rest > big:  # a padded batch costs about as much as big/3 single calls
            pad = np.zeros((big, *self.shape), dtype=np.float32)
            pad[:rest] = x[start:]
            out.append(self._run(pad)[:rest])
        else:
            out.extend(self._run(x[j : j + 1]) for j in range(start, len(x)))
        return np.concatenate(out) if out else np.empty((0, *self.out_shape), dtype=np.float32)


def error_fn(models: Sequence[object], shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of images at ``shape`` to their (N, K) errors under each model.

    Keras models only: one fused TensorFlow graph (:func:`bank.nets.models.error_model`).
    LiteRT models, several classes and cores: one thread per core, each
    running its share of the classes on one-thread interpreters (LiteRT
    releases the GIL; whole models side by side beat splitting each small
    layer across cores: 1.5x the images/s here). Otherwise each model's
    ``predict_on_batch`` in turn. The error is computed in NumPy for LiteRT.
    """
    models = list(models)
    if not any(isinstance(m, LiteModel) for m in models):
        from .models import error_model

        fused = error_model(models, tuple(shape))
        return lambda x: np.asarray(fused.predict_on_batch(x), dtype=np.float64)
    if cores() < 2 or len(models) < 2 or not all(isinstance(m, LiteModel) for m in models):
        return lambda x: np.stack([mse(x, m.predict_on_batch(x)) for m in models], axis=1)
    singles = [m.with_threads(1) for m in models]
    return across_cores([lambda x, m=m: mse(x, m.predict_on_batch(x)) for m in singles])


def across_cores(fns: Sequence[Callable[[np.ndarray], np.ndarray]]) -> Callable[[np.ndarray], np.ndarray]:
    """A function from images to the (N, K) float64 columns of the K per-class functions ``fns``, the classes
    shared among one thread per core (each should run one-thread LiteRT interpreters, which release the
    GIL: whole models side by side beat splitting each small layer across cores)."""
    from concurrent.futures import ThreadPoolExecutor

    fns = list(fns)
    workers = max(1, min(cores(), len(fns)))
    shares = [range(w, len(fns), workers) for w in range(workers)]
    pool = ThreadPoolExecutor(workers, thread_name_prefix="bank-litert")

    def columns(x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(fns)), dtype=np.float64)

        def share(ks: range) -> None:
            for k in ks:
                out[:, k] = fns[k](x)

        for done in [pool.submit(share, ks) for ks in shares]:
            done.result()  # re-raises a worker's error here
        return out

    return columns


def check(model, lite: LiteModel, seed: int = 0) -> float:
    """Largest relative difference between the Keras model's errors and LiteRT's on random images,
    at every batch size (and a remainder); raises InputError past :data:`TOLERANCE`. A network whose
    output is not an image (``lite.out_shape``) is checked on its outputs, relative to their scale."""
    rng = np.random.default_rng(seed)
    x = rng.random((max(lite.batch_sizes) + 3, *lite.shape), dtype=np.float32)
    if lite.out_shape != lite.shape:
        ref = np.asarray(model.predict_on_batch(x), dtype=np.float64)
        got = np.asarray(lite.predict_on_batch(x), dtype=np.float64)
        what, scale = "outputs", np.maximum(np.max(np.abs(ref)), 1e-12)
    else:
        ref = np.asarray(error_fn([model], lite.shape)(x))[:, 0]
        got = mse(x, lite.predict_on_batch(x))
        what, scale = "errors", np.maximum(np.abs(ref), 1e-12)
    if not np.all(np.isfinite(got)):
        raise InputError(f"LiteRT gives non-finite {what}")
    diff = float(np.max(np.abs(got - ref) / scale))
    if diff > TOLERANCE:
        raise InputError(f"LiteRT {what} differ from Keras by {diff:.2g} (relative), more than {TOLERANCE:g}")
    return diff
