"""Train the ten MNIST digit models and measure the bank on the test set.

    python examples/mnist.py ../shared/data/mnist [--registry registry] [--epochs 10] [--kind KIND]

Reads MNIST's IDX files (gzip'd or raw), trains one class model per digit
on its training images, of the kind ``bank train --kind auto`` picks for
28x28 gray digits (``ae-hog``: an autoencoder and a HOG one-class SVM) or
``--kind`` (each holding out 10% to fit its error statistics, and a
network 10% of the rest for early stopping), registers each as the
digit's active version, then routes the 10,000 test images through the bank
and prints the argmin accuracy, the share called unknown, and per-digit
figures. Afterwards ``bank classify some_digit.png`` answers from the same
registry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from bank import Registry, Router
from bank.kinds import KINDS, choose_kind, kind_class
from bank.io.data import load_labelled
from bank.reports.evaluate import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="folder with MNIST's IDX files, such as ../shared/data/mnist")
    p.add_argument("--registry", default=None, help="registry folder (default: $BANK_REGISTRY, else ./registry)")
    p.add_argument("--epochs", type=int, default=10, help="most epochs per digit (default 10), for a kind that "
                   "trains a network")
    p.add_argument("--kind", choices=list(KINDS), default=choose_kind(28, gray=True),
                   help="the kind of class model (default: what --kind auto picks for 28x28 gray digits)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use at most this many training images per digit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    reg = Registry(args.registry)
    train = load_labelled(args.data, "train")
    test = load_labelled(args.data, "test")
    versions, seconds = {}, {}
    for digit in train.classes:
        images = train.arrays[digit][: args.limit]
        t0 = time.perf_counter()
        cls = kind_class(args.kind)
        options = {k: v for k, v in {"epochs": args.epochs, "verbose": 0 if args.json else 2}.items()
                   if k in cls.training_options}
        det = cls.from_options(None, seed=args.seed, **options).fit(images)
        seconds[digit] = round(time.perf_counter() - t0, 1)
        versions[digit] = reg.register(digit, det).version
        s = det.stats_
        say(f"digit {digit}: {len(images)} images, {det.training_.get('epochs_run', '-')} epochs, "
            f"held-out error mean {s.mean:.5f} std {s.std:.5f}, version {versions[digit]}, {seconds[digit]} s")

    router = Router({d: reg.load_detector(d, v) for d, v in versions.items()})
    x = np.concatenate([test.arrays[d] for d in test.classes])
    y = np.concatenate([np.full(len(test.arrays[d]), d) for d in test.classes])
    t0 = time.perf_counter()
    res = router.score(x)
    route_s = time.perf_counter() - t0
    figures = evaluate(res, [str(v) for v in y])
    out = {
        **{k: figures[k] for k in ("accuracy", "unknown_rate", "auroc_mean", "auroc_error_mean", "false_reject",
                                   "false_accept", "method", "threshold", "margin")},
        "n_test": int(len(y)),
        "train_seconds": seconds,
        "route_images_per_s": round(len(y) / route_s, 1),
        "per_class": figures["per_class"],
        "registry": str(reg.root),
        "versions": versions,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"MNIST test set, {out['n_test']} images: argmin accuracy {out['accuracy']:.4f}, called unknown "
          f"{out['unknown_rate']:.2%}; mean AUROC {out['auroc_mean']:.4f} (raw error alone {out['auroc_error_mean']:.4f});"
          f" false reject {out['false_reject']:.2%}, false accept {out['false_accept']:.2%}")
    print("digit  AUROC   false-reject  false-accept  train s")
    for d, f in out["per_class"].items():
        print(f"{d:>5}  {f['auroc']:.4f}  {f['false_reject']:12.2%}  {f['false_accept']:12.2%}  {seconds[d]:7.1f}")
    print(f"routed at {out['route_images_per_s']} images/s; models in {reg.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
