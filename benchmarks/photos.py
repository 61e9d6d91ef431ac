"""Peak memory of training on many photos: streamed from disk (tf.data) against held in memory.

    python benchmarks/photos.py [--n 10000] [--data DIR] [--size 128] [--epochs 1] [--json]

Without ``--data`` it first writes ``--n`` synthetic photos (JPEGs of 160 to
480 pixels a side: noise, gradients and shapes; kept in ``--cache`` for the
next run). Each way of training runs in its own fresh process, one after the
other, on the same files and settings, and reports its peak resident memory
(``ru_maxrss``) and time:

- ``streamed``: ``AutoencoderModel.fit(scan(folder))`` with nothing kept
  in memory (the cache of decoded images turned off), what ``bank train``
  does with sets too big to keep;
- ``in memory``: every photo decoded and brought to the input spec into one
  float32 array first, then ``fit`` on it (the way a notebook does it).

The table also gives the images' size in memory at the input spec
(N x H x W x C x 4 bytes). The model is small (``--filters``) so that an epoch
over 10,000 photos takes minutes: memory is what is measured, and the model's
share of it is the same in both rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
import numpy as np
mode, folder, size, epochs, filters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
import bank.io.pipeline as pipeline
from bank import AutoencoderModel
from bank.io.decoding import read_image
from bank.io.images import InputSpec, to_spec
spec = InputSpec(size, size, "gray")
t0 = time.perf_counter()
files = pipeline.scan([folder])
det = AutoencoderModel(spec=spec, epochs=epochs, batch_size=32, verbose=0,
                          params={"filters": [int(f) for f in filters.split(",")], "latent_dim": 32})
if mode == "streamed":
    pipeline.CACHE_BYTES = 0
    det.fit(files)
else:
    x = np.empty((len(files), *spec.shape), np.float32)
    for i, p in enumerate(files.paths):
        x[i] = to_spec([read_image(p)], spec)[0]
    det.fit(x)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "n": len(files), "data": det.training_["data"], "epochs_run": det.training_["epochs_run"]}))
"""


def make_photos(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` photo-like JPEGs (random sizes, noise, gradients, shapes) in ``folder``, unless already there."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(160, 481, size=2))
        if i < have:
            continue
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = (xx / w)[..., None] * rng.uniform(0, 255, 3) + (yy / h)[..., None] * rng.uniform(0, 255, 3)
        im = Image.fromarray(np.clip(base / 2 + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))
        pen = ImageDraw.Draw(im)
        for _ in range(3):
            x0, y0 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
            pen.ellipse([x0, y0, x0 + w * 0.3, y0 + h * 0.3], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        im.save(folder / f"photo_{i:05d}.jpg", quality=85)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="synthetic photos to write (default 10000)")
    p.add_argument("--data", help="a folder of your own photos instead (all of it is used)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "bank-bench-photos"),
                   help="where the synthetic photos are kept between runs")
    p.add_argument("--size", type=int, default=128, help="input side (default 128, gray)")
    p.add_argument("--epochs", type=int, default=1, help="default 1: every photo read once per epoch")
    p.add_argument("--filters", default="8,16,16,32", help="conv filters per block (default 8,16,16,32)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    folder = Path(args.data) if args.data else Path(args.cache) / str(args.n)
    if not args.data:
        t0 = time.perf_counter()
        make_photos(folder, args.n)
        print(f"photos in {folder} ({time.perf_counter() - t0:.0f} s to write)", file=sys.stderr)
    rows = []
    for mode in ("streamed", "in memory"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), str(args.size), str(args.epochs),
                              args.filters], capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append({"mode": mode, **json.loads(out.stdout.strip().splitlines()[-1])})
        print(f"{mode}: done", file=sys.stderr)
    n = rows[0]["n"]
    in_memory_mb = n * args.size * args.size * 4 / 2**20
    result = {"images": n, "input": f"{args.size}x{args.size} gray", "epochs": args.epochs,
              "images_in_memory_mb": round(in_memory_mb), "rows": rows,
              "streamed_over_in_memory_rss": rows[0]["peak_rss_mb"] / rows[1]["peak_rss_mb"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{n} photos at {args.size}x{args.size} gray: {in_memory_mb:.0f} MB as float32 at the input spec")
    print(f"{'training':<12}{'peak RSS MB':>12}{'seconds':>10}  data")
    for r in rows:
        print(f"{r['mode']:<12}{r['peak_rss_mb']:>12.0f}{r['seconds']:>10.0f}  {r['data']}")
    print(f"streamed / in memory peak RSS: {result['streamed_over_in_memory_rss']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
