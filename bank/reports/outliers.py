"""A class's own images ranked by its model's error: the ones past a quantile, as data.

An image of a class whose error passes a high quantile of the class's held-out
errors is worth a look: mislabelled, damaged, or a kind of image the model
never learnt. :func:`find_outliers` measures the images with a fitted
detector and returns those past the cut, worst first; ``bank outliers``
prints them and draws the montage. The cut and the counts come from
:mod:`bank.reports.evaluate` (:func:`~bank.reports.evaluate.outlier_cut`,
:func:`~bank.reports.evaluate.rank_outliers`, :func:`~bank.reports.evaluate.past_each_quantile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..verdict import stats as st
from ..verdict.conformal import benjamini_hochberg, check_fdr, conformal_p_value, fewest_findable
from ..verdict.decision import skipped_json
from ..errors import InputError
from .evaluate import outlier_cut, past_each_quantile, rank_outliers


@dataclass(frozen=True)
class Outliers:
    """The images of a class past the ``quantile`` of its held-out errors (see :func:`find_outliers`)."""

    class_name: str
    quantile: float
    cut: float  #: the error past which an image is listed: the class's stored ``quantile``
    warning: str | None  #: when too few held-out errors back that quantile
    n_images: int  #: images measured
    rows: list[dict]  #: worst first: rank, image, error, times_cut, z, test_z, method
    order: np.ndarray  #: each row's index in the images measured
    past_each_quantile: dict[str, int]  #: how many images are past each quantile the class keeps
    method: str  #: the rule of ``test_z`` (the complexity-corrected z, or lognormal without its statistics)
    fdr: float | None = None  #: when set: the rows are those Benjamini-Hochberg picks at this false discovery rate
    n_calibration: int = 0  #: held-out errors behind the conformal p-values (0: the card keeps none)

    @property
    def label(self) -> str:
        """How people call ``test_z``: "complexity-corrected z" and the like."""
        return st.METHOD_LABELS[self.method]

    def to_json(self, montage: str | None = None, skipped: Sequence[tuple[str, str]] = ()) -> dict:
        """What ``bank outliers --json`` prints (``montage``: its file; ``skipped``: the (file, reason) pairs
        of the images that could not be read)."""
        least = fewest_findable(self.n_calibration, self.n_images, self.fdr) if self.fdr and self.n_images else None
        return {"class": self.class_name, "quantile": None if self.fdr else self.quantile, "fdr": self.fdr,
                "fewest_findable": least, "cut": self.cut if np.isfinite(self.cut) else None,
                "n_images": self.n_images, "n_calibration": self.n_calibration,
                "n_outliers": len(self.rows), "outliers": self.rows, "montage": montage,
                "past_each_quantile": self.past_each_quantile, "skipped": skipped_json(skipped), "warning": self.warning}


def find_outliers(detector, images: np.ndarray | Sequence[np.ndarray], names: Sequence[str], quantile: float,
                  class_name: str, fdr: float | None = None) -> Outliers:
    """The images past the ``quantile`` of the held-out errors of ``detector``, a fitted class model,
    ranked by error, worst first. ``names``: one per image. Raises :class:`~bank.errors.InputError`
    for a quantile the class does not keep.

    With ``fdr``: instead, the images Benjamini-Hochberg picks from their conformal p-values
    (:mod:`bank.verdict.conformal`) with the false discovery rate held at ``fdr``, smallest p-value first;
    ``cut`` is then the lowest error picked (inf when none is). Raises InputError for a class whose
    card keeps no held-out errors (registered before them)."""
    stats = detector.stats_
    if fdr is not None:
        check_fdr(fdr)
        if not stats.calibration:
            raise InputError(f"class {class_name!r} keeps no held-out errors (registered before conformal p-values): "
                             "--fdr needs them; retrain the class, or use --quantile")
        cut, warning = np.inf, None
    else:
        cut, warning = outlier_cut(stats, quantile)
    errors, cx = detector.measure(images)
    conformal = conformal_p_value(errors, stats.calibration) if stats.calibration else None
    if fdr is not None:
        picked = np.nonzero(benjamini_hochberg(conformal, fdr))[0]
        order = picked[np.lexsort((-errors[picked], conformal[picked]))]
        cut = float(errors[picked].min()) if len(picked) else float("inf")
    else:
        order = rank_outliers(errors, cut)
    z = st.zscore(errors, stats)
    method = st.effective_method(stats, "complexity")
    test_z = st.zscore(errors, stats, method, cx)
    rows = [{"rank": r + 1, "image": names[i], "error": float(errors[i]),
             "times_cut": float(errors[i] / cut) if np.isfinite(cut) and cut > 0 else None,
             "z": float(z[i]), "test_z": float(test_z[i]), "method": method,
             "conformal_p_value": None if conformal is None else float(conformal[i])} for r, i in enumerate(order)]
    return Outliers(class_name=class_name, quantile=quantile, cut=cut, warning=warning, n_images=len(errors),
                    rows=rows, order=order, past_each_quantile=past_each_quantile(errors, stats), method=method,
                    fdr=fdr, n_calibration=len(stats.calibration or ()))


def describe_fdr(found: Outliers, top: int, montage: bool) -> tuple[list[str], list[str]]:
    """What ``bank outliers --fdr Q`` says above its list and below it: what was picked and what it means,
    and, when nothing could be, why."""
    q, n, m, k = found.fdr, found.n_calibration, found.n_images, len(found.rows)
    before = [f"{k} of {m} images {'is' if k == 1 else 'are'} picked as outliers of class {found.class_name!r} with "
              f"the false discovery rate held at {q:g}: of the images picked, at most {q:.0%} are expected to be "
              f"normal images of the class (Benjamini-Hochberg on conformal p-values from its {n} held-out images)"]
    if k:
        before.append("each is listed by its conformal p-value: the share of the class's held-out images whose "
                      "error is at least as high (smallest first)")
    after = []
    least = fewest_findable(n, m, q)
    if not k and least > 1:
        after.append(f"with {n} held-out images the smallest p-value is 1/{n + 1}: among {m} images, --fdr {q:g} "
                     f"can only pick a group of at least {least} clear outliers; raise --fdr, or give the class "
                     "more held-out images (retrain it on more images)")
    elif not k:
        after.append("no image is unusual enough for the class at this rate")
    if montage and k > top:
        after.append(f"the montage shows the first {top} of the {k} (--top)")
    return before, after
