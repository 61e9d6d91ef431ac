"""How this folder was made: a registry written by bank at commit 132a72b (before issue 27 gave every kind one
card format), and the answers that bank gave on ``images.npy``. ``tests/test_registry_compat.py`` checks that
today's bank loads it and answers the same.

    git worktree add /tmp/old 132a72b
    PYTHONPATH=/tmp/old python tests/data/registry-0.1/write.py OUT

Class 0 is an autoencoder with its LiteRT twins, class 1 one registered without them (``litert=False``),
classes 2-5 a pca, hog-ocsvm, ae-hog and geotrans model: tiny models on scikit-learn's 8x8 digits.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import bank
from bank import Registry, Router
from bank.detector import AutoencoderDetector  # the module and class of that commit
from bank.kinds import kind_class

SMALL_HOG = {"pixels_per_cell": 4, "cells_per_block": (1, 1)}
SMALL_AE = {"hidden": [16], "latent_dim": 4}


def main(out: Path) -> None:
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target
    reg = Registry(out / "registry")
    warnings.simplefilter("ignore")
    for digit in (0, 1):
        det = AutoencoderDetector(epochs=4, seed=0, verbose=0, params=SMALL_AE).fit(x[y == digit][:80])
        reg.register(str(digit), det, litert=digit == 0)
    others = ((2, "pca", {}), (3, "hog-ocsvm", {"svm": SMALL_HOG}),
              (4, "ae-hog", {"ae": {"epochs": 3, "verbose": 0, "params": SMALL_AE}, "svm": SMALL_HOG}),
              (5, "geotrans", {"epochs": 2, "filters": (8,), "dense": 16, "mirror": False}))
    for digit, kind, kw in others:
        reg.register(str(digit), kind_class(kind)(seed=0, **kw).fit(x[y == digit][:80]))
    test = np.concatenate([x[y == c][100:104] for c in range(10)])
    np.save(out / "images.npy", test)
    for runtime in ("keras", "auto"):
        r = Router.from_registry(reg, runtime=runtime)
        res = r.score(test)
        (out / f"answers-{runtime}.json").write_text(json.dumps({
            "bank": bank.__version__, "classes": r.classes, "errors": res.errors.tolist(), "labels": res.labels,
            "flags": res.flags.astype(int).tolist(), "test_z": res.test_z.tolist()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
