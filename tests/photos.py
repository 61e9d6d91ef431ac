"""Synthetic "photos" for the tests: two families a detector should tell apart, saved as real files.

- ``stripes``: soft stripes at a random angle, frequency and phase, in warm tints (reds, oranges);
- ``blobs``: a few filled ellipses in cool colours (blues, greens) on a flat background.

Each file gets Gaussian noise, a random size (40 to 160 pixels a side), a random
mode (RGB, L, RGBA, P) and format (PNG, JPEG, WebP); some JPEGs carry an EXIF
orientation. ``corrupt`` files are added apart: a truncated JPEG, text named
.jpg, an empty .png.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FAMILIES = ("stripes", "blobs")


def draw(family: str, rng: np.random.Generator) -> Image.Image:
    """One RGB image of ``family`` at a random size, with noise."""
    w, h = (int(v) for v in rng.integers(40, 161, size=2))
    if family == "stripes":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.08, 0.25), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        tint = np.array([rng.uniform(0.7, 1.0), rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.2)])
        arr = (0.15 + 0.85 * wave[..., None]) * tint[None, None, :] * 255
    elif family == "blobs":
        cool = lambda: (int(rng.integers(0, 60)), int(rng.integers(60, 256)), int(rng.integers(120, 256)))  # noqa: E731
        im = Image.new("RGB", (w, h), cool())
        pen = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.uniform(0, 0.6) * w, rng.uniform(0, 0.6) * h
            x1, y1 = x0 + rng.uniform(0.2, 0.5) * w, y0 + rng.uniform(0.2, 0.5) * h
            pen.ellipse([x0, y0, x1, y1], fill=cool())
        arr = np.asarray(im, dtype=np.float32)
    else:
        raise ValueError(family)
    arr = arr + rng.normal(0, 8, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def save(im: Image.Image, path: Path, rng: np.random.Generator) -> Path:
    """Save in a random mode and format; some JPEGs stored turned, with the EXIF tag that turns them back."""
    fmt = str(rng.choice(["png", "jpg", "webp"]))
    modes = ["RGB", "RGB", "RGBA", "P", "L"] if fmt == "png" else ["RGB", "RGB", "RGB", "L"]  # some gray copies
    mode = str(rng.choice(modes))
    im = im.convert(mode)
    path = path.with_suffix("." + fmt)
    if fmt == "jpg" and rng.random() < 0.3:
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 clockwise to view
        im.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=90, exif=exif)
    else:
        im.save(path, {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt], **({"quality": 90} if fmt != "png" else {}))
    return path


def make_family(folder: Path, family: str, n: int, seed: int = 0, corrupt: bool = False) -> list[Path]:
    """``n`` images of ``family`` in ``folder`` (and three corrupt files when ``corrupt``); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    paths = [save(draw(family, rng), folder / f"{family}_{i:04d}", rng) for i in range(n)]
    if corrupt:
        buf = io.BytesIO()
        draw(family, rng).save(buf, "JPEG")
        (folder / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
        (folder / "notes.jpg").write_text("not a photo\n")
        (folder / "empty.png").write_bytes(b"")
    return paths
