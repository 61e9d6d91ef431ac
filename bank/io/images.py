"""Images as arrays: check arrays, and bring images to a model's input spec.

Every image becomes a float32 array (H, W, C) in [0, 1], C = 1 (gray) or 3
(RGB): transparency composited over black, 16-bit data scaled to [0, 1].
Gray from colour uses the luminosity weights (ITU-R BT.601). Files and
uploads are decoded by :mod:`bank.io.decoding`; what users pass to the Python
API (arrays, paths, Pillow images, lists) is sorted out by :mod:`bank.io.inputs`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InputError

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


def describe(x: object) -> str:
    """What came, for an error message: an array's shape and dtype, else the type's name."""
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return type(x).__name__


def unit_batch(arr: np.ndarray, source: str, shown: tuple[int, ...]) -> np.ndarray:
    """A (N, H, W, C) array of any accepted dtype as float32 in [0, 1], RGBA composited over black;
    ``shown``: the shape the caller passed, for the messages."""
    if 0 in arr.shape:
        raise ImageError(source, f"expected a non-empty image batch, got shape {shown}")
    if arr.shape[-1] not in (1, 3, 4):
        raise ImageError(source, f"expected 1, 3 or 4 channels in the last axis, got shape {shown}")
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
        hint = ""
        if np.issubdtype(arr.dtype, np.integer):
            hint = " (0..255: .astype(np.uint8); else divide by the maximum to float)"
        raise ImageError(source, f"expected uint8, uint16, bool or float pixels, got dtype {arr.dtype}{hint}")
    if out.shape[-1] == 4:
        out = out[..., :3] * out[..., 3:4]
    return out


def validate_array(x: object, source: str = "array") -> np.ndarray:
    """Check an image batch and return it as float32 (N, H, W, C) in [0, 1].

    Accepts (N, H, W) or (N, H, W, C) with C in 1, 3, 4 (RGBA is composited
    over black); uint8 (0..255), uint16 (0..65535), bool, or float in [0, 1].
    This is a batch as it is: a 3-D array is always (N, H, W). What users
    pass goes through :func:`as_images`, which reads a 3-D array whose last
    axis is 4 or less as one image (H, W, C).
    """
    arr = np.asarray(x)
    shown = arr.shape
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ImageError(source, f"expected an array of shape (N, H, W) or (N, H, W, C), got shape {shown}")
    return unit_batch(arr, source, shown)


def array_images(x: object, source: str = "images") -> np.ndarray:
    """One image or a stack of them, as an array, as float32 (N, H, W, C) in [0, 1]: the rule of :func:`as_images`.

    - (H, W): one gray image;
    - (H, W, C) with C <= 4: one image, C = 1 (gray), 3 (RGB) or 4 (RGBA):
      the shape of a decoded picture (``np.asarray(PIL.Image.open(f))``,
      :func:`bank.io.decoding.read_image`);
    - (N, H, W) with W > 4: N gray images (a batch of 8x8 digits);
    - (N, H, W, C) with C in 1, 3, 4: N images.

    So a 3-D array's last axis decides: 4 or less is channels. A stack of
    gray images 4 or fewer pixels wide must carry its channel axis,
    (N, H, W, 1), or come as a list. Channels first (C, H, W) is not
    recognised: (3, H, W) is three gray images; pass ``np.moveaxis(x, 0, -1)``.
    """
    arr = np.asarray(x)
    shown = arr.shape
    if arr.ndim == 2:
        arr = arr[None, ..., None]
    elif arr.ndim == 3:
        arr = arr[None] if arr.shape[-1] <= 4 else arr[..., None]
    elif arr.ndim != 4:
        raise ImageError(source, "expected one image (H, W) or (H, W, C), or a stack (N, H, W) or (N, H, W, C), "
                                 f"got {describe(arr)}")
    return unit_batch(arr, source, shown)


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


def take(images: np.ndarray | Sequence[np.ndarray], idx: Sequence[int]) -> np.ndarray | list[np.ndarray]:
    """The images at positions ``idx``, from an array batch or a list alike."""
    if isinstance(images, np.ndarray):
        return images[np.asarray(idx, dtype=int)]
    return [images[i] for i in idx]


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
