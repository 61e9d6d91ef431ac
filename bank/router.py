"""The router: every image through every class model, in one call per input spec.

Classes that share an input spec are fused into one Keras model whose output
is the (N, K) matrix of errors, so a batch costs one compiled call per spec,
not one ``predict`` per class per image. Errors then become z-scores, the
seeds' Gaussian score, upper-tail p-values and flags (see :mod:`bank.stats`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import stats as st
from .errors import InputError
from .images import InputSpec, as_images, complexity, to_spec

UNKNOWN = "unknown"


@dataclass
class BankResult:
    """Per image and class: error, z-scores, score, p-value, margin, flags; per image: verdict.

    Arrays are (N, K), columns in the order of ``classes``. ``z`` and
    ``score`` are the seeds' (Gaussian on the raw error); ``test_z`` is the z
    under the router's ``method`` (the log error given the input's
    complexity, by default) and ``p_value`` its upper tail. A class flags an
    image when ``test_z > threshold`` (the error is improbable for the
    class: ``flag_error``), when ``margin > margin_threshold`` (another
    class reconstructs it clearly better: ``flag_margin``), or when
    ``|complexity_z| > complexity_threshold`` (the input is far simpler or
    busier than the class's images: ``flag_complexity``).
    """

    classes: list[str]
    names: list[str]
    errors: np.ndarray
    z: np.ndarray
    score: np.ndarray
    test_z: np.ndarray
    p_value: np.ndarray
    margin: np.ndarray
    flag_error: np.ndarray
    flag_margin: np.ndarray
    threshold: float
    margin_threshold: float | None
    method: str
    complexity: np.ndarray | None = None
    complexity_z: np.ndarray | None = None
    flag_complexity: np.ndarray | None = None
    complexity_threshold: float | None = None
    methods: list[str] | None = None

    @property
    def flags(self) -> np.ndarray:
        """True where the class says "not this class", for any reason."""
        out = self.flag_error | self.flag_margin
        return out if self.flag_complexity is None else out | self.flag_complexity

    @property
    def anomaly(self) -> np.ndarray:
        """One score per image and class that flags past 1 (for ranking and AUROC)."""
        return st.anomaly(self.test_z, self.margin, self.threshold, self.margin_threshold, self.complexity_z,
                          self.complexity_threshold)

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

    def method_of(self, k: int) -> str:
        """The method class ``k``'s z was really taken under (a class fitted without complexity: lognormal)."""
        return self.methods[k] if self.methods else self.method

    def reasons(self, i: int, k: int) -> list[str]:
        """Why class ``k`` flags image ``i`` (empty when it does not)."""
        out = []
        if self.flag_error[i, k]:
            out.append(f"error too high for the class ({st.METHOD_LABELS[self.method_of(k)]} {self.test_z[i, k]:.2f} > "
                       f"{self.threshold:g})")
        if self.flag_margin[i, k]:
            out.append(f"another class reconstructs it better (margin {self.margin[i, k]:.2f} > "
                       f"{self.margin_threshold:g})")
        if self.flag_complexity is not None and self.flag_complexity[i, k]:
            cz = self.complexity_z[i, k]
            out.append(f"input {'simpler' if cz < 0 else 'busier'} than the class's images (input complexity z "
                       f"{cz:.2f}, beyond +-{self.complexity_threshold:g})")
        return out

    def to_json(self, skipped: Sequence[tuple[str, str]] = (), skipped_classes: Sequence[tuple[str, str]] = ()) -> dict:
        """The document of ``bank classify --json`` and of the server: the rule, one record per image,
        the inputs that could not be read and the classes left out."""
        return {"classes": self.classes, "method": self.method, "threshold": self.threshold,
                "margin": self.margin_threshold, "complexity_threshold": self.complexity_threshold,
                "results": self.records(), "skipped": skipped_json(skipped),
                "skipped_classes": skipped_json(skipped_classes, "class")}

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
                        "test_z": float(self.test_z[i, k]),
                        "method": self.method_of(k),
                        "p_value": float(self.p_value[i, k]),
                        "margin": _finite_or_none(self.margin[i, k]),
                        "complexity_z": None if self.complexity_z is None else _finite_or_none(self.complexity_z[i, k]),
                        "flag": bool(self.flags[i, k]),
                        "reasons": self.reasons(i, k),
                    }
                    for k, c in enumerate(self.classes)
                },
            })
        return out


def skipped_json(skipped: Sequence[tuple[str, str]], key: str = "image") -> list[dict]:
    """``(name, reason)`` pairs as the JSON the CLI and the server print: ``{key: name, "error": reason}``."""
    return [{key: n, "error": r} for n, r in skipped]


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def decide(errors: np.ndarray, classes: Sequence[str], stats: Sequence[st.ErrorStats],
           names: Sequence[str] | None = None, *, threshold: float = st.DEFAULT_THRESHOLD,
           method: str = "complexity", margin: float | None = st.DEFAULT_MARGIN,
           complexity: np.ndarray | None = None,
           complexity_threshold: float | None = st.DEFAULT_COMPLEXITY) -> BankResult:
    """The bank's answer from an (N, K) matrix of errors and each class's statistics.

    ``complexity``: (N, K), each input's complexity at class k's spec
    (:func:`bank.images.complexity`); without it, or for a class fitted
    without the complexity part, ``complexity`` z falls back to lognormal and
    the complexity test is skipped. Pure NumPy: any bank (the autoencoders,
    a PCA baseline) is judged by the same tests.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if not classes or errors.ndim != 2 or errors.shape[1] != len(classes) or len(stats) != len(classes):
        raise InputError(f"errors: expected shape (N, {len(classes)}) with one statistics per class, got {errors.shape}")
    st.check_method(method)
    bad = np.argwhere(~np.isfinite(errors) | (errors < 0))
    if len(bad):
        i, k = bad[0]
        who = names[i] if names is not None and i < len(names) else f"#{i}"
        raise InputError(f"image {who}: class {classes[k]!r} gave the error {errors[i, k]} (expected a finite number "
                         ">= 0; is the model broken?)")
    margin = st.check_margin(margin)
    complexity_threshold = st.check_complexity(complexity_threshold)
    if complexity is not None:
        complexity = np.asarray(complexity, dtype=np.float64)
        if complexity.shape != errors.shape or not np.all(np.isfinite(complexity) & (complexity > 0)):
            raise InputError(f"complexity: expected {errors.shape} positive finite values, like the errors")
    col = (lambda k: None) if complexity is None else (lambda k: complexity[:, k])  # noqa: E731
    z = np.stack([st.zscore(errors[:, k], s) for k, s in enumerate(stats)], axis=1)
    test_z = np.stack([st.zscore(errors[:, k], s, method, col(k)) for k, s in enumerate(stats)], axis=1)
    methods = [st.effective_method(s, method, complexity is not None) for s in stats]
    cz = None if complexity is None else np.stack([st.complexity_z(col(k), s) for k, s in enumerate(stats)], axis=1)
    margins = st.margins(errors)
    names = list(names) if names is not None else [f"#{i}" for i in range(len(errors))]
    if len(names) != len(errors):
        raise InputError(f"names: expected {len(errors)}, got {len(names)}")
    flag_margin = st.past(margins, margin)
    flag_cx = None if cz is None else st.past(np.abs(cz), complexity_threshold)
    return BankResult(
        classes=list(classes), names=names, errors=errors, z=z, score=st.gaussian_score(z), test_z=test_z,
        p_value=st.upper_p_value(test_z), margin=margins, flag_error=st.flag(test_z, threshold),
        flag_margin=flag_margin, threshold=float(threshold), margin_threshold=margin, method=method,
        complexity=complexity, complexity_z=cz, flag_complexity=flag_cx, complexity_threshold=complexity_threshold,
        methods=methods,
    )


class Router:
    """Routes images through a bank of fitted detectors.

    Parameters
    ----------
    detectors : dict of class name -> fitted AutoencoderDetector
    threshold : float
        z above which a class flags an image as too poorly reconstructed (default 3).
    method : "complexity", "lognormal" or "gaussian"
        The fit that z is taken under: the log of the error given the
        input's complexity (default), the log of the error, or the raw error
        (the seeds').
    margin : float or None
        A class also flags an image when another class's log error is lower
        by more than this (default 0.2); None turns this test off.
    complexity_threshold : float or None
        A class also flags an image whose log complexity is this many
        standard deviations from its images' (default 4); None turns it off.
    batch_size : int
        Images per compiled call.
    """

    def __init__(self, detectors: dict, *, threshold: float = st.DEFAULT_THRESHOLD, method: str = "complexity",
                 margin: float | None = st.DEFAULT_MARGIN,
                 complexity_threshold: float | None = st.DEFAULT_COMPLEXITY, batch_size: int = 256):
        if not detectors:
            raise InputError("a router needs at least one class model; the registry has none (train one first)")
        st.flag(np.zeros(1), threshold)  # validates the threshold
        self.method = st.check_method(method)
        self.detectors = dict(detectors)
        self.threshold = float(threshold)
        self.margin = st.check_margin(margin)
        self.complexity_threshold = st.check_complexity(complexity_threshold)
        self.batch_size = int(batch_size)
        self.classes = list(self.detectors)
        self.stats = [d.stats_ for d in self.detectors.values()]
        groups: dict[InputSpec, list[int]] = {}
        for k, det in enumerate(self.detectors.values()):
            groups.setdefault(det.spec_, []).append(k)
        self.groups = groups
        self._fns: dict[InputSpec, object] = {}
        self.registry = None  # set by from_registry, with the runtime, the loaded versions and any classes skipped
        self.runtime = None
        self.versions: dict[str, tuple[int, str]] = {}
        self.skipped: list[tuple[str, str]] = []
        self._all_classes = False

    @classmethod
    def from_registry(cls, registry, classes: Sequence[str] | None = None, *, skip_broken: bool = False,
                      runtime: str = "auto", **kwargs) -> Router:
        """Load the active version of every class (or of ``classes``).

        A broken entry (bad checksum, card or model) raises
        :class:`~bank.registry.RegistryError` naming it, unless
        ``skip_broken``: then the rest load and ``skipped`` lists
        ``(class, reason)`` for each one left out.
        """
        from .registry import RegistryError

        if not registry.root.is_dir():
            raise RegistryError(f"no registry at {registry.root} (set --registry PATH or BANK_REGISTRY)")
        names = list(classes) if classes else registry.classes()
        return cls._loaded(registry, names, not classes, skip_broken, None, runtime, kwargs)

    def reload(self) -> Router:
        """A new router over the registry's current active versions; this one is left as it was.

        Work in flight finishes on the old router. A class whose new active
        entry is broken keeps the version already loaded (and is listed in
        the new router's ``skipped``); a class removed from the registry is
        dropped when the router serves all classes.
        """
        if self.registry is None:
            raise InputError("reload needs a router made by Router.from_registry")
        names = self.registry.classes() if self._all_classes else self.classes
        kwargs = {"threshold": self.threshold, "method": self.method, "margin": self.margin,
                  "complexity_threshold": self.complexity_threshold, "batch_size": self.batch_size}
        return self._loaded(self.registry, names, self._all_classes, True, self, self.runtime, kwargs)

    @classmethod
    def _loaded(cls, registry, names, all_classes, skip_broken, previous, runtime, kwargs) -> Router:
        from .registry import RegistryError

        detectors, versions, skipped = {}, {}, []
        for n in names:
            try:
                e = registry.entry(n)
                key = (e.version, e.card["model_sha256"])
                if previous is not None and previous.versions.get(n) == key:
                    detectors[n] = previous.detectors[n]  # unchanged: no need to load it again
                else:
                    detectors[n] = registry.load_detector(n, e.version, runtime=runtime)
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
        router.runtime = runtime
        return router

    def _fn(self, spec: InputSpec):
        if spec not in self._fns:
            from .runtime import error_fn

            self._fns[spec] = error_fn([self.detectors[self.classes[k]].model_ for k in self.groups[spec]], spec.shape)
        return self._fns[spec]

    def errors(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, K) reconstruction errors; each class sees the image at its own spec."""
        return self.measure(images, with_complexity=False)[0]

    def measure(self, images: np.ndarray | Sequence[np.ndarray],
                with_complexity: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, K) reconstruction errors and (N, K) input complexities (None without
        ``with_complexity``); each class sees the image at its own spec."""
        images = as_images(images)  # once, however many specs: a generator is read once, files decoded once
        return self._measure({spec: to_spec(images, spec) for spec in self.groups}, with_complexity)

    def prepare(self, image: np.ndarray) -> dict[InputSpec, np.ndarray]:
        """One decoded (H, W, C) image at each class's spec: what :meth:`measure_prepared` takes. Holding
        these instead of the image keeps a large picture's memory to the bank's size."""
        return {spec: to_spec([image], spec)[0] for spec in self.groups}

    def measure_prepared(self, items: Sequence[dict[InputSpec, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`measure` of images already brought to the specs by :meth:`prepare` (maybe by a router
        before a reload: a spec it lacks is made from the largest one it has)."""
        xs = {}
        for spec in self.groups:
            xs[spec] = np.stack([it[spec] if spec in it else
                                 to_spec([max(it.values(), key=lambda a: a.size)], spec)[0] for it in items])
        return self._measure(xs)

    def _measure(self, xs: dict[InputSpec, np.ndarray],
                 with_complexity: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Errors and complexities of images given at every spec: ``xs[spec]`` is (N, *spec.shape)."""
        out = cx = None
        for spec, idx in self.groups.items():
            x = xs[spec]
            if out is None:
                out = np.empty((len(x), len(self.classes)), dtype=np.float64)
                cx = np.empty_like(out) if with_complexity else None
            if with_complexity:
                cx[:, idx] = complexity(x)[:, None]
            fn = self._fn(spec)
            for i in range(0, len(x), self.batch_size):
                out[i : i + self.batch_size, idx] = fn(x[i : i + self.batch_size])
        return out, cx

    @property
    def fit(self) -> tuple[int, int]:
        """The (height, width) every class's input fits in: how large a decoded file needs to be."""
        return max(s.height for s in self.groups), max(s.width for s in self.groups)

    @property
    def common_spec(self) -> InputSpec:
        """One spec every class's input can be made from (:attr:`fit`, RGB when any class is): the form to
        keep many images in (for a one-spec bank, its spec)."""
        rgb = any(s.color == "rgb" for s in self.groups)
        return InputSpec(*self.fit, "rgb" if rgb else "gray")

    def score_files(self, paths: Sequence[str | os.PathLike], *, max_pixels: int | None = None,
                    chunk: int = 256) -> tuple[BankResult | None, list[tuple[str, str]]]:
        """Everything the bank says about each image file under ``paths`` (files and folders), and the
        ``(name, reason)`` of each one that could not be read (None for the result when none could).

        Files are decoded ``chunk`` at a time in threads, each no larger than
        the bank needs and brought to the classes' specs in its thread, within
        ``max_pixels`` (see :mod:`bank.decoding`): memory holds one chunk at
        the bank's size, whatever the number or size of the files.
        """
        from .data import iter_images

        errors, cx, names, skipped = [], [], [], []
        for part in iter_images(paths, fit=self.fit, max_pixels=max_pixels, transform=self.prepare, chunk=chunk):
            skipped += part.skipped
            if part.images:
                e, c = self.measure_prepared(part.images)
                errors.append(e)
                cx.append(c)
                names += part.names
        if not names:
            return None, skipped
        return self.result(np.concatenate(errors), np.concatenate(cx), names), skipped

    def score(self, images: np.ndarray | Sequence[np.ndarray], names: Sequence[str] | None = None) -> BankResult:
        """Everything the bank says about each image."""
        return self.result(*self.measure(images), names=names)

    def result(self, errors: np.ndarray, complexity: np.ndarray | None = None,
               names: Sequence[str] | None = None) -> BankResult:
        """The bank's answer from (N, K) matrices of this bank's errors and the inputs' complexities."""
        return decide(errors, self.classes, self.stats, names, threshold=self.threshold, method=self.method,
                      margin=self.margin, complexity=complexity, complexity_threshold=self.complexity_threshold)

    def classify(self, images: np.ndarray | Sequence[np.ndarray]) -> list[str]:
        """Per image, the class by lowest error, or "unknown" when every class flags it."""
        return self.score(images).labels
