"""A class model that knows its class by how surely it tells which way an image of it was turned.

After Golan and El-Yaniv, "Deep Anomaly Detection Using Geometric Transformations" (NeurIPS 2018):
a small convolutional network learns, from the class's own images only, to recognise which of ``T``
transformations (the four quarter turns; times a mirror flip when ``transforms=8``) was applied to an
image. While it learns, each image is also changed in ways that keep it of the class (:mod:`bank.io.augment`:
cropped, moved, mirrored, in other light), so that it learns the class's turns rather than its photos'. Telling a cat upright from a cat upside down needs to know what a cat looks like: on an image
of another class the network is less sure, and the image's score is

    score = mean over t of -log p(t | T_t(image))

the network's surprise at the transformations it was shown, in nats (0 when it is certain of every
one). The score is in the same unit for every class of the kind, and a bank of them compares raw
scores: on MNIST (1,000 images a digit) raw scores named 0.822 of the test digits, the relative
comparison (each class's z, ``--compare relative``) 0.727. A class whose images look alike turned (a
0, an 8) is more surprised by its own images than others are by theirs; `bank train` warns when a
class's network tells its turns apart little better than chance.

Where it helps: photos. The defaults (4 turns, mirrored copies, crops of 75-100%, light +-15%, 60
epochs) were chosen on ../shared/data/pets at 64x64 RGB among 11 settings, measured on two splits
(docs/kinds.md), where every reconstruction kind sits near chance. On MNIST digits it
is weaker than the autoencoder (0, 1 and 8 look alike turned over; mirrored digits are not digits:
``mirror=False`` there). Images are squared: the quarter turns need a square input.

Files: the Keras network ``net.keras`` and its LiteRT twins ``net-b1.tflite``, ``net-b4.tflite``
(checked against Keras at saving), each listed in the card with its SHA-256; loading runs the LiteRT
twins without TensorFlow when ``ai-edge-litert`` is installed, else the Keras model in safe mode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.images import InputSpec
from . import params as P
from .base import ClassModel, checksums, warn_training

NET_FILE = "net.keras"
NET_LITERT = "net-b{batch}.tflite"

#: Numbers of transformations: the four quarter turns, or those times a mirror flip.
TRANSFORMS = (4, 8)

#: The input side a class gets when none is given: photos are brought down to it, small images kept.
DEFAULT_SIDE = 64


def transform(x: np.ndarray, t: int) -> np.ndarray:
    """Images ``x`` (N, H, W, C), H == W, under transformation ``t``: mirrored left-right when t >= 4,
    then turned by (t mod 4) quarter turns counter-clockwise."""
    out = x[:, :, ::-1] if t >= 4 else x
    return np.ascontiguousarray(np.rot90(out, t % 4, axes=(1, 2)))


def surprise(logits: np.ndarray, t: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[t] per row, float64: the network's surprise at the true transformation."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), t]


def build_network(shape: tuple[int, ...], n_out: int, filters: Sequence[int], dense: int, dropout: float,
                  learning_rate: float):
    """The transformation classifier: conv blocks (3x3, ReLU, 2x2 max-pool), a dense layer, ``n_out`` logits."""
    from ..nets import models  # noqa: F401  (quiet TensorFlow start-up)
    import keras
    from keras import layers

    inp = keras.Input(shape=shape)
    h = layers.Rescaling(2.0, offset=-1.0)(inp)
    for f in filters:
        h = layers.Conv2D(int(f), 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D(2, padding="same")(h)
    h = layers.Flatten()(h)
    if dropout:
        h = layers.Dropout(dropout)(h)
    h = layers.Dense(int(dense), activation="relu")(h)
    model = keras.Model(inp, layers.Dense(n_out)(h))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _pairs(x: np.ndarray, n_transforms: int, batch_size: int, seed: int, changes: dict):  # noqa: C901
    """A Keras dataset of every (image, transformation) pair once an epoch, shuffled anew each epoch, each
    image changed at random as the class allows (``changes``: :mod:`bank.io.augment`'s crop, shift, mirror and
    light, drawn anew each time) before it is transformed."""
    from ..io import augment
    from ..nets import models  # noqa: F401  (models: TensorFlow imported quietly)
    import keras

    def changed(b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        b = augment.crop(b, changes["crop"], rng)
        b = augment.shift(b, changes["shift"], rng)
        if changes["mirror"]:
            b = augment.mirror(b, rng)
        return augment.light(b, changes["light"], rng)

    class Pairs(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x) * n_transforms)

        def __len__(self) -> int:
            return math.ceil(len(self.order) / batch_size)

        def __getitem__(self, i: int):
            pick = self.order[i * batch_size:(i + 1) * batch_size]
            img, t = pick // n_transforms, pick % n_transforms
            out = np.empty((len(pick), *x.shape[1:]), np.float32)
            for tt in np.unique(t):
                m = t == tt
                out[m] = transform(changed(x[img[m]], self.rng), int(tt))
            return out, t.astype(np.int32)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(x) * n_transforms)

    return Pairs()


def _check_side(spec: InputSpec) -> None:
    """Refuse images too small to look different turned."""
    if min(spec.height, spec.width) < 2:
        raise InputError(f"geotrans: images of {spec.height}x{spec.width} look the same turned; it needs at least "
                         "2x2 (--kind autoencoder takes them)")


class GeoTransModel(ClassModel):
    """The ``geotrans`` kind: a network that recognises turns and flips of its class's images.

    Parameters
    ----------
    transforms : 4 or 8
        The quarter turns, or those times a mirror flip.
    epochs : int
        Passes over every (image, transformation) pair.
    batch_size : int
    shift : float or "auto"
        Each training image moved by a random shift of up to this share of its side, anew each time it is
        shown (0: none; "auto": 1/16, 4 pixels at 64x64).
    mirror : bool or "auto"
        Show half of the training images mirrored left to right: a mirrored cat is a cat, a mirrored 7 is
        not a 7 (turn it off for digits and letters). "auto": on with 4 transforms, off with 8 (where the
        mirror is one of the transformations to recognise).
    crop : float
        Show each training image cropped to a random window of ``crop`` to all of its side, brought back to
        its size (1: none).
    light : float
        Scale each training image's brightness, contrast and saturation by random factors in
        ``1 +- light`` (0: none).
    filters, dense, dropout, learning_rate
        The network: conv filters per block, the dense layer's width, dropout before it, Adam's step.
    verbose : int
        Keras's progress output while training (0: none).
    progress : callable or None
        Told after each epoch: ``progress({"epoch", "epochs", "loss", "val_loss", "seconds"})``, ``val_loss``
        NaN (no early stopping: every epoch runs).
    **common
        :class:`~bank.kinds.base.ClassModel`'s (``spec``, ``calibration_fraction``, ``seed``, the rule).
    """

    kind = "geotrans"
    summary = "a network that recognises turns and flips of the class's images (for photos)"
    exports = True
    score_label = "surprise at the turns and flips, nats"
    #: Surprise crowds at 0 nats for the images it is sure of: the log fits take a fitted shift.
    shifted_log = True
    score_unit = "geotrans"  #: nats of surprise, the same unit for every class: compares raw
    #: What its loss curves (``loss.png``) plot.
    loss_label = "cross-entropy of the transformation (training)"
    #: The autoencoder's training settings this kind also takes (``bank train --epochs`` ...).
    training_options = ("epochs", "batch_size", "shift", "verbose", "progress")

    def __init__(self, *, transforms: int = 4, epochs: int = 60, batch_size: int = 128,
                 shift: float | str = "auto", mirror: bool | str = "auto", crop: float = 0.75, light: float = 0.15,
                 filters: Sequence[int] = (16, 32, 64), dense: int = 128, dropout: float = 0.5,
                 learning_rate: float = 1e-3, verbose: int = 0, progress: Callable[[dict], None] | None = None,
                 **common):
        super().__init__(**common)
        self.transforms = transforms
        self.epochs = epochs
        self.batch_size = batch_size
        self.shift = shift
        self.mirror = mirror
        self.crop = crop
        self.light = light
        self.filters = filters
        self.dense = dense
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.verbose = verbose
        self.progress = progress

    rules = {
        "transforms": P.one_of(*TRANSFORMS),
        "epochs": P.whole(1),
        "batch_size": P.whole(1),
        "shift": P.one_of("auto") | P.number(0, 0.5, high_open=True, text="a share of the side in [0, 0.5)"),
        "mirror": P.one_of("auto", True, False),
        "crop": P.number(0, 1, low_open=True, text="the smallest share of the side kept, in (0, 1]"),
        "light": P.number(0, 1, high_open=True),
        "filters": P.wholes(1),
        "dense": P.whole(1),
        "dropout": P.number(0, 1, high_open=True),
        "learning_rate": P.number(0, low_open=True),
        "verbose": P.one_of(0, 1, 2),
        "progress": P.callable_or_none(),
    }

    def _check_together(self) -> None:
        if self.mirror is True and self.transforms == 8:
            raise InputError("geotrans mirror: the mirror is one of the 8 transformations it learns to recognise; "
                             "mirror=True needs transforms=4")
        if self.spec is not None:
            _check_side(self.spec)
        if self.spec is not None and self.spec.height != self.spec.width:
            raise InputError(f"geotrans: the quarter turns need a square input size, got "
                             f"{self.spec.height}x{self.spec.width} "
                             f"(such as --size {max(self.spec.height, self.spec.width)}x"
                             f"{max(self.spec.height, self.spec.width)})")

    @classmethod
    def choose_spec(cls, inferred: InputSpec) -> InputSpec:
        """A square input no larger than :data:`DEFAULT_SIDE`, in the images' colour."""
        side = min(max(inferred.height, inferred.width), DEFAULT_SIDE)
        return InputSpec(side, side, inferred.color)

    # ------------------------------------------------------------ learning
    def _fit_core(self, x: np.ndarray) -> None:
        from ..nets import models  # noqa: F401  (TensorFlow and Keras imported quietly, before anything else does)
        import keras

        _check_side(self.spec_)  # a spec chosen from the images

        from ..nets.checkpoints import epoch_report

        keras.utils.set_random_seed(self.seed)
        side = self.spec_.height
        share = 1 / 16 if self.shift == "auto" else float(self.shift)
        self.shift_pixels_ = int(round(share * side))
        self.net_ = build_network(self.spec_.shape, self.transforms, self.filters, self.dense, self.dropout,
                                  self.learning_rate)
        callbacks = [] if self.progress is None else [epoch_report(self.progress, self.epochs)]
        changes = {"crop": float(self.crop), "shift": self.shift_pixels_, "light": float(self.light),
                   "mirror": self.mirror is True or (self.mirror == "auto" and self.transforms == 4)}
        fit = self.net_.fit(_pairs(x.astype(np.float32, copy=False), self.transforms, self.batch_size, self.seed,
                                   changes), epochs=self.epochs, verbose=self.verbose, callbacks=callbacks)
        self.history_ = {k: [float(v) for v in vals] for k, vals in fit.history.items()}

    def fit(self, X) -> GeoTransModel:
        super().fit(X)  # with the convergence verdict on the training loss (no early stopping: every epoch runs)
        acc = (self.history_.get("accuracy") or [math.nan])[-1]
        self.training_["transform_accuracy"] = acc
        if acc < 2 / self.transforms:  # at most twice chance: the class's images look alike turned
            warn_training(self.training_, (
                f"geotrans told the turns of this class's images apart only {acc:.0%} of the time in its last "
                f"epoch (chance {1 / self.transforms:.0%}): they look alike turned, so its scores say little; "
                "try --kind autoencoder, or more epochs"))
        return self

    def logits(self, x: np.ndarray, chunk: int = 512) -> np.ndarray:
        """(N, T, T): the network's logits for each image (at the spec) under each transformation."""
        n, T = len(x), self.transforms
        out = np.empty((n, T, T), np.float32)
        x = np.asarray(x, np.float32)
        for start in range(0, n, max(1, chunk // T)):
            part = x[start:start + max(1, chunk // T)]
            batch = np.concatenate([transform(part, t) for t in range(T)])  # transform-major
            out[start:start + len(part)] = np.asarray(self.net_.predict_on_batch(batch)).reshape(
                T, len(part), T).transpose(1, 0, 2)
        return out

    def _scores(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        n, T = z.shape[:2]
        return surprise(z.reshape(n * T, T), np.tile(np.arange(T), n)).reshape(n, T).mean(axis=1)

    @classmethod
    def group_scorer(cls, models):
        """Scores by every one of ``models`` (one spec): LiteRT networks share the classes among the cores
        (one thread each), as an autoencoder bank does; Keras networks class by class."""
        from ..nets import runtime as rt

        if rt.cores() < 2 or len(models) < 2 or not all(isinstance(m.net_, rt.LiteModel) for m in models):
            return super().group_scorer(models)
        singles = []
        for m in models:
            single = copy.copy(m)
            single.net_ = m.net_.with_threads(1)
            singles.append(single)
        return rt.across_cores([single._scores for single in singles])

    def tf_network(self):
        return self.net_

    def tf_score(self, images, cache: dict):
        """:func:`surprise` at every transformation as TensorFlow operations (float32)."""
        import tensorflow as tf

        mirrored = tf.reverse(images, axis=[2])
        return tf.add_n([-tf.nn.log_softmax(self.net_(tf.image.rot90(mirrored if t >= 4 else images, k=t % 4),
                                                       training=False))[:, t]
                         for t in range(self.transforms)]) / self.transforms

    # ------------------------------------------------------------ files
    def save(self, folder: str | Path, litert: bool = True) -> dict:
        """Write the network (Keras and LiteRT) into ``folder``; the card's fields."""
        from ..nets.netfiles import write_litert

        self._check_fitted()
        folder = Path(folder)
        if not hasattr(self.net_, "save"):
            raise InputError("geotrans: saving needs the Keras network; this one was loaded for LiteRT")
        self.net_.save(folder / NET_FILE)
        lite = write_litert(f"the {self.kind} network", self.net_, self.spec_, folder, NET_LITERT,
                            out_shape=(self.transforms,), enabled=litert)
        files = checksums(folder, [NET_FILE, *(f["file"] for f in lite["files"])])
        params = {"transforms": int(self.transforms), "epochs": int(self.epochs), "batch_size": int(self.batch_size),
                  "shift": self.shift if self.shift == "auto" else float(self.shift),
                  "mirror": self.mirror, "crop": float(self.crop), "light": float(self.light),
                  "shift_pixels": self.shift_pixels_, "filters": [int(f) for f in self.filters],
                  "dense": int(self.dense), "dropout": float(self.dropout), "learning_rate": float(self.learning_rate),
                  "history": self.history_, "litert": {k: v for k, v in lite.items() if k != "files"}}
        return self._card_fields(params, files)

    @classmethod
    def load(cls, card: dict, files: dict[str, bytes], runtime: str = "auto") -> GeoTransModel:
        """The model from its card and the checked bytes of its files (``runtime`` as
        :func:`bank.nets.netfiles.load_network`: LiteRT when it can, else Keras)."""
        from ..nets.netfiles import load_network

        params = cls._card_params(card)
        if params.get("transforms") not in TRANSFORMS:
            raise InputError(f"{cls.kind} params: transforms: expected one of {TRANSFORMS}, "
                             f"got {params.get('transforms')!r}")
        T = int(params["transforms"])
        settings = {k: params[k] for k in ("epochs", "batch_size", "shift", "mirror", "crop", "light", "filters",
                                           "dense", "dropout", "learning_rate") if k in params}
        model = cls(transforms=T, **settings)._restore(card)
        model.net_ = load_network(files, NET_FILE, NET_LITERT, model.spec_.shape, (T,), runtime,
                                  f"{cls.kind} model")
        model.history_ = dict(params.get("history") or {})
        model.shift_pixels_ = int(params.get("shift_pixels", 0))
        return model
