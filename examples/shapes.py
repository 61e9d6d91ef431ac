"""Drawn shapes: circles, squares and triangles, a small dataset to try the bank on, as a newcomer would.

    python examples/shapes.py OUT [--per-class 130] [--test 25] [--color] [--seed 0]

writes ``OUT/train/<class>/*.png`` (``--per-class`` minus ``--test`` images per class, plus two
corrupt files among them: a truncated PNG and a text file named .png) and ``OUT/test/<class>/*.png``
(``--test`` per class), then trains and evaluates as a newcomer would::

    bank train circle OUT/train/circle        # or: bank train-all OUT/train
    bank evaluate OUT

Each image: a random size from 32 to 128 pixels a side (mostly square, some not), a light background,
one dark shape of a random size (its bounding box 30% to 90% of the shorter side), position, stroke width
(3% to 8% of the shorter side), filled or outline; squares turned by up to 15 degrees, triangles by any angle. Drawn at 4x and
reduced, so edges are smooth. Gray by default (``--color``: tinted background and shape). Seeded:
the same arguments give the same images.

From Python: ``draw(shape, rng)`` gives one PIL image, ``make_shapes(n, ...)`` arrays
in memory, ``write_shapes(out, ...)`` the folders above.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
SCALE = 4  # drawn at this multiple, then reduced: smooth edges


def _polygon(cx: float, cy: float, r: float, corners: int, angle: float) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(angle + 2 * math.pi * k / corners), cy + r * math.sin(angle + 2 * math.pi * k / corners))
            for k in range(corners)]


def draw(shape: str, rng: np.random.Generator, *, size: int | tuple[int, int] | None = None,
         color: bool = False) -> Image.Image:
    """One image of ``shape`` ("circle", "square" or "triangle"): gray ("L"), or RGB when ``color``.

    ``size``: a side, or (width, height); None picks one from 32 to 128 (a fifth of them not square).
    """
    if shape not in SHAPES:
        raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")
    if size is None:
        w = int(rng.integers(32, 129))
        h = int(np.clip(round(w * rng.uniform(0.75, 1.33)), 32, 128)) if rng.random() < 0.2 else w
    elif isinstance(size, int):
        w = h = size
    else:
        w, h = size
    W, H = w * SCALE, h * SCALE
    if color:
        bg = tuple(int(v) for v in rng.integers(170, 256, size=3))
        ink = tuple(int(v) for v in rng.integers(0, 110, size=3))
    else:
        bg, ink = int(rng.integers(180, 256)), int(rng.integers(0, 90))
    im = Image.new("RGB" if color else "L", (W, H), bg)
    pen = ImageDraw.Draw(im)
    side = min(W, H)
    extent = rng.uniform(0.3, 0.9) * side  # the shape's bounding box: 30% to 90% of the shorter side
    filled = rng.random() < 0.5
    stroke = max(SCALE, round(rng.uniform(0.03, 0.08) * side))  # 3% to 8% of the shorter side (1 to 10 pixels)
    if shape == "circle":
        unit = [(-1.0, -1.0), (1.0, 1.0)]
    else:
        corners = 4 if shape == "square" else 3
        turn = rng.uniform(-15, 15) if shape == "square" else rng.uniform(0, 360)
        base = math.pi / 4 if shape == "square" else -math.pi / 2
        unit = _polygon(0, 0, 1, corners, base + math.radians(turn))
    xs, ys = [p[0] for p in unit], [p[1] for p in unit]
    r = extent / max(max(xs) - min(xs), max(ys) - min(ys))
    cx = rng.uniform(-min(xs) * r, W - max(xs) * r)
    cy = rng.uniform(-min(ys) * r, H - max(ys) * r)
    kw = {"fill": ink} if filled else {"outline": ink, "width": stroke}
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], **kw)
    else:
        pts = [(cx + r * x, cy + r * y) for x, y in unit]
        if filled:
            pen.polygon(pts, fill=ink)
        else:
            pen.line(pts + pts[:1], fill=ink, width=stroke, joint="curve")
    return im.resize((w, h), Image.Resampling.LANCZOS)


def make_shapes(n: int, *, size: int | tuple[int, int] | None = None, color: bool = False, seed: int = 0,
                shapes: tuple[str, ...] = SHAPES) -> dict[str, list[np.ndarray]]:
    """``n`` images of each shape in memory, as uint8 arrays (H, W) or (H, W, 3); seeded per shape
    (the first ``k`` images of a shape are the same whatever ``n``)."""
    out = {}
    for s in shapes:
        rng = np.random.default_rng([seed, SHAPES.index(s)])
        out[s] = [np.asarray(draw(s, rng, size=size, color=color)) for _ in range(n)]
    return out


def write_shapes(out: str | Path, per_class: int = 130, test: int = 25, *, size: int | tuple[int, int] | None = None,
                 color: bool = False, seed: int = 0, corrupt: bool = True) -> dict[str, dict[str, list[Path]]]:
    """``OUT/train/<shape>/`` (``per_class - test`` PNGs each) and ``OUT/test/<shape>/`` (``test`` each);
    with ``corrupt``, a truncated PNG and a text file named .png in the first two train folders.
    Returns the paths written, by split and shape."""
    if not 0 <= test < per_class:
        raise ValueError(f"test: expected 0 <= test < per_class ({per_class}), got {test}")
    out = Path(out)
    images = make_shapes(per_class, size=size, color=color, seed=seed)
    written: dict[str, dict[str, list[Path]]] = {"train": {}, "test": {}}
    for s, imgs in images.items():
        for split, part in (("train", imgs[: per_class - test]), ("test", imgs[per_class - test :])):
            folder = out / split / s
            folder.mkdir(parents=True, exist_ok=True)
            written[split][s] = []
            for i, arr in enumerate(part):
                path = folder / f"{s}_{i:04d}.png"
                Image.fromarray(arr).save(path)
                written[split][s].append(path)
    if corrupt:
        buf = io.BytesIO()
        Image.fromarray(images[SHAPES[0]][0]).save(buf, "PNG")
        (out / "train" / SHAPES[0] / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        (out / "train" / SHAPES[1] / "notes.png").write_text("not an image\n")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", metavar="OUT", help="folder to write train/<class>/ and test/<class>/ into")
    p.add_argument("--per-class", type=int, default=130, help="images per class, test ones included (default 130)")
    p.add_argument("--test", type=int, default=25, help="of which held out under test/ (default 25)")
    p.add_argument("--size", type=int, help="one side for every image (default: random, 32 to 128)")
    p.add_argument("--color", action="store_true", help="tinted background and shapes (default gray)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--no-corrupt", action="store_true", help="leave out the two corrupt files")
    args = p.parse_args(argv)
    written = write_shapes(args.out, args.per_class, args.test, size=args.size, color=args.color, seed=args.seed,
                           corrupt=not args.no_corrupt)
    for split, by in written.items():
        print(f"{split}: " + ", ".join(f"{len(v)} {k}" for k, v in by.items()) + f" in {Path(args.out) / split}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
