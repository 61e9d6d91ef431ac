"""Label-preserving changes of training images, in NumPy: what a class's image may look like and still be
of the class (moved a little, cropped a little, mirrored, in other light).

Used by kinds that learn from batches of images in memory (:mod:`bank.kinds.geotrans`); every function
takes a batch (N, H, W, C) in [0, 1] and a NumPy generator, and draws anew for each image.
"""

from __future__ import annotations

import numpy as np


def shift(x: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by its own random shift of up to ``pixels`` in each direction (edges reflected)."""
    if pixels < 1:
        return x
    h, w = x.shape[1:3]
    pixels = min(pixels, h - 1, w - 1)
    if pixels < 1:
        return x
    padded = np.pad(x, [(0, 0), (pixels, pixels), (pixels, pixels), (0, 0)], mode="reflect")
    d = rng.integers(0, 2 * pixels + 1, size=(len(x), 2))
    return np.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(d)])


def crop(x: np.ndarray, smallest: float, rng: np.random.Generator) -> np.ndarray:
    """Each image cropped to a random square-shaped window of ``smallest`` to all of its sides, at a random
    place, and brought back to its size (nearest pixel): the class seen nearer. 1 changes nothing."""
    if smallest >= 1:
        return x
    n, h, w = x.shape[:3]
    share = rng.uniform(smallest, 1.0, size=n)
    ch, cw = np.maximum(1, np.round(share * h)).astype(int), np.maximum(1, np.round(share * w)).astype(int)
    oy = (rng.random(n) * (h - ch + 1)).astype(int)
    ox = (rng.random(n) * (w - cw + 1)).astype(int)
    rows = oy[:, None] + np.arange(h)[None] * ch[:, None] // h  # (n, h)
    cols = ox[:, None] + np.arange(w)[None] * cw[:, None] // w  # (n, w)
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def mirror(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half of the images (at random) mirrored left to right."""
    flip = rng.random(len(x)) < 0.5
    if not flip.any():
        return x
    out = x.copy()
    out[flip] = out[flip, :, ::-1]
    return out


def light(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Each image's brightness and contrast (and saturation, in colour) scaled by factors drawn from
    ``1 +- amount``, clipped to [0, 1]. 0 changes nothing."""
    if amount <= 0:
        return x
    n = len(x)
    factor = lambda: (1 + rng.uniform(-amount, amount, (n, 1, 1, 1))).astype(np.float32)  # noqa: E731
    x = np.asarray(x, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    out = (x - mean) * factor() + mean * factor()  # contrast about the mean, then brightness
    if x.shape[3] == 3:
        gray = out.mean(axis=3, keepdims=True)
        out = gray + (out - gray) * factor()
    return np.clip(out, 0.0, 1.0)
