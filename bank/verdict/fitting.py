"""Fitting a class's error statistics on its held-out scores: the fit the verdict reads (:mod:`bank.verdict.stats`).

A class model's held-out images (never trained on) give its normal scores; :func:`fit_error_stats` keeps their
mean, spread, quantiles, the log fit (shifted where a kind's scores crowd at 0: :func:`fit_log_shift`), the
line of the log score on the input's complexity, and the scores themselves for conformal p-values;
:func:`degenerate` says when they are all but equal (a fit that would flag at random).
"""

from __future__ import annotations


import numpy as np

from ..errors import InputError
from .stats import LOG_FLOOR, MIN_COMPLEXITY_SAMPLES, MIN_SAMPLES, QUANTILES, ErrorStats


def fit_error_stats(errors: np.ndarray, complexity: np.ndarray | None = None,
                    quantiles: tuple[float, ...] = QUANTILES, shifted_log: bool = False,
                    tail_spread: float | None = None) -> ErrorStats:
    """Fit :class:`ErrorStats` to a 1-D array of held-out reconstruction errors.

    ``std`` is the sample standard deviation (ddof=1), floored at
    ``1e-6 * mean`` (and 1e-12) so identical errors do not give infinite z.
    The errors themselves are kept, sorted (``calibration``), for the
    conformal p-values of :mod:`bank.verdict.conformal`. ``shifted_log``: the log
    fits take ``log(error + c)``, ``c`` from :func:`fit_log_shift`. ``complexity`` (the same
    images' :func:`bank.io.images.complexity`) adds
    the complexity part: the least-squares line of log error on log
    complexity and the spread of both around it (the line from
    ``MIN_COMPLEXITY_SAMPLES`` images on; fewer cannot pin a line down).
    ``tail_spread`` (a quantile q, such as 0.975): the log fits are centred on the
    held-out median and their spreads are at least what the held-out q quantile
    says (``(quantile_q - median) / z_q``; the input complexity's from its two
    tails): for a kind whose log scores lean right, which a mean and standard
    deviation would flag too often at z > 3 (:func:`tail_fit`).
    """
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size < MIN_SAMPLES:
        raise InputError(
            f"need at least {MIN_SAMPLES} held-out errors to fit statistics, got {errors.size}"
        )
    if not np.all(np.isfinite(errors)):
        raise InputError("held-out errors contain NaN or infinity")
    if np.any(errors < 0):
        raise InputError("held-out errors must not be negative")
    mean = float(errors.mean())
    std = max(float(errors.std(ddof=1)), 1e-6 * abs(mean), 1e-12)
    shift = fit_log_shift(errors) if shifted_log else 0.0
    logs = np.log(np.maximum(errors + shift, LOG_FLOOR))
    log_std = max(float(logs.std(ddof=1)), 1e-6)
    log_mean = float(logs.mean())
    qs = {f"{q:g}": float(np.quantile(errors, q)) for q in quantiles}
    extra = {} if complexity is None else _fit_complexity(logs, complexity, log_std)
    if tail_spread is not None:
        log_mean, log_std, extra = tail_fit(logs, complexity, log_std, extra, tail_spread)
    return ErrorStats(mean=mean, std=std, n=int(errors.size), quantiles=qs, log_mean=log_mean,
                      log_std=log_std, calibration=tuple(float(v) for v in np.sort(errors)), log_shift=shift, **extra)


def tail_fit(logs: np.ndarray, complexity: np.ndarray | None, log_std: float, fit: dict,
             q: float) -> tuple[float, float, dict]:
    """The log fit's centre and spread, and the complexity part's, taken from the held-out tails: the
    centre at the median (of the residuals around the complexity line, with one), each spread at least
    ``(quantile_q - median) / z_q`` (the complexity's ``(quantile_q - quantile_1-q) / 2 z_q``). Spreads only
    widen: a class's own images are flagged about as often as a normal fit promises (MNIST, ae-hog at
    q = 0.975: 1.29% of the test digits flagged by their own class's z > 3, 0.62% with this), and foreign
    images far past the tail still are (docs/kinds.md)."""
    if not 0.5 < q < 1:
        raise InputError(f"tail_spread: expected a quantile in (0.5, 1), got {q!r}")
    z_q = float(_norm_ppf(q))
    centre = float(np.median(logs))
    if not fit:
        return centre, max(log_std, (float(np.quantile(logs, q)) - centre) / z_q), fit
    lc = np.log(np.asarray(complexity, dtype=np.float64).ravel())
    residual = logs - logs.mean() - fit["complexity_slope"] * (lc - fit["complexity_mean"])
    mid = float(np.median(residual))
    lc_mid = float(np.median(lc))
    tails = {"residual_std": max(fit["residual_std"], (float(np.quantile(residual, q)) - mid) / z_q),
             "complexity_mean": lc_mid,
             "complexity_std": max(fit["complexity_std"],
                                   float(np.quantile(lc, q) - np.quantile(lc, 1 - q)) / (2 * z_q))}
    # the same line, written through the complexity's median and moved so that the residuals' median is 0
    centre = float(logs.mean()) + mid + fit["complexity_slope"] * (lc_mid - float(lc.mean()))
    return centre, max(log_std, (float(np.quantile(logs, q)) - centre) / z_q), {**fit, **tails}


def _norm_ppf(q: float) -> float:
    """The standard normal's q quantile (SciPy's, imported when a tail fit is made)."""
    from scipy.stats import norm

    return float(norm.ppf(q))


#: Shifts tried by :func:`fit_log_shift`, as shares of the held-out scores' median.
SHIFT_GRID = tuple(float(v) for v in np.logspace(-3, 2, 31))
#: The upper quantiles of the held-out scores that the shifted fit is made to meet.
SHIFT_QUANTILES = (0.75, 0.9, 0.95)
_Z = {0.75: 0.6744897501960817, 0.9: 1.2815515655446004, 0.95: 1.6448536269514722}
#: The plain log is kept while its fit misses those quantiles by at most this (sum of squared log ratios):
#: lognormal scores miss by more in 1 of 100 draws of 30 held-out images (0.12), geotrans's surprise by 0.7-1.9.
SHIFT_SLACK = 0.15


def fit_log_shift(errors: np.ndarray) -> float:
    """The ``c >= 0`` (0, or a share in :data:`SHIFT_GRID` of the held-out scores' median) for which the
    normal fit of ``log(error + c)`` puts the scores' upper quantiles (:data:`SHIFT_QUANTILES`) where the
    held-out scores have them: the flag is a point far up that tail, so the tail is what the fit must
    follow. Scores whose log is normal keep 0 (:data:`SHIFT_SLACK`); scores crowding at 0 get the shift
    that stops the crowd from stretching the fitted spread."""
    e = np.asarray(errors, dtype=np.float64)
    med = float(np.median(e))
    if e.size < MIN_COMPLEXITY_SAMPLES or med <= 0:
        return 0.0
    want = np.log(np.quantile(e, SHIFT_QUANTILES))
    z = np.array([_Z[q] for q in SHIFT_QUANTILES])

    def miss(c: float) -> float:  # how far the fit's upper quantiles are from the scores', in log
        y = np.log(np.maximum(e + c, LOG_FLOOR))
        got = np.exp(y.mean() + z * y.std(ddof=1)) - c
        return float(np.sum((np.log(np.maximum(got, LOG_FLOOR)) - want) ** 2))

    if miss(0.0) <= SHIFT_SLACK:
        return 0.0
    return min((0.0, *(share * med for share in SHIFT_GRID)), key=miss)


#: Held-out scores are "all but equal" when this share of them tie, or their spread is below this share of
#: their mean, or all lie below :data:`DEGENERATE_SCALE`: see :func:`degenerate`.
DEGENERATE_TIES = 0.5
DEGENERATE_SPREAD = 1e-3
DEGENERATE_SCALE = 1e-9


def degenerate(stats: ErrorStats) -> str | None:
    """Why a class's held-out scores say too little to judge other images by (a warning), or None.

    A class whose held-out scores are all but equal (many exactly tied, such as perfect reconstructions
    of drawings at 0; or a spread that is a rounding error) has a floored standard deviation and a
    meaningless tail: any image scored a little worse is "improbable", and its low raw scores make it
    look the best fit for images it does not know.
    """
    cal = stats.calibration_array
    if cal is None or cal.size < MIN_SAMPLES:
        return None
    values, counts = np.unique(cal, return_counts=True)
    ties = int(counts.max())
    why = None
    if ties >= DEGENERATE_TIES * cal.size and ties > 1:
        why = f"{ties} of its {cal.size} held-out scores are exactly {values[np.argmax(counts)]:.3g}"
    elif float(cal.max()) < DEGENERATE_SCALE:
        why = f"every held-out score is below {DEGENERATE_SCALE:g} (largest {float(cal.max()):.3g})"
    elif float(np.std(cal)) < DEGENERATE_SPREAD * abs(float(np.mean(cal))):
        why = f"its held-out scores spread by {float(np.std(cal)):.3g} around {float(np.mean(cal)):.3g}"
    if why is None:
        return None
    return (f"the class's held-out scores are all but equal ({why}): its images are alike or trivially easy "
            "for its model, so its z-scores and flags say little and its low scores may win images of other "
            "classes; give it more varied images, or another --kind")


def _fit_complexity(log_errors: np.ndarray, complexity: np.ndarray, log_std: float) -> dict:
    c = np.asarray(complexity, dtype=np.float64).ravel()
    if c.shape != log_errors.shape or not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise InputError(f"complexity: expected {log_errors.size} positive finite values, one per held-out error")
    lc = np.log(c)
    dc, de = lc - lc.mean(), log_errors - log_errors.mean()
    var = float(np.mean(dc * dc))
    if var > 1e-6 and lc.size >= MIN_COMPLEXITY_SAMPLES:
        slope = float(np.mean(dc * de) / var)
        residual = de - slope * dc
        # ddof=2: the line took two degrees of freedom. Floored so a near-perfect line cannot make z explode.
        residual_std = max(float(np.sqrt(np.sum(residual**2) / (residual.size - 2))), 0.1 * log_std, 1e-6)
    else:  # too few images, or all alike: no line, the plain lognormal z
        slope, residual_std = 0.0, log_std
    return {"complexity_mean": float(lc.mean()), "complexity_std": max(float(lc.std(ddof=1)), 0.05),
            "complexity_slope": slope, "residual_std": residual_std}
