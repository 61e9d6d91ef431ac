"""The contract every kind of class model honours, and what it shares with every other kind.

A class model (PyOD's detector, scikit-learn's estimator) is built with explicit parameters, learns
from its class's images alone with ``fit`` (which returns it), and gives each image a raw score where
higher means less like the class (``score_samples``, also ``decision_function``). What turns raw
scores into z, p-values and flags is written once, here, for every kind: ``fit`` holds out a share
of the images (seeded), and ``calibrate`` fits the error statistics (:mod:`bank.verdict.stats`) on the
scores of those held-out images; ``zscore``, ``predict`` and ``predict_proba`` read them.

A kind supplies four things: ``_fit_core(x)`` (learn from images at the model's input spec),
``_scores(x)`` (raw scores of such images, NumPy), ``_arrays()`` / ``_from_arrays()`` (its
learned state as plain arrays and JSON, see :meth:`ClassModel.save`), and optionally
:meth:`ClassModel.group_scorer`, which scores many classes of the kind in one call (PCA stacks its
classes into one matrix product). Nothing here imports TensorFlow or scikit-learn.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..verdict import stats as st
from ..verdict.fitting import degenerate, fit_error_stats
from ..verdict.decision import decide
from ..digest import sha256_bytes, sha256_file
from ..errors import InputError
from ..io.images import InputSpec, complexity, infer_spec, to_spec
from ..io.inputs import as_images, prepare
from ..io.pipeline import ImageFiles
from . import params as P

#: The file a kind's learned arrays are saved in (``np.savez``, read back with ``allow_pickle=False``).
ARRAYS_FILE = "arrays.npz"

#: Fewest images a class needs: two to calibrate, two to learn from.
MIN_IMAGES = 4

#: Below this many held-out images, the fitted statistics come with a warning.
MIN_CALIBRATION = 30


def few_held_out(n: int) -> str | None:
    """The warning a training gets when its error statistics rest on ``n`` held-out images, too few."""
    if n >= MIN_CALIBRATION:
        return None
    return (f"the error statistics rest on {n} held-out images (fewer than {MIN_CALIBRATION}): "
            "z-scores and flags are rough; give the class more images")


def warn_training(training: dict, message: str | None) -> None:
    """Keep ``message`` (if any) in the training record's warnings and warn the caller of ``fit`` with it."""
    if message:
        training["warnings"].append(message)
        warnings.warn(message, stacklevel=3)


class NotFittedError(RuntimeError):
    """A class model was used before ``fit`` (or loading)."""


class ClassModel(P.Declared):
    """Base of the kinds of class model: the shared parameters, the split, the statistics, persistence.

    Parameters (every kind)
    -----------------------
    spec : InputSpec or None
        Input size and colour; None infers it from the training images (their size when they share one,
        at most 128, else 64x64).
    calibration_fraction : float
        Share of the images held out to fit the error statistics.
    seed : int
        Seeds the split (and the kind's own randomness).
    threshold, method, complexity_threshold
        The flag rule of ``predict``, as for :class:`bank.kinds.autoencoder.AutoencoderModel`.
    """

    kind = ""
    #: What the kind is, in a few words (``bank train --help``).
    summary = ""
    #: What the raw score is, in words (``bank show``'s statistics line).
    score_label = "per-pixel MSE"
    #: The unit of the raw score: classes that share one compare their raw scores (the router's argmin and
    #: margin); per-pixel squared error (:data:`bank.verdict.stats.PIXEL_MSE`) by default.
    score_unit = st.PIXEL_MSE
    #: Whether the unit is fitted per class (a kernel width), so that even classes of this kind alone compare
    #: relative to their own held-out scores.
    unit_per_class = False
    #: What the training-loss curves plot (``loss.png``), for a kind that trains by epochs.
    loss_label = "MSE (solid: training, dashed: early-stopping set)"
    #: Whether the model rebuilds its input (``reconstruct(X)`` gives the images at its spec and its rebuilt
    #: ones): the report's and ``bank outliers``' pictures of originals beside reconstructions.
    reconstructs = False
    #: Whether an interrupted training goes on from its last epoch when run again (``run_key`` and a
    #: ``checkpoint_dir``).
    resumes = False
    #: The options besides ``spec`` and ``seed`` that :meth:`from_options` takes (the command line's
    #: training options, by their parameter names); the others are said to be ignored.
    training_options: tuple[str, ...] = ()
    #: Whether ``bank export`` writes the kind as a TensorFlow graph (:meth:`tf_network`, :meth:`tf_score`).
    exports = False
    #: What each constructor parameter may be (:mod:`bank.kinds.params`), checked by :meth:`_check_params`
    #: before any image is read; a kind adds its own parameters' rules to these (:meth:`param_rules`).
    rules: dict[str, P.Rule] = {
        "spec": P.Rule(lambda v: v is None or isinstance(v, InputSpec), "an InputSpec or None"),
        "calibration_fraction": P.number(0, 1, low_open=True, high_open=True,
                                         text="a number strictly between 0 and 1"),
        "seed": P.whole(0),
        "threshold": P.number(0, low_open=True),
        "method": P.one_of(*st.STATS_METHODS),
        "complexity_threshold": P.one_of(None) | P.number(0, low_open=True),
    }
    #: Whether the input-complexity statistics (and the complexity test) apply to the kind's scores: they
    #: correct a reconstruction error for how busy the input is (Serra et al., ICLR 2020). A kind whose
    #: score does not track the input's busyness (a distance between pretrained features) says False.
    uses_complexity = True
    #: Whether the statistics' log fits take a fitted shift, ``log(score + c)`` (:func:`bank.verdict.fitting.fit_log_shift`):
    #: for a kind whose held-out scores crowd at 0 (a network sure of most of its class's images).
    shifted_log = False
    #: A quantile q for a kind whose held-out log scores lean right (a long upper tail): its statistics take
    #: their centre at the median and their spreads at least from the q quantile
    #: (:func:`bank.verdict.fitting.tail_fit`), so its own images are not flagged more often than z > 3 promises.
    tail_spread: float | None = None

    def __init__(self, *, spec: InputSpec | None = None, calibration_fraction: float = 0.1, seed: int = 0,
                 threshold: float = st.DEFAULT_THRESHOLD, method: str = "complexity",
                 complexity_threshold: float | None = st.DEFAULT_COMPLEXITY):
        self.spec = spec
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.threshold = threshold
        self.method = method
        self.complexity_threshold = complexity_threshold

    # ------------------------------------------------------------ what a kind supplies

    def _fit_core(self, x: np.ndarray) -> None:
        """Learn from images already at ``spec_`` (N, H, W, C)."""
        raise NotImplementedError

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (N,) of images already at ``spec_``; higher = less like the class."""
        raise NotImplementedError

    def _arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The learned state: JSON-able parameters and named arrays."""
        raise NotImplementedError

    def _from_arrays(self, params: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore the learned state ``_arrays`` gave."""
        raise NotImplementedError

    @classmethod
    def from_options(cls, spec: InputSpec | None = None, **options) -> ClassModel:
        """A model of this kind from the command line's training options (:attr:`training_options`, ``seed``;
        anything else is left out: see :func:`bank.training.runs.ignored_by`)."""
        return cls(spec=spec, **{k: v for k, v in options.items() if k in (*cls.training_options, "seed")})

    @classmethod
    def option_default(cls, name: str) -> object:
        """The default of the training option ``name`` for this kind (one of :attr:`training_options`)."""
        return cls.param_defaults().get(name)

    @classmethod
    def describe(cls, params: dict) -> tuple[str, dict]:
        """What ``bank show`` and ``bank list`` call a model of this kind with these card ``params``, and its
        settings worth showing (not curves or conversion checks)."""
        return cls.kind, {k: v for k, v in params.items() if k not in ("kind", "input_shape", "history", "litert")}

    def curves(self) -> dict[str, list[float]]:
        """The training-loss curves by name ("loss", "val_loss"), for a kind that trains by epochs; else empty."""
        return dict(getattr(self, "history_", None) or {})

    @classmethod
    def choose_spec(cls, inferred: InputSpec) -> InputSpec:
        """The input spec when none is given, from the one inferred from the images (kept by default)."""
        return inferred

    @classmethod
    def group_scorer(cls, models: Sequence[ClassModel]) -> Callable[[np.ndarray], np.ndarray]:
        """A function scoring images (at the models' shared spec) by every one of ``models``: (N, K). By
        default one call per model; a kind that can fuse its classes overrides it."""
        return lambda x: np.stack([m._scores(x) for m in models], axis=1)

    # ------------------------------------------------------------ fitting

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n < MIN_IMAGES:
            raise InputError(f"a class needs at least {MIN_IMAGES} readable images to train, got {n}")
        order = np.random.default_rng(self.seed).permutation(n)
        n_cal = min(max(2, round(self.calibration_fraction * n)), n - 2)
        return order[n_cal:], order[:n_cal]

    def fit(self, X) -> ClassModel:
        """Learn the class from ``X`` (an array (N, H, W[, C]), a list of images, paths or PIL images:
        what :func:`bank.io.inputs.as_images` takes; or :class:`~bank.io.pipeline.ImageFiles`) and fit the error
        statistics on a held-out share."""
        self._check_params()
        x, spec, late = self._read(X)
        train_idx, cal_idx = self._split(len(x))
        self.spec_ = spec
        self._fit_core(x[train_idx])
        self.calibrate(x[cal_idx], at_spec=True)
        self._record_training(len(x), train_idx, cal_idx, self._scores(x[train_idx]), late)
        return self

    def _read(self, X, transform: Callable[[np.ndarray], np.ndarray] | None = None,
              ) -> tuple[np.ndarray, InputSpec, list[tuple[str, str]]]:
        """The training images at the model's spec (or what ``transform`` makes of each chunk of them:
        features), the spec, and the files that could not be read ``(name, reason)``. Files are decoded
        in threads, a chunk at a time, so a transform keeps memory to one chunk of images."""
        late: list[tuple[str, str]] = []
        transform = transform or (lambda x: x)
        if isinstance(X, ImageFiles):  # files found by bank.io.pipeline.scan: decoded now, at the spec, in threads
            from ..io.data import iter_images

            spec = self.spec or self.choose_spec(X.spec())
            out = []
            for part in iter_images(X.paths, fit=(spec.height, spec.width),
                                    transform=lambda img: to_spec([img], spec)[0]):
                late += part.skipped
                if part.images:
                    out.append(transform(np.stack(part.images)))
            if not out:
                raise InputError("no readable images to train on")
            return np.concatenate(out), spec, late
        images = as_images(X, "training images")
        if not len(images):
            raise InputError("no images to train on")
        spec = self.spec or self.choose_spec(infer_spec(images))
        chunk = 256
        return (np.concatenate([transform(to_spec(images[i:i + chunk], spec)) for i in range(0, len(images), chunk)]),
                spec, late)

    def _record_training(self, n: int, train_idx: np.ndarray, cal_idx: np.ndarray, train_scores: np.ndarray,
                         late: list[tuple[str, str]]) -> None:
        """The training record (``training_``), with its warnings: files left out, too few held-out images,
        held-out scores all but equal, and for a kind that trains by epochs the convergence verdict on its
        loss curve (:mod:`bank.nets.convergence`)."""
        self.training_ = {"kind": self.kind, "seed": self.seed, "calibration_fraction": self.calibration_fraction,
                          "n_images": int(n), "n_train": int(len(train_idx)), "n_calibration": int(len(cal_idx)),
                          "train_error_mean": float(np.mean(train_scores)), "warnings": []}
        if late:
            gone = sorted({n for n, _ in late})
            self.training_["warnings"].append(f"{len(gone)} file(s) could not be read and were left out: "
                                              f"{', '.join(gone[:10])}")
        self._convergence()
        warn_training(self.training_, few_held_out(len(cal_idx)))
        warn_training(self.training_, degenerate(self.stats_))

    def _convergence(self) -> None:
        """The convergence verdict on the curve a kind that trains by epochs watched (its early-stopping loss,
        else its training loss) into ``training_``, with what to try when it did not settle."""
        from ..nets.convergence import advice, assess

        curves = self.curves()
        if not curves.get("loss"):
            return  # not trained by epochs
        watched, name = ((curves["val_loss"], "early-stopping loss") if curves.get("val_loss")
                         else (curves["loss"], "training loss"))
        epochs, patience = self._epochs_and_patience(len(watched))
        self.training_["convergence"] = assess(watched, epochs, patience)
        warn_training(self.training_, advice(self.training_["convergence"], epochs, patience, name))

    def _epochs_and_patience(self, ran: int) -> tuple[int, int]:
        """The most epochs the training could run and its early-stopping patience (the epochs, without one)."""
        params = self.get_params()
        epochs = params.get("epochs") or ran
        return epochs, params.get("patience") or epochs

    def calibrate(self, X, at_spec: bool = False) -> ClassModel:
        """Fit the error statistics on images of the class the model did not learn from."""
        x = X if at_spec else self._prepare(X)
        self.stats_ = fit_error_stats(self._scores(x), complexity(x) if self.uses_complexity else None,
                                         shifted_log=self.shifted_log, tail_spread=self.tail_spread)
        return self

    # ------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "spec_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call 'fit' or load it.")

    def _prepare(self, X) -> np.ndarray:
        self._check_fitted()
        return prepare(X, self.spec_)

    def score_samples(self, X) -> np.ndarray:
        """Raw score per image, (N,): higher = less like the class. ``X``: as :meth:`fit`; each image is
        brought to the model's spec (size, colour) like a file."""
        return np.asarray(self._scores(self._prepare(X)), dtype=np.float64)

    decision_function = score_samples

    def measure(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the raw score and the input's complexity at the model's spec, each (N,)."""
        x = self._prepare(X)
        return np.asarray(self._scores(x), dtype=np.float64), complexity(x)

    def zscore(self, X) -> np.ndarray:
        """z of each image's score against the class's held-out scores, under ``method``."""
        scores, cx = self.measure(X)
        return st.zscore(scores, self.stats_, self.method, cx)

    def predict(self, X) -> np.ndarray:
        """1 where the image is flagged as not this class (z > threshold, or its complexity z beyond
        ``complexity_threshold``), else 0."""
        scores, cx = self.measure(X)
        res = decide(scores[:, None], ["class"], [self.stats_], threshold=self.threshold, method=self.method,
                     margin=None, complexity=cx[:, None], complexity_threshold=self.complexity_threshold)
        return res.flags[:, 0].astype(int)

    def predict_proba(self, X) -> np.ndarray:
        """(N, 2): the upper-tail p-value of z (large for normal images) and 1 minus it."""
        p = st.upper_p_value(self.zscore(X))
        return np.stack([p, 1.0 - p], axis=1)

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path, litert: bool = True) -> dict:
        """Write the learned state into ``folder`` as plain files (``arrays.npz``: no pickles) and return
        the card's fields: ``kind``, ``input_spec``, ``params``, ``files`` (name -> SHA-256 of the bytes
        written), ``training``, ``stats``. ``litert``: for kinds holding a network, whether to write its
        LiteRT twins too (NumPy kinds have none)."""
        self._check_fitted()
        params, arrays = self._arrays()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        Path(folder, ARRAYS_FILE).write_bytes(data)
        return self._card_fields(params, {ARRAYS_FILE: sha256_bytes(data)})

    def _card_fields(self, params: dict, files: dict[str, str]) -> dict:
        """What :meth:`save` returns: the kind's ``params`` and ``files`` (name -> SHA-256) beside the fields
        every kind has (``kind``, ``input_spec``, ``training``, ``stats``)."""
        return {"kind": self.kind, "input_spec": self.spec_.to_dict(), "params": params, "files": files,
                "training": self.training_, "stats": self.stats_.to_dict()}

    @classmethod
    def _card_params(cls, card: dict) -> dict:
        """The card's ``params`` (a copy), once the card is checked to be of this kind."""
        if card.get("kind") != cls.kind:
            raise InputError(f"card kind: expected {cls.kind!r}, got {card.get('kind')!r}")
        return dict(card.get("params") or {})

    def _restore(self, card: dict) -> ClassModel:
        """Take the fields every kind has from ``card``: its input spec, error statistics and training record."""
        self.spec_ = InputSpec.from_dict(card["input_spec"])
        self.stats_ = st.ErrorStats.from_dict(card["stats"])
        self.training_ = dict(card.get("training") or {})
        return self

    @classmethod
    def load(cls, card: dict, files: dict[str, bytes], runtime: str = "auto") -> ClassModel:
        """A fitted model from its card's fields and the bytes of its files (checked by the caller against
        the card's SHA-256 before this is called: what is checked is what is loaded). ``runtime`` is for
        kinds that hold a network (NumPy kinds answer the same whatever it is)."""
        params = cls._card_params(card)
        arrays = read_arrays(cls.kind, files)
        model = cls()._restore(card)
        model._from_arrays(params, arrays)
        return model

    def tf_network(self):
        """The Keras network an exported graph runs for this class (tracked once however many classes share it);
        for a kind that :attr:`exports`, loaded with the keras runtime."""
        raise NotImplementedError(f"bank export does not write {self.kind} models")

    def tf_score(self, images, cache: dict):
        """The raw scores (N,) of ``images`` (a float32 tensor (N, H, W, C) at the spec) as TensorFlow operations,
        for ``bank export``; ``cache`` holds, within one graph, what classes of the kind share (a backbone's
        features of the images)."""
        raise NotImplementedError(f"bank export does not write {self.kind} models")

def checksums(folder: Path, names) -> dict[str, str]:
    """File name -> SHA-256 of the bytes of each of ``names`` in ``folder`` (a card's ``files``)."""
    return {name: sha256_file(Path(folder) / name) for name in names}


def read_arrays(kind: str, files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The arrays of ``files[ARRAYS_FILE]`` (read with ``allow_pickle=False``); InputError naming the kind when
    the file is missing or is not plain arrays."""
    if ARRAYS_FILE not in files:
        raise InputError(f"{kind} model: missing file {ARRAYS_FILE}")
    try:
        with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:  # not an npz, or arrays of Python objects (pickles)
        raise InputError(f"{kind} model: {ARRAYS_FILE} is not plain arrays ({e})") from None
