"""The demo: a digit bank on scikit-learn's bundled 8x8 digits, no download.

Trains one autoencoder per digit on three quarters of the set, registers
each, then routes the held-out quarter through the bank, and three images
that are no digit (blank, flat gray, noise), which it should call unknown.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from .detector import AutoencoderDetector
from .registry import Registry
from .router import Router


def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's digits as float images in [0, 1], split stratified by digit."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return train_test_split(images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)


def run_demo(
    registry: Registry,
    *,
    epochs: int = 300,
    seed: int = 0,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """Train, register and evaluate the digit bank; return the figures."""
    start = time.perf_counter()
    x_train, x_test, y_train, y_test = load_digits_split(seed=seed)
    versions = {}
    for digit in range(10):
        t0 = time.perf_counter()
        det = AutoencoderDetector(epochs=epochs, batch_size=32, patience=20, seed=seed, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # kept in the training record, said below
            det.fit(x_train[y_train == digit])
        entry = registry.register(str(digit), det)
        versions[str(digit)] = entry.version
        s = det.stats_
        progress(
            f"digit {digit}: {det.training_['n_train']} train / {s.n} calibration images, "
            f"{det.training_['epochs_run']} epochs, error mean {s.mean:.4f} std {s.std:.4f}, "
            f"version {entry.version} ({time.perf_counter() - t0:.1f} s)"
        )
        said = [w for w in det.training_.get("warnings", []) if "held-out images" not in w]
        for w in said:
            progress(f"  warning: {w}")
    progress("note: each digit's error statistics rest on its few held-out 8x8 images (fewer than 30): the "
             "demo's z-scores are rough; a real class brings hundreds")
    train_seconds = time.perf_counter() - start
    router = Router({d: registry.load_detector(d, v) for d, v in versions.items()})
    result = router.score(x_test, names=[f"test #{i} (digit {y})" for i, y in enumerate(y_test)])
    rng = np.random.default_rng(seed)
    foreign = {"blank": np.zeros((8, 8), np.float32), "flat gray": np.full((8, 8), 0.5, np.float32),
               "noise": rng.random((8, 8), dtype=np.float32)}
    verdicts = dict(zip(foreign, router.score(list(foreign.values())).labels))
    nearest = np.array([int(c) for c in result.nearest])
    unknown = result.unknown
    labelled_right = (nearest == y_test) & ~unknown
    return {
        "accuracy": float(np.mean(nearest == y_test)),
        "accuracy_with_unknown": float(np.mean(labelled_right)),
        "unknown_rate": float(np.mean(unknown)),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "classes": router.classes,
        "versions": versions,
        "registry": str(registry.root),
        "threshold": router.threshold,
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "examples": result.records()[:3],
        "foreign": verdicts,
    }
