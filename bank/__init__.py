"""bank: detect features in images with a bank of one-class models, one per class.

Importing ``bank`` does not import TensorFlow; training and loading models do.
"""

from .version import __version__

from .verdict.decision import BankResult
from .kinds.autoencoder import AutoencoderModel
from .kinds.base import NotFittedError
from .errors import BankError, InputError
from .io.images import ImageError, InputSpec
from .registry.store import Registry, RegistryError
from .answering.router import Router
from .verdict.fitting import fit_error_stats
from .verdict.stats import ErrorStats

__all__ = [
    "AutoencoderModel",
    "BankError",
    "BankResult",
    "ErrorStats",
    "ImageError",
    "InputError",
    "InputSpec",
    "NotFittedError",
    "Registry",
    "RegistryError",
    "Router",
    "__version__",
    "fit_error_stats",
]
