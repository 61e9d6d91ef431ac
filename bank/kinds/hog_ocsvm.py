"""A class model by shape: a one-class SVM on histograms of oriented gradients (HOG).

Fit: HOG vectors of the class's images (:mod:`bank.kinds.hog`, equal to
scikit-image's), then ``sklearn.svm.OneClassSVM(kernel="rbf", nu, gamma)``.
Kept: the support vectors ``sv_i``, their weights ``a_i`` (scikit-learn's
``dual_coef_``, all >= 0, summing to ``nu * n``), ``intercept_`` (``-rho``),
the resolved ``gamma_``, the HOG settings and the input shape.

Scoring is NumPy only. The signed decision, positive for an inlier, is
scikit-learn's ``decision_function``::

    decision(f) = sum_i a_i exp(-gamma ||sv_i - f||^2) + intercept_

(``score_samples`` there is the sum alone, ``offset_ = -intercept_``).
The anomaly score maps it, decreasing, onto [0, inf)::

    score(f) = -log( sum_i a_i K(sv_i, f) / sum_i a_i ),   K(sv, f) = exp(-gamma ||sv - f||^2)

the negative log of the kernel sum as a share of the most it can be (each
kernel value is at most 1), computed as a log-sum-exp so that it never
underflows. It is 0 only on an image whose HOG equals every support
vector's; far from the class it grows like ``gamma`` times the squared
distance to the nearest support vectors, a soft minimum. So it keeps the
whole ranking of the decision (unlike ``max(0, -decision)``, which ties
every inlier at 0), is in the same units whatever the number of images the
class was trained on, and behaves like a squared error: its log is close to
normal on held-out images of the class, which the shared statistics (z,
p-values, flags) assume. (An earlier score, ``1 - sum a_i K_i / sum a_i``
in [0, 1], sat near 1 for most images, which broke those statistics: 82%
false accept on MNIST.) The SVM's own boundary (decision 0) sits at score
``threshold_ = -log(-intercept_ / sum_i a_i)``.

``pixels_per_cell="auto"`` gives about seven cells a side whatever the
input size, ``(max(1, H // 7), max(1, W // 7))``: with 3x3-cell blocks the
HOG has 2,025 values whatever the size (2,916 on 8x8 digits). ``signed=True``
takes the HOG over 360 degrees of gradient direction (:func:`bank.kinds.hog.hog`),
where scikit-image's is unsigned (the default). How the defaults were chosen,
and what the signed HOG changes: docs/kinds.md, "The hog-ocsvm score".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ._arrays import check_batch, get_array, get_param, get_shape
from . import params as P
from .base import ClassModel, NotFittedError
from .hog import BLOCK_NORMS, _pair, hog, hog_grid, hog_length
from .kernel_sums import fused_scorer

#: Kernel values computed at once while scoring (rows x support vectors), about 32 MB of float64.
CHUNK_VALUES = 1 << 22


def heaviest(weights: np.ndarray, share: float) -> np.ndarray:
    """Indices (in order) of the fewest heaviest ``weights`` (>= 0) that carry ``share`` of their sum."""
    order = np.argsort(-weights, kind="stable")
    carried = np.cumsum(weights[order])
    n = int(np.searchsorted(carried, share * carried[-1] * (1 - 1e-12))) + 1
    return np.sort(order[:min(n, len(order))])


def auto_cells(height: int, width: int) -> tuple[int, int]:
    """The pixels per cell "auto" gives: about seven cells a side."""
    return max(1, height // 7), max(1, width // 7)


class HOGOneClassSVM:
    """One class's HOG vectors in a one-class RBF SVM; ``score_samples`` >= 0, higher = less like the class.

    ``gamma``: "scale" (``1 / (F * var)`` of the HOG vectors, as scikit-learn), "auto" (``1 / F``),
    each times ``gamma_factor``, or a number used as it is. ``max_samples``: fit on at most this
    many images, drawn with ``seed`` (libsvm's fit grows about with the square of the number of
    images, scoring with the number of support vectors); None: all.
    """

    kind = "hog-ocsvm"

    def __init__(self, *, orientations: int = 9, pixels_per_cell: str | int | Sequence[int] = "auto",
                 cells_per_block: int | Sequence[int] = (3, 3), block_norm: str = "L2-Hys",
                 nu: float = 0.1, gamma: str | float = "scale", gamma_factor: float = 4.0,
                 max_samples: int | None = 2000, seed: int = 0, signed: bool = False, weight_share: float = 0.6):
        if isinstance(orientations, bool) or not isinstance(orientations, (int, np.integer)) or orientations < 1:
            raise InputError(f"hog-ocsvm orientations: expected an int >= 1, got {orientations!r}")
        if pixels_per_cell != "auto":
            pixels_per_cell = _pair(pixels_per_cell, "hog-ocsvm pixels_per_cell")
        cells_per_block = _pair(cells_per_block, "hog-ocsvm cells_per_block")
        if block_norm not in BLOCK_NORMS:
            raise InputError(f"hog-ocsvm block_norm: expected one of {list(BLOCK_NORMS)}, got {block_norm!r}")
        if isinstance(nu, bool) or not isinstance(nu, (int, float, np.floating)) or not 0.0 < nu <= 1.0:
            raise InputError(f"hog-ocsvm nu: expected a number in (0, 1], got {nu!r}")
        if not (gamma in ("scale", "auto") or (isinstance(gamma, (int, float, np.floating))
                                               and not isinstance(gamma, bool) and gamma > 0)):
            raise InputError(f"hog-ocsvm gamma: expected 'scale', 'auto' or a number > 0, got {gamma!r}")
        if isinstance(gamma_factor, bool) or not isinstance(gamma_factor, (int, float, np.floating)) \
                or not 0.0 < gamma_factor < np.inf:
            raise InputError(f"hog-ocsvm gamma_factor: expected a number > 0, got {gamma_factor!r}")
        if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer))
                                        or max_samples < 2):
            raise InputError(f"hog-ocsvm max_samples: expected None or an int >= 2, got {max_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"hog-ocsvm seed: expected an int, got {seed!r}")
        self.orientations = int(orientations)
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.nu = float(nu)
        self.gamma = gamma if isinstance(gamma, str) else float(gamma)
        self.gamma_factor = float(gamma_factor)
        self.max_samples = None if max_samples is None else int(max_samples)
        self.seed = int(seed)
        if not isinstance(signed, (bool, np.bool_)):
            raise InputError(f"hog-ocsvm signed: expected True or False, got {signed!r}")
        self.signed = bool(signed)
        if isinstance(weight_share, bool) or not isinstance(weight_share, (int, float, np.floating)) \
                or not 0.0 < weight_share <= 1.0:
            raise InputError(f"hog-ocsvm weight_share: expected a number in (0, 1], got {weight_share!r}")
        self.weight_share = float(weight_share)

    # ------------------------------------------------------------ features
    def _hog(self, x: np.ndarray) -> np.ndarray:
        return hog(x, self.orientations, self.pixels_per_cell_, self.cells_per_block, self.block_norm,
                   signed=self.signed)

    def features(self, x: np.ndarray) -> np.ndarray:
        """The HOG vectors (N, F) float64 the SVM sees, of images at the fitted shape."""
        self._fitted()
        return self._hog(check_batch(x, "hog-ocsvm x", self.input_shape_)).astype(np.float64)

    @property
    def hog_key(self) -> tuple:
        """What the HOG vectors depend on: detectors with one key see the same vectors of an image."""
        self._fitted()
        return (self.orientations, tuple(np.atleast_1d(self.pixels_per_cell_).tolist()),
                tuple(np.atleast_1d(self.cells_per_block).tolist()), self.block_norm, self.signed, self.input_shape_)

    # ------------------------------------------------------------ fitting
    def fit(self, x: np.ndarray) -> HOGOneClassSVM:
        """Fit on images (N, H, W, C) of the class, N >= 2 (a random ``max_samples`` of them)."""
        from sklearn.svm import OneClassSVM

        x = check_batch(x, "hog-ocsvm fit x")
        if len(x) < 2:
            raise InputError(f"hog-ocsvm fit x: expected at least 2 images, got {len(x)}")
        if self.max_samples is not None and len(x) > self.max_samples:
            pick = np.random.default_rng(self.seed).choice(len(x), self.max_samples, replace=False)
            x = x[np.sort(pick)]
        h, w = x.shape[1:3]
        self.pixels_per_cell_ = auto_cells(h, w) if self.pixels_per_cell == "auto" else self.pixels_per_cell
        hog_grid(h, w, self.pixels_per_cell_, self.cells_per_block)  # says clearly when the images are too small
        f = self._hog(x).astype(np.float64)
        if self.gamma == "scale":
            var = float(f.var())
            gamma = self.gamma_factor / (f.shape[1] * var) if var > 0 else self.gamma_factor
        elif self.gamma == "auto":
            gamma = self.gamma_factor / f.shape[1]
        else:
            gamma = float(self.gamma)
        svm = OneClassSVM(kernel="rbf", nu=self.nu, gamma=gamma).fit(f)
        self.input_shape_ = tuple(int(v) for v in x.shape[1:])
        self.gamma_ = gamma
        weights = np.asarray(svm.dual_coef_, dtype=np.float64).ravel()
        keep = heaviest(weights, self.weight_share)
        self.support_vectors_ = np.ascontiguousarray(svm.support_vectors_[keep], dtype=np.float64)
        # the kept weights scaled up to the whole's sum: the score (a share of the sum) is the same either way,
        # and the decision and its boundary stay near the SVM's, whose intercept fits the whole sum
        self.dual_coef_ = weights[keep] * (weights.sum() / weights[keep].sum())
        self.intercept_ = float(svm.intercept_[0])
        self.n_samples_ = len(x)
        self._prepare()
        return self

    def _prepare(self) -> None:
        """Cache what scoring reuses: squared norms of the support vectors, the sum of the weights."""
        self._sv_sq = np.einsum("ij,ij->i", self.support_vectors_, self.support_vectors_)
        with np.errstate(divide="ignore"):  # a weight of 0 is log 0 = -inf: that vector adds nothing
            self._log_coef = np.log(self.dual_coef_)
        total = float(self.dual_coef_.sum())
        if not total > 0:
            raise InputError("hog-ocsvm: the support vectors' weights sum to 0; nothing to score against")
        self._log_weight = float(np.log(total))

    def _fitted(self) -> None:
        if not hasattr(self, "support_vectors_"):
            raise NotFittedError("hog-ocsvm: this detector is not fitted; call fit(x) or from_arrays first")

    # ------------------------------------------------------------ scoring
    def _log_kernel_sum(self, f: np.ndarray) -> np.ndarray:
        """log sum_i a_i exp(-gamma ||sv_i - f||^2) per row of f (a log-sum-exp), a chunk of rows at a time."""
        sv = self.support_vectors_
        out = np.empty(len(f), dtype=np.float64)
        step = max(1, CHUNK_VALUES // max(1, len(sv)))
        for start in range(0, len(f), step):
            part = f[start:start + step]
            t = part @ sv.T
            t *= -2.0
            t += np.einsum("ij,ij->i", part, part)[:, None]
            t += self._sv_sq
            np.maximum(t, 0.0, out=t)
            t *= -self.gamma_
            t += self._log_coef
            top = t.max(axis=1)
            t -= top[:, None]
            out[start:start + step] = top + np.log(np.exp(t, out=t).sum(axis=1))
        return out

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """The SVM's signed decision (N,) float64, positive inside the class, over the kept support vectors
        (with ``weight_share=1``, every one: scikit-learn's ``decision_function``)."""
        return np.exp(self._log_kernel_sum(self.features(x))) + self.intercept_

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Anomaly score (N,) float64 >= 0: ``-log(sum a_i K_i / sum a_i)``, higher = less like the class."""
        return self.score_features(self.features(x))

    def score_features(self, f: np.ndarray) -> np.ndarray:
        """:meth:`score_samples` of HOG vectors already computed (:meth:`features`)."""
        return np.maximum(self._log_weight - self._log_kernel_sum(f), 0.0)

    def score_from_decision(self, decision: np.ndarray) -> np.ndarray:
        """The score for signed decisions: ``-log((decision - intercept_) / sum a_i)`` (inf where the kernel
        sum is 0)."""
        self._fitted()
        ks = np.asarray(decision, dtype=np.float64) - self.intercept_
        with np.errstate(divide="ignore"):
            return np.maximum(self._log_weight - np.log(np.maximum(ks, 0.0)), 0.0)

    @property
    def threshold_(self) -> float:
        """The score at the SVM's own boundary (decision 0): above it the SVM calls an image an outlier."""
        return float(self.score_from_decision(np.zeros(1))[0])

    # ---------------------------------------------------------- storing
    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able params, arrays) that :meth:`from_arrays` restores; plain float64 arrays, no objects."""
        self._fitted()
        params = {"kind": self.kind, "orientations": self.orientations,
                  "pixels_per_cell": self.pixels_per_cell if self.pixels_per_cell == "auto"
                  else list(self.pixels_per_cell),
                  "pixels_per_cell_used": list(self.pixels_per_cell_), "cells_per_block": list(self.cells_per_block),
                  "block_norm": self.block_norm, "nu": self.nu, "gamma": self.gamma,
                  "gamma_factor": self.gamma_factor, "gamma_used": self.gamma_,
                  "intercept": self.intercept_, "max_samples": self.max_samples, "seed": self.seed,
                  "signed": self.signed, "weight_share": self.weight_share,
                  "input_shape": list(self.input_shape_), "n_support": int(len(self.support_vectors_)),
                  "n_samples": int(self.n_samples_)}
        return params, {"support_vectors": self.support_vectors_.copy(), "dual_coef": self.dual_coef_.copy()}

    @classmethod
    def from_arrays(cls, params: Mapping, arrays: Mapping[str, np.ndarray]) -> HOGOneClassSVM:
        """A fitted detector from :meth:`to_arrays`'s output; InputError naming any missing or ill-shaped field."""
        k = cls.kind
        if get_param(params, "kind", k) != k:
            raise InputError(f"{k} params: 'kind' expected {k!r}, got {params['kind']!r}")
        shape = get_shape(params, k)
        self = cls(orientations=get_param(params, "orientations", k),
                   pixels_per_cell=get_param(params, "pixels_per_cell", k),
                   cells_per_block=get_param(params, "cells_per_block", k),
                   block_norm=get_param(params, "block_norm", k), nu=get_param(params, "nu", k),
                   gamma=get_param(params, "gamma", k), gamma_factor=params.get("gamma_factor", 1.0),
                   max_samples=params.get("max_samples"),
                   seed=params.get("seed", 0), signed=params.get("signed", False),
                   weight_share=params.get("weight_share", 1.0))  # entries from before it kept every vector
        used = get_param(params, "pixels_per_cell_used", k)
        self.pixels_per_cell_ = _pair(used, f"{k} params: 'pixels_per_cell_used'")
        for name in ("gamma_used", "intercept"):
            v = get_param(params, name, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or \
                    (name == "gamma_used" and v <= 0):
                least = " > 0" if name == "gamma_used" else ""
                raise InputError(f"{k} params: {name!r} expected a finite number{least}, got {v!r}")
        n_sv = get_param(params, "n_support", k)
        if isinstance(n_sv, bool) or not isinstance(n_sv, int) or n_sv < 1:
            raise InputError(f"{k} params: 'n_support' expected an int >= 1, got {n_sv!r}")
        n_feat = hog_length(shape[0], shape[1], self.orientations, self.pixels_per_cell_, self.cells_per_block)
        self.input_shape_ = shape
        self.gamma_ = float(params["gamma_used"])
        self.intercept_ = float(params["intercept"])
        self.support_vectors_ = np.ascontiguousarray(get_array(arrays, "support_vectors", (n_sv, n_feat), k))
        self.dual_coef_ = get_array(arrays, "dual_coef", (n_sv,), k)
        if np.any(self.dual_coef_ < 0):
            raise InputError(f"{k} arrays: 'dual_coef' expected weights >= 0, "
                             f"got a minimum of {self.dual_coef_.min():g}")
        self.n_samples_ = int(params.get("n_samples", 0))
        self._prepare()
        return self


class HOGOCSVMModel(ClassModel):
    """The ``hog-ocsvm`` kind of class model: :class:`HOGOneClassSVM` with the shared split, statistics
    and files. Its parameters are :class:`HOGOneClassSVM`'s (passed as keywords) and those of
    :class:`~bank.kinds.base.ClassModel`; the score is the module's non-negative one."""

    kind = "hog-ocsvm"
    summary = "HOG features and a one-class SVM"
    score_label = "the hog-ocsvm score"
    #: -log of a kernel share, with a kernel width fitted per class: compared relative (bank.verdict.columns)
    score_unit = "hog-ocsvm"
    unit_per_class = True  #: the kernel width is fitted per class: even hog-ocsvm classes alone compare relative

    rules = {"svm": P.one_of(None) | P.mapping()}

    def __init__(self, *, svm: dict | None = None, **common):
        super().__init__(**common)
        self.svm = svm

    def _check_together(self) -> None:
        """The SVM's own parameters, by its constructor."""
        try:
            HOGOneClassSVM(**(self.svm or {}))
        except TypeError as err:  # a keyword it does not take
            raise InputError(f"hog-ocsvm: {err}") from None

    def _fit_core(self, x: np.ndarray) -> None:
        self.core_ = HOGOneClassSVM(**{"seed": self.seed, **(self.svm or {})}).fit(x)

    @classmethod
    def group_scorer(cls, models):
        """Scores by every one of ``models`` (one spec): the HOG of a batch computed once for the classes that
        share its settings, then their kernel sums in one product (:func:`bank.kinds.kernel_sums.fused_scorer`)."""
        return fused_scorer([m.core_ for m in models])

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self.core_.score_samples(x)

    def _arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        return self.core_.to_arrays()

    def _from_arrays(self, params: dict, arrays: dict[str, np.ndarray]) -> None:
        self.core_ = HOGOneClassSVM.from_arrays(params, arrays)
