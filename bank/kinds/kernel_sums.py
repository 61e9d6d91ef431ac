"""A bank's HOG one-class SVMs scored together: one HOG of a batch per setting, every kernel sum in one product.

The classes of a bank that share their HOG settings (:attr:`~bank.kinds.hog_ocsvm.HOGOneClassSVM.hog_key`)
see the same HOG vectors of an image; their support vectors, stacked, meet a batch's vectors in one float32
matrix product, and each class's log-sum-exp runs over its own columns. The ``hog-ocsvm`` and ``ae-hog``
kinds' ``group_scorer`` use it (docs/benchmarks.md, "ae-hog made fast").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError

#: A fitted :class:`bank.kinds.hog_ocsvm.HOGOneClassSVM` (not imported: that module imports this one).
HOGOneClassSVM = Any

#: Kernel values computed at once while scoring (rows x support vectors), about 16 MB of float32.
CHUNK_VALUES = 1 << 22


class KernelSums:
    """The scores of many :class:`HOGOneClassSVM` of one HOG setting from one matrix product.

    Every class's support vectors are stacked into one float32 matrix, centred on their mean (the
    squared distances ``|f|^2 + |sv|^2 - 2 f.sv`` then subtract numbers of the distances' own size, so
    float32 keeps them to about 1e-6 of the score); a batch's HOG vectors meet all of them in one
    product, and each class's log-sum-exp runs over its own columns (``np.maximum.reduceat`` /
    ``np.add.reduceat``). Equal to each detector's :meth:`~HOGOneClassSVM.score_features` to about
    1e-5 (float64 there). Rows go a chunk at a time, at most :data:`CHUNK_VALUES` kernel values.
    """

    def __init__(self, detectors: Sequence[HOGOneClassSVM]):
        keys = {d.hog_key for d in detectors}
        if len(keys) != 1:
            raise InputError(f"hog-ocsvm: fused kernel sums need one HOG setting, got {len(keys)}")
        sv = np.concatenate([d.support_vectors_ for d in detectors])
        self.center_ = sv.mean(axis=0)
        sv = sv - self.center_
        self.sv_ = np.ascontiguousarray(sv, dtype=np.float32)
        sizes = [len(d.support_vectors_) for d in detectors]
        self.starts_ = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self.sizes_ = np.asarray(sizes)
        col = np.repeat(np.arange(len(detectors)), sizes)
        gammas = np.array([d.gamma_ for d in detectors])
        self.sv_sq_ = np.einsum("ij,ij->i", sv, sv).astype(np.float32)
        self.neg_gamma_ = (-gammas[col]).astype(np.float32)
        self.log_coef_ = np.concatenate([d._log_coef for d in detectors]).astype(np.float32)
        self.log_weight_ = np.array([d._log_weight for d in detectors])

    def __call__(self, f: np.ndarray) -> np.ndarray:
        """Scores (N, K) float64 of HOG vectors ``f`` (N, F), a column per detector, as
        :meth:`HOGOneClassSVM.score_features`."""
        out = np.empty((len(f), len(self.starts_)), dtype=np.float64)
        step = max(1, CHUNK_VALUES // max(1, len(self.sv_)))
        for start in range(0, len(f), step):
            part = np.asarray(f[start:start + step], dtype=np.float64) - self.center_
            part_sq = np.einsum("ij,ij->i", part, part).astype(np.float32)
            t = part.astype(np.float32) @ self.sv_.T
            t *= -2.0
            t += part_sq[:, None]
            t += self.sv_sq_
            np.maximum(t, 0.0, out=t)
            t *= self.neg_gamma_
            t += self.log_coef_
            top = np.maximum.reduceat(t, self.starts_, axis=1)
            t -= np.repeat(top, self.sizes_, axis=1)
            np.exp(t, out=t)
            lse = top.astype(np.float64) + np.log(np.add.reduceat(t, self.starts_, axis=1, dtype=np.float64))
            out[start:start + step] = np.maximum(self.log_weight_ - lse, 0.0)
        return out


def fused_scorer(detectors: Sequence[HOGOneClassSVM]):
    """A function of images (at the detectors' shape) giving every detector's score (N, K): the HOG of the
    batch once per HOG setting, then each setting's classes in one :class:`KernelSums`."""
    by_key: dict[tuple, list[int]] = {}
    for k, d in enumerate(detectors):
        by_key.setdefault(d.hog_key, []).append(k)
    parts = [(idx, detectors[idx[0]], KernelSums([detectors[k] for k in idx])) for idx in by_key.values()]

    def score(x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(detectors)), dtype=np.float64)
        for idx, first, sums in parts:
            out[:, idx] = sums(first.features(x))
        return out

    return score
