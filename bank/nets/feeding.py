"""What the Keras training of one class's network reads: its images, from memory or files, in batches.

A training resolved from its images (:class:`bank.nets.checkpoints._Plan`: the images in memory, or
:class:`bank.io.pipeline.ImageFiles` streamed through ``tf.data``; the seeded split) is fed as
(input, target) batches: a small class repeated within an epoch to a minimum of steps, each image moved
by a random shift where asked (:func:`feed`). After training, the held-out images' errors and
complexities and a sample of the training errors are read the same way (:func:`held_out`). Files that
became unreadable since the scan are noted, not fatal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..io.images import complexity
from .checkpoints import _Plan

#: A small class is repeated within an epoch so that an epoch is at least this
#: many steps: Keras spends ~0.1 s per epoch on overhead whatever its size, and
#: a few hundred images need as many steps as a few thousand to be learnt
#: (with shifts, each repeat is a new view of the image).
MIN_STEPS_PER_EPOCH = 50

#: The mean training error in the card is taken over at most this many training images.
TRAIN_ERROR_SAMPLE = 2000


@dataclass
class Feed:
    """The training and monitor data of one run, and what the run's record says of them."""

    train: object  #: (x, x) arrays, or a ``tf.data`` dataset of (input, target) batches
    monitor: object
    repeats: int  #: how many times the training images come round in one epoch
    cache: bool  #: files decoded once and kept in memory (else streamed each epoch)
    late: list[tuple[str, str]] = field(default_factory=list)  #: (file, why): unreadable since the scan

    def data_note(self, plan: _Plan) -> str:
        """Where the images came from, for the training record."""
        return ("in memory" if plan.files is None else
                "files, decoded once and kept in memory" if self.cache else "files, streamed from disk each epoch")


def feed(plan: _Plan, batch_size: int, seed: int, shift: float) -> Feed:
    """The batches a run of ``plan`` trains and monitors on; with ``shift`` > 0 each training image is
    moved by a random shift of up to that share of its sides (:func:`shifted`)."""
    train_idx, mon_idx, _ = plan.split
    repeats = max(1, math.ceil(MIN_STEPS_PER_EPOCH * batch_size / len(train_idx)))
    late: list[tuple[str, str]] = []
    if plan.files is not None:
        from ..io.pipeline import dataset, fits_in_memory

        paths, cache = plan.files.paths, fits_in_memory(len(train_idx) + len(mon_idx), plan.spec)
        train = dataset([paths[i] for i in train_idx], plan.spec, batch_size, seed=seed, repeats=repeats,
                        cache=cache, on_skip=lambda name, why: late.append((name, why)))
        monitor = dataset([paths[i] for i in mon_idx], plan.spec, batch_size, cache=cache, on_skip=lambda *a: None)
    else:
        x_train = plan.x[train_idx]
        x_fit = np.tile(x_train, (repeats, 1, 1, 1)) if repeats > 1 else x_train
        train, monitor, cache = (x_fit, x_fit), (plan.x[mon_idx], plan.x[mon_idx]), False
    if shift:
        train = shifted(train, batch_size, shift, seed)
    return Feed(train, monitor, repeats, cache, late)


def held_out(plan: _Plan, errors: Callable[[np.ndarray], np.ndarray], note: Callable[[str, str], None],
             batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trained network's errors and the inputs' complexities on the held-out images, and its errors on
    up to :data:`TRAIN_ERROR_SAMPLE` training images. ``errors``: images at the spec -> (N,); ``note``
    is told of a file that could not be read."""
    train_idx, _, cal_idx = plan.split
    sample = train_idx[:TRAIN_ERROR_SAMPLE]  # the split is a permutation: a random sample
    if plan.files is not None:
        from ..io.pipeline import measure

        paths = plan.files.paths
        cal_errors, cal_cx = measure(errors, [paths[i] for i in cal_idx], plan.spec, on_skip=note)
        return cal_errors, cal_cx, measure(errors, [paths[i] for i in sample], plan.spec, on_skip=note)[0]

    def batched(x: np.ndarray) -> np.ndarray:
        return np.concatenate([errors(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    return batched(plan.x[cal_idx]), complexity(plan.x[cal_idx]), batched(plan.x[sample])


def shifted(train, batch_size: int, shift: float, seed: int):
    """The training batches, each image moved by a random shift of up to ``shift`` of its height and
    width (the edge pixels repeated into the gap), as (input, target) pairs: a model that learns the class
    at any nearby position, not the positions of a few hundred images."""
    import keras
    import tensorflow as tf

    if isinstance(train, tuple):
        x = train[0]
        ds = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    else:
        ds = train.map(lambda x, y: x)
    move = keras.layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed)

    def pair(x):
        x = move(x, training=True)
        return x, x

    # one batch after another: the layer's random state advances in the same order every run (the same
    # seed, the same model); a shift costs little beside a training step
    return ds.map(pair).prefetch(tf.data.AUTOTUNE)
