"""Banks of several kinds: how well a bank names MNIST digits when its classes score in different units.

    python benchmarks/mixed.py --data ../shared/data/mnist [--registry PATH] [--train-images 1000]
                               [--test-images 5000] [--json]

A bank whose classes score in different units compares them ``relative``
(:meth:`bank.verdict.columns.StatsColumns.relative`): each class's log score,
centred and divided by its unit's pooled spread. This prints, for banks mixing
``pca``, ``hog-ocsvm`` and (with ``--registry``, a trained 10-digit ``ae-hog``
bank such as ``examples/mnist.py`` writes) ``ae-hog`` classes, the argmin
accuracy on the first ``--test-images`` MNIST test digits three ways, the same
fitted models and errors each time:

- ``raw``: the raw scores (meaningless across units: a baseline);
- ``own centre``: each class centred on its own held-out log mean (the rule
  before 2026-12-04);
- ``unit centre`` (today's): the classes of a unit whose raw scores compare
  centred on their unit's mean log mean, so that among them the ranking is the
  raw one; a class whose unit is fitted per class (``hog-ocsvm``'s kernel
  width) on its own.

``pca`` and ``hog-ocsvm`` classes are fitted here on the first
``--train-images`` training images of each digit (seconds a class). Progress
goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings

import numpy as np

from bank.answering.router import Router
from bank.io.data import load_idx_split
from bank.kinds.hog_ocsvm import HOGOCSVMModel
from bank.kinds.pca import PCAModel
from bank.registry.store import Registry
from bank.verdict.columns import StatsColumns


def banks(pca: dict, hog: dict, aeh: dict | None) -> dict[str, dict]:
    """The mixed banks, digit name -> model, and one-kind banks beside them."""
    out = {
        "0-4 pca, 5-9 hog-ocsvm": {str(d): (pca if d < 5 else hog)[d] for d in range(10)},
        "pca and hog-ocsvm in turn": {str(d): (pca if d % 2 == 0 else hog)[d] for d in range(10)},
        "all pca (one unit)": {str(d): pca[d] for d in range(10)},
        "all hog-ocsvm (widths per class)": {str(d): hog[d] for d in range(10)},
    }
    if aeh:
        out.update({
            "0-4 ae-hog, 5-9 pca": {str(d): (aeh[d] if d < 5 else pca[d]) for d in range(10)},
            "0-4 ae-hog, 5-9 hog-ocsvm": {str(d): (aeh[d] if d < 5 else hog[d]) for d in range(10)},
            "nine ae-hog, a pca 7": {str(d): (pca[d] if d == 7 else aeh[d]) for d in range(10)},
            "all ae-hog (one unit)": {str(d): aeh[d] for d in range(10)},
        })
    return out


def accuracies(dets: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Argmin accuracy of the bank's errors on ``x`` compared raw, each class on its own centre, and by unit."""
    router = Router(dets)
    errors, _ = router.measure(x, with_complexity=False)
    cols, names = router.columns, np.array(router.classes)
    own = StatsColumns.of(router.stats, cols.units, per_class=[True] * len(cols))

    def right(ranked: np.ndarray) -> float:
        return float(np.mean(names[np.argmin(ranked, axis=1)] == y))

    return {"compare": router.comparison, "raw": right(errors), "own centre": right(own.relative(errors)),
            "unit centre": right(cols.relative(errors))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/mnist", help="MNIST in IDX form")
    p.add_argument("--registry", help="a trained 10-digit ae-hog bank (classes named 0..9)")
    p.add_argument("--train-images", type=int, default=1000)
    p.add_argument("--test-images", type=int, default=5000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    train, y_train = load_idx_split(args.data, "train")
    test, y_test = load_idx_split(args.data, "test")
    x_train = train.astype(np.float32) / 255.0
    x = test[: args.test_images].astype(np.float32) / 255.0
    y = y_test[: args.test_images].astype(str)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few-held-out and convergence warnings of the small fits
        pca = {d: PCAModel().fit(x_train[y_train == d][: args.train_images]) for d in range(10)}
        hog = {d: HOGOCSVMModel().fit(x_train[y_train == d][: args.train_images]) for d in range(10)}
    say(f"fitted 10 pca and 10 hog-ocsvm classes in {time.perf_counter() - t0:.0f} s")
    aeh = None
    if args.registry:
        loaded = Router.from_registry(Registry(args.registry)).detectors
        aeh = {d: loaded[str(d)] for d in range(10)}
    rows = {}
    for name, dets in banks(pca, hog, aeh).items():
        rows[name] = accuracies(dets, x, y)
        say(f"{name}: {rows[name]}")
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "train_images": args.train_images, "test_images": len(x), "registry": args.registry}
    if args.json:
        print(json.dumps({"meta": meta, "banks": rows}, indent=2))
        return 0
    print(f"Argmin accuracy on {len(x)} MNIST test digits, {meta['date']}, {meta['machine']}; pca and hog-ocsvm "
          f"fitted on {args.train_images} digits a class" + (f", ae-hog from {args.registry}" if aeh else ""))
    print()
    print("| bank | compare | raw | own centre (before) | unit centre (today) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['compare']} | {r['raw']:.4f} | {r['own centre']:.4f} | {r['unit centre']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
