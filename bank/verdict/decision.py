"""The bank's answer from its errors: z-scores, scores, p-values, flags with reasons, and the verdict.

Pure NumPy (no model, no TensorFlow): :func:`decide` turns an (N, K) matrix
of class errors, with each class's fitted statistics, into a
:class:`BankResult` (see :mod:`bank.verdict.stats` for the maths). The router, the
detector's own ``predict`` and the benchmarks all decide through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import stats as st
from . import columns
from .columns import StatsColumns
from ..errors import InputError

UNKNOWN = "unknown"


@dataclass
class BankResult:
    """Per image and class: error, z-scores, score, p-value, margin, flags; per image: verdict.

    Arrays are (N, K), columns in the order of ``classes``. ``z`` and
    ``score`` are the seeds' (Gaussian on the raw error); ``test_z`` is the z
    under the router's ``method`` (the log error given the input's
    complexity, by default) and ``p_value`` its upper tail. A class flags an
    image when ``test_z > threshold`` (the error is improbable for the
    class: ``flag_error``), when ``margin > margin_threshold`` (another
    class reconstructs it clearly better: ``flag_margin``), or when
    ``|complexity_z| > complexity_threshold`` (the input is far simpler or
    busier than the class's images: ``flag_complexity``).

    ``conformal_p`` is the distribution-free p-value of the raw error: the
    share of the class's held-out errors at least as high
    (:mod:`bank.verdict.conformal`; NaN for a class whose card keeps none).

    ``compare`` says what the argmin (``nearest``) and the margin compare:
    ``raw`` errors (the margin in log error), or ``relative`` ones, each
    log error centred and scaled by its unit's classes (``rank``; the margin
    in those units; :meth:`bank.verdict.columns.StatsColumns.relative`), unit-free
    for banks whose classes score in units of their own (see
    :data:`bank.verdict.stats.COMPARE_MODES`).
    """

    classes: list[str]
    names: list[str]
    errors: np.ndarray
    z: np.ndarray
    score: np.ndarray
    test_z: np.ndarray
    p_value: np.ndarray
    margin: np.ndarray
    flag_error: np.ndarray
    flag_margin: np.ndarray
    threshold: float
    margin_threshold: float | None
    method: str
    complexity: np.ndarray | None = None
    complexity_z: np.ndarray | None = None
    flag_complexity: np.ndarray | None = None
    complexity_threshold: float | None = None
    methods: list[str] | None = None
    compare: str = "raw"
    rank: np.ndarray | None = None
    conformal_p: np.ndarray | None = None

    @cached_property
    def own_flags(self) -> np.ndarray:
        """True where the class rejects the image by its own tests (error, input complexity), whatever
        the other classes say. The margin compares a class with the others whose *error* accepts the
        image (``~flag_error``): a class that rejects an image only for its input's complexity still fits
        it, and a class that fits it far worse does not take it."""
        return self.flag_error if self.flag_complexity is None else self.flag_error | self.flag_complexity

    @cached_property
    def flags(self) -> np.ndarray:
        """True where the class says "not this class", for any reason (made once: a result's arrays are not
        changed after :func:`decide`)."""
        return self.own_flags | self.flag_margin

    @property
    def anomaly(self) -> np.ndarray:
        """One score per image and class that flags past 1 (for ranking and AUROC)."""
        return st.anomaly(self.test_z, self.margin, self.threshold, self.margin_threshold, self.complexity_z,
                          self.complexity_threshold)

    @cached_property
    def nearest(self) -> list[str]:
        """Per image, the class whose model fits it best: lowest error (``compare="raw"``) or lowest
        relative log error (``"relative"``: :meth:`bank.verdict.columns.StatsColumns.relative`)."""
        return [self.classes[i] for i in np.argmin(self.errors if self.rank is None else self.rank, axis=1)]

    @cached_property
    def unknown(self) -> np.ndarray:
        """True where every class flags the image: none of them."""
        return self.flags.all(axis=1)

    @cached_property
    def labels(self) -> list[str]:
        """The verdict: the nearest class among those that do not flag the image (the nearest class, unless
        it rejects the image by its own tests), or "unknown" when every class flags it."""
        basis = np.where(self.flags, np.inf, self.errors if self.rank is None else self.rank)
        return [UNKNOWN if u else self.classes[i] for i, u in zip(np.argmin(basis, axis=1), self.unknown)]

    def method_of(self, k: int) -> str:
        """The method class ``k``'s z was really taken under (a class fitted without complexity: lognormal)."""
        return self.methods[k] if self.methods else self.method

    def reasons(self, i: int, k: int) -> list[str]:
        """Why class ``k`` flags image ``i`` (empty when it does not)."""
        out = []
        if self.flag_error[i, k]:
            out.append(f"error too high for the class ({st.METHOD_LABELS[self.method_of(k)]} {self.test_z[i, k]:.2f} > "
                       f"{self.threshold:g})")
        if self.flag_margin[i, k]:
            basis = self.errors if self.rank is None else self.rank
            others = [j for j in range(len(self.classes)) if j != k and not self.flag_error[i, j]]
            best = self.classes[min(others, key=lambda j: basis[i, j])]
            lower = (f"error {1 - np.exp(-self.margin[i, k]):.0%} lower" if self.rank is None
                     else f"relative log error {self.margin[i, k]:.2f} lower")
            out.append(f"another class fits it better (class {best!r}: {lower}; margin {self.margin[i, k]:.2f} > "
                       f"{self.margin_threshold:g})")
        if self.flag_complexity is not None and self.flag_complexity[i, k]:
            cz = self.complexity_z[i, k]
            out.append(f"input {'simpler' if cz < 0 else 'busier'} than the class's images "
                       f"({st.INPUT_COMPLEXITY_LABEL} {cz:.2f}, beyond +-{self.complexity_threshold:g})")
        return out

    def to_json(self, skipped: Sequence[tuple[str, str]] = (), skipped_classes: Sequence[tuple[str, str]] = ()) -> dict:
        """The document of ``bank classify --json`` and of the server: the rule, one record per image,
        the inputs that could not be read and the classes left out."""
        return {"classes": self.classes, "method": self.method, "compare": self.compare, "threshold": self.threshold,
                "margin": self.margin_threshold, "complexity_threshold": self.complexity_threshold,
                "results": self.records(), "skipped": skipped_json(skipped),
                "skipped_classes": skipped_json(skipped_classes, "class")}

    def records(self) -> list[dict]:
        """One JSON-ready dict per image (the schema of ``--json``)."""

        def rows(a: np.ndarray | None, finite: bool = False) -> list:
            """``a`` as nested Python lists, once (NaN and infinity as None where ``finite``)."""
            if a is None:
                return [[None] * len(self.classes)] * len(self.names)
            return np.where(np.isfinite(a), a, None).tolist() if finite else np.asarray(a, np.float64).tolist()

        e, z, score, tz, p = rows(self.errors), rows(self.z), rows(self.score), rows(self.test_z), rows(self.p_value)
        cp, margin, cz = rows(self.conformal_p, True), rows(self.margin, True), rows(self.complexity_z, True)
        rank, flags = None if self.rank is None else rows(self.rank), self.flags.tolist()
        methods = [self.method_of(k) for k in range(len(self.classes))]
        out = []
        for i, (name, nearest, label, unknown) in enumerate(zip(self.names, self.nearest, self.labels,
                                                                   self.unknown.tolist())):
            out.append({
                "image": name,
                "label": None if unknown else label,
                "unknown": unknown,
                "nearest": nearest,
                "classes": {
                    c: {
                        "error": e[i][k],
                        "z": z[i][k],
                        "score": score[i][k],
                        "test_z": tz[i][k],
                        "method": methods[k],
                        "p_value": p[i][k],
                        "conformal_p_value": cp[i][k],
                        "margin": margin[i][k],
                        **({} if rank is None else {"relative_z": rank[i][k]}),
                        "complexity_z": cz[i][k],
                        "flag": flags[i][k],
                        "reasons": self.reasons(i, k) if flags[i][k] else [],
                    }
                    for k, c in enumerate(self.classes)
                },
            })
        return out


def skipped_json(skipped: Sequence[tuple[str, str]], key: str = "image") -> list[dict]:
    """``(name, reason)`` pairs as the JSON the CLI and the server print: ``{key: name, "error": reason}``."""
    return [{key: n, "error": r} for n, r in skipped]


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def auto_compare(units: Sequence[str], per_class: bool = False) -> str:
    """The comparison a bank of these score units needs: "raw" when every class scores in one unit that
    compares across classes (per-pixel squared error, :data:`bank.verdict.stats.PIXEL_MSE`, or another kind's own),
    else "relative" (units that differ, or ``per_class``: a unit fitted per class, such as a kernel width)."""
    return "raw" if len(set(units)) == 1 and not per_class else "relative"


def compare_kwargs(models: Sequence[object], compare: str = "auto") -> dict:
    """``compare``, ``units`` and ``per_class`` for :func:`decide` over these class models (``"auto"``
    resolved from what their kinds declare: ``score_unit``, ``unit_per_class``)."""
    units = [m.score_unit for m in models]
    per_class = [bool(m.unit_per_class) for m in models]
    auto = auto_compare(units, any(per_class))
    return {"compare": auto if compare == "auto" else st.check_compare(compare), "units": units,
            "per_class": per_class}


def decide(errors: np.ndarray, classes: Sequence[str], stats: Sequence[st.ErrorStats] | StatsColumns,
           names: Sequence[str] | None = None, *, threshold: float = st.DEFAULT_THRESHOLD,
           method: str = "complexity", margin: float | None = st.DEFAULT_MARGIN,
           complexity: np.ndarray | None = None,
           complexity_threshold: float | None = st.DEFAULT_COMPLEXITY, compare: str = "raw",
           units: Sequence[str | None] | None = None, per_class: Sequence[bool] | None = None) -> BankResult:
    """The bank's answer from an (N, K) matrix of errors and each class's statistics.

    ``complexity``: (N, K), each input's complexity at class k's spec
    (:func:`bank.io.images.complexity`); without it, or for a class fitted
    without the complexity part, ``complexity`` z falls back to lognormal and
    the complexity test is skipped. ``compare``: ``raw`` (errors in one
    unit) or ``relative`` (each log error centred on its unit's classes and
    divided by their pooled spread, ``units`` and ``per_class`` as
    :meth:`bank.verdict.columns.StatsColumns.of` takes them:
    :meth:`~bank.verdict.columns.StatsColumns.relative`), for the argmin and
    the margin. ``stats``: one per class, or their
    :class:`~bank.verdict.columns.StatsColumns` made once (which carry their
    units). Pure NumPy, every test one operation over all classes: any bank, of
    any kinds, is judged by the same tests.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if not classes or errors.ndim != 2 or errors.shape[1] != len(classes) or len(stats) != len(classes):
        raise InputError(f"errors: expected shape (N, {len(classes)}) with one statistics per class, got {errors.shape}")
    st.check_method(method)
    bad = np.argwhere(~np.isfinite(errors) | (errors < 0))
    if len(bad):
        i, k = bad[0]
        who = names[i] if names is not None and i < len(names) else f"#{i}"
        raise InputError(f"image {who}: class {classes[k]!r} gave the error {errors[i, k]} (expected a finite number "
                         ">= 0; is the model broken?)")
    margin = st.check_margin(margin)
    complexity_threshold = st.check_complexity(complexity_threshold)
    if complexity is not None:
        complexity = np.asarray(complexity, dtype=np.float64)
        if complexity.shape != errors.shape or not np.all(np.isfinite(complexity) & (complexity > 0)):
            raise InputError(f"complexity: expected {errors.shape} positive finite values, like the errors")
    cols = stats if isinstance(stats, StatsColumns) else StatsColumns.of(stats, units, per_class)
    if units is not None and tuple(units) != cols.units:
        raise InputError(f"units: the statistics' columns were made with {list(cols.units)}, got {list(units)}")
    if per_class is not None and tuple(bool(v) for v in per_class) != cols.per_class:
        raise InputError(f"per_class: the statistics' columns were made with {list(cols.per_class)}, got "
                         f"{list(per_class)}")
    z = cols.zscore(errors)
    test_z = cols.zscore(errors, method, complexity)
    cz = None if complexity is None else cols.complexity_z(complexity)
    compare = st.check_compare(compare)
    rank = cols.relative(errors) if compare == "relative" else None
    flag_error = st.flag(test_z, threshold)
    flag_cx = None if cz is None else st.past(np.abs(cz), complexity_threshold)
    ranked = np.log(np.maximum(errors, st.LOG_FLOOR)) if rank is None else rank  # raw: the log errors as they are
    margins = columns.margins(ranked, accepts=~flag_error)  # the classes whose error accepts the image
    names = list(names) if names is not None else [f"#{i}" for i in range(len(errors))]
    if len(names) != len(errors):
        raise InputError(f"names: expected {len(errors)}, got {len(names)}")
    return BankResult(
        classes=list(classes), names=names, errors=errors, z=z, score=st.gaussian_score(z), test_z=test_z,
        p_value=st.upper_p_value(test_z), margin=margins, flag_error=flag_error,
        flag_margin=st.past(margins, margin), threshold=float(threshold), margin_threshold=margin, method=method,
        complexity=complexity, complexity_z=cz, flag_complexity=flag_cx, complexity_threshold=complexity_threshold,
        methods=cols.methods(method, complexity is not None), compare=compare, conformal_p=cols.conformal(errors),
        rank=rank,
    )
