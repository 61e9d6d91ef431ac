"""A bank's class statistics as columns: every test of :mod:`bank.verdict.stats` over all classes at once.

:func:`bank.verdict.decision.decide` judges N images by K classes. Taken class by class, each z costs a
Python round per class: 14 of the 14.3 ms a 1,000-class bank spent on one image's verdict.
:class:`StatsColumns` holds the fields of K :class:`~bank.verdict.stats.ErrorStats` as arrays, made once
per bank (the router keeps one), and gives the numbers the per-class functions give (tested equal), each
in a few NumPy operations over the (N, K) matrix.

It also holds what only a bank has: where the ``relative`` comparison centres each class's log score (its
unit's classes' mean log score, or its own for a unit fitted per class: :func:`unit_centres`) and the spread
it divides by, pooled over the classes of one score unit (:func:`pooled_spread`), and the margins between
classes (:func:`margins`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .stats import COMPLEXITY_CLAMP, LOG_FLOOR, ErrorStats, check_method

@dataclass(frozen=True, eq=False)
class StatsColumns:
    """The statistics of K classes, one array per field, columns in the bank's order.

    ``units``: one score unit per class (:attr:`bank.kinds.base.Detector.score_unit`; by default each
    class is its own). Fields a class's fit lacks are filled so that the formula falls back the way the
    per-class functions do: no complexity part gives the lognormal z (slope 0, the log spread as the
    residual's).
    """

    stats: tuple[ErrorStats, ...]
    units: tuple
    per_class: tuple  #: per class, True when its unit is fitted per class (its own centre; raw scores never compare)
    mean: np.ndarray
    std: np.ndarray
    log_mean: np.ndarray
    log_std: np.ndarray
    log_shift: np.ndarray
    has_complexity: np.ndarray
    complexity_mean: np.ndarray
    complexity_std: np.ndarray
    complexity_slope: np.ndarray
    residual_std: np.ndarray
    centre: np.ndarray  #: what the relative comparison centres a class's log score on (:func:`unit_centres`)
    spread: np.ndarray  #: what the relative comparison divides a class's centred log score by
    calibration_keys: np.ndarray  #: every class's held-out scores as ``k + 1j * score``, sorted: see :meth:`conformal`
    calibration_start: np.ndarray
    calibration_n: np.ndarray

    @classmethod
    def of(cls, stats: Sequence[ErrorStats], units: Sequence[object] | None = None,
           per_class: Sequence[bool] | None = None) -> StatsColumns:
        """The columns of ``stats`` (one per class), with their score ``units`` (one per class, or None: each
        class its own) and ``per_class`` (one per class, or None: none): True for a class whose unit is
        fitted per class (a kernel width), whose raw scores do not compare even within its unit."""
        stats = tuple(stats)
        units = tuple(range(len(stats))) if units is None else tuple(units)
        per_class = (False,) * len(stats) if per_class is None else tuple(bool(v) for v in per_class)
        if len(units) != len(stats) or len(per_class) != len(stats):
            raise InputError(f"units, per_class: expected one per class ({len(stats)}), got {len(units)}, "
                             f"{len(per_class)}")

        def col(name: str, fill: float | None = None) -> np.ndarray:
            return np.array([fill if getattr(s, name) is None else getattr(s, name) for s in stats], np.float64)

        log_std = col("log_std")
        has = np.array([s.has_complexity for s in stats], bool)
        cal = [s.calibration_array if s.calibration is not None else np.empty(0) for s in stats]
        n_cal = np.array([c.size for c in cal], np.int64)
        keys = np.concatenate([k + 1j * c for k, c in enumerate(cal)]) if stats else np.empty(0, np.complex128)
        log_mean = col("log_mean")
        return cls(stats=stats, units=units, per_class=per_class, mean=col("mean"), std=col("std"), log_mean=log_mean,
                   log_std=log_std, log_shift=col("log_shift"), has_complexity=has,
                   complexity_mean=col("complexity_mean", 0.0), complexity_std=col("complexity_std", 1.0),
                   complexity_slope=col("complexity_slope", 0.0),
                   residual_std=np.where(has, col("residual_std", 1.0), log_std),
                   centre=unit_centres(log_mean, units, per_class), spread=pooled_spread(log_std, units),
                   calibration_keys=np.asarray(keys, np.complex128),
                   calibration_start=np.concatenate([[0], np.cumsum(n_cal)[:-1]]).astype(np.int64),
                   calibration_n=n_cal)

    def __len__(self) -> int:
        return len(self.stats)

    def unit_held_out(self) -> np.ndarray:
        """Per class, how many held-out images the spread of its unit rests on (its classes' together):
        what a relative rank of the class is as good as. A unit of a few (a class of five images of a kind
        no other class is) ranks on noise: two held-out scores a hair apart gave a spread of 0.0009 and
        z of -29 to -488 to foreign digits, which took 38 of 120 other digits."""
        n = np.array([s.n for s in self.stats])
        return np.array([sum(int(m) for m, v in zip(n, self.units) if v == u) for u in self.units])

    def matrix(self, values: np.ndarray, name: str = "errors") -> np.ndarray:
        """``values`` as an (N, K) float64 matrix, a column per class; InputError for another shape (NumPy would
        broadcast a single column over every class)."""
        out = np.asarray(values, np.float64)
        if out.ndim != 2 or out.shape[1] != len(self):
            raise InputError(f"{name}: expected shape (N, {len(self)}), a column per class, got {out.shape}")
        return out

    def logs(self, errors: np.ndarray) -> np.ndarray:
        """(N, K) each class's log of its errors, as its log fits take it (``log(error + log_shift)``, floored)."""
        return np.log(np.maximum(self.matrix(errors) + self.log_shift, LOG_FLOOR))

    def methods(self, method: str, have_complexity: bool = True) -> list[str]:
        """Per class, the method its z is really taken under (:func:`bank.verdict.stats.effective_method`)."""
        if check_method(method) != "complexity":
            return [method] * len(self)
        return ["complexity" if h and have_complexity else "lognormal" for h in self.has_complexity.tolist()]

    def zscore(self, errors: np.ndarray, method: str = "gaussian",
               complexity: np.ndarray | None = None) -> np.ndarray:
        """(N, K) z of each class's errors under ``method``, as :func:`bank.verdict.stats.zscore` per class."""
        e = self.matrix(errors)
        if check_method(method) == "gaussian":
            return (e - self.mean) / self.std
        log_e = self.logs(e)
        if method == "lognormal" or complexity is None:
            return (log_e - self.log_mean) / self.log_std
        reach = COMPLEXITY_CLAMP * self.complexity_std  # the line is not extrapolated past the images it was fitted on
        dc = np.clip(np.log(self.matrix(complexity, "complexity")) - self.complexity_mean, -reach, reach)
        # a class without the complexity part has slope 0 and its log spread as the residual's: lognormal
        return (log_e - (self.log_mean + self.complexity_slope * dc)) / self.residual_std

    def complexity_z(self, complexity: np.ndarray) -> np.ndarray:
        """(N, K) how far each input's log complexity is from each class's, in its standard deviations
        (NaN for a class fitted without the complexity part)."""
        z = (np.log(self.matrix(complexity, "complexity")) - self.complexity_mean) / self.complexity_std
        return np.where(self.has_complexity, z, np.nan)

    def relative(self, errors: np.ndarray) -> np.ndarray:
        """(N, K) what the ``relative`` comparison ranks by: ``(log error - centre) / spread``, unit-free.

        ``centre`` is the mean ``log_mean`` of the classes of one unit (:func:`unit_centres`; a class's own
        for a unit fitted per class), so that within a unit the ranking is the raw one; ``spread`` is
        pooled over the classes of one unit (:func:`pooled_spread`), not the class's own ``log_std``:
        that one, fitted on a few held-out images, is too noisy to rank by (with 6 held-out images a
        class it cost three HOG digit classes up to 8 points of accuracy).
        """
        e = self.matrix(errors)
        # a class of a shared unit ranks by its plain log score (a kind's fitted log shift would move classes of
        # one unit apart: the ranking among them must be the raw one); a class of its own unit as its fit takes it
        logs = np.where(np.asarray(self.per_class, bool), self.logs(e), np.log(np.maximum(e, LOG_FLOOR)))
        return (logs - self.centre) / self.spread

    def conformal(self, errors: np.ndarray) -> np.ndarray:
        """(N, K) each error's conformal p-value under its class's held-out scores
        (:func:`bank.verdict.conformal.conformal_p_value`), NaN for a class that keeps none.

        One search for every class: the held-out scores are kept as the complex numbers ``k + 1j * score``,
        which NumPy orders by class and then by score, so an error's place among its own class's scores is
        its place in that one sorted array less the class's start (searched class by class, the queries
        of one class side by side: twice as fast as image by image for a batch).
        """
        e = self.matrix(errors)
        queries = np.arange(len(self))[:, None] + 1j * e.T
        below = np.searchsorted(self.calibration_keys, queries, side="left").T - self.calibration_start
        n = self.calibration_n
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (1.0 + n - below) / (n + 1.0)
        return np.where((n > 0) & ~np.isnan(e), p, np.nan)


def unit_centres(log_mean: np.ndarray, units: Sequence[object], per_class: Sequence[bool]) -> np.ndarray:
    """Per class, where the relative comparison centres its log score: the mean ``log_mean`` of the classes
    of its unit whose raw scores compare (so that among them the ranking is the raw one: an easy class's
    low errors still win, as they do in a bank of one kind), or its own ``log_mean`` for a class whose unit
    is fitted per class (``per_class``: a kernel width), whose raw scores do not compare with its unit's.

    MNIST, 5,000 test digits, argmin accuracy with each class's own centre / with these (2026-12-04,
    ``benchmarks/mixed.py``): digits 0-4 ae-hog and 5-9 pca 0.8384 / 0.9328; nine ae-hog digits and a pca 7
    0.9484 / 0.9704; 0-4 pca and 5-9 hog-ocsvm 0.8924 / 0.9200 (docs/kinds.md).
    """
    log_mean = np.asarray(log_mean, np.float64)
    out = log_mean.copy()
    shared = ~np.asarray(per_class, bool)
    for unit in set(units):
        mine = np.array([u == unit for u in units]) & shared
        if mine.any():
            out[mine] = log_mean[mine].mean()
    return out


def pooled_spread(log_std: np.ndarray, units: Sequence[object]) -> np.ndarray:
    """Per class, the spread of log scores of its unit: the root mean square of ``log_std`` over the classes
    of that unit (a class alone in its unit keeps its own). Log spreads do not compare across units (a
    HOG class's log score spreads by 0.04 where an autoencoder's log error spreads by 0.25-0.5), so a
    unit never borrows another's."""
    log_std = np.asarray(log_std, np.float64)
    out = np.empty_like(log_std)
    for unit in set(units):
        mine = np.array([u == unit for u in units])
        out[mine] = np.sqrt(np.mean(log_std[mine] ** 2))
    return out


def margins(ranked: np.ndarray, accepts: np.ndarray | None = None) -> np.ndarray:
    """(N, K) margin of each class: its ``ranked`` value (log error, or :meth:`StatsColumns.relative`) minus
    the lowest among the other classes that accept the image.

    ``accepts`` (N, K): which classes' errors accept each image (all by default). Only they are compared
    with: a class whose error rejects an image cannot take it from another, so adding a class changes no
    other class's flags on the images its error rejects. Negative for the
    best-fitting class, positive when an accepting class fits better; NaN for a bank of one class, or
    when no other class accepts the image.
    """
    logs = np.asarray(ranked, np.float64)
    n, k = logs.shape
    if k < 2:
        return np.full((n, k), np.nan)
    ok = np.ones((n, k), bool) if accepts is None else np.asarray(accepts, bool)
    cand = np.where(ok, logs, np.inf)
    two = np.argpartition(cand, 1, axis=1)[:, :2] if k > 2 else np.tile(np.arange(2), (n, 1))
    rows = np.arange(n)[:, None]
    pair = cand[rows, two]
    first = np.argmin(pair, axis=1)
    best_k = two[np.arange(n), first]
    best, second = pair[np.arange(n), first], pair[np.arange(n), 1 - first]
    others_min = np.where(np.arange(k)[None, :] == best_k[:, None], second[:, None], best[:, None])
    with np.errstate(invalid="ignore"):
        out = logs - others_min
    return np.where(np.isfinite(others_min), out, np.nan)
