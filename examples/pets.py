"""Train a "cat" and a "dog" detector on folders of photos and measure how well they tell the two apart.

    python examples/pets.py --cats photos/cats --dogs photos/dogs [--size 64] [--color rgb] [--json]
                            [--kind auto,autoencoder,pca,hog-ocsvm,ae-hog,geotrans,pretrained]
                            [--head knn|autoencoder]

Each folder is scanned once (unreadable files are named and skipped), a
share of each class is held out for testing (``--holdout``, seeded), and each
detector trains on the rest, then registers in ``--registry``. On the
held-out photos it prints each detector's AUROC (its score on the other
class's photos against its own), Welch's t between those scores, the argmin
accuracy (the model least surprised by a photo names it), and for a few
photos the seeds' "probability of cat": the cat model's normalized Gaussian
score ``exp(-z**2 / 2)``. With ``--json``: one object with ``cat_auroc``,
``dog_auroc``, ``welch_t``, ``accuracy`` and the rest.

``--kind`` chooses the kind of class model: ``auto`` (the default) is the
kind ``bank train`` chooses for photos, ``pretrained`` (features of a network
pretrained on ImageNet, and a one-class head on them: ``--head knn``, its
default, or ``autoencoder``), always at its network's input, 224x224 RGB
(``--size`` and ``--color`` do not apply to it); ``geotrans`` (a network per
class that recognises the turns and flips of its own photos), at 64x64 in
the photos' colour unless ``--size`` and ``--color`` say otherwise;
``autoencoder`` (streamed from disk through tf.data; 128x128 gray by
default), ``pca``, ``hog-ocsvm``, ``ae-hog``, each with its own defaults and
``--seed``. Several, comma-separated, run side by side on the same split and
held-out photos at the input of the first of them that is not
``pretrained`` (which keeps its own): a table row per kind, the first
kind's figures printed in full. The JSON keeps the first kind's figures at
the top (``cat_auroc`` ...) and has every kind's under ``kinds``
(``kinds.pca.cat_auroc`` ...); ``kind`` names the first. ``--epochs``,
``--batch-size``, ``--filters`` and ``--latent`` are the autoencoder's:
geotrans takes ``--epochs`` and ``--batch-size`` too (and ``pretrained``,
for its ``autoencoder`` head), other kinds ignore them, and say so. Every
kind registers its two models in the same ``--registry`` (a new version of
"cat" and of "dog" each); at the end the first kind's versions are the
active ones. ``pretrained``'s network is built once (and converted for
LiteRT), before its classes train: ``backbone_seconds``, apart from their
training seconds.
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

from bank import Registry, Router
from bank.reports.evaluate import evaluate
from bank.io.images import InputSpec
from bank.kinds import AUTO, KINDS, choose_kind, kind_class
from bank.io.pipeline import ImageFiles, batches, scan
from bank.training.runs import own_look

CLASSES = ("cat", "dog")
#: The options only the autoencoder reads, and their defaults.
AUTOENCODER_ONLY = {"epochs": 30, "batch_size": 32, "filters": None, "latent": None}
#: The kind that sees photos at its network's input, whatever --size and --color say.
OWN_INPUT = "pretrained"


def split(files: ImageFiles, holdout: float, seed: int) -> tuple[ImageFiles, ImageFiles]:
    """(training files, held-out files): a seeded share ``holdout`` of them held out."""
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(1, round(holdout * len(files)))
    return files.subset(order[n_test:]), files.subset(order[:n_test])


def kind_list(text: str) -> list[str]:
    """The comma-separated kinds of ``--kind``, each once, in order."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS and k != AUTO]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"expected one or more of {AUTO}, {', '.join(KINDS)}, comma-separated; "
                                         f"got {text!r}")
    return list(dict.fromkeys(kinds))


def resolve(kind: str, files: list[ImageFiles], args) -> str:
    """``kind``, or for ``auto`` the one kind ``bank train-all`` chooses for both classes' photos (their own
    sizes and colour) at the ``--size`` asked for."""
    if kind != AUTO:
        return kind
    looks = [own_look(f) for f in files]
    side, gray = max(s for s, _ in looks), all(g for _, g in looks)
    return choose_kind(side, gray, (args.size, args.size) if args.size else None)


def default_spec(kind: str, found: InputSpec, args) -> InputSpec:
    """The input of this run: ``--size`` and ``--color``, else the first kind's defaults (geotrans: its own
    square of the photos, 64 px in their colour; pretrained: its network's, 224 px RGB, whatever is asked;
    the others: 128 px gray, the seed's)."""
    if kind == OWN_INPUT:
        return kind_class(kind).choose_spec(found)
    if kind == "geotrans":
        chosen = kind_class(kind).choose_spec(found)
        return InputSpec(args.size or chosen.height, args.size or chosen.width, args.color or chosen.color)
    return InputSpec(args.size or 128, args.size or 128, args.color or "gray")


def make(kind: str, spec: InputSpec, args, params: dict):
    """An unfitted class model of ``kind``: the autoencoder with this run's options (also inside ae-hog),
    another kind with its own defaults but for the options it takes and was given (geotrans: --epochs;
    pretrained: --head, and --epochs, --batch-size for its autoencoder head)."""
    ae = {"params": params or None, "epochs": args.epochs, "batch_size": args.batch_size,
          "verbose": 0 if args.json else 2}
    cls = kind_class(kind)
    if "params" in cls.training_options:  # the autoencoder's options (also inside ae-hog)
        return cls.from_options(spec, seed=args.seed, **ae)
    own = {o: getattr(args, o) for o in AUTOENCODER_ONLY if o in args.given and o in takes(kind, args.head)}
    if "verbose" in takes(kind, args.head):
        own["verbose"] = ae["verbose"]
    if kind == OWN_INPUT and args.head:
        own["head"] = args.head
    return cls(spec=spec, seed=args.seed, **own)


def takes(kind: str, head: str | None = None) -> tuple[str, ...]:
    """The autoencoder's options a kind also takes (geotrans: epochs, batch size; pretrained with
    ``--head autoencoder``: epochs, batch size)."""
    if kind == OWN_INPUT and head == "autoencoder":
        return ("epochs", "batch_size", "verbose")
    options = kind_class(kind).training_options
    return (*options, "filters", "latent") if "params" in options else options  # they reach it inside params


def figures(router: Router, parts: list, names: list[str], truth: list[str], args) -> dict:
    """The held-out figures of one kind's pair of models, from its (errors, complexities) per batch."""
    from scipy.stats import ttest_ind

    errors = np.concatenate([e for e, _ in parts])
    res = router.result(errors, np.concatenate([c for _, c in parts]), names)
    ev = evaluate(res, truth)
    k = {c: res.classes.index(c) for c in CLASSES}
    own = np.asarray(truth)
    welch = ttest_ind(errors[own == "dog", k["cat"]], errors[own == "cat", k["cat"]], equal_var=False).statistic
    out = {
        "cat_auroc": ev["per_class"]["cat"]["auroc_error"],
        "dog_auroc": ev["per_class"]["dog"]["auroc_error"],
        "welch_t": float(welch),
        "accuracy": ev["accuracy"],
        "cat_auroc_flag_score": ev["per_class"]["cat"]["auroc"],
        "dog_auroc_flag_score": ev["per_class"]["dog"]["auroc"],
        "unknown_rate": ev["unknown_rate"],
    }
    rng = np.random.default_rng(args.seed)
    show = rng.choice(len(names), size=min(args.show, len(names)), replace=False)
    out["examples"] = [{"image": names[i], "truth": truth[i], "label": res.labels[i],
                        "probability_of_cat": float(res.score[i, k["cat"]]),
                        "probability_of_dog": float(res.score[i, k["dog"]])} for i in show]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cats", required=True, help="folder of cat photos (searched recursively)")
    p.add_argument("--dogs", required=True, help="folder of dog photos")
    p.add_argument("--registry", default="pets-registry", help="where the two models go (default ./pets-registry)")
    p.add_argument("--size", type=int, help="square input side in pixels (default: the first kind's; geotrans "
                   "64, the others 128; pretrained always sees 224)")
    p.add_argument("--color", choices=["gray", "rgb"], help="default: the first kind's (geotrans: the photos' "
                   "colour; the others gray, the seed's; pretrained always sees rgb)")
    p.add_argument("--kind", type=kind_list, default=[AUTO], metavar="KIND[,KIND...]",
                   help=f"kind of class model: {AUTO}, {', '.join(KINDS)}; several, comma-separated, run side by "
                   "side (default auto: the kind bank train chooses for photos, pretrained)")
    p.add_argument("--head", choices=["knn", "autoencoder"], help="the pretrained kind's head on its features "
                   "(default: the kind's, knn)")
    p.add_argument("--epochs", type=int, help="most epochs; early stopping may end sooner (default 30; the "
                   "autoencoder's; geotrans takes it too, its default 60)")
    p.add_argument("--batch-size", type=int, help="default 32 (the autoencoder's; geotrans takes it too, its "
                   "default 128)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of each class held out for testing (0.2)")
    p.add_argument("--filters", help="conv filters per block, such as 32,64,64,128 (default: by input size; the "
                   "autoencoder's)")
    p.add_argument("--latent", type=int, help="latent code size (default: by input size; the autoencoder's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=int, default=6, help="held-out photos shown with their probability of cat")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not 0 < args.holdout < 1:
        p.error(f"--holdout: expected a share between 0 and 1, got {args.holdout}")
    args.given = {o for o in AUTOENCODER_ONLY if getattr(args, o) is not None}
    for o, default in AUTOENCODER_ONLY.items():
        if getattr(args, o) is None:
            setattr(args, o, default)
    params = {}
    if args.filters:
        params["filters"] = [int(f) for f in args.filters.split(",")]
    if args.latent:
        params["latent_dim"] = args.latent
    reg = Registry(args.registry)
    held, skipped, train, found, every = {}, {}, {}, {}, []
    for name, folder in zip(CLASSES, (args.cats, args.dogs)):
        files = scan([folder])
        skipped[name] = files.skipped
        for path, reason in files.skipped:
            say(f"{name}: skipped {path}: {reason}")
        if len(files) < 10:
            raise SystemExit(f"pets.py: {folder}: {len(files)} readable photo(s); need at least 10")
        found[name] = files.spec()
        every.append(files)
        train[name], held[name] = split(files, args.holdout, args.seed)
        say(f"{name}: {len(train[name])} photos to train on, {len(held[name])} held out ({folder})")

    kinds = list(dict.fromkeys(resolve(k, every, args) for k in args.kind))
    if "auto" in args.kind:
        say(f"kind auto: {resolve('auto', every, args)} for these photos")
    shared = next((k for k in kinds if k != OWN_INPUT), kinds[0])  # pretrained keeps its own input
    spec = default_spec(shared, found["cat"], args)
    specs = {k: default_spec(k, found["cat"], args) if k == OWN_INPUT else spec for k in kinds}
    if OWN_INPUT in kinds and (args.size or args.color):
        say(f"note: --size, --color: ignored by {OWN_INPUT}, which sees its network's input, {specs[OWN_INPUT]}")
    if args.head and OWN_INPUT not in kinds:
        say(f"note: --head: the {OWN_INPUT} kind's; ignored by {', '.join(kinds)}")
    ignored = {k: ["--" + o.replace("_", "-") for o in AUTOENCODER_ONLY
                   if o in args.given and o not in takes(k, args.head)]
               for k in kinds}
    ignored = {k: v for k, v in ignored.items() if v}
    groups: dict[tuple, list[str]] = {}
    for k, v in ignored.items():
        groups.setdefault(tuple(v), []).append(k)
    note = ("note: " + "; ".join(f"{', '.join(v)}: the autoencoder's; ignored by {', '.join(ks)}"
                                 for v, ks in groups.items()) if ignored else None)
    if note:
        say(note)

    seconds, versions, n_train, setup = {}, {}, {}, {}
    for kind in kinds:
        tag = "" if kinds == ["autoencoder"] else f" ({kind})"  # today's lines unchanged for the default
        seconds[kind], versions[kind] = {}, {}
        if kind == OWN_INPUT:  # its network is built once a process, for every class: timed apart from them
            from bank.backbones.backbone import build

            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                build()
            setup[kind] = round(time.perf_counter() - t0, 1)
            say(f"{kind}: backbone built and converted in {setup[kind]} s (once, shared by the classes)")
        for name in CLASSES:
            det = make(kind, specs[kind], args, params)
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)  # Keras progress and warnings on stderr: stdout is the result
                det.fit(train[name])
            for w in caught:
                say(f"{name}{tag}: warning: {w.message}")
            seconds[kind][name] = round(time.perf_counter() - t0, 1)
            versions[kind][name] = reg.register(name, det).version
            how = (f"{det.training_['epochs_run']} epochs (best {det.training_['best_epoch']})" if kind == "autoencoder"
                   else f"{det.training_['n_train']} to fit, {det.training_['n_calibration']} for the statistics")
            say(f"{name}{tag}: version {versions[kind][name]}, {how}, {seconds[kind][name]} s; held-out error mean "
                f"{det.stats_.mean:.5f}")
        n_train[kind] = {c: reg.entry(c, versions[kind][c]).card["training"]["n_images"] for c in CLASSES}

    # each kind's two versions, whichever is active; LiteRT for the autoencoder, as Router.from_registry loads them
    routers = {kind: Router({c: reg.load_detector(c, versions[kind][c]) for c in CLASSES}) for kind in kinds}
    if len(kinds) > 1:  # the registry answers with the first kind, whose figures the top level holds
        for c in CLASSES:
            reg.activate(c, versions[kinds[0]][c])
    paths = held["cat"].paths + held["dog"].paths
    truth_of = dict(zip(paths, ["cat"] * len(held["cat"]) + ["dog"] * len(held["dog"])))
    parts, names = {kind: [] for kind in kinds}, {}
    for s in dict.fromkeys(specs.values()):  # streamed once per input (pretrained's 224 px RGB beside the others')
        names[s] = []
        for x, got in batches(paths, s, on_skip=lambda name, why: say(f"skipped {name}: {why}")):
            for kind, router in routers.items():
                if specs[kind] == s:
                    parts[kind].append(router.measure(x))
            names[s] += got
    names = names[specs[kinds[0]]]
    truth = [truth_of[n] for n in names]
    by_kind = {}
    for kind in kinds:
        f = figures(routers[kind], parts[kind], names, truth, args)
        f.update(n_train=n_train[kind], train_seconds=seconds[kind], versions=versions[kind], input=str(specs[kind]))
        if kind in ignored:
            f["ignored_options"] = ignored[kind]
        if kind == OWN_INPUT:
            f.update(head=args.head or "knn", backbone_seconds=setup[kind])
        by_kind[kind] = f
    first = by_kind[kinds[0]]
    out = {
        **{k: first[k] for k in ("cat_auroc", "dog_auroc", "welch_t", "accuracy", "cat_auroc_flag_score",
                                 "dog_auroc_flag_score", "unknown_rate", "n_train")},
        "n_test": {c: len(held[c]) for c in CLASSES},
        "skipped": {c: len(skipped[c]) for c in CLASSES},
        "input": str(specs[kinds[0]]),
        "train_seconds": first["train_seconds"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "registry": str(reg.root),
        "examples": first["examples"],
        "kind": kinds[0],
        "kinds": by_kind,
        "active": {c: versions[kinds[0]][c] for c in CLASSES},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if len(kinds) > 1:
        own = f" ({OWN_INPUT} at {specs[OWN_INPUT]})" if OWN_INPUT in kinds and specs[OWN_INPUT] != spec else ""
        print(f"{len(kinds)} kinds side by side on the same held-out photos, {out['n_test']['cat']} cats and "
              f"{out['n_test']['dog']} dogs at {spec}{own}:\n")
        print("| kind | cat AUROC | dog AUROC | Welch's t | argmin accuracy | called unknown | training s (cat, dog) "
              "| versions (cat, dog) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for kind, f in by_kind.items():
            print(f"| {kind} | {f['cat_auroc']:.3f} | {f['dog_auroc']:.3f} | {f['welch_t']:.2f} | {f['accuracy']:.3f} "
                  f"| {f['unknown_rate']:.1%} | {f['train_seconds']['cat']}, {f['train_seconds']['dog']} "
                  f"| {f['versions']['cat']}, {f['versions']['dog']} |")
        print(f"\nactive in {reg.root}: the {kinds[0]} versions; the first kind in full:\n")
    if kinds != ["autoencoder"]:
        print(f"kind: {kinds[0]}" + (f" (head {first['head']})" if kinds[0] == OWN_INPUT else ""))
    if note:
        print(note)
    print(f"held out: {out['n_test']['cat']} cats, {out['n_test']['dog']} dogs at {out['input']}")
    print(f"cat detector AUROC (dogs vs cats, by its error): {out['cat_auroc']:.3f}")
    print(f"dog detector AUROC (cats vs dogs, by its error): {out['dog_auroc']:.3f}")
    print(f"Welch's t, cat model's error on dogs vs on cats: {out['welch_t']:.2f}")
    print(f"argmin accuracy: {out['accuracy']:.3f}; called unknown: {out['unknown_rate']:.1%}")
    print("for a few held-out photos, each model's score exp(-z^2/2) (the seeds' \"probability\": 1 at the "
          "model's typical error, falling either side; not a probability, the two need not sum to 1):")
    for e in out["examples"]:
        print(f"  {e['image']}: {e['truth']}, labelled {e['label']}, cat score {e['probability_of_cat']:.3f}, "
              f"dog score {e['probability_of_dog']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
