"""Open-set benchmark: how often does a digit bank say "unknown" to things that are not digits?

    python benchmarks/open_set.py --data ../shared/data/mnist [--registry PATH] [--json]

Builds foreign inputs from the MNIST test set and from nothing (blank and
constant images, uniform and Gaussian noise, inverted digits, digits rotated
90 degrees, mirrored digits other than the symmetric 0, 1 and 8, letters
drawn with the font that ships with Pillow and any DejaVu fonts on the
system, simple shapes), routes them through two digit banks, the default
autoencoder bank and a per-class PCA bank, and prints per group the share
called unknown, beside the normal test digits' unknown rate and argmin
accuracy. Each bank is judged under several rules, side by side.

``--registry`` uses a trained 10-digit bank (as ``examples/mnist.py``
writes); without it the default bank is trained here (``--epochs``).
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
from bank.runtime import cores  # noqa: E402
from quality import PCADetector, default_detector, measure  # noqa: E402

from bank import AutoencoderDetector, Registry  # noqa: E402
from bank import stats as st  # noqa: E402
from bank.data import load_labelled  # noqa: E402
from bank.inputs import prepare  # noqa: E402
from bank.decision import decide  # noqa: E402

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


def trained(kind: str, args, train, say) -> dict:
    """Per class a fitted detector: the PCA baseline, a registry's models, or the default trained here."""
    classes = train.classes
    if kind == "pca":
        return {c: PCADetector(seed=args.seed).fit(train.arrays[c]) for c in classes}
    if args.registry:
        reg = Registry(args.registry)
        return {c: reg.load_detector(c) for c in classes}
    dets = {}
    for c in classes:
        t0 = time.perf_counter()
        dets[c] = default_detector(args.seed, args.epochs).fit(train.arrays[c])
        say(f"  default: class {c} in {time.perf_counter() - t0:.1f} s")
    return dets


def held_out(det, images: np.ndarray) -> np.ndarray:
    """The images of a class its statistics were fitted on (its seeded calibration split)."""
    if isinstance(det, PCADetector):
        order = np.random.default_rng(det.seed).permutation(len(images))
        return images[order[: max(2, round(det.calibration_fraction * len(images)))]]
    images = images[: det.training_.get("n_images", len(images))]  # a registry trained with --limit saw the first n
    seed = det.training_.get("seed", 0)
    return images[AutoencoderDetector(seed=seed, calibration_fraction=det.training_.get("calibration_fraction", 0.1),
                                      monitor_fraction=det.training_.get("monitor_fraction", 0.1))._split(len(images))[2]]


def encoder(det):
    """Images -> latent codes: the PCA projection, or the autoencoder's layer named "latent"."""
    if isinstance(det, PCADetector):
        return lambda x: det.pca_.transform(x.reshape(len(x), -1).astype(np.float32) / 255.0)
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
    ref = st.fit_error_stats(d2(codes))
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
    p.add_argument("--registry", help="a trained 10-digit registry for the default bank (else train one here)")
    p.add_argument("--epochs", type=int, default=10, help="epochs when training the default bank (default 10)")
    p.add_argument("--banks", default="default,pca")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    train, test = load_labelled(args.data, "train"), load_labelled(args.data, "test")
    x_test = np.concatenate([test.arrays[c] for c in test.classes])
    y_test = np.concatenate([np.full(len(test.arrays[c]), int(c)) for c in test.classes])
    images = {"normal test digits": x_test, **foreign_groups(x_test, y_test, args.seed)}
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "groups": {g: len(x) for g, x in images.items()}, "banks": {}}
    for bank in args.banks.split(","):
        say(f"bank {bank}")
        dets = trained(bank, args, train, say)
        classes, stats = train.classes, [dets[c].stats_ for c in train.classes]
        cal = np.concatenate([held_out(dets[c], train.arrays[c]) for c in classes])
        groups = {"held-out": cal, **images}
        measured = {g: measure(dets, x) for g, x in groups.items()}
        lat = {g: np.stack(z, axis=1) for g, z in
               zip(groups, zip(*[latent_z(dets[c], held_out(dets[c], train.arrays[c]), groups).values()
                                 for c in classes]))}
        res = {}
        for rule, kw in RULES.items():
            cut = None
            if "calibrate" in kw:
                e, cx = measured["held-out"]
                r = decide(e, classes, stats, complexity=cx, **{k: v for k, v in kw.items() if k not in EXTRA})
                cut = float(np.quantile(r.anomaly.min(axis=1), 1 - kw["calibrate"]))
            res[rule] = {g: float(np.mean(unknown_share(*measured[g], lat[g], stats, classes, kw, cut)))
                         for g in images}
            res[rule]["argmin accuracy"] = float(np.mean(np.argmin(measured["normal test digits"][0], axis=1)
                                                         == y_test))
            if cut is not None:
                res[rule]["cut"] = cut
        out["banks"][bank] = res
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"share called unknown, {out['date']}, {out['machine']} (argmin accuracy on the normal test digits last)")
    for bank, res in out["banks"].items():
        rules = list(res)
        print(f"\n{bank} bank")
        print("| group | n | " + " | ".join(rules) + " |")
        print("| --- | --- |" + " --- |" * len(rules))
        for g in list(images) + ["argmin accuracy"]:
            n = out["groups"].get(g, "")
            print(f"| {g} | {n} | " + " | ".join(f"{res[r][g]:.1%}" if g != "argmin accuracy" else
                                                   f"{res[r][g]:.4f}" for r in rules) + " |")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
