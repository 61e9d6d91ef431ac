"""A class's own images ranked by its model's error: the ones past a quantile, as data.

An image of a class whose error passes a high quantile of the class's held-out
errors is worth a look: mislabelled, damaged, or a kind of image the model
never learnt. :func:`find_outliers` measures the images with a fitted
detector and returns those past the cut, worst first; ``bank outliers``
prints them and draws the montage. The cut and the counts come from
:mod:`bank.evaluate` (:func:`~bank.evaluate.outlier_cut`,
:func:`~bank.evaluate.rank_outliers`, :func:`~bank.evaluate.past_each_quantile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import stats as st
from .decision import skipped_json
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

    @property
    def label(self) -> str:
        """How people call ``test_z``: "complexity-corrected z" and the like."""
        return st.METHOD_LABELS[self.method]

    def to_json(self, montage: str | None = None, skipped: Sequence[tuple[str, str]] = ()) -> dict:
        """What ``bank outliers --json`` prints (``montage``: its file; ``skipped``: the (file, reason) pairs
        of the images that could not be read)."""
        return {"class": self.class_name, "quantile": self.quantile, "cut": self.cut, "n_images": self.n_images,
                "n_outliers": len(self.rows), "outliers": self.rows, "montage": montage,
                "past_each_quantile": self.past_each_quantile, "skipped": skipped_json(skipped), "warning": self.warning}


def find_outliers(detector, images: np.ndarray | Sequence[np.ndarray], names: Sequence[str], quantile: float,
                  class_name: str) -> Outliers:
    """The images past the ``quantile`` of the held-out errors of ``detector``, a fitted class model,
    ranked by error, worst first. ``names``: one per image. Raises :class:`~bank.errors.InputError`
    for a quantile the class does not keep."""
    stats = detector.stats_
    cut, warning = outlier_cut(stats, quantile)
    errors, cx = detector.measure(images)
    order = rank_outliers(errors, cut)
    z = st.zscore(errors, stats)
    method = st.effective_method(stats, "complexity")
    test_z = st.zscore(errors, stats, method, cx)
    rows = [{"rank": r + 1, "image": names[i], "error": float(errors[i]), "times_cut": float(errors[i] / cut),
             "z": float(z[i]), "test_z": float(test_z[i]), "method": method} for r, i in enumerate(order)]
    return Outliers(class_name=class_name, quantile=quantile, cut=cut, warning=warning, n_images=len(errors),
                    rows=rows, order=order, past_each_quantile=past_each_quantile(errors, stats), method=method)
