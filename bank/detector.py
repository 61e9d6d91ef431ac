"""One class, one autoencoder: the detector every class model honours.

``AutoencoderDetector`` follows the scikit-learn / PyOD contract: ``fit``
returns self, learned state ends in ``_``, ``decision_function`` gives the raw
score (higher = more anomalous), ``predict`` the 0/1 flag. Training splits the
class's images (seeded) three ways: a training set, a monitor set for early
stopping, and a calibration set that only the error statistics see.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from . import stats as st
from .images import InputSpec, as_images, complexity, infer_spec, prepare, to_spec
from .router import decide

#: Fewest images a class needs: two to calibrate, one to monitor, one to train.
MIN_IMAGES = 4

#: A small class is repeated within an epoch so that an epoch is at least this
#: many steps: Keras spends ~0.1 s per epoch on overhead whatever its size.
MIN_STEPS_PER_EPOCH = 25

#: Below this many held-out images, the fitted statistics come with a warning.
MIN_CALIBRATION = 30


class NotFittedError(RuntimeError):
    """A detector was used before ``fit`` (or loading from a registry)."""


class AutoencoderDetector:
    """A one-class autoencoder with fitted statistics of its normal error.

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
        Adam on MSE; early stopping on the monitor set restores the best epoch.
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
        (default), log error, or raw error (the seeds'); see :mod:`bank.stats`.
    complexity_threshold : float or None
        ``predict`` also flags an image whose log complexity is this many
        standard deviations from the class's (a blank page for a digit);
        None turns that test off.
    verbose : "auto", 0, 1 or 2
        Keras progress output during ``fit``: "auto" is a progress bar (1) on
        a terminal and one line per epoch (2) elsewhere; 0 is silent.
    """

    def __init__(
        self,
        *,
        spec: InputSpec | None = None,
        architecture: str = "auto",
        params: dict | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        patience: int = 5,
        calibration_fraction: float = 0.1,
        monitor_fraction: float = 0.1,
        seed: int = 0,
        threshold: float = st.DEFAULT_THRESHOLD,
        method: str = "complexity",
        complexity_threshold: float | None = st.DEFAULT_COMPLEXITY,
        verbose: str | int = "auto",
    ):
        self.spec = spec
        self.architecture = architecture
        self.params = params
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.calibration_fraction = calibration_fraction
        self.monitor_fraction = monitor_fraction
        self.seed = seed
        self.threshold = threshold
        self.method = method
        self.complexity_threshold = complexity_threshold
        self.verbose = verbose

    # ------------------------------------------------------------ fitting

    def _keras_verbose(self) -> int:
        if self.verbose != "auto":
            return int(self.verbose)
        return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2

    def _check_params(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "patience" else 1):
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        for name in ("calibration_fraction", "monitor_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ValueError(f"{name}: expected a number strictly between 0 and 1, got {v!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate: expected a positive number, got {self.learning_rate!r}")
        st.check_method(self.method)
        st.check_complexity(self.complexity_threshold)
        if self.architecture not in ("auto", "conv", "dense"):
            raise ValueError(f"architecture: expected 'auto', 'conv' or 'dense', got {self.architecture!r}")

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if n < MIN_IMAGES:
            raise ValueError(f"a class needs at least {MIN_IMAGES} readable images to train, got {n}")
        order = np.random.default_rng(self.seed).permutation(n)
        n_cal = max(2, round(self.calibration_fraction * n))
        n_mon = max(1, round(self.monitor_fraction * (n - n_cal)))
        n_mon = min(n_mon, n - n_cal - 1)
        return order[n_cal + n_mon :], order[n_cal : n_cal + n_mon], order[:n_cal]

    def fit(self, X: np.ndarray | Sequence[np.ndarray]) -> AutoencoderDetector:
        """Train on images of one class and fit the error statistics.

        ``X``: an array (N, H, W[, C]) or a list of decoded (H, W, C) images.
        """
        self._check_params()
        X = as_images(X, "training images")
        spec = self.spec or infer_spec(X)
        x = to_spec(X, spec)
        train_idx, mon_idx, cal_idx = self._split(len(x))

        from . import models
        import keras

        keras.utils.set_random_seed(self.seed)
        if self.architecture == "auto":
            arch, params = models.default_architecture(spec.shape)
            params = {**params, **(self.params or {})}
        else:
            arch, params = self.architecture, dict(self.params or {})
        model = models.build(arch, spec.shape, params)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
        x_train, x_mon = x[train_idx], x[mon_idx]
        repeats = max(1, math.ceil(MIN_STEPS_PER_EPOCH * self.batch_size / len(x_train)))
        x_fit = np.tile(x_train, (repeats, 1, 1, 1)) if repeats > 1 else x_train
        hist = model.fit(
            x_fit, x_fit, validation_data=(x_mon, x_mon), epochs=self.epochs,
            batch_size=self.batch_size, shuffle=True, callbacks=[stop], verbose=self._keras_verbose(),
        )
        self.spec_, self.architecture_, self.params_, self.model_ = spec, arch, params, model
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        val = self.history_.get("val_loss", [])
        self.stats_ = st.fit_error_stats(self._errors(x[cal_idx]), complexity(x[cal_idx]))
        self.training_ = {
            "epochs": self.epochs,
            "epochs_run": len(val),
            "best_epoch": int(np.argmin(val)) + 1 if val else None,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patience": self.patience,
            "seed": self.seed,
            "optimizer": "adam",
            "loss": "mse",
            "calibration_fraction": self.calibration_fraction,
            "monitor_fraction": self.monitor_fraction,
            "repeats_per_epoch": repeats,
            "n_images": int(len(x)),
            "n_train": int(len(train_idx)),
            "n_monitor": int(len(mon_idx)),
            "n_calibration": int(len(cal_idx)),
            "train_error_mean": float(np.mean(self._errors(x_train))),
            "warnings": [],
        }
        if len(cal_idx) < MIN_CALIBRATION:
            msg = (f"the error statistics rest on {len(cal_idx)} held-out images (fewer than {MIN_CALIBRATION}): "
                   "z-scores and flags are rough; give the class more images")
            self.training_["warnings"].append(msg)
            warnings.warn(msg, stacklevel=2)
        return self

    # ------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This AutoencoderDetector is not fitted yet. Call 'fit' or load it from a registry."
            )

    def reconstruction_error(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Per-image reconstruction error (per-pixel MSE in [0, 1] units), shape (N,)."""
        self._check_fitted()
        return self._errors(prepare(X, self.spec_), batch_size)

    def measure(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the reconstruction error and the input's complexity at the model's spec, each (N,)."""
        self._check_fitted()
        x = prepare(X, self.spec_)
        return self._errors(x, batch_size), complexity(x)

    def _errors(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Errors of images already at the model's spec (no second validation)."""
        from .runtime import error_fn

        fn = error_fn([self.model_], self.spec_.shape)
        return np.concatenate([fn(x[i : i + batch_size])[:, 0] for i in range(0, len(x), batch_size)])

    decision_function = reconstruction_error

    def reconstruct(self, X: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The images as the model sees them (at its spec) and its reconstructions, both (N, H, W, C)."""
        self._check_fitted()
        x = prepare(X, self.spec_)
        out = [np.asarray(self.model_.predict_on_batch(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return x, np.concatenate(out)

    def zscore(self, X: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """z of each image's error against the class's held-out errors, under ``method``."""
        errors, cx = self.measure(X)
        return st.zscore(errors, self.stats_, self.method, cx)

    def predict(self, X: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """1 where the image is flagged as not this class, else 0: z > threshold, or its
        complexity z beyond ``complexity_threshold`` either way."""
        errors, cx = self.measure(X)
        res = decide(errors[:, None], ["class"], [self.stats_], threshold=self.threshold, method=self.method,
                     margin=None, complexity=cx[:, None], complexity_threshold=self.complexity_threshold)
        return res.flags[:, 0].astype(int)

    def predict_proba(self, X: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, 2): column 0 is the upper-tail p-value of z (large for normal
        images), column 1 is 1 minus it, the normal CDF of z (near 1 for
        images whose error is far above the class's normal errors). From the
        error's z alone: the complexity test of ``predict`` has no probability."""
        p = st.upper_p_value(self.zscore(X))
        return np.stack([p, 1.0 - p], axis=1)

    # ------------------------------------------------------------ persistence

    def card_fields(self) -> dict:
        """What a registry stores about this detector beside the model file."""
        self._check_fitted()
        return {
            "input_spec": self.spec_.to_dict(),
            "architecture": {"name": self.architecture_, "params": self.params_},
            "training": self.training_,
            "history": self.history_,
            "stats": self.stats_.to_dict(),
        }

    @classmethod
    def from_card(cls, card: dict, model: object) -> AutoencoderDetector:
        """Rebuild a fitted detector from a model card and its loaded model."""
        det = cls(threshold=st.DEFAULT_THRESHOLD, verbose=0)
        det.spec_ = InputSpec.from_dict(card["input_spec"])
        det.architecture_ = card["architecture"]["name"]
        det.params_ = card["architecture"]["params"]
        det.training_ = card.get("training", {})
        det.history_ = card.get("history", {})
        det.stats_ = st.ErrorStats.from_dict(card["stats"])
        det.model_ = model
        return det
