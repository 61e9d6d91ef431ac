"""The HOG of :mod:`bank.kinds.hog` and a one-class SVM's score on it, as TensorFlow operations: ``bank export``.

The same steps in the same precisions as the NumPy code (gradients in the image's float32, orientations,
bins and cell sums in float64, a cell's sum rounded to float32 and divided by its area in float32, blocks
normalised in float64, the vector rounded to float32), so an exported graph gives the scores the router
gives (a pixel whose angle falls within a rounding error of a bin's edge may vote into the next bin: the
score moves by about 1e-4 of itself, tested). Imported by the kinds' ``tf_score`` alone: answering never
needs it, and TensorFlow is imported by whoever calls these.
"""

from __future__ import annotations

import numpy as np

from .hog import EPS, _pair, hog_grid


def hog_graph(images, orientations: int, pixels_per_cell, cells_per_block, block_norm: str, signed: bool = False):
    """HOG vectors (N, F) float32 of ``images``, a float32 tensor (N, H, W, C), as :func:`bank.kinds.hog.hog`
    gives for float32 images (``transform_sqrt`` off, as the kinds use it)."""
    import tensorflow as tf

    h, w, channels = (int(v) for v in images.shape[1:])
    (pr, pc), (br, bc) = _pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block")
    nbr, nbc = hog_grid(h, w, (pr, pc), (br, bc))
    ncr, ncc = h // pr, w // pc
    span = 360.0 if signed else 180.0
    # central differences in float32, zero on the border rows and columns
    g_row = tf.pad(images[:, 2:] - images[:, :-2], [[0, 0], [1, 1], [0, 0], [0, 0]])
    g_col = tf.pad(images[:, :, 2:] - images[:, :, :-2], [[0, 0], [0, 0], [1, 1], [0, 0]])
    if channels > 1:  # the channel of the largest gradient (the first on ties)
        # np.hypot's float32, made as float64 and rounded: 8-bit colour ties channels often, and a magnitude
        # rounded another way picks another channel, with another angle
        wide_r, wide_c = tf.cast(g_row, tf.float64), tf.cast(g_col, tf.float64)
        size = tf.cast(tf.sqrt(wide_r * wide_r + wide_c * wide_c), tf.float32)
        pick = tf.argmax(size, axis=-1, output_type=tf.int32)[..., None]
        g_row, g_col = tf.gather(g_row, pick, batch_dims=3), tf.gather(g_col, pick, batch_dims=3)
    g_row = tf.cast(g_row[:, : ncr * pr, : ncc * pc, 0], tf.float64)
    g_col = tf.cast(g_col[:, : ncr * pr, : ncc * pc, 0], tf.float64)
    magnitude = tf.sqrt(g_col * g_col + g_row * g_row)
    angle = tf.math.floormod(tf.math.atan2(g_row, g_col) * (180.0 / np.pi), span)
    edges = tf.constant((span / orientations) * np.arange(orientations + 2), tf.float64)
    bins = tf.minimum(tf.cast(angle * (orientations / span), tf.int32), orientations)
    bins -= tf.cast(angle < tf.gather(edges, bins), tf.int32)
    bins += tf.cast(angle >= tf.gather(edges, bins + 1), tf.int32)
    votes = tf.one_hot(bins, orientations, dtype=tf.float64) * magnitude[..., None]  # bin `orientations`: none
    cells = tf.reduce_sum(tf.reshape(votes, [-1, ncr, pr, ncc, pc, orientations]), axis=[2, 4])
    cells = tf.cast(tf.cast(cells, tf.float32) / np.float32(pr * pc), tf.float64)
    # blocks (N, nbr, nbc, br, bc, O), in the order scikit-image ravels them
    blocks = tf.stack([tf.stack([cells[:, i : i + nbr, j : j + nbc] for j in range(bc)], axis=3)
                       for i in range(br)], axis=3)
    axes = [3, 4, 5]
    if block_norm == "L1":
        out = blocks / (tf.reduce_sum(tf.abs(blocks), axis=axes, keepdims=True) + EPS)
    elif block_norm == "L1-sqrt":
        out = tf.sqrt(blocks / (tf.reduce_sum(tf.abs(blocks), axis=axes, keepdims=True) + EPS))
    else:
        out = blocks / tf.sqrt(tf.reduce_sum(blocks * blocks, axis=axes, keepdims=True) + EPS**2)
        if block_norm == "L2-Hys":
            out = tf.minimum(out, 0.2)
            out = out / tf.sqrt(tf.reduce_sum(out * out, axis=axes, keepdims=True) + EPS**2)
    return tf.cast(tf.reshape(out, [-1, nbr * nbc * br * bc * orientations]), tf.float32)


def kernel_score_graph(detector, features):
    """:meth:`bank.kinds.hog_ocsvm.HOGOneClassSVM.score_features` of float32 HOG vectors (N, F), in float64:
    ``max(log sum a_i - log sum_i a_i exp(-gamma ||sv_i - f||^2), 0)``, the support vectors constants."""
    import tensorflow as tf

    f = tf.cast(features, tf.float64)
    sv = tf.constant(detector.support_vectors_, tf.float64)
    sq = tf.reduce_sum(f * f, axis=1, keepdims=True) + tf.constant(detector._sv_sq, tf.float64)[None, :] \
        - 2.0 * tf.matmul(f, sv, transpose_b=True)
    t = -detector.gamma_ * tf.maximum(sq, 0.0) + tf.constant(detector._log_coef, tf.float64)[None, :]
    return tf.maximum(detector._log_weight - tf.reduce_logsumexp(t, axis=1), 0.0)
