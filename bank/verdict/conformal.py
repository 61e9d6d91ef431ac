"""Distribution-free p-values and false-discovery control: nothing assumed about the shape of the errors.

A class keeps the raw scores of its held-out images (``ErrorStats.calibration``), images of the class
its model never trained on. An image's **conformal p-value** for the class is the share of those
scores at least as high as its own, counting the image itself::

    p = (1 + #{held-out scores >= score}) / (n + 1)

For an image of the class (exchangeable with the held-out ones) ``P(p <= a) <= a`` for every ``a``,
whatever the distribution of the scores: no Gaussian or lognormal fit stands between the score and
the p-value (Vovk et al., 2005; Bates et al., "Testing for outliers with conformal p-values", 2023).
The smallest p-value a class can give is ``1 / (n + 1)``.

:func:`benjamini_hochberg` picks, among many images, the ones to call outliers so that the expected
share of normal images among those picked (the false discovery rate) stays at most ``q``
(Benjamini and Hochberg, 1995; valid for conformal p-values, which are positively dependent through
the shared held-out scores: Bates et al.). Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError


def conformal_p_value(scores: np.ndarray, calibration: Sequence[float], assume_sorted: bool = False) -> np.ndarray:
    """Per score, ``(1 + #{calibration >= score}) / (n + 1)``: in ``[1/(n+1), 1]``, small when the score is
    higher than the class's held-out scores. NaN scores give NaN. ``assume_sorted``: ``calibration`` is a
    sorted float64 array already (``ErrorStats.calibration_array``), searched as it is."""
    cal = np.asarray(calibration, dtype=np.float64).ravel()
    if not assume_sorted:
        cal = np.sort(cal)
    if cal.size == 0:
        raise InputError("conformal p-value: the class keeps no held-out scores")
    s = np.asarray(scores, dtype=np.float64)
    at_least = cal.size - np.searchsorted(cal, s, side="left")
    p = (1.0 + at_least) / (cal.size + 1.0)
    return np.where(np.isnan(s), np.nan, p)


def check_fdr(q: float) -> float:
    """A false discovery rate: a number strictly between 0 and 1."""
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
        raise InputError(f"fdr: expected a number strictly between 0 and 1, such as 0.1, got {q!r}")
    return float(q)


def benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    """True for the p-values Benjamini-Hochberg rejects at false discovery rate ``q``: the ``k`` smallest,
    where ``k`` is the largest rank with ``p_(k) <= q k / m`` (``m`` p-values; NaN never rejected)."""
    q = check_fdr(q)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    out = np.zeros(m, dtype=bool)
    if m == 0:
        return out
    filled = np.where(np.isnan(p), np.inf, p)
    order = np.argsort(filled, kind="stable")
    below = np.nonzero(filled[order] <= q * np.arange(1, m + 1) / m)[0]
    if below.size:
        out[order[: below[-1] + 1]] = True
    return out


def fewest_findable(n_calibration: int, n_images: int, q: float) -> int:
    """The fewest outliers BH at ``q`` can find among ``n_images`` with p-values from ``n_calibration``
    held-out scores: the smallest p-value, ``1/(n+1)``, must be at most ``q k / m``."""
    return int(np.ceil(n_images / (q * (n_calibration + 1)) - 1e-9))
