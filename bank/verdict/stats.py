"""Statistics of a class model's normal reconstruction error, and the tests built on them.

Pure NumPy/SciPy: no TensorFlow here, so the maths is testable on its own.

The unit of an error is the per-pixel mean squared error on the [0, 1] scale.
Every score follows one direction: a higher error, z or margin is more anomalous.

Three fits of the same held-out errors are kept (fitted by :mod:`bank.verdict.fitting`; read here):

- ``gaussian`` (the seeds'): z = (error - mean) / std on the raw error;
- ``lognormal``: z = (log error - log_mean) / log_std.
  Reconstruction errors are right-skewed, bounded below by 0; their log is
  close to normal, so its z gives honest tail probabilities (on MNIST, z > 3
  rejects 0.6% of normal digits where the raw Gaussian rejects 2%).

- ``complexity`` (the default): the lognormal z of the error *given the
  input's complexity*. Simple inputs (a blank page, a thin stroke) reconstruct
  well whatever they are, complex ones badly: reconstruction error tracks
  complexity as much as class (Serra et al., ICLR 2020). Complexity here is
  the bits per value zlib needs for the image (:func:`bank.io.images.complexity`);
  the fit regresses log error on log complexity over the held-out images and
  z is the residual over its standard deviation. The same fit gives a second
  test: an input whose complexity is far outside the class's (|z| >
  ``DEFAULT_COMPLEXITY``), such as a blank or constant image, is not the class.
  A class fitted before this existed falls back to ``lognormal``.

Beside the error's own test, a bank has the *margin* of a class on an image:
``log(error of the class) - log(lowest error of the other classes)``. A
positive margin means another class reconstructs the image better; past
``DEFAULT_MARGIN`` (another class's error is 18% lower), the class flags it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import InputError

#: Quantiles of the held-out error kept with every class model.
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)

#: Default flag threshold, in standard deviations above the mean error.
DEFAULT_THRESHOLD = 3.0

#: Fewest held-out errors a fit accepts: a standard deviation needs two.
MIN_SAMPLES = 2

#: Fewest held-out images the complexity line is fitted on; below, z is the plain lognormal one
#: (slope 0) and only the complexity test remains.
MIN_COMPLEXITY_SAMPLES = 30

#: The line is trusted this many standard deviations of log complexity either side of the mean, no further.
COMPLEXITY_CLAMP = 3.0

#: The fits a z can be taken under; the first is the default.
STATS_METHODS = ("complexity", "lognormal", "gaussian")

#: How each method's z (of the reconstruction error: ``test_z``) is named in messages, tables and pages.
METHOD_LABELS = {"complexity": "complexity-corrected z", "lognormal": "lognormal z", "gaussian": "Gaussian z"}

#: How the z of the input's own complexity (its zlib bits per value against the class's images: ``complexity_z``)
#: is named: a different quantity from the complexity-corrected z of the error, so never "complexity z" alone.
INPUT_COMPLEXITY_LABEL = "input complexity z"

#: How classes are compared for the argmin and the margin: ``raw`` errors (one unit for every class:
#: autoencoders, PCA), or ``relative``: each log error centred and scaled by its unit's classes
#: (:meth:`bank.verdict.columns.StatsColumns.relative`).
COMPARE_MODES = ("raw", "relative")

#: The ``score_unit`` of kinds scored by the per-pixel mean squared error of a reconstruction (pixels in
#: [0, 1]): their raw errors compare across classes. Every kind names its unit; classes of one unit compare raw.
PIXEL_MSE = "pixel-mse"

#: A class flags an image when another class's error is lower by this much in log (e**0.2 = 1.22).
DEFAULT_MARGIN = 0.2

#: A class flags an image whose log complexity is this many standard deviations from the class's.
DEFAULT_COMPLEXITY = 4.0

#: The fields of the input-complexity part of a fit (all on log scales).
COMPLEXITY_FIELDS = ("complexity_mean", "complexity_std", "complexity_slope", "residual_std")

#: Errors are floored here before taking logs (a perfect reconstruction has error 0).
LOG_FLOOR = 1e-12


@dataclass(frozen=True)
class ErrorStats:
    """Mean, standard deviation, count and quantiles of held-out errors.

    Fitted once, after training, on images of the class the model never
    trained on. ``std`` is floored (see :func:`fit_error_stats`) so z-scores
    stay finite even when every held-out error is the same.
    """

    mean: float
    std: float
    n: int
    quantiles: dict[str, float] = field(default_factory=dict)
    log_mean: float | None = None
    log_std: float | None = None
    complexity_mean: float | None = None
    complexity_std: float | None = None
    complexity_slope: float | None = None
    residual_std: float | None = None
    calibration: tuple[float, ...] | None = None  #: the held-out errors, sorted: conformal p-values
    #: The log fits take log(error + log_shift): 0 (a plain log) unless fitted (:func:`fit_log_shift`), for a
    #: kind whose scores crowd at 0 (a network sure of most of its own images), where a plain log's spread is
    #: made by the crowd and puts the flag far past every held-out score.
    log_shift: float = 0.0

    @cached_property
    def calibration_array(self) -> np.ndarray | None:
        """``calibration`` as a sorted float64 array, made once: what conformal p-values search."""
        return None if self.calibration is None else np.asarray(self.calibration, dtype=np.float64)

    @property
    def has_complexity(self) -> bool:
        """True when the fit has the input-complexity part (models fitted since it exists)."""
        return self.complexity_mean is not None

    def __post_init__(self):
        given = [getattr(self, k) is not None for k in COMPLEXITY_FIELDS]
        if any(given) and not all(given):
            raise InputError(f"stats: the complexity part needs all of {', '.join(COMPLEXITY_FIELDS)}, or none")
        if self.log_mean is None or self.log_std is None:  # cards from before the log fit: moment-match it
            var = math.log1p((self.std / max(self.mean, LOG_FLOOR)) ** 2)
            object.__setattr__(self, "log_mean", math.log(max(self.mean, LOG_FLOOR)) - var / 2)
            object.__setattr__(self, "log_std", max(math.sqrt(var), 1e-6))

    def to_dict(self) -> dict:
        """The JSON form stored in a model card."""
        out = {"mean": self.mean, "std": self.std, "n": self.n, "quantiles": dict(self.quantiles),
               "log_mean": self.log_mean, "log_std": self.log_std}
        if self.has_complexity:
            out.update({k: getattr(self, k) for k in COMPLEXITY_FIELDS})
        if self.calibration is not None:
            out["calibration_errors"] = list(self.calibration)
        if self.log_shift:
            out["log_shift"] = self.log_shift
        return out

    def logs(self, errors: np.ndarray) -> np.ndarray:
        """The log of errors as the log fits take it: ``log(error + log_shift)``, floored."""
        return np.log(np.maximum(np.asarray(errors, dtype=np.float64) + self.log_shift, LOG_FLOOR))

    @classmethod
    def from_dict(cls, data: dict) -> ErrorStats:
        """Parse the JSON form, checking every field (a card may be hand-edited)."""
        if not isinstance(data, dict):
            raise InputError(f"stats: expected an object, got {type(data).__name__}")
        missing = [k for k in ("mean", "std", "n") if k not in data]
        if missing:
            raise InputError(f"stats: missing field(s) {', '.join(missing)}")
        mean, std = _finite(data["mean"], "stats.mean"), _finite(data["std"], "stats.std")
        if std <= 0:
            raise InputError(f"stats.std: expected a positive number, got {std}")
        n = data["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < MIN_SAMPLES:
            raise InputError(f"stats.n: expected an integer >= {MIN_SAMPLES}, got {n!r}")
        quantiles = data.get("quantiles", {})
        if not isinstance(quantiles, dict):
            raise InputError("stats.quantiles: expected an object of quantile -> error")
        quantiles = {str(k): _finite(v, f"stats.quantiles[{k}]") for k, v in quantiles.items()}
        log_mean = log_std = None
        if data.get("log_mean") is not None or data.get("log_std") is not None:
            log_mean, log_std = _finite(data.get("log_mean"), "stats.log_mean"), _finite(data.get("log_std"),
                                                                                         "stats.log_std")
            if log_std <= 0:
                raise InputError(f"stats.log_std: expected a positive number, got {log_std}")
        extra = {}
        if any(data.get(k) is not None for k in COMPLEXITY_FIELDS):
            if log_mean is None:  # the line is centred on the fitted log mean: both come from one fit
                raise InputError("stats: the complexity fields need log_mean and log_std beside them")
            extra = {k: _finite(data.get(k), f"stats.{k}") for k in COMPLEXITY_FIELDS}
            for k in ("complexity_std", "residual_std"):
                if extra[k] <= 0:
                    raise InputError(f"stats.{k}: expected a positive number, got {extra[k]}")
        calibration = data.get("calibration_errors")
        if calibration is not None:
            if not isinstance(calibration, list) or len(calibration) != n:
                raise InputError(f"stats.calibration_errors: expected a list of the n = {n} held-out errors")
            calibration = tuple(sorted(_finite(v, "stats.calibration_errors[]") for v in calibration))
            if calibration[0] < 0:
                raise InputError("stats.calibration_errors: expected errors >= 0")
        shift = data.get("log_shift", 0.0)
        shift = 0.0 if shift is None else _finite(shift, "stats.log_shift")
        if shift < 0:
            raise InputError(f"stats.log_shift: expected a number >= 0, got {shift}")
        return cls(mean=mean, std=std, n=n, quantiles=quantiles, log_mean=log_mean, log_std=log_std,
                   calibration=calibration, log_shift=shift, **extra)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def zscore(errors: np.ndarray, stats: ErrorStats, method: str = "gaussian",
           complexity: np.ndarray | None = None) -> np.ndarray:
    """z of errors under a fit: ``gaussian`` (error - mean) / std, ``lognormal`` on log error, or
    ``complexity``: the log error's residual from the class's line at each input's ``complexity``
    (held at the line's value ``COMPLEXITY_CLAMP`` standard deviations out for inputs beyond).

    ``complexity`` falls back to ``lognormal`` when the fit has no complexity part or no
    ``complexity`` values are given (see :func:`effective_method`).
    """
    e = np.asarray(errors, dtype=np.float64)
    method = effective_method(stats, check_method(method), complexity is not None)
    if method == "gaussian":
        return (e - stats.mean) / stats.std
    log_e = stats.logs(e)
    if method == "lognormal":
        return (log_e - stats.log_mean) / stats.log_std
    reach = COMPLEXITY_CLAMP * stats.complexity_std  # no extrapolating the line past the images it was fitted on
    dc = np.clip(np.log(np.asarray(complexity, np.float64)) - stats.complexity_mean, -reach, reach)
    expected = stats.log_mean + stats.complexity_slope * dc
    return (log_e - expected) / stats.residual_std


def effective_method(stats: ErrorStats, method: str, have_complexity: bool = True) -> str:
    """The method a z is really taken under: ``complexity`` needs a fit with that part and the inputs' values."""
    if method == "complexity" and not (stats.has_complexity and have_complexity):
        return "lognormal"
    return method


def complexity_z(complexity: np.ndarray, stats: ErrorStats) -> np.ndarray:
    """How far each input's log complexity is from the class's, in standard deviations (NaN without a fit)."""
    c = np.asarray(complexity, dtype=np.float64)
    if not stats.has_complexity:
        return np.full(c.shape, np.nan)
    return (np.log(c) - stats.complexity_mean) / stats.complexity_std


def check_method(method: str) -> str:
    """A stats method name, checked against :data:`STATS_METHODS`."""
    if method not in STATS_METHODS:
        raise InputError(f"method: expected one of {', '.join(STATS_METHODS)}, got {method!r}")
    return method


def error_cut(stats: ErrorStats, threshold: float, method: str = "gaussian") -> float:
    """The error at which z reaches ``threshold`` under ``method``: the inverse of :func:`zscore`
    (for ``complexity``, at the class's typical complexity)."""
    method = effective_method(stats, check_method(method))
    if method == "complexity":
        return math.exp(stats.log_mean + threshold * stats.residual_std) - stats.log_shift
    if method == "lognormal":
        return math.exp(stats.log_mean + threshold * stats.log_std) - stats.log_shift
    return stats.mean + threshold * stats.std


def check_compare(compare: str) -> str:
    """A comparison mode, checked against :data:`COMPARE_MODES`."""
    if compare not in COMPARE_MODES:
        raise InputError(f"compare: expected one of {', '.join(COMPARE_MODES)}, got {compare!r}")
    return compare


def _optional_cut(value: float | None, name: str) -> float | None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name}: expected a positive number or None, got {value!r}")
    return None if value is None else float(value)


def check_margin(margin: float | None) -> float | None:
    """A margin threshold: a positive number, or None for no margin test."""
    return _optional_cut(margin, "margin")


def check_complexity(threshold: float | None) -> float | None:
    """A complexity threshold: a positive number, or None for no complexity test."""
    return _optional_cut(threshold, "complexity threshold")


def past(values: np.ndarray, cut: float | None) -> np.ndarray:
    """True where ``values`` exceed ``cut``; all False when the test is off (None) or a value is NaN."""
    values = np.asarray(values)
    return values > cut if cut is not None else np.zeros(values.shape, bool)


def anomaly(z: np.ndarray, margin: np.ndarray | None, threshold: float, margin_threshold: float | None,
            complexity_z: np.ndarray | None = None, complexity_threshold: float | None = None) -> np.ndarray:
    """One score per image and class whose flag is ``> 1``: the largest of z / threshold,
    margin / margin_threshold and |input complexity z| / complexity_threshold (the last two when given)."""
    flag(np.zeros(1), threshold)  # validates: a positive number
    s = np.asarray(z, dtype=np.float64) / threshold
    if margin is not None and margin_threshold is not None:
        s = np.fmax(s, np.asarray(margin) / margin_threshold)  # fmax: a NaN margin (one class) leaves z
    if complexity_z is not None and complexity_threshold is not None:
        s = np.fmax(s, np.abs(np.asarray(complexity_z)) / complexity_threshold)  # NaN: a class without the fit
    return s


def gaussian_score(z: np.ndarray) -> np.ndarray:
    """The seeds' normalized Gaussian score pdf(err)/pdf(mean) = exp(-z**2/2).

    1.0 at the class's mean error, falling towards 0 on either side.
    """
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-0.5 * z * z)


def upper_p_value(z: np.ndarray) -> np.ndarray:
    """P(Z >= z) under a standard normal: small when the error is unusually high. NaN stays NaN."""
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * np.asarray(_erfc(z / math.sqrt(2.0)), dtype=np.float64)  # math.erfc: no SciPy import (0.3 s)


_erfc = np.frompyfunc(math.erfc, 1, 1)


def flag(z: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """True where z passes the threshold. An error below the mean never flags."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise InputError(f"threshold: expected a positive number, got {threshold!r}")
    return np.asarray(z) > threshold
