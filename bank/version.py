"""The version of bank."""

__version__ = "0.1.0"
