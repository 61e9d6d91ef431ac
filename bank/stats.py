"""Statistics of a class model's normal reconstruction error.

Pure NumPy/SciPy: no TensorFlow here, so the maths is testable on its own.

The unit of an error is the per-pixel mean squared error on the [0, 1] scale.
Every score follows one direction: a higher error or z is more anomalous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

#: Quantiles of the held-out error kept with every class model.
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)

#: Default flag threshold, in standard deviations above the mean error.
DEFAULT_THRESHOLD = 3.0

#: Fewest held-out errors a fit accepts: a standard deviation needs two.
MIN_SAMPLES = 2


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

    def to_dict(self) -> dict:
        """The JSON form stored in a model card."""
        return {"mean": self.mean, "std": self.std, "n": self.n, "quantiles": dict(self.quantiles)}

    @classmethod
    def from_dict(cls, data: dict) -> ErrorStats:
        """Parse the JSON form, checking every field (a card may be hand-edited)."""
        if not isinstance(data, dict):
            raise ValueError(f"stats: expected an object, got {type(data).__name__}")
        missing = [k for k in ("mean", "std", "n") if k not in data]
        if missing:
            raise ValueError(f"stats: missing field(s) {', '.join(missing)}")
        mean, std = _finite(data["mean"], "stats.mean"), _finite(data["std"], "stats.std")
        if std <= 0:
            raise ValueError(f"stats.std: expected a positive number, got {std}")
        n = data["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < MIN_SAMPLES:
            raise ValueError(f"stats.n: expected an integer >= {MIN_SAMPLES}, got {n!r}")
        quantiles = data.get("quantiles", {})
        if not isinstance(quantiles, dict):
            raise ValueError("stats.quantiles: expected an object of quantile -> error")
        quantiles = {str(k): _finite(v, f"stats.quantiles[{k}]") for k, v in quantiles.items()}
        return cls(mean=mean, std=std, n=n, quantiles=quantiles)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def fit_error_stats(errors: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> ErrorStats:
    """Fit :class:`ErrorStats` to a 1-D array of held-out reconstruction errors.

    ``std`` is the sample standard deviation (ddof=1), floored at
    ``1e-6 * mean`` (and 1e-12) so identical errors do not give infinite z.
    """
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size < MIN_SAMPLES:
        raise ValueError(
            f"need at least {MIN_SAMPLES} held-out errors to fit statistics, got {errors.size}"
        )
    if not np.all(np.isfinite(errors)):
        raise ValueError("held-out errors contain NaN or infinity")
    mean = float(errors.mean())
    std = max(float(errors.std(ddof=1)), 1e-6 * abs(mean), 1e-12)
    qs = {f"{q:g}": float(np.quantile(errors, q)) for q in quantiles}
    return ErrorStats(mean=mean, std=std, n=int(errors.size), quantiles=qs)


def zscore(errors: np.ndarray, stats: ErrorStats) -> np.ndarray:
    """z = (error - mean) / std, element-wise."""
    return (np.asarray(errors, dtype=np.float64) - stats.mean) / stats.std


def gaussian_score(z: np.ndarray) -> np.ndarray:
    """The seeds' normalized Gaussian score pdf(err)/pdf(mean) = exp(-z**2/2).

    1.0 at the class's mean error, falling towards 0 on either side.
    """
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-0.5 * z * z)


def upper_p_value(z: np.ndarray) -> np.ndarray:
    """P(Z >= z) under a standard normal: small when the error is unusually high."""
    return ndtr(-np.asarray(z, dtype=np.float64))


def flag(z: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """True where z passes the threshold. An error below the mean never flags."""
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: expected a finite number >= 0, got {threshold!r}")
    return np.asarray(z) > threshold
