"""Autoencoder builders (Keras functional API) and the reconstruction error.

Importing this module imports Keras and TensorFlow: only training and the
TensorFlow router need it.
"""

from __future__ import annotations

import math

from .._quiet import quiet_tensorflow
from ..errors import InputError

quiet_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402


def build_conv(shape: tuple[int, int, int], filters: tuple[int, ...] = (32, 64), latent_dim: int = 16,
               momentum: float = 0.9) -> keras.Model:
    """The seed tutorials' conv autoencoder, shaped by ``shape`` = (H, W, C).

    Encoder: per filter count, Conv2D stride 2 + LeakyReLU + BatchNorm; a dense
    latent code. BatchNorm's moving statistics follow the batches with ``momentum``
    0.9 (Keras's 0.99 lags a few hundred steps behind: on a small class the
    early-stopping loss, taken with them, then jumps about for the first epochs
    and early stopping kept an epoch from before the model had learnt). Decoder: the mirror with Conv2DTranspose, then a sigmoid
    Conv2DTranspose to C channels, cropped back to H x W for odd sizes.
    """
    h, w, c = shape
    inputs = keras.Input(shape=shape)
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, 3, strides=2, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.BatchNormalization(momentum=momentum)(x)
    inner = tuple(x.shape[1:])
    latent = layers.Dense(latent_dim, name="latent")(layers.Flatten()(x))
    x = layers.Dense(math.prod(inner))(latent)
    x = layers.Reshape(inner)(x)
    for f in reversed(filters):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.BatchNormalization(momentum=momentum)(x)
    x = layers.Conv2DTranspose(c, 3, padding="same", activation="sigmoid")(x)
    extra_h, extra_w = x.shape[1] - h, x.shape[2] - w
    if extra_h or extra_w:
        x = layers.Cropping2D(((0, extra_h), (0, extra_w)))(x)
    return keras.Model(inputs, x, name="conv_autoencoder")


def build_dense(shape: tuple[int, int, int], hidden: tuple[int, ...] = (64,), latent_dim: int = 8) -> keras.Model:
    """A dense autoencoder for tiny inputs (such as 8x8 digits)."""
    inputs = keras.Input(shape=shape)
    x = layers.Flatten()(inputs)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(latent_dim, name="latent")(x)
    for units in reversed(hidden):
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(math.prod(shape), activation="sigmoid")(x)
    outputs = layers.Reshape(shape)(x)
    return keras.Model(inputs, outputs, name="dense_autoencoder")


ARCHITECTURES = {"conv": build_conv, "dense": build_dense}


def default_architecture(shape: tuple[int, int, int]) -> tuple[str, dict]:
    """Dense for tiny inputs (at most 16x16); otherwise conv with one stride-2
    block per halving until the smaller side is at most 8 (two to five)."""
    h, w, _ = shape
    if h * w <= 16 * 16:
        return "dense", {"hidden": [64], "latent_dim": 8}
    blocks, side = 0, min(h, w)
    while side > 8 and blocks < 5:
        side, blocks = math.ceil(side / 2), blocks + 1
    blocks = max(blocks, 2)
    return "conv", {"filters": [32, 64, 64, 128, 128][:blocks], "latent_dim": 16 if blocks <= 2 else 64}


def build(name: str, shape: tuple[int, int, int], params: dict) -> keras.Model:
    """Build the architecture ``name`` with keyword ``params``."""
    if name not in ARCHITECTURES:
        raise InputError(f"architecture: expected one of {sorted(ARCHITECTURES)}, got {name!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    try:
        return ARCHITECTURES[name](tuple(shape), **kwargs)
    except TypeError as e:
        raise InputError(f"architecture {name!r}: bad parameters {params} ({e})") from None


def error_model(models: list[keras.Model], shape: tuple[int, int, int]) -> keras.Model:
    """One model computing every autoencoder's per-image error at once.

    Output (N, K): the per-pixel mean squared error of model k on image n.
    This is the only place the error is defined.
    """
    inputs = keras.Input(shape=shape)
    errors = []
    for k, m in enumerate(models):
        member = keras.Model(m.input, m.output, name=f"class_{k}")  # unique name, shared layers
        errors.append(ops.mean(ops.square(member(inputs, training=False) - inputs), axis=(1, 2, 3)))
    return keras.Model(inputs, ops.stack(errors, axis=1), name="bank_errors")
