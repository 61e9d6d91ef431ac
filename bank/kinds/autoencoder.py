"""The ``autoencoder`` kind: one small autoencoder per class, scored by its per-pixel reconstruction error.

``AutoencoderModel`` honours the class-model contract (:mod:`bank.kinds.base`): ``fit``
returns self, learned state ends in ``_``, ``decision_function`` gives the raw
score (higher = more anomalous), ``predict`` the 0/1 flag. Training splits the
class's images (seeded) three ways: a training set, a monitor set for early
stopping, and a calibration set that only the error statistics see.

The images may be in memory (an array or a list) or files on disk
(:class:`bank.io.pipeline.ImageFiles`, streamed through ``tf.data``: photos
that do not fit in memory). Training keeps the best epoch's weights, stops
early, and with a ``checkpoint_dir`` resumes where an interrupted run left off
(the folder and its Keras callbacks: :mod:`bank.nets.checkpoints`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..nets import checkpoints, feeding
from ..verdict import stats as st
from ..verdict.fitting import degenerate, fit_error_stats
from ..nets.checkpoints import _best_epoch, _Plan
from ..nets.convergence import advice, assess
from ..errors import InputError
from ..io.images import InputSpec, complexity, infer_spec, to_spec
from ..io.inputs import as_images, prepare
from ..io.pipeline import ImageFiles
from ..nets.stacked import DenseNet, GroupErrors
from ..nets.stacked import read as read_dense
from . import params as P
from .base import ClassModel, checksums, few_held_out, warn_training

#: The Keras model's file, and its LiteRT twins' (one per batch size).
MODEL_FILE = "model.keras"
LITERT_FILE = "model-b{batch}.tflite"
#: A dense model's weights as one plain array, for a bank to stack its classes (:mod:`bank.nets.stacked`).
DENSE_FILE = "model-dense.npy"

#: Fewest images a class needs: two to calibrate, one to monitor, one to train.
MIN_IMAGES = 4

#: With ``shift="auto"``, a class with fewer training images than this is trained on images shifted by up
#: to ``SMALL_SHIFT`` of their sides.
SMALL_CLASS = 1000
SMALL_SHIFT = 0.1


class AutoencoderModel(ClassModel):
    """A one-class autoencoder with fitted statistics of its normal error: the ``autoencoder`` kind.

    It honours the contract of :class:`~bank.kinds.base.ClassModel` (``fit``, ``score_samples``,
    ``measure``, ``zscore``, ``predict``, ``predict_proba``, the held-out statistics), with its own
    training (monitor split, early stopping, checkpoints, resume) and its files: a Keras model and its
    LiteRT twins, checked against it (:meth:`save`, :meth:`load`), answered through LiteRT.

    Parameters
    ----------
    spec : InputSpec or None
        Input size and colour; None infers it from the training images.
    architecture : "auto", "conv" or "dense"
        "auto" picks dense for inputs up to 16x16, conv above.
    params : dict or None
        Architecture keyword arguments (filters, latent_dim, hidden);
        None uses the defaults for the input size.
    epochs, batch_size, learning_rate, patience
        Adam on MSE, at most ``epochs`` epochs; the best epoch on the monitor set is kept, and training
        stops once ``patience`` epochs in a row have not lowered the monitor set's loss by
        ``min_improvement`` (a share of it, 1%): a small class trains while it still learns, a large
        one stops when the gains are too small to matter.
    shift : "auto" or float
        Each training image is moved by a random shift of up to this share of its height and width,
        anew each epoch (0 turns it off): on a few hundred images the model learns the class, not
        where those images put it. "auto": ``SMALL_SHIFT`` for a class with fewer than
        ``SMALL_CLASS`` training images, else 0 (on a large class the shifts cost more in telling
        classes apart than they add: measured in docs/benchmarks.md).
    calibration_fraction : float
        Share of images held out to fit the error statistics.
    monitor_fraction : float
        Share of the remaining images held out for early stopping.
    seed : int
        Seeds the split, the weights and the shuffling.
    threshold : float
        z above which ``predict`` flags an image.
    method : "complexity", "lognormal" or "gaussian"
        The fit z is taken under: log error given the input's complexity
        (default), log error, or raw error (the seeds'); see :mod:`bank.verdict.stats`.
    complexity_threshold : float or None
        ``predict`` also flags an image whose log complexity is this many
        standard deviations from the class's (a blank page for a digit);
        None turns that test off.
    verbose : "auto", 0, 1 or 2
        Keras progress output during ``fit``: "auto" is a progress bar (1) on
        a terminal and one line per epoch (2) elsewhere; 0 is silent.
    progress : callable or None
        Told after each epoch: ``progress({"epoch", "epochs", "loss", "val_loss",
        "seconds"})``, ``seconds`` the epoch's time (for a person's progress line).
    checkpoint_dir : str, Path or None
        Where training keeps its state (the best epoch's weights, a backup
        of the last epoch, the loss log, and ``run.json``: the run's key).
        When ``fit`` is called again with the same images and parameters
        (the same :meth:`run_key`) after an interruption, it resumes from the
        last finished epoch; other images or parameters start over. One
        folder serves one process at a time (:mod:`bank.nets.trainstate` hands
        them out). None: a temporary folder, removed after ``fit``.
    """

    kind = "autoencoder"
    #: A dense network's weights, loaded with runtime "auto" for a bank of such classes to stack
    #: (:meth:`group_scorer`); None for another architecture, an older entry or another runtime.
    dense_: DenseNet | None = None
    summary = "a small autoencoder trained on the class's images (Keras; answers through LiteRT)"
    score_unit = st.PIXEL_MSE  #: per-pixel squared error: raw errors compare across classes
    reconstructs = True
    resumes = True
    exports = True
    training_options = ("architecture", "params", "epochs", "batch_size", "learning_rate", "patience",
                        "min_improvement", "shift", "verbose", "progress")
    rules = {
        "architecture": P.one_of("auto", "conv", "dense"),
        "params": P.one_of(None) | P.mapping(),
        "epochs": P.whole(1),
        "batch_size": P.whole(1),
        "learning_rate": P.number(0, low_open=True),
        "patience": P.whole(0),
        "min_improvement": P.number(0, 1, high_open=True, text="a share from 0 to below 1"),
        "shift": P.one_of("auto") | P.number(0, 0.5, high_open=True,
                                             text="a share of the image from 0 (off) to below 0.5"),
        "monitor_fraction": P.number(0, 1, low_open=True, high_open=True, text="a number strictly between 0 and 1"),
        "verbose": P.one_of("auto", 0, 1, 2),
        "checkpoint_dir": P.anything("a folder or None"),
        "progress": P.callable_or_none(),
    }

    def __init__(
        self,
        *,
        spec: InputSpec | None = None,
        architecture: str = "auto",
        params: dict | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        patience: int = 8,
        min_improvement: float = 0.01,
        shift: float | str = "auto",
        calibration_fraction: float = 0.1,
        monitor_fraction: float = 0.1,
        seed: int = 0,
        threshold: float = st.DEFAULT_THRESHOLD,
        method: str = "complexity",
        complexity_threshold: float | None = st.DEFAULT_COMPLEXITY,
        verbose: str | int = "auto",
        checkpoint_dir: str | Path | None = None,
        progress: Callable[[dict], None] | None = None,
    ):
        self.spec = spec
        self.architecture = architecture
        self.params = params
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.min_improvement = min_improvement
        self.shift = shift
        self.calibration_fraction = calibration_fraction
        self.monitor_fraction = monitor_fraction
        self.seed = seed
        self.threshold = threshold
        self.method = method
        self.complexity_threshold = complexity_threshold
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    # ------------------------------------------------------------ fitting

    def _keras_verbose(self) -> int:
        if self.verbose != "auto":
            return int(self.verbose)
        return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2

    def _shift(self, n_train: int) -> float:
        """The shift ``fit`` trains with on ``n_train`` images (``shift`` with "auto" resolved)."""
        if self.shift == "auto":
            return SMALL_SHIFT if n_train < SMALL_CLASS else 0.0
        return float(self.shift)

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if n < MIN_IMAGES:
            raise InputError(f"a class needs at least {MIN_IMAGES} readable images to train, got {n}")
        order = np.random.default_rng(self.seed).permutation(n)
        n_cal = max(2, round(self.calibration_fraction * n))
        n_mon = max(1, round(self.monitor_fraction * (n - n_cal)))
        n_mon = min(n_mon, n - n_cal - 1)
        return order[n_cal + n_mon :], order[n_cal : n_cal + n_mon], order[:n_cal]

    def _plan(self, X: np.ndarray | Sequence[np.ndarray] | ImageFiles) -> _Plan:
        """What ``fit`` trains on ``X``: the images at their spec, the split and the architecture,
        resolved from the parameters. The one place both :meth:`fit` and :meth:`run_key` take them from."""
        self._check_params()
        files = X if isinstance(X, ImageFiles) else None
        if files is not None:
            if not len(files):
                raise InputError("no readable images to train on")
            spec, x, n = self.spec or files.spec(), None, len(files)
        else:
            X = as_images(X, "training images")
            spec = self.spec or infer_spec(X)
            x = to_spec(X, spec)
            n = len(x)
        split = self._split(n)

        from ..nets import models

        if self.architecture == "auto":
            arch, params = models.default_architecture(spec.shape)
            params = {**params, **(self.params or {})}
        else:
            arch, params = self.architecture, dict(self.params or {})
        return _Plan(files, x, spec, n, split, arch, params)

    def run_key(self, X: np.ndarray | Sequence[np.ndarray] | ImageFiles) -> str:
        """The key of training on ``X`` with these parameters (hex SHA-256): a digest of the images
        (of the files' paths, sizes and times when streamed) and of every setting that shapes the
        training. It names the state a checkpoint folder holds: only the same key resumes from it."""
        return self._run_id(self._plan(X))

    def fit(self, X: np.ndarray | Sequence[np.ndarray] | ImageFiles) -> AutoencoderModel:
        """Train on images of one class and fit the error statistics.

        ``X``: an array (N, H, W[, C]), a list of decoded (H, W, C) images,
        or :class:`~bank.io.pipeline.ImageFiles` (streamed from disk).
        """
        plan = self._plan(X)
        spec, n, arch, params = plan.spec, plan.n, plan.arch, plan.params
        train_idx, mon_idx, cal_idx = plan.split

        from ..nets import models
        import keras

        keras.utils.set_random_seed(self.seed)
        model = models.build(arch, spec.shape, params)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        shift = self._shift(len(train_idx))
        fed = feeding.feed(plan, self.batch_size, self.seed, shift)
        # a temporary folder is never resumed: no digest of the data needed
        run_id = "temporary" if self.checkpoint_dir is None else self._run_id(plan)
        self.history_ = self._train(model, fed.train, fed.monitor, run_id)
        self.spec_, self.architecture_, self.params_, self.model_ = spec, arch, params, model
        cal_errors, cal_cx, train_errors = feeding.held_out(plan, self._error_fn(), lambda *bad: fed.late.append(bad))
        self.stats_ = fit_error_stats(cal_errors, cal_cx)
        val = self.history_.get("val_loss", [])
        self.training_ = {
            **{k: getattr(self, k) for k in checkpoints.RUN_SETTINGS}, "shift": shift,  # as run: "auto" resolved
            "epochs_run": len(val),
            "best_epoch": _best_epoch(val, self.best_since_),
            "optimizer": "adam",
            "loss": "mse",
            "repeats_per_epoch": fed.repeats,
            "data": fed.data_note(plan),
            "n_images": int(n),
            "n_train": int(len(train_idx)),
            "n_monitor": int(len(mon_idx)),
            "n_calibration": int(len(cal_idx)),
            "train_error_mean": float(np.mean(train_errors)),
            "convergence": assess(val, self.epochs, self.patience),
            "warnings": [],
        }
        if self.resumed_from_:
            self.training_["resumed_from_epoch"] = self.resumed_from_
        if fed.late:
            gone = sorted({n for n, _ in fed.late})
            self.training_["warnings"].append(f"{len(gone)} file(s) could not be read during training and were "
                                              f"left out: {', '.join(gone[:10])}")
        warn_training(self.training_, advice(self.training_["convergence"], self.epochs, self.patience))
        warn_training(self.training_, few_held_out(len(cal_idx)))
        warn_training(self.training_, degenerate(self.stats_))
        return self

    def _run_id(self, plan: _Plan) -> str:
        """What a checkpoint must match to be resumed: the data and every training parameter."""
        return checkpoints.run_key(plan, {k: getattr(self, k) for k in checkpoints.RUN_SETTINGS})

    def _train(self, model, train, monitor, run_id: str) -> dict[str, list[float]]:
        """Fit with Keras, keeping and resuming state in ``checkpoint_dir`` (:func:`bank.nets.checkpoints.train`);
        sets ``resumed_from_`` and ``best_since_``. Returns the history of every epoch (those before a
        resume too), the model left at its best epoch."""
        def resumed(from_epoch: int, best_since: int) -> None:
            self.resumed_from_, self.best_since_ = from_epoch, best_since

        return checkpoints.train(model, train, monitor, run_id, self.checkpoint_dir, epochs=self.epochs,
                                 batch_size=self.batch_size, patience=self.patience,
                                 min_improvement=self.min_improvement, verbose=self._keras_verbose(),
                                 progress=self.progress, on_resume=resumed)

    # ------------------------------------------------------------ scoring

    def reconstruction_error(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Per-image reconstruction error (per-pixel MSE in [0, 1] units), shape (N,).

        ``X``: what :meth:`bank.Router.score` takes (:func:`bank.io.inputs.as_images`): an (H, W) or (H, W, C)
        array with C <= 4 is one image (a decoded photo), (N, H, W) or (N, H, W, C) a stack; a file path; a
        PIL image; or a list mixing these. Each is brought to the model's spec (size, colour) like a file.
        The other scoring methods take the same.
        """
        self._check_fitted()
        return self._errors(prepare(X, self.spec_), batch_size)

    def measure(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the reconstruction error and the input's complexity at the model's spec, each (N,)."""
        self._check_fitted()
        x = prepare(X, self.spec_)
        return self._errors(x, batch_size), complexity(x)

    def _error_fn(self):
        """Images at the model's spec -> their errors, (N,)."""
        from ..nets.runtime import error_fn

        fn = error_fn([self.model_], self.spec_.shape)
        return lambda x: fn(x)[:, 0]

    def _errors(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Errors of images already at the model's spec (no second validation)."""
        fn = self._error_fn()
        return np.concatenate([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    _scores = _errors  # the contract's raw score: the reconstruction error
    decision_function = reconstruction_error
    score_samples = reconstruction_error

    def reconstruct(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The images as the model sees them (at its spec) and its reconstructions, both (N, H, W, C)."""
        self._check_fitted()
        x = prepare(X, self.spec_)
        out = [np.asarray(self.model_.predict_on_batch(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return x, np.concatenate(out)

    # ------------------------------------------------------------ the bank's scorer, files

    @classmethod
    def group_scorer(cls, models: Sequence[AutoencoderModel]) -> Callable[[np.ndarray], np.ndarray]:
        """Errors of images (at the models' shared spec) under every one of ``models``, (N, K). Dense models
        loaded with their weights (``dense_``) are stacked in NumPy, a few products for every class of one
        shape (:class:`bank.nets.stacked.GroupErrors`); the others in one compiled call: LiteRT models share
        the classes among the cores, Keras models are fused into one graph (:func:`bank.nets.runtime.error_fn`)."""
        from ..nets.runtime import error_fn

        shape = models[0].spec_.shape
        nets = [m.dense_ for m in models]
        if all(net is None for net in nets):
            return error_fn([m.model_ for m in models], shape)
        return GroupErrors(nets, lambda cols: error_fn([models[j].model_ for j in cols], shape))

    def tf_network(self):
        return self.model_

    def tf_score(self, images, cache: dict):
        """The error as :func:`bank.nets.models.error_model` defines it: per-pixel MSE, in float32."""
        import tensorflow as tf

        return tf.reduce_mean(tf.square(self.model_(images, training=False) - images), axis=[1, 2, 3])

    def card_fields(self) -> dict:
        """What this model's card says of its network (architecture, training, curves, statistics): the
        ``ae`` part of an ae-hog card, and what :meth:`from_card` reads back."""
        self._check_fitted()
        return {
            "input_spec": self.spec_.to_dict(),
            "architecture": {"name": self.architecture_, "params": self.params_},
            "training": self.training_,
            "history": self.history_,
            "stats": self.stats_.to_dict(),
        }

    def save(self, folder: str | Path, litert: bool = True) -> dict:
        """Write the Keras model ``model.keras`` and, with ``litert``, what answers without TensorFlow: its LiteRT
        twins and a dense model's weights as one plain array (:data:`DENSE_FILE`), each checked against it, into
        ``folder``; the card's fields, the architecture and loss curves in ``params``."""
        from ..nets.netfiles import write_autoencoder

        self._check_fitted()
        fields, written = write_autoencoder("the autoencoder", self.model_, self.spec_, Path(folder), MODEL_FILE,
                                            LITERT_FILE, DENSE_FILE, litert)
        params = {"architecture": {"name": self.architecture_, "params": self.params_}, "history": self.history_,
                  **fields}
        return self._card_fields(params, checksums(Path(folder), written))

    @classmethod
    def load(cls, card: dict, files: dict[str, bytes], runtime: str = "auto") -> AutoencoderModel:
        """The model from its card and the checked bytes of its files: the LiteRT twins when ``runtime``
        allows (:func:`bank.nets.netfiles.load_network`), else the Keras model in safe mode."""
        from ..nets.netfiles import load_network

        params = cls._card_params(card)
        arch = params.get("architecture")
        if not (isinstance(arch, dict) and isinstance(arch.get("name"), str) and isinstance(arch.get("params"), dict)):
            raise InputError("autoencoder params: architecture must be an object with 'name' and 'params'")
        shape = InputSpec.from_dict(card["input_spec"]).shape
        net = load_network(files, MODEL_FILE, LITERT_FILE, shape, None, runtime, f"{cls.kind} model",
                           (params.get("litert") or {}).get("skipped"))
        model = cls.from_card({**card, "architecture": arch, "history": params.get("history") or {}}, net)
        if runtime == "auto":  # "keras" (the reference) and "litert" run each class through its own network
            model.dense_ = read_dense(params.get("dense"), files, shape, cls.kind)
        return model

    @classmethod
    def from_card(cls, card: dict, model: object) -> AutoencoderModel:
        """A fitted model from its card's fields (:meth:`card_fields`) and its loaded network."""
        det = cls(threshold=st.DEFAULT_THRESHOLD, verbose=0)
        det.spec_ = InputSpec.from_dict(card["input_spec"])
        det.architecture_ = card["architecture"]["name"]
        det.params_ = card["architecture"]["params"]
        det.training_ = card.get("training", {})
        det.history_ = card.get("history", {})
        det.stats_ = st.ErrorStats.from_dict(card["stats"])
        det.model_ = model
        return det

    @classmethod
    def upgrade_card(cls, card: dict) -> dict:
        """A card written before every kind had one card format (no ``kind``; ``architecture``, ``history``,
        ``model_sha256`` and ``litert`` at its top) in today's: ``files`` lists the model and its LiteRT twins,
        ``params`` holds the rest. Nothing else changes: the model loads and answers as it did."""
        old = dict(card)
        lite = old.pop("litert", None) or {}
        files = {old.pop("model_file", None) or MODEL_FILE: old.pop("model_sha256")}
        for f in lite.get("files", []):
            files[f["file"]] = f["sha256"]
        params = {"architecture": old.pop("architecture"), "history": old.pop("history", {}),
                  "litert": ({k: v for k, v in lite.items() if k != "files"} if lite
                             else {"skipped": "registered before LiteRT artifacts were written"})}
        return {**old, "kind": cls.kind, "params": params, "files": files}

    @classmethod
    def describe(cls, params: dict) -> tuple[str, dict]:
        """What ``bank show`` and ``bank list`` call the model, and its settings worth showing."""
        arch = params.get("architecture") or {}
        return f"{arch.get('name')} autoencoder", dict(arch.get("params") or {})
