"""Training images streamed from disk: folders of photos that need not fit in memory.

:func:`scan` decodes every file once (in threads), to find the unreadable
ones before training starts and to learn the images' sizes and colour; only
the paths are kept. :func:`dataset` then streams the readable files through
``tf.data``: each image decoded, oriented and brought to the model's spec by
the same code the router answers with (:func:`bank.io.decoding.read_image` and
:func:`bank.io.images.to_spec`, so training and answering see the same pixels),
in parallel, batched and prefetched. Memory holds a few batches, whatever the
number of files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .data import list_image_files
from .decoding import PixelBudget, decode, default_max_pixels, read_image, threads
from .images import ImageError, InputSpec, complexity, is_gray, spec_for, to_spec

#: Decoded training images are kept in memory up to this many bytes (the monitor set's included);
#: past it, every epoch decodes them from disk again.
CACHE_BYTES = 256 * 2**20


@dataclass
class ImageFiles:
    """Readable image files, found by :func:`scan`: their paths, sizes and colour, and what was skipped."""

    paths: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=list)
    gray: bool = True
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def __len__(self) -> int:
        return len(self.paths)

    def spec(self, max_side: int = 128, default: int = 64) -> InputSpec:
        """The input spec the images suggest (see :func:`bank.io.images.spec_for`)."""
        return spec_for(set(self.sizes), self.gray, max_side, default)

    def subset(self, idx: Iterable[int]) -> ImageFiles:
        """The files at positions ``idx`` (a held-out split, say); nothing skipped."""
        idx = list(idx)
        return ImageFiles([self.paths[i] for i in idx], [self.sizes[i] for i in idx], self.gray)

    def fingerprint(self) -> str:
        """A digest of the paths, sizes in bytes and modification times: changes when the data does."""
        h = hashlib.sha256()
        for p in self.paths:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


#: Scanning decodes each file no larger than this needs (its size comes from the header, its colour from the pixels).
PROBE_FIT = (128, 128)


_BUDGETS: dict[int, PixelBudget] = {}


def _budget() -> PixelBudget:
    """The pixels this process's training decodes may hold at once, whatever decodes them (the scan's threads,
    tf.data's parallel calls): one largest image's worth (``max_pixels``)."""
    limit = default_max_pixels()
    if limit not in _BUDGETS:
        _BUDGETS[limit] = PixelBudget(limit)
    return _BUDGETS[limit]


def _probe(path: str) -> tuple[int, int, bool] | ImageError:
    try:
        got = decode(path, path, fit=PROBE_FIT, budget=_budget())
    except ImageError as e:
        return e
    return got.height, got.width, is_gray(got.pixels)


def scan(paths: Iterable[str | os.PathLike], n_jobs: int | None = None) -> ImageFiles:
    """Find the image files under ``paths`` (as :func:`bank.io.data.list_image_files`) and decode each
    once, in ``n_jobs`` threads (default: one per core): the unreadable ones go to ``skipped`` with
    their reason, the others are kept by path with their size."""
    files, skipped = list_image_files(paths)
    with threads(n_jobs) as pool:
        probes = list(pool.map(_probe, map(str, files)))
    out = ImageFiles([], skipped=list(skipped))
    for f, got in zip(files, probes):
        if isinstance(got, ImageError):
            out.skipped.append((got.source, got.reason))
        else:
            out.paths.append(str(f))
            out.sizes.append(got[:2])
            out.gray = out.gray and got[2]
    return out


def load(path: str, spec: InputSpec) -> np.ndarray:
    """One file at ``spec``: float32 (H, W, C), as the router would see it."""
    return to_spec([read_image(path, fit=(spec.height, spec.width), budget=_budget())], spec)[0]


def dataset(files: Sequence[str], spec: InputSpec, batch_size: int, *, seed: int | None = None,
            repeats: int = 1, cache: bool = False, on_skip: Callable[[str, str], None] | None = None):
    """A ``tf.data.Dataset`` of ``(x, x)`` batches from image files (needs TensorFlow).

    ``seed``: shuffle the files each pass (None keeps their order).
    ``repeats``: passes over the files per iteration (a small class's epoch).
    ``cache``: keep the decoded images in memory after the first pass
    (for sets that fit: :func:`fits_in_memory`); otherwise every pass
    decodes the files again and memory holds only a few batches.
    A file that cannot be read now (changed since the scan) is dropped and
    reported to ``on_skip(name, reason)``; the run goes on.
    """
    import tensorflow as tf

    def decode(path: bytes) -> np.ndarray:
        try:
            return load(path.decode(), spec)
        except ImageError as e:
            if on_skip is not None:
                on_skip(e.source, e.reason)
            raise

    def decoded(ds):
        ds = ds.map(lambda p: tf.ensure_shape(tf.numpy_function(decode, [p], tf.float32, stateful=False),
                                              spec.shape),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=cache or seed is None)  # reproducible
        return ds.ignore_errors()  # the file was reported by decode; the others go on

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(list(files), dtype=object).astype(str))
    if cache:  # decode once, then shuffle the decoded images
        ds = decoded(ds).cache()
    if seed is not None:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeats > 1:
        ds = ds.repeat(repeats)
    if not cache:  # shuffle the paths, decode as they come
        ds = decoded(ds)
    return ds.map(lambda x: (x, x)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fits_in_memory(n: int, spec: InputSpec, budget: int | None = None) -> bool:
    """Whether ``n`` images at ``spec`` (float32) take at most ``budget`` bytes (default :data:`CACHE_BYTES`)."""
    return n * int(np.prod(spec.shape)) * 4 <= (CACHE_BYTES if budget is None else budget)


def batches(files: Sequence[str], spec: InputSpec, batch_size: int = 256, n_jobs: int | None = None,
            on_skip: Callable[[str, str], None] | None = None) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The files at ``spec``, in order, ``batch_size`` at a time, with their names (decoded in
    threads, no TensorFlow). A file that cannot be read is left out and told to ``on_skip``."""
    def get(path: str) -> np.ndarray | ImageError:
        try:
            return load(path, spec)
        except ImageError as e:
            return e

    with threads(n_jobs) as pool:
        for i in range(0, len(files), batch_size):
            part = files[i : i + batch_size]
            got = list(pool.map(get, part))
            for e in (g for g in got if isinstance(g, ImageError)):
                if on_skip is not None:
                    on_skip(e.source, e.reason)
            ok = [(p, g) for p, g in zip(part, got) if not isinstance(g, ImageError)]
            if ok:
                yield np.stack([g for _, g in ok]), [p for p, _ in ok]


def measure(error_fn: Callable[[np.ndarray], np.ndarray], files: Sequence[str], spec: InputSpec,
            batch_size: int = 256, on_skip: Callable[[str, str], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per readable file, ``error_fn``'s error and the image's complexity at ``spec``, streamed: each (N,)."""
    errors, cx = [np.empty(0)], [np.empty(0)]
    for x, _ in batches(files, spec, batch_size, on_skip=on_skip):
        errors.append(np.asarray(error_fn(x), dtype=np.float64))
        cx.append(complexity(x))
    return np.concatenate(errors), np.concatenate(cx)
