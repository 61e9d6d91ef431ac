"""Image files in, within bounds: decode each one no larger than it is needed, and not too many at once.

Every image becomes a float32 array (H, W, C) in [0, 1], C = 1 (gray) or 3
(RGB), as :mod:`bank.io.images` describes. Decoding follows EXIF orientation,
takes the first frame of an animation and composites transparency over
black.

A small upload can decode to a huge image (a flat 9000x9000 PNG is 258 KB
and 243 MB of pixels), so decoding is bounded three ways:

- ``max_pixels``: an image that would decode to more pixels than this is
  refused (:class:`ImageTooLarge`, naming the file, its pixels and the
  limit) from its header, before anything is decoded;
- ``fit``: when the caller will shrink the image to a model's size, a JPEG is
  decoded at 1/2, 1/4 or 1/8 scale straight from its DCT (Pillow's
  ``draft``), and any image far larger than needed is box-reduced by a whole
  factor in its own 8-bit form (Pillow's ``reduce``) before it becomes float;
  the result stays at least :data:`REDUCING_GAP` times the size asked for,
  so the bilinear resize after it sees the same picture;
- :class:`PixelBudget`: the pixels being decoded at once, across threads;
  a decode waits for its share, or gives up at a deadline (:class:`Busy`).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from .images import ImageError, pil_to_array

#: Most pixels one image may decode to, unless told otherwise (``--max-pixels`` or ``$BANK_MAX_PIXELS``):
#: 64 megapixels, 192 MB as 8-bit RGB. Larger than any camera's PNG a user brings (a 48 MP phone photo is 8064x6048);
#: a JPEG counts at the scale it is decoded at, so a 100 MP JPEG for a 128x128 model decodes at 1/8 and passes.
MAX_PIXELS = 64 * 2**20
#: The environment variable that sets the default of ``max_pixels`` for every command (training too).
MAX_PIXELS_ENV = "BANK_MAX_PIXELS"
#: A reduced decode stays at least this many times the size the caller will resize to (Pillow's "reducing gap"):
#: a 1500x2000 photo brought to 28x28 then differs from the full decode's by 0.001 on average (0.004 at most; a
#: gap of 3 gave 0.003 and 0.015), and not at all at 128x128.
REDUCING_GAP = 6

_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


class ImageTooLarge(ImageError):
    """An image that would decode to more pixels than the limit; ``pixels`` and ``limit`` say how many."""

    def __init__(self, source: str, width: int, height: int, pixels: int, limit: int):
        scaled = "" if pixels == width * height else f" ({pixels} pixels at the scale it would be decoded at)"
        super().__init__(source, f"{width}x{height} is {width * height} pixels{scaled}, more than the limit of "
                                 f"{limit} pixels per image; shrink it, or raise the limit (--max-pixels, "
                                 f"${MAX_PIXELS_ENV})")
        self.pixels, self.limit = pixels, limit


class Busy(RuntimeError):
    """Decoding could not start before its deadline: too many pixels were being decoded already."""


def default_max_pixels() -> int:
    """``$BANK_MAX_PIXELS`` when set, else :data:`MAX_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    return check_max_pixels(text, f"${MAX_PIXELS_ENV}")


def check_max_pixels(value: object, what: str = "max_pixels") -> int:
    """A positive whole number of pixels (``1e8`` and ``100000000`` alike), or a ValueError naming ``what``."""
    try:
        number = float(value)
        ok = number.is_integer() and number >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(value, bool):
        raise InputError(f"{what}: expected a whole number of pixels >= 1, got {value!r}")
    return int(number)


def threads(n_jobs: int | None = None):
    """A pool of ``n_jobs`` decoding threads (default: one per core). Pillow decodes without the GIL, and plain
    threads also work inside a Dask or joblib worker, where a nested joblib call could hand work back to the busy
    cluster."""
    from concurrent.futures import ThreadPoolExecutor

    from ..machine import cores

    return ThreadPoolExecutor(n_jobs or cores(), thread_name_prefix="bank-decode")


class PixelBudget:
    """The pixels being decoded at once, shared by threads.

    :meth:`hold` waits until the image's pixels fit in what is left of
    ``total``; an image larger than ``total`` (allowed by ``max_pixels``)
    waits until nothing else is being decoded, then runs alone.
    """

    def __init__(self, total: int):
        self.total = check_max_pixels(total, "decode budget")
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, deadline: float | None = None) -> Iterator[None]:
        """Hold ``pixels`` of the budget while decoding; :class:`Busy` if not had by ``deadline``
        (a :func:`time.monotonic` time; None waits as long as it takes)."""
        need = min(int(pixels), self.total)
        with self._cond:
            while self.used + need > self.total:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Busy(f"{self.used} of {self.total} pixels are being decoded; this image needs {need}")
                self._cond.wait(left)
            self.used += need
        try:
            yield
        finally:
            with self._cond:
                self.used -= need
                self._cond.notify_all()


@dataclass(frozen=True)
class Decoded:
    """One decoded image: its pixels (maybe reduced) and the size of the picture it came from (oriented)."""

    pixels: np.ndarray
    height: int
    width: int


def read_image(path: str | os.PathLike, *, fit: tuple[int, int] | None = None, max_pixels: int | None = None,
               budget: PixelBudget | None = None, deadline: float | None = None) -> np.ndarray:
    """Decode one image file to float32 (H, W, C) in [0, 1].

    Raises :class:`ImageError` naming the file for anything unreadable: a
    missing or empty file, a non-image, a truncated image, one over
    ``max_pixels`` (:class:`ImageTooLarge`), a decompression bomb. ``fit``:
    the (height, width) the caller will resize to; a much larger image comes
    back reduced (see the module's docstring). ``budget`` and ``deadline``:
    see :class:`PixelBudget`.
    """
    return decode(path, str(path), fit=fit, max_pixels=max_pixels, budget=budget, deadline=deadline).pixels


def decode_image(data: bytes | bytearray | memoryview, name: str = "bytes", **kwargs) -> np.ndarray:
    """Decode one encoded image held in memory (an upload), as :func:`read_image` does, naming ``name``."""
    return decode(io.BytesIO(data), name, **kwargs).pixels


def decode(source: str | os.PathLike | io.BytesIO, name: str, *, fit: tuple[int, int] | None = None,
           max_pixels: int | None = None, budget: PixelBudget | None = None,
           deadline: float | None = None) -> Decoded:
    """One image from a path or an in-memory file: the single decoding path of every reader."""
    limit = default_max_pixels() if max_pixels is None else check_max_pixels(max_pixels)
    try:
        size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else os.path.getsize(source)
        if size == 0:
            raise ImageError(name, "empty file")
        with Image.open(source) as im:
            width, height = im.size
            k = _factor(width, height, fit)
            if k > 1 and im.format == "JPEG":
                im.draft(None, (-(-width // k), -(-height // k)))  # DCT scaling: 1/2, 1/4 or 1/8
            pixels = im.width * im.height
            if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
                raise ImageError(name, f"{width}x{height} is more pixels than the limit of "
                                 f"{Image.MAX_IMAGE_PIXELS} (PIL.Image.MAX_IMAGE_PIXELS); refused as a possible "
                                 "decompression bomb")
            if pixels > limit:
                raise ImageTooLarge(name, width, height, pixels, limit)
            with budget.hold(pixels, deadline) if budget is not None else nullcontext():
                im.seek(0)  # first frame of an animation
                im.load()
                orientation = im.getexif().get(_ORIENTATION)  # after load: a PNG's may follow its pixels
                small = _reduced(im, _factor(im.width, im.height, fit))
            if orientation in _TRANSPOSE:
                small = small.transpose(_TRANSPOSE[orientation])
            arr = _to_array(small)
        if orientation in (5, 6, 7, 8):  # turned a quarter: the picture's sides swap
            height, width = width, height
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(name, f"too many pixels, refused as a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(name, "not an image Pillow can read") from None
    except FileNotFoundError:
        raise ImageError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageError(name, "is a directory, not an image file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(name, f"cannot decode image ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(name, f"image has no pixels (size {arr.shape[1]}x{arr.shape[0]})")
    return Decoded(arr, height, width)


def _factor(width: int, height: int, fit: tuple[int, int] | None) -> int:
    """The whole factor an image of this size may be shrunk by and stay :data:`REDUCING_GAP` times ``fit``
    in every orientation (1: keep it whole)."""
    if fit is None:
        return 1
    return max(1, min(width, height) // (REDUCING_GAP * max(fit)))


def _reduced(im: Image.Image, k: int) -> Image.Image:
    """A loaded image box-reduced by ``k`` in its own pixel form (itself when ``k`` is 1).

    Transparent images are reduced premultiplied ("RGBa", "La"), so that
    :func:`_to_array` gives the reduced picture composited over black, as
    :func:`bank.io.images.pil_to_array` composites the whole one.
    """
    if k <= 1:
        return im
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
    elif im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        im = im.convert({"RGBA": "RGBa", "LA": "La"}[im.mode])
    return im.reduce(k)


def _to_array(im: Image.Image) -> np.ndarray:
    """A decoded (maybe reduced) image as float32 (H, W, C) in [0, 1]."""
    if im.mode in ("RGBa", "La"):  # premultiplied: the colour channels are the picture over black
        return np.asarray(im)[..., :-1].astype(np.float32) / np.float32(255.0)
    return pil_to_array(im)
