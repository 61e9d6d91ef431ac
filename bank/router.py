"""The router: every image through every class model, in one call per input spec.

Classes that share an input spec are fused into one Keras model whose output
is the (N, K) matrix of errors, so a batch costs one compiled call per spec,
not one ``predict`` per class per image. Errors then become z-scores, the
seeds' Gaussian score, upper-tail p-values and flags (see :mod:`bank.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import stats as st
from .images import InputSpec, prepare

UNKNOWN = "unknown"


@dataclass
class BankResult:
    """Per image and class: error, z, score, p-value, flag; per image: verdict.

    Arrays are (N, K), columns in the order of ``classes``.
    """

    classes: list[str]
    names: list[str]
    errors: np.ndarray
    z: np.ndarray
    score: np.ndarray
    p_value: np.ndarray
    flags: np.ndarray
    threshold: float

    @property
    def nearest(self) -> list[str]:
        """Per image, the class whose model reconstructs it best (lowest error)."""
        return [self.classes[i] for i in np.argmin(self.errors, axis=1)]

    @property
    def unknown(self) -> np.ndarray:
        """True where every class flags the image: none of them."""
        return self.flags.all(axis=1)

    @property
    def labels(self) -> list[str]:
        """The verdict: the nearest class, or "unknown" when every class flags it."""
        return [UNKNOWN if u else c for c, u in zip(self.nearest, self.unknown)]

    def records(self) -> list[dict]:
        """One JSON-ready dict per image (the schema of ``--json``)."""
        out = []
        for i, (name, nearest, unknown) in enumerate(zip(self.names, self.nearest, self.unknown)):
            out.append({
                "image": name,
                "label": None if unknown else nearest,
                "unknown": bool(unknown),
                "nearest": nearest,
                "classes": {
                    c: {
                        "error": float(self.errors[i, k]),
                        "z": float(self.z[i, k]),
                        "score": float(self.score[i, k]),
                        "p_value": float(self.p_value[i, k]),
                        "flag": bool(self.flags[i, k]),
                    }
                    for k, c in enumerate(self.classes)
                },
            })
        return out


class Router:
    """Routes images through a bank of fitted detectors.

    Parameters
    ----------
    detectors : dict of class name -> fitted AutoencoderDetector
    threshold : float
        z above which a class flags an image (default 3).
    batch_size : int
        Images per compiled call.
    """

    def __init__(self, detectors: dict, *, threshold: float = st.DEFAULT_THRESHOLD, batch_size: int = 256):
        if not detectors:
            raise ValueError("a router needs at least one class model; the registry has none (train one first)")
        st.flag(np.zeros(1), threshold)  # validates the threshold
        self.detectors = dict(detectors)
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.classes = list(self.detectors)
        self.stats = [d.stats_ for d in self.detectors.values()]
        groups: dict[InputSpec, list[int]] = {}
        for k, det in enumerate(self.detectors.values()):
            groups.setdefault(det.spec_, []).append(k)
        self.groups = groups
        self._fns: dict[InputSpec, object] = {}
        self.registry = None  # set by from_registry, with the loaded versions and any classes skipped
        self.versions: dict[str, tuple[int, str]] = {}
        self.skipped: list[tuple[str, str]] = []
        self._all_classes = False

    @classmethod
    def from_registry(cls, registry, classes: Sequence[str] | None = None, *, skip_broken: bool = False,
                      **kwargs) -> Router:
        """Load the active version of every class (or of ``classes``).

        A broken entry (bad checksum, card or model) raises
        :class:`~bank.registry.RegistryError` naming it, unless
        ``skip_broken``: then the rest load and ``skipped`` lists
        ``(class, reason)`` for each one left out.
        """
        names = list(classes) if classes else registry.classes()
        return cls._loaded(registry, names, not classes, skip_broken, None, kwargs)

    def reload(self) -> Router:
        """A new router over the registry's current active versions; this one is left as it was.

        Work in flight finishes on the old router. A class whose new active
        entry is broken keeps the version already loaded (and is listed in
        the new router's ``skipped``); a class removed from the registry is
        dropped when the router serves all classes.
        """
        if self.registry is None:
            raise ValueError("reload needs a router made by Router.from_registry")
        names = self.registry.classes() if self._all_classes else self.classes
        kwargs = {"threshold": self.threshold, "batch_size": self.batch_size}
        return self._loaded(self.registry, names, self._all_classes, True, self, kwargs)

    @classmethod
    def _loaded(cls, registry, names, all_classes, skip_broken, previous, kwargs) -> Router:
        from .registry import RegistryError

        detectors, versions, skipped = {}, {}, []
        for n in names:
            try:
                e = registry.entry(n)
                key = (e.version, e.card["model_sha256"])
                if previous is not None and previous.versions.get(n) == key:
                    detectors[n] = previous.detectors[n]  # unchanged: no need to load it again
                else:
                    detectors[n] = registry.load_detector(n, e.version)
                versions[n] = key
            except RegistryError as err:
                if previous is not None and n in previous.detectors:
                    detectors[n], versions[n] = previous.detectors[n], previous.versions[n]
                    skipped.append((n, f"{err}; still using version {versions[n][0]}"))
                elif skip_broken:
                    skipped.append((n, str(err)))
                else:
                    raise
        if not detectors and skipped:
            raise RegistryError("no class could be loaded: " + "; ".join(r for _, r in skipped))
        router = cls(detectors, **kwargs)
        router.registry, router.versions, router.skipped, router._all_classes = registry, versions, skipped, all_classes
        return router

    def _fn(self, spec: InputSpec):
        if spec not in self._fns:
            from .models import error_model

            self._fns[spec] = error_model([self.detectors[self.classes[k]].model_ for k in self.groups[spec]], spec.shape)
        return self._fns[spec]

    def errors(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, K) reconstruction errors; each class sees the image at its own spec."""
        out = None
        for spec, idx in self.groups.items():
            x = prepare(images, spec)
            if out is None:
                out = np.empty((len(x), len(self.classes)), dtype=np.float64)
            fn = self._fn(spec)
            for i in range(0, len(x), self.batch_size):
                out[i : i + self.batch_size, idx] = np.asarray(fn.predict_on_batch(x[i : i + self.batch_size]))
        return out

    def score(self, images: np.ndarray | Sequence[np.ndarray], names: Sequence[str] | None = None) -> BankResult:
        """Everything the bank says about each image."""
        errors = self.errors(images)
        mean = np.array([s.mean for s in self.stats])
        std = np.array([s.std for s in self.stats])
        z = (errors - mean) / std
        names = list(names) if names is not None else [f"#{i}" for i in range(len(errors))]
        if len(names) != len(errors):
            raise ValueError(f"names: expected {len(errors)}, got {len(names)}")
        return BankResult(
            classes=self.classes, names=names, errors=errors, z=z, score=st.gaussian_score(z),
            p_value=st.upper_p_value(z), flags=st.flag(z, self.threshold), threshold=self.threshold,
        )

    def classify(self, images: np.ndarray | Sequence[np.ndarray]) -> list[str]:
        """Per image, the class by lowest error, or "unknown" when every class flags it."""
        return self.score(images).labels
