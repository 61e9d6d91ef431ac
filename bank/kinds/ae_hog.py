"""A class model of two experts: the autoencoder's error, weighed by how the class's HOG one-class SVM finds the image.

Each expert learns from the class's own images only. The autoencoder knows the class's pixels (and so
its contrast: an inverted digit), the HOG SVM its shapes (a rotated digit, a letter); alone, each misses
what the other sees. Their product of experts scores an image by

    score = error_ae * (score_hog / typical_hog) ** weight

so ``log score = log error_ae + weight * (log score_hog - log typical_hog)``: the autoencoder's
per-pixel squared error, raised or lowered by how far the HOG score is from the class's typical one.
``typical_hog`` (the geometric mean of the HOG scores of held-out images) puts every class's HOG term
on one footing, so classes of this kind compare raw scores as autoencoders do. ``weight="auto"``
evens the two terms' spreads on held-out images: the standard deviation of the log AE error over
that of the log HOG score (about 7 on MNIST). Both are set on a tenth of the training images that
neither expert learnt from (seeded), apart from the held-out images the error statistics are fitted
on.

Measured on MNIST (1,000 training images a digit, the same models scored both ways): the
autoencoder alone 0.9802 argmin accuracy and 0.914 mean one-class AUROC; with the HOG term at
weight 6 (about "auto"), 0.9847 and 0.984; weight 1, 0.9867 and 0.941. It answers at the speed of
the two together: the autoencoders stacked in NumPy when dense (else LiteRT), the HOG of a batch once and
every class's kernel sum in one product (docs/benchmarks.md, "ae-hog made fast").

Files: the autoencoder's Keras model ``ae.keras``, its LiteRT twins ``ae-b1.tflite``,
``ae-b4.tflite`` and, for a dense autoencoder, its weights as one array ``ae-dense.npy`` (each
checked against Keras at saving), and the SVM's arrays in ``arrays.npz``; every one listed in the
card with its SHA-256. Loading runs the dense weights stacked with the bank's other classes'
(:mod:`bank.nets.stacked`), else the LiteRT twins when they are there and ``ai-edge-litert`` is
installed (no TensorFlow), else the Keras model in safe mode. ``bank export`` writes it as TensorFlow
operations, the HOG and the kernel sums too (:mod:`bank.kinds.hog_graph`; the full MNIST bank's export
labels 2,000 test digits as the router does, errors within 5e-6).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..verdict import stats as st
from ..errors import InputError
from ..io.images import InputSpec
from .autoencoder import AutoencoderModel
from . import params as P
from .base import ARRAYS_FILE, ClassModel, checksums, read_arrays
from .hog_ocsvm import HOGOneClassSVM
from .kernel_sums import fused_scorer

#: The autoencoder's files in the entry's folder (a dense one's weights also as one array, to stack a bank's).
AE_FILE = "ae.keras"
AE_LITERT = "ae-b{batch}.tflite"
AE_DENSE = "ae-dense.npy"

#: Share of the training images kept apart to set the HOG term's footing and weight.
CONSTANTS_FRACTION = 0.1
#: The autoencoder inside, unless told: dense for images of up to this many pixels (MNIST's 28x28 too)...
DENSE_PIXELS = 32 * 32
#: ... with these layers past the autoencoder's own tiny-image default (16x16 and less).
DENSE_LAYERS = {"hidden": [512, 128], "latent_dim": 32}
#: Most epochs of the autoencoder inside, unless told (early stopping ends sooner): at the autoencoder's 30 the
#: dense one's early-stopping loss was still falling on 2 of MNIST's 10 digits; at 60 digit 0 stopped at 45,
#: no warning, the same AUROC (0.9993), 27 s against 23 s.
EPOCHS = 60


def inner_architecture(shape: tuple[int, int, int]) -> tuple[str, dict] | None:
    """The autoencoder inside for images of ``shape``, when the user names none: None (the autoencoder's own
    choice) for images of up to 16x16 or over :data:`DENSE_PIXELS`, else a dense one of
    :data:`DENSE_LAYERS`. Beside the HOG term, which knows the shapes, the dense autoencoder's pixels are as
    good as the conv one's at a seventh of the multiply-adds (MNIST, 1,000 images a digit, 10 epochs: argmin
    0.9767 / 0.9774, mean one-class AUROC 0.9888 / 0.9858, fit 8 s / 59 s a class; docs/kinds.md)."""
    h, w, _ = shape
    return ("dense", dict(DENSE_LAYERS)) if 16 * 16 < h * w <= DENSE_PIXELS else None


def inner_choice(shape: tuple[int, int, int], architecture: str, params: dict | None) -> tuple[str, dict | None]:
    """The autoencoder inside, from what the user said: with :func:`inner_architecture`'s dense choice, the
    autoencoder's own "auto" becomes dense unless conv filters are named (a latent size alone keeps it
    dense), and "dense" without layers takes :data:`DENSE_LAYERS`; anything else as said."""
    chosen = inner_architecture(shape)
    params = dict(params or {})
    if chosen is None or architecture not in ("auto", "dense") or (architecture == "auto" and "filters" in params):
        return architecture, params or None
    return "dense", {**chosen[1], **{k: v for k, v in params.items() if k in ("hidden", "latent_dim")}}


class AEHOGModel(ClassModel):
    """The ``ae-hog`` kind: an autoencoder and a HOG one-class SVM of the class, scored as one.

    Parameters
    ----------
    ae : dict or None
        Keyword arguments of :class:`bank.kinds.autoencoder.AutoencoderModel` (``epochs``, ``architecture``,
        ``params``, ...); its ``spec`` and ``seed`` are this model's.
    svm : dict or None
        Keyword arguments of :class:`bank.kinds.hog_ocsvm.HOGOneClassSVM`.
    weight : "auto" or float
        The HOG term's exponent (see the module); "auto" evens the two terms' spreads.
    **common
        :class:`~bank.kinds.base.ClassModel`'s (``spec``, ``calibration_fraction``, ``seed``, the rule).
    """

    kind = "ae-hog"
    summary = "an autoencoder and a HOG one-class SVM scored as one"
    score_label = "the ae-hog score"
    score_unit = "ae-hog"  #: the AE's squared error times a class-relative HOG factor: compares within the kind
    reconstructs = True
    #: an interrupted training goes on from the autoencoder's last finished epoch (the SVM is fitted anew: seconds)
    resumes = True
    #: where the autoencoder inside keeps its training state (:mod:`bank.nets.checkpoints`); set by whoever runs
    #: the training (``bank.training.runs``), None: a temporary folder
    checkpoint_dir = None
    exports = True  #: the autoencoder and the HOG SVM in one TensorFlow graph (bank.kinds.hog_graph)
    #: its held-out log scores lean right (skew 0.5-1.7 on MNIST's digits): spreads from the 0.975 quantile
    #: flag 1.53% of the test digits by their own class where the mean and deviation flagged 2.28% (docs/kinds.md)
    tail_spread = 0.975
    #: the autoencoder's training options, for the autoencoder inside (:meth:`from_options`)
    training_options = AutoencoderModel.training_options

    @classmethod
    def option_default(cls, name: str) -> object:
        """The autoencoder's defaults (the options are the autoencoder's inside), but :data:`EPOCHS`."""
        return EPOCHS if name == "epochs" else AutoencoderModel.option_default(name)

    @classmethod
    def from_options(cls, spec: InputSpec | None = None, **options) -> AEHOGModel:
        """An ae-hog model whose autoencoder takes the training options (its ``spec`` and ``seed`` are this
        model's)."""
        ae = {k: v for k, v in options.items() if k in cls.training_options}
        return cls(spec=spec, ae=ae, **{k: v for k, v in options.items() if k == "seed"})

    def __init__(self, *, ae: dict | None = None, svm: dict | None = None, weight: str | float = "auto", **common):
        super().__init__(**common)
        self.ae = ae
        self.svm = svm
        self.weight = weight

    rules = {"ae": P.one_of(None) | P.mapping(), "svm": P.one_of(None) | P.mapping(),
             "weight": P.one_of("auto") | P.number(0)}

    def _check_together(self) -> None:
        """The autoencoder's and the SVM's own parameters, by their own rules."""
        try:
            AutoencoderModel(**{k: v for k, v in (self.ae or {}).items() if k not in ("spec", "seed")})._check_params()
            HOGOneClassSVM(**(self.svm or {}))
        except TypeError as err:  # a keyword neither takes
            raise InputError(f"ae-hog: {err}") from None

    # ------------------------------------------------------------ learning
    def _inner(self, x: np.ndarray, spec: InputSpec) -> tuple[AutoencoderModel, np.ndarray, np.ndarray]:
        """The autoencoder inside, unfitted (keeping its training state in :attr:`checkpoint_dir`), the images that
        set the HOG term's footing and weight, and those both experts learn from, of training images ``x``."""
        order = np.random.default_rng(self.seed + 1).permutation(len(x))
        n_const = min(max(2, round(CONSTANTS_FRACTION * len(x))), len(x) - 4)
        if n_const < 2:
            raise InputError(f"ae-hog: a class needs about 8 images or more: 6 to learn from besides the share held "
                             f"out for its statistics, and {len(x)} were left; give it more, or train the whole bank "
                             "with --kind autoencoder (4 images a class; a class of another kind beside these would "
                             "make the bank compare every class relative to its few held-out images)")
        const, learn = x[np.sort(order[:n_const])], x[np.sort(order[n_const:])]
        ae = {"verbose": 0, "epochs": EPOCHS, **(self.ae or {}), "spec": spec, "seed": self.seed}
        if self.checkpoint_dir is not None:  # the run's folder (bank train), else the one the caller named, if any
            ae["checkpoint_dir"] = self.checkpoint_dir
        ae["architecture"], ae["params"] = inner_choice(spec.shape, ae.get("architecture", "auto"), ae.get("params"))
        return AutoencoderModel(**ae), const, learn

    def run_key(self, X) -> str:
        """The key of training on ``X`` with these parameters: the autoencoder inside's
        (:meth:`AutoencoderModel.run_key`) on the images it learns from. It names the state a checkpoint
        folder holds: only the same key resumes from it."""
        self._check_params()
        x, spec, _ = self._read(X)
        train_idx, _ = self._split(len(x))
        inner, _, learn = self._inner(x[train_idx], spec)
        return inner.run_key(learn)

    def _fit_core(self, x: np.ndarray) -> None:
        inner, const, learn = self._inner(x, self.spec_)
        self.ae_ = inner.fit(learn)
        self.hog_ = HOGOneClassSVM(**{"seed": self.seed, **(self.svm or {})}).fit(learn)
        log_ae = np.log(np.maximum(self.ae_._errors(const), st.LOG_FLOOR))
        log_hog = np.log(np.maximum(self.hog_.score_samples(const), st.LOG_FLOOR))
        self.hog_log_mean_ = float(log_hog.mean())
        if self.weight == "auto":
            spread = float(log_hog.std(ddof=1))
            self.weight_ = float(log_ae.std(ddof=1) / spread) if spread > 0 else 1.0
        else:
            self.weight_ = float(self.weight)

    @classmethod
    def describe(cls, params: dict) -> tuple[str, dict]:
        """What ``bank show`` and ``bank list`` call the model, and its settings worth showing: the autoencoder's
        layers, the HOG term's weight and support vectors (not the inner models' curves and statistics)."""
        arch = (params.get("ae") or {}).get("architecture") or {}
        hog = params.get("hog") or {}
        shown = {**dict(arch.get("params") or {}), "weight": None if params.get("weight_used") is None else round(float(params["weight_used"]), 2),
                 "support_vectors": hog.get("n_support"), "weight_share": hog.get("weight_share", 1.0)}
        return f"{arch.get('name')} autoencoder + HOG one-class SVM", {k: v for k, v in shown.items() if v is not None}

    def curves(self) -> dict[str, list[float]]:
        return self.ae_.curves() if hasattr(self, "ae_") else {}  # the autoencoder inside trains by epochs

    def _record_training(self, n, train_idx, cal_idx, train_scores, late) -> None:
        super()._record_training(n, train_idx, cal_idx, train_scores, late)
        if self.ae_.training_.get("resumed_from_epoch"):  # the autoencoder went on from an interrupted run
            self.training_["resumed_from_epoch"] = self.ae_.training_["resumed_from_epoch"]

    def _epochs_and_patience(self, ran: int) -> tuple[int, int]:
        return self.ae_.epochs, self.ae_.patience

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two experts' raw scores of images at the spec: the AE's error and the HOG score."""
        return self.ae_._errors(x), self.hog_.score_samples(x)

    def _combine(self, e: np.ndarray, h: np.ndarray) -> np.ndarray:
        log_h = np.log(np.maximum(h, st.LOG_FLOOR))
        return np.maximum(np.asarray(e, np.float64), st.LOG_FLOOR) * np.exp(self.weight_ * (log_h - self.hog_log_mean_))

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._combine(*self._parts(x))

    @classmethod
    def group_scorer(cls, models):
        """Scores by every one of ``models`` (one spec): their autoencoders as an autoencoder bank's (dense ones
        stacked in NumPy, others in one LiteRT or Keras call), their HOG terms by
        :func:`~bank.kinds.kernel_sums.fused_scorer`."""
        fused = AutoencoderModel.group_scorer([m.ae_ for m in models])
        hog = fused_scorer([m.hog_ for m in models])  # the HOG of the batch once, every kernel sum in one product

        weight = np.array([m.weight_ for m in models])
        footing = np.array([m.hog_log_mean_ for m in models])

        def score(x: np.ndarray) -> np.ndarray:  # _combine, every class at once
            e, h = fused(x), hog(x)
            log_h = np.log(np.maximum(h, st.LOG_FLOOR))
            return np.maximum(np.asarray(e, np.float64), st.LOG_FLOOR) * np.exp(weight * (log_h - footing))

        return score

    def tf_network(self):
        return self.ae_.model_

    def tf_score(self, images, cache: dict):
        """The score as TensorFlow operations (float32, as the other kinds'): the autoencoder's error times the
        HOG term, the HOG of the images made once per HOG setting in the graph (``cache``) as the router does
        (:mod:`bank.kinds.hog_graph`)."""
        import tensorflow as tf

        from .hog_graph import hog_graph, kernel_score_graph

        d = self.hog_
        key = ("hog", d.hog_key)
        if key not in cache:
            cache[key] = hog_graph(images, d.orientations, d.pixels_per_cell_, d.cells_per_block, d.block_norm,
                                   d.signed)
        e = tf.maximum(tf.cast(self.ae_.tf_score(images, cache), tf.float64), st.LOG_FLOOR)
        log_h = tf.math.log(tf.maximum(kernel_score_graph(d, cache[key]), st.LOG_FLOOR))
        return tf.cast(e * tf.exp(self.weight_ * (log_h - self.hog_log_mean_)), tf.float32)

    def reconstruct(self, X, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The images at the model's spec and the autoencoder's reconstructions (for the report's pictures)."""
        self._check_fitted()
        return self.ae_.reconstruct(X, batch_size)

    # ------------------------------------------------------------ files
    def save(self, folder: str | Path, litert: bool = True) -> dict:
        """Write the autoencoder (Keras, LiteRT and, for a dense one, its stacked weights) and the SVM's arrays
        into ``folder``; the card's fields."""
        from ..nets.netfiles import write_autoencoder

        self._check_fitted()
        folder = Path(folder)
        fields, written = write_autoencoder(f"the {self.kind} network", self.ae_.model_, self.spec_, folder, AE_FILE,
                                            AE_LITERT, AE_DENSE, litert)
        hog_params, arrays = self.hog_.to_arrays()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (folder / ARRAYS_FILE).write_bytes(buf.getvalue())
        files = checksums(folder, [*written, ARRAYS_FILE])
        ae_fields = self.ae_.card_fields()
        params = {"kind": self.kind, "weight": self.weight, "weight_used": self.weight_,
                  "hog_log_mean": self.hog_log_mean_, "hog": hog_params,
                  "ae": {k: ae_fields[k] for k in ("architecture", "training", "history", "stats")}, **fields}
        return self._card_fields(params, files)

    @classmethod
    def load(cls, card: dict, files: dict[str, bytes], runtime: str = "auto") -> AEHOGModel:
        """The model from its card and the checked bytes of its files (``runtime`` as
        :func:`bank.nets.netfiles.load_network`: LiteRT when it can, else Keras)."""
        from ..nets.netfiles import load_network
        from ..nets.stacked import read as read_dense

        params = cls._card_params(card)
        for name in ("ae", "hog", "hog_log_mean", "weight_used"):
            if name not in params:
                raise InputError(f"{cls.kind} params: missing {name!r}")
        if AE_FILE not in files:
            raise InputError(f"{cls.kind} model: missing file {AE_FILE}")
        arrays = read_arrays(cls.kind, files)
        model = cls(weight=params.get("weight", "auto"))._restore(card)
        net = load_network(files, AE_FILE, AE_LITERT, model.spec_.shape, None, runtime, f"{cls.kind} model")
        model.ae_ = AutoencoderModel.from_card({"input_spec": card["input_spec"], **params["ae"]}, net)
        if runtime == "auto":  # as the autoencoder's: "keras" and "litert" run each class's own network
            model.ae_.dense_ = read_dense(params.get("dense"), files, model.spec_.shape, cls.kind)
        model.hog_ = HOGOneClassSVM.from_arrays(params["hog"], arrays)
        model.hog_log_mean_ = float(params["hog_log_mean"])
        model.weight_ = float(params["weight_used"])
        return model
