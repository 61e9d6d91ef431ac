"""Kinds of class model: the table the registry, the command line and the server find them in.

Every kind is one module here and honours :class:`bank.kinds.base.ClassModel`; what differs between
kinds is declared on the kind. This table, and the choice of a kind for a user's images, are the only
places that name them. Each is imported only when asked for, so naming the kinds costs nothing.
"""

from __future__ import annotations

import importlib

from ..errors import InputError

#: kind name -> (module, class)
KINDS = {
    "autoencoder": ("bank.kinds.autoencoder", "AutoencoderModel"),
    "pca": ("bank.kinds.pca", "PCAModel"),
    "hog-ocsvm": ("bank.kinds.hog_ocsvm", "HOGOCSVMModel"),
    "ae-hog": ("bank.kinds.ae_hog", "AEHOGModel"),
    "geotrans": ("bank.kinds.geotrans", "GeoTransModel"),
    "pretrained": ("bank.kinds.pretrained", "PretrainedModel"),
}

#: The kind a card without a ``kind`` field is (every card written before kinds): read through its
#: ``upgrade_card``.
LEGACY_KIND = "autoencoder"

#: The kind :func:`choose_kind` takes for small gray images such as MNIST's digits...
SMALL_KIND = "ae-hog"
#: ... and for tiny ones (at most :data:`TINY_SIDE` on a side, such as 8x8 digits).
TINY_KIND = "autoencoder"
TINY_SIDE = 16

#: The kind that is chosen by the images: :func:`choose_kind`. ``bank train``'s default.
AUTO = "auto"

#: Images in colour, or larger than this on a side, are photos (see :func:`choose_kind`).
PHOTO_SIDE = 32
#: ... but colour images smaller than this on every side (icons) are not.
MIN_PHOTO_SIDE = 16


#: The kind :func:`choose_kind` takes for photos.
PHOTO_KIND = "pretrained"

#: The kinds ``auto`` may choose: training options are checked against them before any image is read.
AUTO_CHOICES = (TINY_KIND, SMALL_KIND, PHOTO_KIND)


def choose_kind(largest_side: int, gray: bool, size: tuple[int, int] | None = None) -> str:
    """The kind measured best for images whose largest side is ``largest_side`` pixels (their own size,
    before any resizing) and which are all ``gray`` or not (docs/kinds.md): ``pretrained``
    for photos (colour, or larger than :data:`PHOTO_SIDE` pixels on a side: features of a network trained on
    ImageNet tell cats from dogs at 0.98 where a model learning from one class's photos alone reaches
    0.75), ``ae-hog`` for small gray images such as MNIST's digits (the best there at telling a class's images
    from others' and at rotated digits and letters, five times the autoencoder's images/s batched, though one
    image takes 2.7 ms against its 2.2), the autoencoder
    for tiny ones (at most :data:`TINY_SIDE` on a side, such as 8x8 digits: too few pixels for HOG cells).
    ``size``, the input size asked for, is not looked at: the pretrained kind sees its network's size, and
    says so when another is asked for."""
    photo = (not gray and largest_side >= MIN_PHOTO_SIDE) or largest_side > PHOTO_SIDE
    if photo:
        return PHOTO_KIND
    return TINY_KIND if largest_side <= TINY_SIDE else SMALL_KIND


def why_kind(largest_side: int, gray: bool, size: tuple[int, int] | None = None) -> str:
    """Why :func:`choose_kind` chose what it did for these images, in words."""
    kind = choose_kind(largest_side, gray, size)
    look = f"{'gray' if gray else 'colour'} images of up to {largest_side} px a side"
    if kind == PHOTO_KIND:
        return f"photos ({look}), seen through a network pretrained on ImageNet"
    if kind == SMALL_KIND:
        return (f"small images ({look}; auto's rule: over {TINY_SIDE} px a side and not photos): an autoencoder "
                "for the pixels, HOG for the shapes")
    return f"tiny images ({look}; auto's rule: at most {TINY_SIDE} px a side)"


def check_kind(name: object, auto: bool = False) -> str:
    """``name`` if it is a kind of class model (or ``auto``, when allowed), else an InputError listing them."""
    if name not in KINDS and not (auto and name == AUTO):
        raise InputError(f"kind: expected one of {', '.join([*KINDS, *([AUTO] if auto else [])])}, got {name!r}")
    return name  # type: ignore[return-value]


def option_defaults(option: str) -> dict[str, object]:
    """Per kind that takes the training option ``option`` (its ``training_options``), its default: what
    ``bank train --help`` says."""
    out = {}
    for name in KINDS:
        cls = kind_class(name)
        if option in cls.training_options:
            out[name] = cls.option_default(option)
    return out


def kind_class(name: str) -> type:
    """The class of the kind ``name`` (imported now)."""
    module, cls = KINDS[check_kind(name)]
    return getattr(importlib.import_module(module), cls)
