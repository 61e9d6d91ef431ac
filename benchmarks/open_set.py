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
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from quality import PCADetector, default_detector  # noqa: E402

from bank import Registry  # noqa: E402
from bank.data import load_labelled  # noqa: E402
from bank.router import decide  # noqa: E402

SIDE = 28
#: Letters a reader could take for a digit (O/0, I/1, S/5, Z/2, B/8, g/9...): reported apart.
DIGIT_LIKE = set("OoDIilJjSsZzBbGgqTt")
RULES = {
    "seeds: gaussian z > 3": {"method": "gaussian", "margin": None},
    "lognormal z > 3": {"method": "lognormal", "margin": None},
    "default: lognormal z > 3 or margin > 0.2": {"method": "lognormal", "margin": 0.2},
}


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


def bank_errors(kind: str, args, train, images: dict[str, np.ndarray], say) -> tuple[list, dict]:
    classes = train.classes
    if kind == "pca":
        dets = {c: PCADetector(seed=args.seed).fit(train.arrays[c]) for c in classes}
    elif args.registry:
        reg = Registry(args.registry)
        dets = {c: reg.load_detector(c) for c in classes}
    else:
        dets = {}
        for c in classes:
            t0 = time.perf_counter()
            dets[c] = default_detector(args.seed, args.epochs).fit(train.arrays[c])
            say(f"  default: class {c} in {time.perf_counter() - t0:.1f} s")
    stats = [dets[c].stats_ for c in classes]
    errors = {g: np.stack([dets[c].reconstruction_error(x) for c in classes], axis=1) for g, x in images.items()}
    return stats, errors


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
    out = {"date": time.strftime("%Y-%m-%d"), "groups": {g: len(x) for g, x in images.items()}, "banks": {}}
    for bank in args.banks.split(","):
        say(f"bank {bank}")
        stats, errors = bank_errors(bank, args, train, images, say)
        res = {}
        for rule, kw in RULES.items():
            r = {}
            for g, e in errors.items():
                d = decide(e, train.classes, stats, **kw)
                r[g] = float(np.mean(d.unknown))
            normal = decide(errors["normal test digits"], train.classes, stats, **kw)
            r["argmin accuracy"] = float(np.mean(np.asarray(normal.nearest).astype(int) == y_test))
            res[rule] = r
        out["banks"][bank] = res
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"share called unknown, {out['date']} (argmin accuracy on the normal test digits last)")
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
