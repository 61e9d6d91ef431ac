"""Histograms of oriented gradients (HOG) for a batch of images, in NumPy.

Equals ``skimage.feature.hog(image, orientations, pixels_per_cell,
cells_per_block, block_norm, transform_sqrt=..., channel_axis=-1)`` of
scikit-image 0.26 image by image (to about 1e-7: float32 rounding), so a model
fitted on these features scores without scikit-image. What it copies, on purpose:

- gradients by central differences in the image's own float precision
  (float32 stays float32), zero on the border rows and columns; for colour,
  each pixel takes the gradient of the channel whose gradient is largest
  (the first one on ties);
- orientation ``rad2deg(arctan2(g_row, g_col)) % 180``; bin ``i`` holds
  ``[180/n * i, 180/n * (i+1))``, an angle that rounds up to 180 falls in no
  bin; each pixel votes its gradient magnitude into its one bin (no
  interpolation between bins or cells);
- a cell sums its pixels in float32 and divides by its area in float32
  (this module sums in float64, then rounds as scikit-image does); cells that
  do not fit whole at the bottom or right are left out;
- blocks of cells slide one cell at a time and are normalised with eps 1e-5;
  the result is (N, n_blocks_row * n_blocks_col * b_row * b_col * n) in the
  image's float precision, ordered as scikit-image ravels it.

Everything is vectorised over the batch: one ``bincount`` fills every cell.

``signed=True`` (not in scikit-image) keeps the gradient's direction:
orientations over 360 degrees, ``rad2deg(arctan2(g_row, g_col)) % 360``, so
a dark stroke on light and a light stroke on dark differ (unsigned HOG
cannot tell an image from its inversion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
EPS = 1e-5
#: Pixel values per chunk of images (about 1M: some tens of MB of temporaries).
CHUNK_VALUES = 1 << 20


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """A (rows, cols) pair of positive ints from an int or a pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise InputError(f"{name}: expected a positive integer or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def hog_grid(height: int, width: int, pixels_per_cell: int | Sequence[int],
             cells_per_block: int | Sequence[int]) -> tuple[int, int]:
    """(n_blocks_row, n_blocks_col) for an image of this size; InputError when no block fits."""
    (pr, pc), (br, bc) = _pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block")
    nbr, nbc = height // pr - br + 1, width // pc - bc + 1
    if nbr <= 0 or nbc <= 0:
        raise InputError(f"hog: images of {height}x{width} are too small for pixels_per_cell {(pr, pc)} and "
                         f"cells_per_block {(br, bc)}: expected at least {br * pr}x{bc * pc}")
    return nbr, nbc


def hog_length(height: int, width: int, orientations: int, pixels_per_cell: int | Sequence[int],
               cells_per_block: int | Sequence[int]) -> int:
    """The length of the HOG vector of one image of this size."""
    nbr, nbc = hog_grid(height, width, pixels_per_cell, cells_per_block)
    br, bc = _pair(cells_per_block, "cells_per_block")
    return nbr * nbc * br * bc * int(orientations)


def _gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column gradients of (N, H, W, C), one channel picked per pixel, as float64 (N, H, W)."""
    g_row = np.zeros_like(x)
    g_col = np.zeros_like(x)
    g_row[:, 1:-1] = x[:, 2:] - x[:, :-2]
    g_col[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    if x.shape[-1] == 1:
        return g_row[..., 0].astype(np.float64), g_col[..., 0].astype(np.float64)
    pick = np.hypot(g_row, g_col).argmax(axis=-1)[..., None]
    return (np.take_along_axis(g_row, pick, -1)[..., 0].astype(np.float64),
            np.take_along_axis(g_col, pick, -1)[..., 0].astype(np.float64))


def _cell_histograms(g_row: np.ndarray, g_col: np.ndarray, orientations: int,
                     pixels_per_cell: tuple[int, int], span: float = 180.0) -> np.ndarray:
    """Orientation histograms (N, n_cells_row, n_cells_col, orientations) as float64, the orientations
    over ``span`` degrees (180: unsigned, as scikit-image; 360: signed)."""
    n, h, w = g_row.shape
    pr, pc = pixels_per_cell
    ncr, ncc = h // pr, w // pc
    g_row = g_row[:, :ncr * pr, :ncc * pc].reshape(n, ncr, pr, ncc, pc)
    g_col = g_col[:, :ncr * pr, :ncc * pc].reshape(n, ncr, pr, ncc, pc)
    magnitude = np.sqrt(g_col * g_col + g_row * g_row)  # np.hypot to an ulp, and much faster
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % span
    # the bin by division, then moved by one where the division rounded across an edge
    edges = (span / orientations) * np.arange(orientations + 2)
    bins = np.minimum((angle * (orientations / span)).astype(np.intp), orientations)
    bins -= angle < edges[bins]
    bins += angle >= edges[bins + 1]
    outside = bins >= orientations
    weights = np.where(outside, 0.0, magnitude)
    bins[outside] = 0
    cell = (np.arange(n)[:, None, None, None, None] * ncr + np.arange(ncr)[None, :, None, None, None]) * ncc \
        + np.arange(ncc)[None, None, None, :, None]
    index = cell * orientations + bins
    hist = np.bincount(index.ravel(), weights=weights.ravel(), minlength=n * ncr * ncc * orientations)
    # scikit-image sums a cell in float32 and divides it by the cell's area in float32
    hist = hist.astype(np.float32) / np.float32(pr * pc)
    return hist.astype(np.float64).reshape(n, ncr, ncc, orientations)


def _normalise(blocks: np.ndarray, method: str) -> np.ndarray:
    """Normalise blocks (..., b_row, b_col, orientations) over their last three axes."""
    axes = (-3, -2, -1)
    if method == "L1":
        return blocks / (np.abs(blocks).sum(axis=axes, keepdims=True) + EPS)
    if method == "L1-sqrt":
        return np.sqrt(blocks / (np.abs(blocks).sum(axis=axes, keepdims=True) + EPS))
    out = blocks / np.sqrt((blocks ** 2).sum(axis=axes, keepdims=True) + EPS ** 2)
    if method == "L2":
        return out
    out = np.minimum(out, 0.2)
    return out / np.sqrt((out ** 2).sum(axis=axes, keepdims=True) + EPS ** 2)


def hog(images: np.ndarray, orientations: int = 9, pixels_per_cell: int | Sequence[int] = (8, 8),
        cells_per_block: int | Sequence[int] = (3, 3), block_norm: str = "L2-Hys",
        transform_sqrt: bool = False, signed: bool = False) -> np.ndarray:
    """HOG vectors (N, F) of images (N, H, W) or (N, H, W, C): C = 1 is gray, C > 1 colour; ``signed``:
    orientations over 360 degrees instead of 180.

    float32 images give float32 vectors, float64 and integers float64, as
    scikit-image does; the histograms themselves are summed in float64.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or 0 in x.shape:
        raise InputError(f"hog: expected a non-empty batch (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if isinstance(orientations, bool) or not isinstance(orientations, (int, np.integer)) or orientations < 1:
        raise InputError(f"hog orientations: expected a positive integer, got {orientations!r}")
    if block_norm not in BLOCK_NORMS:
        raise InputError(f"hog block_norm: expected one of {list(BLOCK_NORMS)}, got {block_norm!r}")
    ppc, cpb = _pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block")
    nbr, nbc = hog_grid(x.shape[1], x.shape[2], ppc, cpb)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else (
        np.float32 if x.dtype == np.float16 else np.float64)
    x = x.astype(dtype, copy=False)
    size = int(np.prod(x.shape[1:]))
    step = max(1, CHUNK_VALUES // size)
    out = np.empty((len(x), nbr * nbc * cpb[0] * cpb[1] * int(orientations)), dtype=dtype)
    for start in range(0, len(x), step):  # chunks of images keep the float64 temporaries bounded
        part = np.sqrt(x[start:start + step]) if transform_sqrt else x[start:start + step]
        g_row, g_col = _gradients(part)
        hist = _cell_histograms(g_row, g_col, int(orientations), ppc, 360.0 if signed else 180.0)
        # (n, nbr, nbc, O, br, bc) -> (n, nbr, nbc, br, bc, O), the order scikit-image ravels
        blocks = sliding_window_view(hist, cpb, axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
        out[start:start + step] = _normalise(blocks, block_norm).reshape(len(part), -1)
    return out
