"""The router: every image through every class model, in one call per input spec.

Classes that share an input spec are fused into one Keras model whose output
is the (N, K) matrix of errors, so a batch costs one compiled call per spec,
not one ``predict`` per class per image. Errors then become z-scores, the
seeds' Gaussian score, upper-tail p-values and flags (:func:`bank.verdict.decision.decide`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..verdict import stats as st
from ..verdict.columns import StatsColumns
from ..verdict.decision import BankResult, compare_kwargs, decide
from ..errors import InputError
from ..io.images import InputSpec, complexity, to_spec
from ..io.inputs import Images, as_images, image_names

class Router:
    """Routes images through a bank of fitted detectors.

    Parameters
    ----------
    detectors : dict of class name -> fitted class model (any kind: :mod:`bank.kinds`)
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
    compare : "auto", "raw" or "relative"
        What the argmin and the margin compare. "raw": the errors as they
        are, right when every class scores in one unit (autoencoders and PCA
        models: per-pixel squared error). "relative": each log error centred
        on its unit's classes and divided by their pooled spread (its own
        class's centre for a unit fitted per class:
        :meth:`bank.verdict.columns.StatsColumns.relative`), unit-free, for a bank mixing
        units (``hog-ocsvm``, whose kernel width is fitted per class, alone
        or beside autoencoders and PCA). "auto" (default) picks "raw" when
        every class scores in per-pixel squared error
        (:data:`bank.verdict.stats.PIXEL_MSE`), else "relative".
    """

    def __init__(self, detectors: dict, *, threshold: float = st.DEFAULT_THRESHOLD, method: str = "complexity",
                 margin: float | None = st.DEFAULT_MARGIN,
                 complexity_threshold: float | None = st.DEFAULT_COMPLEXITY, batch_size: int = 256,
                 compare: str = "auto"):
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
        if compare != "auto" and compare not in st.COMPARE_MODES:
            raise InputError(f"compare: expected one of auto, {', '.join(st.COMPARE_MODES)}, got {compare!r}")
        self.compare = compare
        self.kinds = [d.kind for d in self.detectors.values()]
        self.stats = [d.stats_ for d in self.detectors.values()]
        rule = compare_kwargs(self.detectors.values(), compare)
        self._comparison = rule["compare"]
        #: The classes' statistics as columns, made once: the verdict of every call reads them.
        self.columns = StatsColumns.of(self.stats, rule["units"], rule["per_class"])
        groups: dict[InputSpec, list[int]] = {}
        for k, det in enumerate(self.detectors.values()):
            groups.setdefault(det.spec_, []).append(k)
        self.groups = groups
        #: Per spec, whether any of its classes has the complexity fit (zlib on 224x224 photos costs: else skipped).
        self._needs_complexity = {spec: any(self.stats[k].has_complexity for k in idx) for spec, idx in groups.items()}
        self._fns: dict[InputSpec, object] = {}
        #: Where the models came from (:class:`bank.answering.loaded.Source`: a registry, its versions, the classes
        #: skipped), set by :meth:`from_registry`; None for models given in memory.
        self.source = None

    @classmethod
    def from_registry(cls, registry, classes: Sequence[str] | None = None, *, skip_broken: bool = False,
                      runtime: str = "auto", **kwargs) -> Router:
        """A router over the active version of every class of ``registry`` (or of ``classes``), the rule's
        settings in ``kwargs``: :func:`bank.answering.loaded.load`, which also keeps which versions it loaded
        and which broken classes it skipped (``skip_broken``)."""
        from .loaded import load

        return load(cls, registry, classes, skip_broken=skip_broken, runtime=runtime, **kwargs)

    def reload(self) -> Router:
        """A new router over the registry's current active versions (:func:`bank.answering.loaded.reload`);
        this one is left as it was."""
        from .loaded import reload

        return reload(self)

    @property
    def registry(self):
        """The registry the router was loaded from (None for a router made from models in memory)."""
        return self.source.registry if self.source is not None else None

    @property
    def runtime(self) -> str | None:
        return self.source.runtime if self.source is not None else None

    @property
    def versions(self) -> dict[str, tuple[int, str]]:
        """Per class loaded from a registry, ``(version, model_id)``."""
        return self.source.versions if self.source is not None else {}

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(class, reason)`` of each broken class left out when loading (or kept at its old version)."""
        return self.source.skipped if self.source is not None else []

    def _scorers(self, spec: InputSpec) -> list[tuple[list[int], object]]:
        """The functions scoring images at ``spec``: one per kind among the classes of that spec, each with
        the columns it fills, made by the kind's ``group_scorer`` (which fuses its classes where it can:
        autoencoders into one compiled call, pretrained classes behind one backbone pass)."""
        if spec not in self._fns:
            families: dict[type, list[int]] = {}
            for k in self.groups[spec]:
                families.setdefault(type(self.detectors[self.classes[k]]), []).append(k)
            self._fns[spec] = [(idx, family.group_scorer([self.detectors[self.classes[k]] for k in idx]))
                               for family, idx in families.items()]
        return self._fns[spec]

    def errors(self, images: Images) -> np.ndarray:
        """(N, K) reconstruction errors; each class sees the image at its own spec. ``images``: as :meth:`score`."""
        return self.measure(images, with_complexity=False)[0]

    def measure(self, images: Images, with_complexity: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, K) reconstruction errors and (N, K) input complexities (None without
        ``with_complexity``); each class sees the image at its own spec. ``images``: as :meth:`score`."""
        # once, however many specs: a generator is read once, files decoded once (no larger than the bank needs)
        images = as_images(images, fit=self.decode_size)
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
                cx[:, idx] = complexity(x)[:, None] if self._needs_complexity[spec] else 1.0
            for cols, fn in self._scorers(spec):
                for i in range(0, len(x), self.batch_size):
                    out[i : i + self.batch_size, cols] = fn(x[i : i + self.batch_size])
        return out, cx

    @property
    def comparison(self) -> str:
        """The comparison in use ("raw" or "relative"): ``compare``, with "auto" resolved from the classes'
        score units (:func:`bank.verdict.decision.auto_compare`)."""
        return self._comparison

    @property
    def decode_size(self) -> tuple[int, int]:
        """The (height, width) every class's input fits in: how large a decoded file needs to be."""
        return max(s.height for s in self.groups), max(s.width for s in self.groups)

    @property
    def common_spec(self) -> InputSpec:
        """One spec every class's input can be made from (:attr:`fit`, RGB when any class is): the form to
        keep many images in (for a one-spec bank, its spec)."""
        rgb = any(s.color == "rgb" for s in self.groups)
        return InputSpec(*self.decode_size, "rgb" if rgb else "gray")

    def score_files(self, paths: Sequence[str | os.PathLike], *, max_pixels: int | None = None,
                    chunk: int = 256) -> tuple[BankResult | None, list[tuple[str, str]]]:
        """Everything the bank says about each image file under ``paths`` (files and folders), and the
        ``(name, reason)`` of each one that could not be read (None for the result when none could).

        Files are decoded ``chunk`` at a time in threads, each no larger than
        the bank needs and brought to the classes' specs in its thread, within
        ``max_pixels`` (see :mod:`bank.io.decoding`): memory holds one chunk at
        the bank's size, whatever the number or size of the files.
        """
        from ..io.data import iter_images

        errors, cx, names, skipped = [], [], [], []
        for part in iter_images(paths, fit=self.decode_size, max_pixels=max_pixels, transform=self.prepare, chunk=chunk):
            skipped += part.skipped
            if part.images:
                e, c = self.measure_prepared(part.images)
                errors.append(e)
                cx.append(c)
                names += part.names
        if not names:
            return None, skipped
        return self.result(np.concatenate(errors), np.concatenate(cx), names), skipped

    def score(self, images: Images, names: Sequence[str] | None = None) -> BankResult:
        """Everything the bank says about each image.

        ``images`` (see :func:`bank.io.inputs.as_images`), each brought to every
        class's spec (size and colour), whatever the bank's colour:

        - an array: (H, W) is one gray image; (H, W, C) with C = 1, 3 or 4
          (gray, RGB, RGBA) is one image, as ``np.asarray(PIL.Image.open(f))``
          gives; (N, H, W) with W > 4 is N gray images; (N, H, W, C) is N
          images. A 3-D array's last axis decides: 4 or less is channels. To
          pass gray images 4 or fewer pixels wide as a stack, add the channel
          axis, ``x[..., None]`` (N, H, W, 1), or pass a list. Pixels: uint8,
          uint16, bool, or float in [0, 1];
        - a file path (``str`` or ``pathlib.Path``), decoded as
          :func:`bank.io.decoding.read_image` does, no larger than the bank needs;
        - a Pillow image;
        - a list (or any iterable, read once) mixing these, one image each.

        ``names``: one per image, for the result; by default a path's own
        and ``#i`` for the rest. Something else raises
        :class:`~bank.io.images.ImageError` naming it (``images[2]`` in a list)
        and what came; an unreadable file is named by its path.
        """
        if names is None:
            names = image_names(images)
        return self.result(*self.measure(images), names=names)

    def result(self, errors: np.ndarray, complexity: np.ndarray | None = None,
               names: Sequence[str] | None = None) -> BankResult:
        """The bank's answer from (N, K) matrices of this bank's errors and the inputs' complexities."""
        return decide(errors, self.classes, self.columns, names, threshold=self.threshold, method=self.method,
                      margin=self.margin, complexity=complexity, complexity_threshold=self.complexity_threshold,
                      compare=self._comparison)

    def classify(self, images: Images) -> list[str]:
        """Per image, the class by lowest error (see ``compare``), or "unknown" when every class flags it. ``images``: as
        :meth:`score` (one photo as an (H, W, 3) array is one image: one answer)."""
        return self.score(images).labels
