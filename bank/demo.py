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

from .verdict.decision import BankResult
from .training.runs import make_detector
from .reports.presentation import flag_cell, flag_tags
from .registry.store import Registry
from .answering.router import Router

#: The columns of the demo's table of scores (see :func:`example_rows`).
EXAMPLE_COLUMNS = ["image", "class", "error", "z", "score", "test z", "p", "margin", "input cx z", "flag"]


def load_digits_split(test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's digits as float images in [0, 1], split stratified by digit."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return train_test_split(images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)


def _every(seconds: float, say: Callable[[dict], None]) -> Callable[[dict], None]:
    """A detector's ``progress`` that passes an epoch on to ``say`` at most every ``seconds``: the demo's
    digits train in a few seconds each, and a person wants to see it move, not read every epoch."""
    last = [time.perf_counter()]

    def report(e: dict) -> None:
        now = time.perf_counter()
        if now - last[0] >= seconds:
            last[0] = now
            say(e)

    return report


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
    spent: list[float] = []
    for digit in range(10):
        t0 = time.perf_counter()
        images = x_train[y_train == digit]
        # the kind --kind auto picks for 8x8 gray digits (the autoencoder), with the demo's training settings
        det = make_detector(images, epochs=epochs, batch_size=32, patience=20, seed=seed, verbose=0,
                            progress=_every(5.0, lambda e, d=digit: progress(
                                f"digit {d}: epoch {e['epoch']}/{e['epochs']}, loss {e['loss']:.4g}, "
                                f"early-stopping loss {e['val_loss']:.4g}")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # kept in the training record, said below
            det.fit(images)
        entry = registry.register(str(digit), det)
        versions[str(digit)] = entry.version
        s = det.stats_
        spent.append(time.perf_counter() - t0)
        left = f"; about {sum(spent) / len(spent) * (9 - digit):.0f} s left for the other digits" if digit < 9 else ""
        progress(
            f"digit {digit}: {det.training_['n_train']} train / {s.n} calibration images, "
            f"{det.training_.get('epochs_run', '-')} epochs, error mean {s.mean:.4f} std {s.std:.4f}, "
            f"version {entry.version} ({spent[-1]:.1f} s{left})"
        )
        said = [w for w in det.training_.get("warnings", []) if "held-out images" not in w]
        for w in said:
            progress(f"  warning: digit {digit}: {w.replace('--epochs', 'bank demo --epochs')}")
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
        "examples": examples_of(result, 3),
        "foreign": verdicts,
    }


def examples_of(result: BankResult, n: int) -> list[dict]:
    """The first ``n`` records of ``result`` (the ``--json`` schema), each class's also naming the tests that
    flag it (``flagged_by``: the error's z by its method name, ``margin``, ``input complexity z``)."""
    out = result.records()[:n]
    for i, rec in enumerate(out):
        for k, c in enumerate(result.classes):
            rec["classes"][c]["flagged_by"] = flag_tags(result, i, k)
    return out


def example_rows(examples: list[dict]) -> list[list]:
    """The demo's table (columns :data:`EXAMPLE_COLUMNS`), one row per image and class; a flagged class says
    which tests flag it, as ``FLAG (margin)`` (or, from a record without ``flagged_by``, its reasons)."""
    rows = []
    for rec in examples:
        for c, v in rec["classes"].items():
            tags = v.get("flagged_by")
            if tags is None:
                tags = v.get("reasons") or (["flagged"] if v.get("flag") else [])
            rows.append([rec["image"], c, v["error"], v["z"], v["score"], v["test_z"], v["p_value"], v["margin"],
                         v.get("complexity_z"), flag_cell(tags if v.get("flag") else [])])
    return rows
