"""What a kind's parameters may be: declared once on the kind (its ``rules``), checked in one place.

A :class:`Rule` says in words what it allows ("a whole number of at least 1") and tests a value; a kind
maps each constructor parameter to one (scikit-learn's ``_parameter_constraints``), and
:meth:`bank.kinds.base.ClassModel._check_params` checks them all before any image is read, with one
message form: ``"<kind> <parameter>: expected <what>, got <value>"``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


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


#: Each kind's constructor parameters and their defaults (:meth:`Declared.param_defaults`), read once.
_DEFAULTS: dict[type, dict[str, object]] = {}


class Declared:
    """What a class with declared parameters gets from the declaration: scikit-learn's ``get_params`` and
    ``set_params``, one check of every parameter against its rule (``rules`` on each class down the tree),
    and a ``repr`` that shows what differs from the defaults."""

    kind = ""
    rules: dict[str, Rule] = {}

    @classmethod
    def param_rules(cls) -> dict[str, Rule]:
        """Every parameter's rule: the base's, then each kind's down the class tree (a kind may tighten one)."""
        out: dict[str, Rule] = {}
        for c in reversed(cls.__mro__):
            out.update(c.__dict__.get("rules", {}))
        return out

    @classmethod
    def param_defaults(cls) -> dict[str, object]:
        """The constructor's parameters and their defaults (scikit-learn's ``_get_param_names``), the base's
        (taken through ``**common``) included."""
        if cls not in _DEFAULTS:  # read once per kind: --help asks for every kind's defaults
            out: dict[str, object] = {}
            for c in reversed([c for c in cls.__mro__ if issubclass(c, Declared)]):
                for name, p in inspect.signature(c.__init__).parameters.items():
                    if name != "self" and p.kind == p.KEYWORD_ONLY:
                        out[name] = p.default
            _DEFAULTS[cls] = out
        return dict(_DEFAULTS[cls])

    def get_params(self, deep: bool = False) -> dict[str, object]:
        """The model's parameters by name, as given to the constructor (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self.param_defaults()}

    def set_params(self, **params) -> Declared:
        """Change parameters by name before fitting; an unknown name is refused, naming the ones there are."""
        names = self.param_defaults()
        for name, value in params.items():
            if name not in names:
                raise InputError(f"{self.kind}: no parameter {name!r} (parameters: {', '.join(names)})")
            setattr(self, name, value)
        return self

    def _check_params(self) -> None:
        """Refuse a parameter its rule does not allow, naming it, what it allows and what came; then what
        the kind checks of its parameters together (:meth:`_check_together`)."""
        for name, rule in self.param_rules().items():
            value = getattr(self, name)
            if not rule.allows(value):
                raise InputError(f"{self.kind} {name}: expected {rule}, got {value!r}")
        self._check_together()

    def _check_together(self) -> None:
        """What a kind checks of its parameters together, once each is allowed alone (nothing by default)."""

    def __repr__(self) -> str:
        """The class and the parameters that differ from their defaults, as scikit-learn shows an estimator."""
        defaults = self.param_defaults()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not (v is defaults[k] or _equal(v, defaults[k]))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):  # arrays and other things without one truth value
        return False
