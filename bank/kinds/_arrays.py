"""Checks the kinds share: image batches coming in, and stored arrays coming back.

NumPy only, so a kind restored with ``from_arrays`` scores without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError


def check_batch(x: object, name: str = "x", shape: Sequence[int] | None = None) -> np.ndarray:
    """``x`` as a float (N, H, W, C) array, C in 1 or 3, values finite in [0, 1]; float32 stays float32.

    ``shape``: the (H, W, C) a fitted model takes, or None when fitting.
    """
    arr = np.asarray(x)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or 0 in arr.shape:
        raise InputError(f"{name}: expected a non-empty image batch (N, H, W, C) with C = 1 or 3, "
                         f"got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: expected float pixels in [0, 1], got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: expected finite pixels, got NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name}: expected pixels in [0, 1], got values in [{lo:g}, {hi:g}]")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        raise InputError(f"{name}: expected images of shape {tuple(shape)} (H, W, C), got {tuple(arr.shape[1:])}")
    return arr


def get_array(arrays: Mapping[str, np.ndarray], field: str, shape: Sequence[int | None],
              kind: str) -> np.ndarray:
    """``arrays[field]`` as float64 of ``shape`` (None: any length), else an InputError naming the field."""
    if field not in arrays:
        raise InputError(f"{kind} arrays: missing array {field!r}, got {sorted(arrays)}")
    arr = np.asarray(arrays[field])
    want = tuple(shape)
    ok = arr.ndim == len(want) and all(w is None or w == s for w, s in zip(want, arr.shape))
    if not ok:
        shown = tuple("any" if w is None else w for w in want)
        raise InputError(f"{kind} arrays: {field!r} expected shape {shown}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{kind} arrays: {field!r} expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{kind} arrays: {field!r} expected finite numbers, got NaN or infinity")
    return arr


def get_param(params: Mapping[str, object], field: str, kind: str) -> object:
    """``params[field]``, else an InputError naming the field."""
    if not isinstance(params, Mapping):
        raise InputError(f"{kind} params: expected an object, got {type(params).__name__}")
    if field not in params:
        raise InputError(f"{kind} params: missing field {field!r}, got {sorted(params)}")
    return params[field]


def get_shape(params: Mapping[str, object], kind: str) -> tuple[int, int, int]:
    """The (H, W, C) input shape stored in ``params['input_shape']``."""
    shape = get_param(params, "input_shape", kind)
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
            or shape[2] not in (1, 3)):
        raise InputError(f"{kind} params: 'input_shape' expected [H, W, C] positive integers with C = 1 or 3, "
                         f"got {shape!r}")
    return int(shape[0]), int(shape[1]), int(shape[2])
