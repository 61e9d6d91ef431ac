"""Train a "cat" and a "dog" detector on folders of photos and measure how well they tell the two apart.

    python examples/pets.py --cats photos/cats --dogs photos/dogs [--size 128] [--color gray] [--json]

Each folder is scanned once (unreadable files are named and skipped), a
share of each class is held out for testing (``--holdout``, seeded), and each
detector trains on the rest, streamed from disk through tf.data (photos need
not fit in memory), then registers in ``--registry``. On the held-out photos
it prints each detector's AUROC (its error on the other class's photos
against its own), Welch's t between those errors, the argmin accuracy (the
model that reconstructs a photo best names it), and for a few photos the
seeds' "probability of cat": the cat model's normalized Gaussian score
``exp(-z**2 / 2)``. With ``--json``: one object with ``cat_auroc``,
``dog_auroc``, ``welch_t``, ``accuracy`` and the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
import warnings

import numpy as np

from bank import AutoencoderDetector, Registry, Router
from bank.evaluate import evaluate
from bank.images import InputSpec
from bank.pipeline import ImageFiles, batches, scan

CLASSES = ("cat", "dog")


def split(files: ImageFiles, holdout: float, seed: int) -> tuple[ImageFiles, ImageFiles]:
    """(training files, held-out files): a seeded share ``holdout`` of them held out."""
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(1, round(holdout * len(files)))
    return files.subset(order[n_test:]), files.subset(order[:n_test])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cats", required=True, help="folder of cat photos (searched recursively)")
    p.add_argument("--dogs", required=True, help="folder of dog photos")
    p.add_argument("--registry", default="pets-registry", help="where the two models go (default ./pets-registry)")
    p.add_argument("--size", type=int, default=128, help="square input side in pixels (default 128)")
    p.add_argument("--color", choices=["gray", "rgb"], default="gray", help="default gray (the seed's)")
    p.add_argument("--epochs", type=int, default=30, help="most epochs; early stopping may end sooner (default 30)")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--holdout", type=float, default=0.2, help="share of each class held out for testing (0.2)")
    p.add_argument("--filters", help="conv filters per block, such as 32,64,64,128 (default: by input size)")
    p.add_argument("--latent", type=int, help="latent code size (default: by input size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=int, default=6, help="held-out photos shown with their probability of cat")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not 0 < args.holdout < 1:
        p.error(f"--holdout: expected a share between 0 and 1, got {args.holdout}")
    spec = InputSpec(args.size, args.size, args.color)
    params = {}
    if args.filters:
        params["filters"] = [int(f) for f in args.filters.split(",")]
    if args.latent:
        params["latent_dim"] = args.latent
    reg = Registry(args.registry)
    held, skipped, seconds = {}, {}, {}
    for name, folder in zip(CLASSES, (args.cats, args.dogs)):
        files = scan([folder])
        skipped[name] = files.skipped
        for path, reason in files.skipped:
            say(f"{name}: skipped {path}: {reason}")
        if len(files) < 10:
            raise SystemExit(f"pets.py: {folder}: {len(files)} readable photo(s); need at least 10")
        train, held[name] = split(files, args.holdout, args.seed)
        say(f"{name}: {len(train)} photos to train on, {len(held[name])} held out ({folder})")
        det = AutoencoderDetector(spec=spec, params=params or None, epochs=args.epochs, batch_size=args.batch_size,
                                  seed=args.seed, verbose=0 if args.json else 2)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)  # Keras progress and warnings on stderr: stdout is the result
            det.fit(train)
        for w in caught:
            say(f"{name}: warning: {w.message}")
        seconds[name] = round(time.perf_counter() - t0, 1)
        version = reg.register(name, det).version
        say(f"{name}: version {version}, {det.training_['epochs_run']} epochs (best {det.training_['best_epoch']}), "
            f"{seconds[name]} s; held-out error mean {det.stats_.mean:.5f}")

    router = Router.from_registry(reg, list(CLASSES))
    paths = held["cat"].paths + held["dog"].paths
    truth_of = dict(zip(paths, ["cat"] * len(held["cat"]) + ["dog"] * len(held["dog"])))
    parts, names = [], []
    for x, got in batches(paths, spec, on_skip=lambda name, why: say(f"skipped {name}: {why}")):  # streamed
        parts.append(router.measure(x))
        names += got
    truth = [truth_of[n] for n in names]
    errors = np.concatenate([e for e, _ in parts])
    res = router.result(errors, np.concatenate([c for _, c in parts]), names)
    ev = evaluate(res, truth)
    k = {c: res.classes.index(c) for c in CLASSES}
    own = np.asarray(truth)
    from scipy.stats import ttest_ind

    welch = ttest_ind(errors[own == "dog", k["cat"]], errors[own == "cat", k["cat"]], equal_var=False).statistic
    out = {
        "cat_auroc": ev["per_class"]["cat"]["auroc_error"],
        "dog_auroc": ev["per_class"]["dog"]["auroc_error"],
        "welch_t": float(welch),
        "accuracy": ev["accuracy"],
        "cat_auroc_flag_score": ev["per_class"]["cat"]["auroc"],
        "dog_auroc_flag_score": ev["per_class"]["dog"]["auroc"],
        "unknown_rate": ev["unknown_rate"],
        "n_train": {c: reg.entry(c).card["training"]["n_images"] for c in CLASSES},
        "n_test": {c: len(held[c]) for c in CLASSES},
        "skipped": {c: len(skipped[c]) for c in CLASSES},
        "input": str(spec),
        "train_seconds": seconds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "registry": str(reg.root),
    }
    rng = np.random.default_rng(args.seed)
    show = rng.choice(len(names), size=min(args.show, len(names)), replace=False)
    out["examples"] = [{"image": names[i], "truth": truth[i], "label": res.labels[i],
                        "probability_of_cat": float(res.score[i, k["cat"]]),
                        "probability_of_dog": float(res.score[i, k["dog"]])} for i in show]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"held out: {out['n_test']['cat']} cats, {out['n_test']['dog']} dogs at {spec}")
    print(f"cat detector AUROC (dogs vs cats, by its error): {out['cat_auroc']:.3f}")
    print(f"dog detector AUROC (cats vs dogs, by its error): {out['dog_auroc']:.3f}")
    print(f"Welch's t, cat model's error on dogs vs on cats: {out['welch_t']:.2f}")
    print(f"argmin accuracy: {out['accuracy']:.3f}; called unknown: {out['unknown_rate']:.1%}")
    print("the seeds' probability of cat (cat model's exp(-z^2/2)) for a few held-out photos:")
    for e in out["examples"]:
        print(f"  {e['image']}: {e['truth']}, labelled {e['label']}, P(cat) {e['probability_of_cat']:.3f}, "
              f"P(dog) {e['probability_of_dog']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
