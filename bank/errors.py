"""The errors ``bank`` raises on purpose.

Each says what was expected and what came, naming the file, field or
argument. The command line turns them into one-line messages; any other
exception is a bug in ``bank`` and is reported as one (see :mod:`bank.cli`).
"""

from __future__ import annotations


class BankError(Exception):
    """Base of every error ``bank`` raises on purpose: bad input, a bad registry entry, a bad argument."""


class InputError(BankError, ValueError):
    """An argument, a setting or a piece of data that is not what was expected (a ``ValueError``, as in
    scikit-learn, so ``except ValueError`` still catches it)."""


class RegistryError(BankError):
    """A registry problem: a bad name, a missing class, a broken entry."""
