"""Quality benchmark: three digit banks on MNIST, trained and judged in one run.

    python benchmarks/quality.py --data ../shared/data/mnist [--banks pca,seed,default] [--limit N] [--json]

(a) ``pca``: the ``pca`` kind (:mod:`bank.kinds.pca`) with 32 components; the
    error is the per-pixel MSE of the projection's reconstruction. ``hog-ocsvm``
    (not in the default list): the ``hog-ocsvm`` kind. ``pretrained`` (nor this):
    the ``pretrained`` kind with its defaults (EfficientNet-Lite0 features, the
    ``knn`` head), the digits brought to its 224x224 RGB input by the kind;
    the test digits go through the backbone once for every class (its
    ``group_scorer``), 256 at a time.
(b) ``seed``: the seed tutorials' conv autoencoder (filters 32, 64; latent
    16), Adam on MSE, 10 epochs, batch 32, no early stopping to speak of.
(c) ``default``: the kind ``bank train --kind auto`` picks for 28x28 gray
    digits (``bank.kinds.choose_kind``: ``ae-hog`` since issue 28), with its
    defaults, as ``bank train`` runs it; ``autoencoder``: ``AutoencoderModel()``
    (the default before).

Every bank fits its error statistics on a 10% split of each class's
training images that it never trained on, then routes the 10,000 test
images. Each bank is judged under three rules: the seeds' (Gaussian z > 3
on the raw error), ``lognormal`` (lognormal z > 3 or margin > 0.2) and
bank's default (z > 3 of the log error given the input's complexity, margin
> 0.2, or complexity |z| > 4). ``--registry`` judges a trained registry as
the default bank instead of training one.
Also measured: the seeds' contamination case, a "1" model trained with 1%
of "3"s mixed in, and how many of those 3s land past its 0.999 quantile.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

from bank.verdict import stats as st
from bank.io.data import load_labelled
from bank.reports.evaluate import evaluate
from bank.nets.runtime import cores
from bank.verdict.decision import compare_kwargs, decide

RULES = {
    "seeds": {"method": "gaussian", "margin": None, "complexity_threshold": None},
    "lognormal": {"method": "lognormal", "margin": 0.2, "complexity_threshold": None},
    "default": {},
}


def seed_detector(seed: int):
    from bank import AutoencoderModel

    return AutoencoderModel(architecture="conv", params={"filters": [32, 64], "latent_dim": 16}, epochs=10,
                               batch_size=32, patience=10, calibration_fraction=0.1, monitor_fraction=0.02,
                               seed=seed, verbose=0)


def default_detector(seed: int, epochs: int | None, **overrides):
    """The kind ``--kind auto`` picks for MNIST's digits, with its defaults or the training options a trial
    overrides (the autoencoder's, routed by the kind: ``from_options``)."""
    from bank.kinds import choose_kind, kind_class

    options = {"verbose": 0, **({"epochs": epochs} if epochs else {}), **overrides}
    return kind_class(choose_kind(28, gray=True)).from_options(None, seed=seed, **options)


def make(bank: str, seed: int, epochs: int | None, overrides: dict):
    if bank == "pca":  # the pca kind, with the 32 components of the earlier rows
        from bank.kinds.pca import PCAModel

        return PCAModel(n_components=32, seed=seed)
    if bank == "hog-ocsvm":
        from bank.kinds.hog_ocsvm import HOGOCSVMModel

        return HOGOCSVMModel(seed=seed)
    if bank == "ae-hog":  # the default autoencoder and the HOG SVM scored as one
        from bank.kinds.ae_hog import AEHOGModel

        return AEHOGModel(seed=seed, ae={"verbose": 0, **({"epochs": epochs} if epochs else {}), **overrides})
    if bank == "pretrained":  # the network's 224x224 RGB input, whatever the digits' size
        from bank.kinds.pretrained import PretrainedModel

        return PretrainedModel(seed=seed)
    if bank == "geotrans":  # a network recognising the turns of the class (its own 60 epochs unless given);
        from bank.kinds.geotrans import GeoTransModel  # digits: a mirrored digit is not the digit

        return GeoTransModel(seed=seed, mirror=False, **({"epochs": epochs} if epochs else {}))
    if bank == "seed":
        return seed_detector(seed)
    if bank == "autoencoder":
        from bank import AutoencoderModel

        return AutoencoderModel(seed=seed, verbose=0, **({"epochs": epochs} if epochs else {}), **overrides)
    return default_detector(seed, epochs, **overrides)


def trained_bank(bank: str, train, args, say) -> tuple[dict, float | None]:
    """Per class a fitted detector of kind ``bank``, and the training seconds (None when loaded)."""
    if bank == "default" and args.registry:
        from bank import Registry

        reg = Registry(args.registry)
        return {c: reg.load_detector(c) for c in train.classes}, None
    t0 = time.perf_counter()
    dets = {}
    for c in train.classes:
        t1 = time.perf_counter()
        dets[c] = make(bank, args.seed, args.epochs, json.loads(args.set)).fit(train.arrays[c][: args.limit])
        say(f"  {bank}: class {c} in {time.perf_counter() - t1:.1f} s")
    return dets, round(time.perf_counter() - t0, 1)


def measure(dets: dict, x: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) errors and input complexities of a bank (the pretrained kind: one backbone pass per image for
    every class, a chunk at a time; its scores have no complexity fit, so 1)."""
    models = list(dets.values())
    if getattr(models[0], "kind", "") == "pretrained":
        from bank.io.inputs import prepare

        scorer = type(models[0]).group_scorer(models)
        errors = np.concatenate([scorer(prepare(x[i:i + chunk], models[0].spec_)) for i in range(0, len(x), chunk)])
        return errors, np.ones_like(errors)
    pairs = [d.measure(x) for d in dets.values()]
    return np.stack([e for e, _ in pairs], axis=1), np.stack([c for _, c in pairs], axis=1)


def run_bank(bank: str, train, x_test, y_test, args, say) -> dict:
    dets, train_s = trained_bank(bank, train, args, say)
    t0 = time.perf_counter()
    errors, cx = measure(dets, x_test)
    score_s = time.perf_counter() - t0
    out = {"train_seconds": train_s, "score_seconds": round(score_s, 1)}
    rule_of_kinds = compare_kwargs(list(dets.values()))  # what a Router over these models compares
    out["compare"] = rule_of_kinds["compare"]
    for rule, kw in RULES.items():
        f = evaluate(decide(errors, train.classes, [d.stats_ for d in dets.values()], complexity=cx, **kw,
                            **rule_of_kinds), y_test)
        out[rule] = {k: f[k] for k in ("accuracy", "auroc_mean", "auroc_error_mean", "false_reject", "false_accept",
                                       "unknown_rate")}
    for compare in ("raw", "relative"):  # the argmin each way, whichever the kinds use
        r = decide(errors, train.classes, [d.stats_ for d in dets.values()], complexity=cx,
                   **compare_kwargs(list(dets.values()), compare))
        out[f"accuracy_{compare}"] = float(np.mean(np.asarray(r.nearest) == np.asarray(y_test)))
    z = np.stack([st.zscore(errors[:, k], d.stats_) for k, d in enumerate(dets.values())], axis=1)
    out["accuracy_argmin_z"] = float(np.mean(np.asarray(train.classes)[np.argmin(z, axis=1)] == y_test))
    return out


def contamination(train, args, say) -> dict:
    """A "1" model trained on 1s with 1% "3"s mixed in: how many of those 3s pass its 0.999 quantile?"""
    ones = train.arrays["1"][: args.limit]
    n3 = max(1, round(0.01 * len(ones)))
    threes = train.arrays["3"][:n3]
    mixed = np.concatenate([ones, threes])
    det = default_detector(args.seed, args.epochs).fit(mixed)
    cut = det.stats_.quantiles["0.999"]
    err3, cx3 = det.measure(threes)
    res = {"n_ones": int(len(ones)), "n_threes": int(n3), "quantile_0.999": cut,
           "threes_past_q999": int(np.sum(err3 > cut)),
           "threes_past_lognormal_z3": int(np.sum(st.zscore(err3, det.stats_, "lognormal") > 3)),
           "threes_past_complexity_z3": int(np.sum(st.zscore(err3, det.stats_, "complexity", cx3) > 3))}
    say(f"  contamination: {res['threes_past_q999']} of {n3} mixed-in 3s past the 0.999 quantile")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of MNIST IDX files")
    p.add_argument("--banks", default="pca,seed,default", help="comma-separated: pca, seed, default (the kind "
                   "--kind auto picks for digits), autoencoder, hog-ocsvm, ae-hog, geotrans, pretrained")
    p.add_argument("--limit", type=int, help="at most N training images per class (quick runs)")
    p.add_argument("--registry", help="use this trained 10-digit registry as the default bank (as examples/mnist.py "
                   "writes it) instead of training one")
    p.add_argument("--epochs", type=int, help="most epochs for the default bank (default: its own, 30)")
    p.add_argument("--set", default="{}", metavar="JSON", help="try other settings for the default bank, such as "
                   '\'{"batch_size": 32, "params": {"latent_dim": 32}}\'')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-contamination", action="store_true", help="skip the contamination case")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    train, test = load_labelled(args.data, "train"), load_labelled(args.data, "test")
    x_test = np.concatenate([test.arrays[c] for c in test.classes])
    y_test = [c for c in test.classes for _ in range(len(test.arrays[c]))]
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores", "set": args.set,
           "n_test": len(y_test), "limit_per_class": args.limit, "banks": {}}
    for bank in args.banks.split(","):
        say(f"bank {bank}")
        out["banks"][bank] = run_bank(bank, train, x_test, y_test, args, say)
    if not args.no_contamination:
        say("contamination case")
        out["contamination"] = contamination(train, args, say)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"MNIST, {out['n_test']} test images, {out['date']}, {out['machine']}")
    print("| bank | rule | argmin accuracy | mean AUROC (flag score) | mean AUROC (raw error) | false-reject | "
          "false-accept | unknown | training s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for bank, r in out["banks"].items():
        for rule in RULES:
            f = r[rule]
            print(f"| {bank} | {rule} | {f['accuracy']:.4f} | {f['auroc_mean']:.4f} | {f['auroc_error_mean']:.4f} | "
                  f"{f['false_reject']:.2%} | {f['false_accept']:.2%} | {f['unknown_rate']:.2%} | "
                  f"{r['train_seconds'] or 'loaded'} |")
    for bank, r in out["banks"].items():
        print(f"{bank}: the rows compare {r['compare']} errors; argmin accuracy comparing raw errors "
              f"{r['accuracy_raw']:.4f}, relative (z under each class) {r['accuracy_relative']:.4f}, over the "
              f"seeds' z {r['accuracy_argmin_z']:.4f}")
    if "contamination" in out:
        c = out["contamination"]
        print(f"contamination: a '1' model trained on {c['n_ones']} 1s + {c['n_threes']} 3s: "
              f"{c['threes_past_q999']} of the 3s past its 0.999 quantile, {c['threes_past_lognormal_z3']} past "
              f"lognormal z > 3, {c['threes_past_complexity_z3']} past complexity z > 3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
