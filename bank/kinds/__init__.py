"""Kinds of class model: the table the registry, the command line and the server find them in.

``autoencoder`` (:class:`bank.detector.AutoencoderDetector`, Keras, answered through LiteRT) is the
first; the others honour :class:`bank.kinds.base.ClassModel` and answer in NumPy. Each is imported
only when asked for, so naming the kinds costs nothing.
"""

from __future__ import annotations

import importlib

from ..errors import InputError

#: kind name -> (module, class)
KINDS = {
    "autoencoder": ("bank.detector", "AutoencoderDetector"),
    "pca": ("bank.kinds.pca", "PCAModel"),
    "hog-ocsvm": ("bank.kinds.hog_ocsvm", "HOGOCSVMModel"),
    "ae-hog": ("bank.kinds.ae_hog", "AEHOGModel"),
    "geotrans": ("bank.kinds.geotrans", "GeoTransModel"),
}

#: The kinds that train an autoencoder, and so take its training settings (epochs, patience, ...).
WITH_AUTOENCODER = ("autoencoder", "ae-hog")

#: The kind a card without a ``kind`` field is (every card written before kinds).
DEFAULT_KIND = "autoencoder"


def check_kind(name: object) -> str:
    """``name`` if it is a kind of class model, else an InputError listing them."""
    if name not in KINDS:
        raise InputError(f"kind: expected one of {', '.join(KINDS)}, got {name!r}")
    return name  # type: ignore[return-value]


def kind_class(name: str) -> type:
    """The class of the kind ``name`` (imported now)."""
    module, cls = KINDS[check_kind(name)]
    return getattr(importlib.import_module(module), cls)
