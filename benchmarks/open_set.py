"""Open-set benchmark: how often does a digit bank say "unknown" to things that are not digits?

    python benchmarks/open_set.py --data ../shared/data/mnist [--registry PATH] [--json]
                                  [--kind autoencoder,pca,hog-ocsvm] [--limit N]

Builds foreign inputs from the MNIST test set and from nothing (blank and
constant images, uniform and Gaussian noise, inverted digits, digits rotated
90 degrees, mirrored digits other than the symmetric 0, 1 and 8, letters
drawn with the font that ships with Pillow and any DejaVu fonts on the
system, simple shapes), routes them through digit banks, by default the
autoencoder bank and a per-class PCA bank, and prints per group the share
called unknown, beside the normal test digits' unknown rate and argmin
accuracy. Each bank is judged under several rules, side by side, and a last
table puts the banks side by side under the default rule, a row per kind.

``--kind`` chooses the banks by kind of class model (comma-separated, each
with its own defaults and ``--seed``): ``autoencoder``
(``AutoencoderModel``), ``pca`` (``PCAModel()``), ``hog-ocsvm``
(``HOGOCSVMModel()``). Without it, ``--banks`` decides, as before (default
``default,pca``: the autoencoder bank and a PCA bank). In the JSON the
autoencoder bank stays under ``banks.default``, the others under their kind
(``banks.pca``, ``banks.hog-ocsvm``); ``kinds`` maps each key to its kind.
The latent-distance rule needs a latent code (the autoencoder's layer
"latent", PCA's projection): ``hog-ocsvm`` has none and skips it.

``--registry`` uses a trained 10-digit bank for the bank of its kind
(``examples/mnist.py`` writes one); without it every bank is trained
here (``--epochs`` for the kinds that train a network; the others ignore
it, and the output says so). ``--banks default`` is the autoencoder here
(the default before issue 28); ``--kind ae-hog`` is today's default for
digits. ``--limit`` fits each class on at most its first N training images
(quick runs).
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from bank.nets.runtime import cores  # noqa: E402
from quality import default_detector, measure  # noqa: E402

from bank import AutoencoderModel, Registry  # noqa: E402
from bank.verdict import stats as st  # noqa: E402
from bank.verdict.fitting import fit_error_stats
from bank.io.data import load_labelled  # noqa: E402
from bank.io.inputs import prepare  # noqa: E402
from bank.verdict.decision import compare_kwargs, decide  # noqa: E402
from bank.kinds import KINDS, kind_class  # noqa: E402

SIDE = 28
#: Letters a reader could take for a digit (O/0, I/1, S/5, Z/2, B/8, g/9...): reported apart.
DIGIT_LIKE = set("OoDIilJjSsZzBbGgqTt")
#: Rules side by side. Keyword arguments of ``decide``, plus what only this benchmark measures:
#: ``low`` (two-sided: also flag z < -low), ``latent`` (also flag a latent-code distance z > latent),
#: ``calibrate`` (bank-level: unknown when the image's lowest anomaly score passes the cut that
#: calls this share of the held-out digits unknown).
RULES = {
    "seeds: gaussian z > 3": {"method": "gaussian", "margin": None, "complexity_threshold": None},
    "lognormal z > 3 or margin > 0.2": {"method": "lognormal", "complexity_threshold": None},
    "two-sided lognormal |z| > 3 or margin": {"method": "lognormal", "complexity_threshold": None, "low": 3.0},
    "complexity-corrected z > 3 or margin": {"complexity_threshold": None},
    "default: corrected z > 3, margin, or complexity |z| > 4": {},
    "default + latent distance z > 3": {"latent": 3.0},
    "default, bank-level cut at 1% held-out unknown": {"calibrate": 0.01},
}
EXTRA = ("low", "latent", "calibrate")
#: The names ``--banks`` takes (today's) and the kind each is; ``--kind`` takes the kinds.
BANK_KINDS = {"default": "autoencoder", "autoencoder": "autoencoder", "pca": "pca", "hog-ocsvm": "hog-ocsvm"}
#: The options only the autoencoder bank reads.
AUTOENCODER_ONLY = ("--epochs",)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("L", (SIDE, SIDE), 0)
    return im, ImageDraw.Draw(im)


def fonts() -> list[ImageFont.FreeTypeFont]:
    """Pillow's own font, plus DejaVu faces where the system has them."""
    out = [ImageFont.load_default(size=s) for s in (18, 22)]
    for path in sorted(glob.glob("/usr/share/fonts/**/DejaVu*.ttf", recursive=True))[:6]:
        out.append(ImageFont.truetype(path, size=20))
    return out


def letters(rng: np.random.Generator, digit_like: bool) -> np.ndarray:
    chars = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if (c in DIGIT_LIKE) == digit_like]
    out = []
    for font in fonts():
        for c in chars:
            im, draw = _canvas()
            box = draw.textbbox((0, 0), c, font=font)
            w, h = box[2] - box[0], box[3] - box[1]
            x = (SIDE - w) // 2 - box[0] + int(rng.integers(-1, 2))
            y = (SIDE - h) // 2 - box[1] + int(rng.integers(-1, 2))
            draw.text((x, y), c, fill=255, font=font)
            out.append(np.asarray(im))
    return np.stack(out)


def shapes(rng: np.random.Generator, n: int = 300) -> np.ndarray:
    out = []
    for i in range(n):
        im, draw = _canvas()
        a, b = int(rng.integers(4, 9)), int(rng.integers(19, 25))
        kind = i % 6
        width = int(rng.integers(2, 4))
        if kind == 0:
            draw.rectangle((a, a, b, b), outline=255, width=width)
        elif kind == 1:
            draw.rectangle((a, a, b, b), fill=255)
        elif kind == 2:
            draw.polygon([(SIDE // 2, a), (a, b), (b, b)], outline=255, width=width)
        elif kind == 3:
            draw.ellipse((a, a, b, b), fill=255)
        elif kind == 4:
            draw.line((a, a, b, b), fill=255, width=width)
            draw.line((a, b, b, a), fill=255, width=width)
        else:
            draw.line((a, SIDE // 2, b, SIDE // 2), fill=255, width=width + 1)
            draw.line((SIDE // 2, a, SIDE // 2, b), fill=255, width=width + 1)
        out.append(np.asarray(im))
    return np.stack(out)


def foreign_groups(x_test: np.ndarray, y_test: np.ndarray, seed: int = 0, n: int = 1000) -> dict[str, np.ndarray]:
    """Every group of foreign inputs, uint8 (N, 28, 28)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_test), size=n, replace=False)
    asym = np.flatnonzero(~np.isin(y_test, [0, 1, 8]))
    mirror = rng.choice(asym, size=min(n, len(asym)), replace=False)
    return {
        "blank": np.zeros((100, SIDE, SIDE), np.uint8),
        "constant": np.repeat(np.linspace(8, 255, 100).astype(np.uint8), SIDE * SIDE).reshape(100, SIDE, SIDE),
        "uniform noise": rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8),
        "gaussian noise": np.clip(rng.normal(128, 50, (n, SIDE, SIDE)), 0, 255).astype(np.uint8),
        "inverted digits": 255 - x_test[pick],
        "rotated 90": np.rot90(x_test[pick], axes=(1, 2)).copy(),
        "mirrored (not 0, 1, 8)": x_test[mirror][:, :, ::-1].copy(),
        "letters": letters(rng, digit_like=False),
        "digit-like letters (O, I, S, Z, B, g...)": letters(rng, digit_like=True),
        "shapes": shapes(rng),
    }


def kinds_of(args, p: argparse.ArgumentParser) -> dict[str, str]:
    """Bank key -> kind, in order: from ``--kind`` when given, else from ``--banks``. The autoencoder bank
    keeps today's key, ``default``; the others are keyed by their kind."""
    names = [n.strip() for n in (args.kind or args.banks).split(",") if n.strip()]
    allowed = list(KINDS) if args.kind else list(BANK_KINDS)
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        p.error(f"{'--kind' if args.kind else '--banks'}: expected a comma-separated list of {', '.join(allowed)}, "
                f"got {(args.kind or args.banks)!r}")
    out: dict[str, str] = {}
    for n in names:
        kind = BANK_KINDS.get(n, n)  # a kind of the table names itself
        out["default" if kind == "autoencoder" else kind] = kind
    return out


def trained(kind: str, args, train, say) -> dict:
    """Per class a fitted detector of ``kind``: a registry's autoencoders, the autoencoder trained here, or
    another kind with its own defaults, fitted here."""
    classes = train.classes
    if args.registry:  # a trained bank of this kind (the autoencoder's must be one)
        reg = Registry(args.registry)
        found = {c: reg.entry(c).kind for c in classes}
        if set(found.values()) == {kind}:
            return {c: reg.load_detector(c) for c in classes}
        if kind == "autoencoder":
            raise SystemExit(f"open_set.py: --registry {args.registry} is the autoencoder bank's, but it holds "
                             f"{', '.join(f'{c}: {k}' for c, k in found.items() if k != 'autoencoder')}")
    if kind != "autoencoder":
        dets = {}
        for c in classes:
            t0 = time.perf_counter()
            epochs = {"epochs": args.epochs} if args.epochs else {}
            det = kind_class(kind).from_options(None, seed=args.seed, verbose=0, **epochs)  # what it takes of them
            if kind == "geotrans":  # digits: a mirrored digit is not the digit
                det.mirror = False
            dets[c] = det.fit(train.arrays[c][: args.limit])
            say(f"  {kind}: class {c} in {time.perf_counter() - t0:.1f} s")
        return dets
    dets = {}
    for c in classes:
        t0 = time.perf_counter()
        dets[c] = default_detector(args.seed, args.epochs).fit(train.arrays[c][: args.limit])
        say(f"  default: class {c} in {time.perf_counter() - t0:.1f} s")
    return dets


def held_out(det, images: np.ndarray) -> np.ndarray:
    """The images of a class its statistics were fitted on (its seeded calibration split)."""
    images = images[: det.training_.get("n_images", len(images))]  # a bank trained with a limit saw the first n
    seed = det.training_.get("seed", 0)
    fraction = det.training_.get("calibration_fraction", 0.1)
    kind = getattr(det, "kind", "autoencoder")
    if kind != "autoencoder":  # every other kind splits as bank.kinds.base.ClassModel does
        return images[kind_class(kind)(seed=seed, calibration_fraction=fraction)._split(len(images))[1]]
    return images[AutoencoderModel(seed=seed, calibration_fraction=fraction,
                                      monitor_fraction=det.training_.get("monitor_fraction", 0.1))._split(len(images))[2]]


def has_latent(det) -> bool:
    """Whether the class model has a latent code for the latent-distance rule (hog-ocsvm has none)."""
    return getattr(det, "kind", "autoencoder") in ("autoencoder", "pca")


def encoder(det):
    """Images -> latent codes: the PCA projection, or the autoencoder's layer named "latent"."""
    if getattr(det, "kind", "autoencoder") == "pca":
        core = det.core_
        return lambda x: (prepare(x, det.spec_).reshape(len(x), -1).astype(np.float64) - core.mean_) @ core.components_.T
    import keras

    enc = keras.Model(det.model_.input, det.model_.get_layer("latent").output)
    return lambda x: np.asarray(enc.predict(prepare(x, det.spec_), batch_size=512, verbose=0))


def latent_z(det, cal: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per group, the lognormal z of each code's Mahalanobis distance to the class's held-out codes."""
    from sklearn.covariance import LedoitWolf

    enc = encoder(det)
    codes = enc(cal)
    fit = LedoitWolf().fit(codes)
    d2 = lambda c: np.einsum("ni,ij,nj->n", c - fit.location_, fit.precision_, c - fit.location_)  # noqa: E731
    ref = fit_error_stats(d2(codes))
    return {g: st.zscore(d2(enc(x)), ref, "lognormal") for g, x in groups.items()}


def unknown_share(e, cx, lat, stats, classes, kw: dict, cut: float | None) -> np.ndarray:
    """Per image, unknown under a rule of :data:`RULES`."""
    r = decide(e, classes, stats, complexity=cx, **{k: v for k, v in kw.items() if k not in EXTRA})
    flags = r.flags
    if "low" in kw:
        flags = flags | (r.test_z < -kw["low"])
    if "latent" in kw:
        flags = flags | (lat > kw["latent"])
    if "calibrate" in kw:
        return r.anomaly.min(axis=1) > cut
    return flags.all(axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of MNIST IDX files")
    p.add_argument("--registry", help="a trained 10-digit registry, for the bank of its kind (else each bank is "
                   "trained here)")
    p.add_argument("--epochs", type=int, help="epochs when training the autoencoder bank (default 10; the "
                   "autoencoder's only)")
    p.add_argument("--kind", metavar="KIND[,KIND...]", help="kinds of digit bank, side by side: "
                   f"{', '.join(KINDS)} (default: autoencoder, with the pca bank of --banks beside it)")
    p.add_argument("--banks", default="default,pca", help="the banks when --kind is not given: default (the "
                   "autoencoder), pca, hog-ocsvm (default: default,pca)")
    p.add_argument("--limit", type=int, help="fit each class on at most its first N training images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    banks = kinds_of(args, p)
    if args.limit is not None and args.limit < 4:
        p.error(f"--limit: expected at least 4 images per class, got {args.limit}")
    given = [o for o in AUTOENCODER_ONLY if getattr(args, o[2:]) is not None]
    args.epochs = 10 if args.epochs is None else args.epochs
    takes_epochs = {k for k in banks.values() if "epochs" in kind_class(k).training_options}  # it trains a network
    ignored = {b: [o for o in given if not (k in takes_epochs and o == "--epochs")]
               for b, k in banks.items() if k != "autoencoder"}
    ignored = {b: opts for b, opts in ignored.items() if opts}
    note = (f"note: {', '.join(given)}: the autoencoder's; ignored by the {', '.join(ignored)} bank"
            f"{'s' if len(ignored) > 1 else ''} (fitted here with {'their' if len(ignored) > 1 else 'its'} own "
            "defaults)" if ignored else None)
    if note:
        say(note)

    train, test = load_labelled(args.data, "train"), load_labelled(args.data, "test")
    x_test = np.concatenate([test.arrays[c] for c in test.classes])
    y_test = np.concatenate([np.full(len(test.arrays[c]), int(c)) for c in test.classes])
    images = {"normal test digits": x_test, **foreign_groups(x_test, y_test, args.seed)}
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "groups": {g: len(x) for g, x in images.items()}, "banks": {}, "kinds": dict(banks),
           "limit_per_class": args.limit, "ignored_options": ignored, "skipped_rules": {}}
    for bank, kind in banks.items():
        say(f"bank {bank}" + (f" ({kind})" if bank != kind else ""))
        dets = trained(kind, args, train, say)
        classes, stats = train.classes, [dets[c].stats_ for c in train.classes]
        cal = np.concatenate([held_out(dets[c], train.arrays[c]) for c in classes])
        groups = {"held-out": cal, **images}
        measured = {g: measure(dets, x) for g, x in groups.items()}
        if all(has_latent(d) for d in dets.values()):
            lat = {g: np.stack(z, axis=1) for g, z in
                   zip(groups, zip(*[latent_z(dets[c], held_out(dets[c], train.arrays[c]), groups).values()
                                     for c in classes]))}
        else:
            lat = dict.fromkeys(groups)
        res = {}
        rule_of_kinds = compare_kwargs([dets[c] for c in classes])  # what a Router over these models compares
        out.setdefault("compare", {})[bank] = rule_of_kinds["compare"]
        for rule, kw in RULES.items():
            kw = {**kw, **rule_of_kinds}
            if "latent" in kw and lat["held-out"] is None:
                out["skipped_rules"].setdefault(bank, {})[rule] = f"{kind} has no latent code"
                continue
            cut = None
            if "calibrate" in kw:
                e, cx = measured["held-out"]
                r = decide(e, classes, stats, complexity=cx, **{k: v for k, v in kw.items() if k not in EXTRA})
                cut = float(np.quantile(r.anomaly.min(axis=1), 1 - kw["calibrate"]))
            res[rule] = {g: float(np.mean(unknown_share(*measured[g], lat[g], stats, classes, kw, cut)))
                         for g in images}
            e, cx = measured["normal test digits"]  # the nearest class as a Router over these kinds names it
            nearest = decide(e, classes, stats, complexity=cx, **rule_of_kinds).nearest
            res[rule]["argmin accuracy"] = float(np.mean(np.asarray(nearest) == y_test.astype(str)))
            if cut is not None:
                res[rule]["cut"] = cut
        out["banks"][bank] = res
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"share called unknown, {out['date']}, {out['machine']} (argmin accuracy on the normal test digits last)")
    if note:
        print(note)
    if args.limit:
        print(f"each class fitted on at most its first {args.limit} training images")
    for bank, res in out["banks"].items():
        rules = list(res)
        print(f"\n{bank} bank" + (f" ({banks[bank]})" if bank != banks[bank] else ""))
        print("| group | n | " + " | ".join(rules) + " |")
        print("| --- | --- |" + " --- |" * len(rules))
        for g in list(images) + ["argmin accuracy"]:
            n = out["groups"].get(g, "")
            print(f"| {g} | {n} | " + " | ".join(f"{res[r][g]:.1%}" if g != "argmin accuracy" else
                                                   f"{res[r][g]:.4f}" for r in rules) + " |")
        for rule, why in out["skipped_rules"].get(bank, {}).items():
            print(f"(rule {rule!r} not measured: {why})")
    default = next(r for r in RULES if not RULES[r])
    print(f"\nThe banks side by side, rule {default!r} (a row per kind):\n")
    print("| kind | " + " | ".join(f"{g} ({out['groups'][g]})" for g in images) + " | argmin accuracy |")
    print("| --- |" + " --- |" * (len(images) + 1))
    for bank, res in out["banks"].items():
        r = res[default]
        print(f"| {banks[bank]} | " + " | ".join(f"{r[g]:.1%}" for g in images) + f" | {r['argmin accuracy']:.4f} |")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
