"""What users pass as images to the Python API: arrays, file paths, Pillow images, lists of them.

:func:`as_images` turns any of them into images (float32, (H, W, C) in
[0, 1]), one image per path, Pillow image or (H, W[, C]) array, and says
what came when it cannot: the one boundary every method that takes images
goes through (:meth:`bank.answering.router.Router.score`,
:meth:`bank.kinds.autoencoder.AutoencoderModel.fit`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .decoding import decode
from ..errors import InputError
from .images import ImageError, InputSpec, unit_batch, array_images, describe, pil_to_array, to_spec

#: What the Python API takes as images (see :func:`as_images`): an array (one image or a stack), a file path,
#: a Pillow image, or a list of arrays, paths and Pillow images.
Images = Union[np.ndarray, Image.Image, str, os.PathLike, Iterable]

_ORIENTATION = 0x0112  # the EXIF tag


def is_path(x: object) -> bool:
    """Whether ``x`` names a file: a ``str`` or an ``os.PathLike`` (``pathlib.Path``)."""
    return isinstance(x, (str, os.PathLike))


def image_names(images: object) -> list[str] | None:
    """Names for what :func:`as_images` takes, when it can be known without reading it: a path's own, a Pillow
    image's file name when it was opened from one, ``#i`` for the rest; None for a generator or an array (the
    caller's default)."""
    def named(x: object) -> str | None:
        if is_path(x):
            return os.fspath(x)
        return getattr(x, "filename", None) or None if isinstance(x, Image.Image) else None

    if named(images):
        return [named(images)]
    if isinstance(images, (list, tuple)) and any(named(x) for x in images):
        return [named(x) or f"#{i}" for i, x in enumerate(images)]
    return None


def _from_pil(im: Image.Image, source: str) -> np.ndarray:
    """A Pillow image as a file of it would be read: EXIF orientation honoured, then :func:`pil_to_array`."""
    try:
        im.load()  # a PNG's EXIF may follow its pixels
        orientation = im.getexif().get(_ORIENTATION)
        if orientation in range(2, 9):
            im = ImageOps.exif_transpose(im)
        return pil_to_array(im)
    except ImageError:
        raise
    except (InputError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(source, f"cannot read the PIL image ({e})") from None


def _from_path(path: str | os.PathLike, source: str, fit: tuple[int, int] | None,
               max_pixels: int | None) -> np.ndarray:
    return decode(path, source, fit=fit, max_pixels=max_pixels).pixels


def as_images(images: object, source: str = "images", *, fit: tuple[int, int] | None = None,
              max_pixels: int | None = None) -> np.ndarray | list[np.ndarray]:
    """Validate what a user passes as images, at the boundary.

    ``images`` is one of:

    - an array: one image or a stack, by :func:`array_images`'s rule, which
      gives a float32 (N, H, W, C) batch: (H, W) and (H, W, C) with C <= 4
      are one image, (N, H, W) and (N, H, W, C) are N;
    - a file path (``str`` or ``pathlib.Path``), decoded as
      :func:`bank.io.decoding.read_image` does; ``fit``: the (height, width)
      it will be resized to, so that a large file decodes no larger than
      needed; ``max_pixels``: see there;
    - a Pillow image (EXIF orientation honoured, as for a file);
    - a list, tuple or other iterable (read once) of these, mixed and of
      any sizes, each item one image: an array (H, W) or (H, W, C), a path
      or a Pillow image.

    Pixels may be uint8 (0..255), uint16 (0..65535), bool or float in
    [0, 1]; RGBA is composited over black. Each item of a list becomes a
    float32 (H, W, C) image in [0, 1]. Anything else raises
    :class:`ImageError` naming it (``images[2]`` in a list) and what came:
    its type, or its shape and dtype; an unreadable file is named by its path.
    """
    if isinstance(images, np.ndarray):
        return array_images(images, source)
    if is_path(images):
        return [_from_path(images, os.fspath(images), fit, max_pixels)]
    if isinstance(images, Image.Image):
        return [_from_pil(images, source)]
    if isinstance(images, (dict, bytes, bytearray, memoryview)) or isinstance(images, (int, float, complex)):
        raise ImageError(source, f"expected an image array, a PIL image, a file path or a list of them, "
                                 f"got {describe(images)}{_hint(images)}")
    if not isinstance(images, (list, tuple)) and (hasattr(images, "__array__")
                                                 or hasattr(images, "__array_interface__")):
        return array_images(images, source)  # a tensor of another library: an array, not a list of rows
    try:
        items = list(images)
    except TypeError:
        raise ImageError(source, f"expected an image array, a PIL image, a file path or a list of them, "
                                 f"got {describe(images)}") from None
    if not items:
        raise ImageError(source, "expected at least one image, got none")
    return [_one(img, f"{source}[{i}]", fit, max_pixels) for i, img in enumerate(items)]


def _hint(x: object) -> str:
    if isinstance(x, (bytes, bytearray, memoryview)):
        return " (an encoded file in memory? decode it with bank.io.decoding.decode_image)"
    return ""


def _one(img: object, where: str, fit: tuple[int, int] | None, max_pixels: int | None) -> np.ndarray:
    """One item of a list: an (H, W, C) float32 image, or an :class:`ImageError` naming ``where``."""
    if isinstance(img, Image.Image):
        return _from_pil(img, where)
    if is_path(img):
        return _from_path(img, f"{where} ({os.fspath(img)})", fit, max_pixels)
    if isinstance(img, np.ndarray) or (isinstance(img, (list, tuple)) or hasattr(img, "__array__")
                                       or hasattr(img, "__array_interface__")):
        try:
            arr = np.asarray(img)
        except (ValueError, TypeError) as e:
            raise ImageError(where, f"expected one image array, got a {type(img).__name__} that is not one ({e})") \
                from None
        if arr.ndim not in (2, 3):
            stack = " (a stack? pass it alone, not in a list)" if arr.ndim == 4 else ""
            raise ImageError(where, f"expected one image of shape (H, W) or (H, W, C), got {describe(arr)}{stack}")
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4):
            raise ImageError(where, f"expected 1, 3 or 4 channels in the last axis of an (H, W, C) image, "
                                    f"got shape {arr.shape}")
        return unit_batch(arr[None] if arr.ndim == 3 else arr[None, ..., None], where, arr.shape)[0]
    raise ImageError(where, f"expected an image array, a PIL image or a file path, got {describe(img)}{_hint(img)}")


def prepare(images: Images, spec: InputSpec, source: str = "images") -> np.ndarray:
    """Any accepted input (see :func:`as_images`) -> float32 (N, *spec.shape) for a model (files decoded
    no larger than the spec needs)."""
    return to_spec(as_images(images, source, fit=(spec.height, spec.width)), spec)
