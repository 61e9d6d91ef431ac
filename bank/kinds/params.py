"""What a kind's parameters may be: declared once on the kind (its ``rules``), checked in one place.

A :class:`Rule` says in words what it allows ("a whole number of at least 1") and tests a value; a kind
maps each constructor parameter to one (scikit-learn's ``_parameter_constraints``), and
:meth:`bank.kinds.base.ClassModel._check_params` checks them all before any image is read, with one
message form: ``"<kind> <parameter>: expected <what>, got <value>"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    """A test of a parameter's value and what it allows, in words."""

    allows: Callable[[object], bool]
    text: str

    def __str__(self) -> str:
        return self.text

    def __or__(self, other: Rule) -> Rule:
        return Rule(lambda v: self.allows(v) or other.allows(v), f"{self.text} or {other.text}")


def _real(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def whole(low: int = 1) -> Rule:
    """A whole number (not a bool) of at least ``low``."""
    return Rule(lambda v: _whole(v) and v >= low, f"a whole number of at least {low}")


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           text: str | None = None) -> Rule:
    """A finite real number (not a bool) between ``low`` and ``high`` (each end open or closed)."""
    def allows(v: object) -> bool:
        return (_real(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))

    if text is None:
        if high == math.inf:
            text = "a positive number" if (low, low_open) == (0, True) else f"a number of at least {low:g}"
        else:
            text = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
    return Rule(allows, text)


def one_of(*values: object) -> Rule:
    """One of ``values`` (compared by ``==``, and a bool only with a bool)."""
    def allows(v: object) -> bool:
        return any(v == w and isinstance(v, bool) == isinstance(w, bool) for w in values)

    return Rule(allows, f"one of {', '.join(map(repr, values))}" if len(values) > 1 else repr(values[0]))


def wholes(low: int = 1) -> Rule:
    """A non-empty list (or tuple) of whole numbers of at least ``low``."""
    def allows(v: object) -> bool:
        return (isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and len(v) > 0
                and all(_whole(x) and x >= low for x in v))

    return Rule(allows, f"a list of whole numbers of at least {low}")


def mapping() -> Rule:
    """A dict (of keyword arguments)."""
    return Rule(lambda v: isinstance(v, dict), "a dict of keyword arguments")


def anything(text: str) -> Rule:
    """Any value (a callable, a folder): said in ``text``, never refused here."""
    return Rule(lambda v: True, text)


def callable_or_none() -> Rule:
    """A function, or None."""
    return Rule(lambda v: v is None or callable(v), "a function or None")
