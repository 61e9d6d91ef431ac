"""Images as arrays: check what users pass, and bring images to a model's input spec.

Every image becomes a float32 array (H, W, C) in [0, 1], C = 1 (gray) or 3
(RGB): transparency composited over black, 16-bit data scaled to [0, 1].
Gray from colour uses the luminosity weights (ITU-R BT.601). Files and
uploads are decoded by :mod:`bank.decoding`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import InputError

#: Luminosity weights for RGB -> gray (ITU-R BT.601, as Pillow's "L").
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

COLORS = {"gray": 1, "rgb": 3}

#: Largest side an input spec may have (a model input, not a photo).
MAX_SIDE = 1024


class ImageError(InputError):
    """An input that cannot be used as an image; ``source`` names it."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class InputSpec:
    """What a class model takes: size, colour, and how pixels are scaled."""

    height: int
    width: int
    color: str = "gray"
    scaling: str = "unit"  # pixel values / max value of their type, so [0, 1]

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIDE:
                raise InputError(f"input spec {name}: expected an integer in 1..{MAX_SIDE}, got {v!r}")
        if self.color not in COLORS:
            raise InputError(f"input spec color: expected one of {sorted(COLORS)}, got {self.color!r}")
        if self.scaling != "unit":
            raise InputError(f"input spec scaling: expected 'unit', got {self.scaling!r}")

    @property
    def channels(self) -> int:
        return COLORS[self.color]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "color": self.color, "scaling": self.scaling}

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        if not isinstance(data, dict):
            raise InputError(f"input spec: expected an object, got {type(data).__name__}")
        try:
            return cls(data["height"], data["width"], data.get("color", "gray"), data.get("scaling", "unit"))
        except KeyError as e:
            raise InputError(f"input spec: missing field {e.args[0]!r}") from None

    def __str__(self) -> str:
        return f"{self.height}x{self.width} {self.color}"


def parse_size(text: str) -> tuple[int, int]:
    """Parse "HxW" (or a single "N" for NxN) into (height, width)."""
    parts = text.lower().split("x")
    try:
        if len(parts) == 1:
            h = w = int(parts[0])
        elif len(parts) == 2:
            h, w = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise InputError(f"size: expected HxW such as 28x28, got {text!r}") from None
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise InputError(f"size: each side must be in 1..{MAX_SIDE}, got {text!r}")
    return h, w


# ----------------------------------------------------------------- decoding

def _unit(arr: np.ndarray, scale: float) -> np.ndarray:
    return arr.astype(np.float32) / np.float32(scale)


def pil_to_array(im: Image.Image) -> np.ndarray:
    """A decoded Pillow image as float32 (H, W, 1 or 3) in [0, 1]."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im).astype(np.float64)
        return np.clip(arr / 65535.0, 0.0, 1.0).astype(np.float32)[..., None]
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise InputError("float image contains NaN or infinity")
        return np.clip(arr, 0.0, 1.0)[..., None]
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    if mode in ("P", "PA"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "L":
        return _unit(np.asarray(im), 255.0)[..., None]
    if mode == "LA":
        a = _unit(np.asarray(im), 255.0)
        return (a[..., :1] * a[..., 1:2]).astype(np.float32)
    if mode in ("RGBA", "RGBa"):
        a = _unit(np.asarray(im.convert("RGBA")), 255.0)
        return a[..., :3] * a[..., 3:4]
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
    return _unit(np.asarray(im), 255.0)


def validate_array(x: object, source: str = "array") -> np.ndarray:
    """Check an image batch and return it as float32 (N, H, W, C) in [0, 1].

    Accepts (N, H, W) or (N, H, W, C) with C in 1, 3, 4 (RGBA is composited
    over black); uint8 (0..255), uint16 (0..65535), bool, or float in [0, 1].
    """
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ImageError(source, f"expected an array of shape (N, H, W) or (N, H, W, C), got shape {arr.shape}")
    if 0 in arr.shape:
        raise ImageError(source, f"expected a non-empty image batch, got shape {arr.shape}")
    if arr.shape[-1] not in (1, 3, 4):
        raise ImageError(source, f"expected 1, 3 or 4 channels in the last axis, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = _unit(arr, 255.0)
    elif arr.dtype == np.uint16:
        out = _unit(arr, 65535.0)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(source, "array contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                source, f"float images must lie in [0, 1], got values in [{lo:g}, {hi:g}]; divide by the maximum first"
            )
        out = arr.astype(np.float32)
    else:
        raise ImageError(source, f"expected uint8, uint16, bool or float pixels, got dtype {arr.dtype}")
    if out.shape[-1] == 4:
        out = out[..., :3] * out[..., 3:4]
    return out


# ------------------------------------------------------- bringing to a spec

def _convert_color(img: np.ndarray, channels: int) -> np.ndarray:
    if img.shape[-1] == channels:
        return img
    if channels == 1:
        return (img @ LUMA)[..., None].astype(np.float32)
    return np.repeat(img, 3, axis=-1)


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of one (H, W, C) float image."""
    if img.shape[:2] == (height, width):
        return img
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32)).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(img.shape[-1])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


def to_spec(images: np.ndarray | Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Bring images to ``spec``: a float32 batch of shape (N, *spec.shape).

    ``images`` is a validated batch (N, H, W, C) or a list of (H, W, C)
    images of any sizes, as :func:`read_image` gives.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[1:3] == (spec.height, spec.width):
            return np.ascontiguousarray(_convert_color(images, spec.channels), dtype=np.float32)
        images = list(images)
    out = np.empty((len(images), *spec.shape), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = _resize(_convert_color(img, spec.channels), spec.height, spec.width)
    return out


def infer_spec(images: Iterable[np.ndarray], max_side: int = 128, default: int = 64) -> InputSpec:
    """An input spec for training data: its own size when every image shares
    one no larger than ``max_side`` (else ``default`` square), gray when every
    image is gray or colourless RGB, else RGB."""
    sizes, gray = set(), True
    for img in images:
        sizes.add(img.shape[:2])
        gray = gray and is_gray(img)
    return spec_for(sizes, gray, max_side, default)


def is_gray(img: np.ndarray) -> bool:
    """Whether an (H, W, C) image has one channel, or three equal ones (colourless RGB)."""
    return img.shape[-1] == 1 or bool(np.array_equal(img[..., 0], img[..., 1])
                                      and np.array_equal(img[..., 1], img[..., 2]))


def spec_for(sizes: set[tuple[int, int]], gray: bool, max_side: int = 128, default: int = 64) -> InputSpec:
    """The spec :func:`infer_spec` picks for images of these (height, width) ``sizes``: their size if
    they share one no larger than ``max_side``, else ``default`` square; gray or RGB."""
    if len(sizes) == 1 and max(next(iter(sizes))) <= max_side:
        h, w = next(iter(sizes))
    else:
        h = w = default
    return InputSpec(int(h), int(w), "gray" if gray else "rgb")


def as_images(images: object, source: str = "images") -> np.ndarray | list[np.ndarray]:
    """Validate what a user passes as images, at the boundary.

    An array batch becomes a float32 (N, H, W, C) batch (see
    :func:`validate_array`). A list may mix arrays of any accepted dtype and
    shape (H, W) or (H, W, C), of any sizes, and Pillow images; each becomes
    a float32 (H, W, C) image in [0, 1], or an :class:`ImageError` naming
    its index.
    """
    if isinstance(images, np.ndarray):
        return validate_array(images, source)
    if isinstance(images, Image.Image):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise ImageError(source, f"expected an array or a list of images, got {type(images).__name__}") from None
    if not items:
        raise ImageError(source, "expected at least one image, got none")
    out = []
    for i, img in enumerate(items):
        where = f"{source}[{i}]"
        if isinstance(img, Image.Image):
            out.append(pil_to_array(img))
            continue
        arr = np.asarray(img)
        if arr.ndim not in (2, 3):
            raise ImageError(where, f"expected one image of shape (H, W) or (H, W, C), got shape {arr.shape}")
        out.append(validate_array(arr[None], where)[0])
    return out


def take(images: np.ndarray | Sequence[np.ndarray], idx: Sequence[int]) -> np.ndarray | list[np.ndarray]:
    """The images at positions ``idx``, from an array batch or a list alike."""
    if isinstance(images, np.ndarray):
        return images[np.asarray(idx, dtype=int)]
    return [images[i] for i in idx]


def prepare(images: np.ndarray | Sequence[np.ndarray], spec: InputSpec, source: str = "images") -> np.ndarray:
    """Any accepted input (see :func:`as_images`) -> float32 (N, *spec.shape) for a model."""
    return to_spec(as_images(images, source), spec)


def complexity(x: np.ndarray) -> np.ndarray:
    """Per image, the bits per value zlib needs to store it at 8 bits: its complexity.

    ``x``: images at a spec, float (N, H, W, C) in [0, 1]. A blank image
    costs almost nothing, noise about 8 bits (more on tiny images: zlib's
    fixed overhead of 6 bytes). A gray image brought to an RGB spec repeats
    its channel and so costs less per value than a colour one. A cheap stand-in for the
    compressed length of Serra et al. (ICLR 2020), which tracks how well
    any autoencoder reconstructs an input, whatever its class.
    """
    q = np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    size = max(1, int(np.prod(q.shape[1:])))
    return np.array([8 * len(zlib.compress(im.tobytes(), 6)) / size for im in q], dtype=np.float64)
