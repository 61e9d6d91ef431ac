"""How good is a bank on labelled images: the figures, as pure functions.

No TensorFlow here: the inputs are a :class:`~bank.verdict.decision.BankResult` (or
its arrays) and each image's true class, so the maths is testable alone and
serves any bank (autoencoders, the PCA baseline in ``benchmarks/``).

Per class, with "own" the images of that class and "others" the rest:

- ``auroc``: one-vs-rest area under the ROC curve of the class's anomaly
  score, the one its flag thresholds (z, complexity and, in a bank, the margin);
- ``auroc_error``: the same for the class's raw error alone (its one-class
  quality, without the rest of the bank);
- ``auroc_known``: ``auroc`` with "others" the images of the bank's other
  classes only, foreign images left out (a cat class against dogs alone);
  equal to ``auroc`` when no foreign images are given;
- ``false_reject``: share of own images the class flags;
- ``false_accept``: share of other images the class does not flag;
- ``welch_t``: Welch's t between others' and own errors (positive when
  others err more).

Bank-level ``auroc_mean``, ``auroc_error_mean``, ``false_reject`` and
``false_accept`` are the means over classes (each class counts once,
whatever its size). Two unknown rates, never one for both: ``unknown_rate``
over the images of the bank's classes (should be low) and
``foreign_unknown_rate`` over the foreign images, of classes outside the
bank (should be high).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..verdict.decision import UNKNOWN, BankResult


def per_class_figures(errors: np.ndarray, flags: np.ndarray, own: np.ndarray, anomaly: np.ndarray | None = None) -> dict:
    """Figures of one class: its errors, flags and anomaly scores over all images; ``own`` marks its images."""
    from scipy import stats as sps  # here, not at the top: answering imports this module's display strings,
    from sklearn.metrics import roc_auc_score  # and SciPy and scikit-learn cost it 0.7 s (bank classify)

    e_own, e_other = errors[own], errors[~own]
    out = {"n_own": int(own.sum()), "n_other": int((~own).sum()),
           "error_mean_own": _mean(e_own), "error_mean_other": _mean(e_other)}
    both = len(e_own) > 0 and len(e_other) > 0
    out["auroc"] = float(roc_auc_score(~own, errors if anomaly is None else anomaly)) if both else None
    out["auroc_error"] = float(roc_auc_score(~own, errors)) if both else None
    out["false_reject"] = float(flags[own].mean()) if len(e_own) else None
    out["false_accept"] = float((~flags[~own]).mean()) if len(e_other) else None
    if len(e_own) > 1 and len(e_other) > 1:
        t = sps.ttest_ind(e_other, e_own, equal_var=False).statistic
        out["welch_t"] = float(t) if np.isfinite(t) else None
    else:
        out["welch_t"] = None
    return out


def evaluate(result: BankResult, truth: Sequence[str]) -> dict:
    """Every figure of a bank on images whose true classes are ``truth``.

    Images whose true class is not in the bank count as foreign: they enter
    the other-class figures and ``foreign_unknown_rate`` (the share called
    unknown, which should be high), not the accuracy.
    """
    truth = np.asarray([str(t) for t in truth])
    if len(truth) != len(result.names):
        raise InputError(f"truth: expected {len(result.names)} labels, got {len(truth)}")
    classes = list(result.classes)
    known = np.isin(truth, classes)
    if not known.any():
        raise InputError(f"no image belongs to a class of the bank ({', '.join(classes)}); "
                         f"the data's classes are {', '.join(sorted(set(truth)))}")
    nearest = np.asarray(result.nearest)
    labels = np.asarray(result.labels)
    anomaly = result.anomaly
    per_class = {c: per_class_figures(result.errors[:, k], result.flags[:, k], truth == c, anomaly[:, k])
                 for k, c in enumerate(classes)}
    for k, c in enumerate(classes):  # the same against the bank's other classes alone, foreign images left out
        f = per_class_figures(result.errors[known, k], result.flags[known, k], truth[known] == c, anomaly[known, k])
        per_class[c]["auroc_known"] = f["auroc"]
    cols = classes + [UNKNOWN]
    index = {c: i for i, c in enumerate(cols)}
    confusion = np.zeros((len(classes), len(cols)), dtype=int)
    for t, lab in zip(truth[known], labels[known]):
        confusion[index[t], index[lab]] += 1

    def mean_of(key: str) -> float | None:
        vals = [f[key] for f in per_class.values() if f[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "n_images": int(len(truth)),
        "n_known": int(known.sum()),
        "n_foreign": int((~known).sum()),
        "foreign_classes": sorted(set(truth[~known].tolist())),
        "classes": classes,
        "method": result.method,
        "threshold": result.threshold,
        "margin": result.margin_threshold,
        "complexity_threshold": result.complexity_threshold,
        "compare": result.compare,
        "accuracy": float(np.mean(nearest[known] == truth[known])),
        "accuracy_with_unknown": float(np.mean(labels[known] == truth[known])),
        "unknown_rate": float(np.mean(result.unknown[known])),
        "n_unknown": int(result.unknown[known].sum()),
        "foreign_unknown_rate": float(np.mean(result.unknown[~known])) if (~known).any() else None,
        "n_foreign_unknown": int(result.unknown[~known].sum()),
        "auroc_mean": mean_of("auroc"),
        "auroc_error_mean": mean_of("auroc_error"),
        "auroc_known_mean": mean_of("auroc_known"),
        "false_reject": mean_of("false_reject"),
        "false_accept": mean_of("false_accept"),
        "welch_t_mean": mean_of("welch_t"),
        "confusion": {"rows": classes, "columns": cols, "counts": confusion.tolist()},
        "per_class": per_class,
    }


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def outlier_cut(stats, quantile: float) -> tuple[float, str | None]:
    """The error past which an image is an outlier of its class: the stored ``quantile`` of its
    held-out errors. Returns the cut and a warning when too few errors back that quantile."""
    key = f"{quantile:g}"
    if key not in stats.quantiles:
        raise InputError(f"quantile: the class keeps the held-out quantiles {', '.join(stats.quantiles)}; "
                         f"got {quantile:g}")
    warning = None
    if stats.n * (1.0 - quantile) < 1.0 - 1e-9:  # 10 errors and q 0.9 are enough (0.1 * 10 is 0.99...)
        warning = (f"the {key} quantile rests on {stats.n} held-out errors (fewer than 1/(1-q) = "
                   f"{1 / (1 - quantile):.0f}): it is about their maximum, which about 1/(n+1) = "
                   f"{1 / (stats.n + 1):.1%} of normal images pass, not {1 - quantile:.1%}: expect more listed "
                   "than outliers there are (--fdr controls the share of normal images listed)")
    return float(stats.quantiles[key]), warning


def rank_outliers(errors: np.ndarray, cut: float) -> np.ndarray:
    """Indices of the images whose error passes ``cut``, worst first."""
    idx = np.flatnonzero(errors > cut)
    return idx[np.argsort(-errors[idx], kind="stable")]


def past_each_quantile(errors: np.ndarray, stats) -> dict[str, int]:
    """How many of ``errors`` are past each quantile of the class's held-out errors it keeps."""
    return {q: int(np.sum(errors > v)) for q, v in stats.quantiles.items()}
