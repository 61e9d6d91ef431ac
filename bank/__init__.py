"""bank: detect features in images with a bank of one-class models, one per class.

Importing ``bank`` does not import TensorFlow; training and loading models do.
"""

__version__ = "0.1.0"

from .decision import BankResult
from .kinds.autoencoder import AutoencoderModel
from .kinds.base import NotFittedError
from .errors import BankError, InputError
from .images import ImageError, InputSpec
from .registry import Registry, RegistryError
from .router import Router
from .stats import ErrorStats, fit_error_stats

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
