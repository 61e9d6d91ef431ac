"""A bank of many small classes: 10, 100 and 1,000 copies of one 8x8 dense digit class, before and after stacking.

    python benchmarks/classes.py [--counts 10,100,1000] [--epochs 10] [--calls 100] [--json]
                                 [--old-checkout /tmp/old]

One dense autoencoder (the 8x8 default: 64-64-8-64-64) is trained for ``--epochs`` on the zeros of
scikit-learn's ``load_digits`` and registered once in a temporary registry; the other classes are copies
of its folder under other names (their cards renamed), so the largest bank costs no more training. Each
bank (the first n classes) answers the 1,797 digits through ``Router.from_registry(...).score`` in a fresh
Python process (its load time and peak RSS its own), two ways, side by side in one run:

- ``after``: ``runtime="auto"``, the classes' dense weights stacked in NumPy (:mod:`bank.nets.stacked`);
- ``before``: ``runtime="litert"``, today's path before stacking, one LiteRT call per class per batch
  (or, with ``--old-checkout PATH``, the bank of a checkout such as ``git worktree add /tmp/old HEAD``
  with ``runtime="auto"``: the load time as it was too).

Measured per bank and way: images/s and class-images/s (batches of 256), GFLOP/s from the dense layers'
multiply-adds (2 FLOP each) and its share of float32 NumPy matmul measured in the same run (2048 x 2048,
on one BLAS thread, as the stacked products run, and on all of them), one image warm (median of ``--calls`` calls after two), the first answer to
one image from a fresh process, the load time of ``Router.from_registry`` and the process's peak RSS
(VmHWM). The errors of both ways are compared (max relative difference). Progress goes to stderr;
``--json`` prints one JSON object instead of the markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COUNTS = (10, 100, 1000)
#: A fresh process: argv = registry, classes (comma-separated), runtime, calls, reps, the parent's clock at
#: launch, the digits (.npy), where to save the errors. Prints one JSON line.
BANK_RUN = """
import json, statistics, sys, time
import numpy as np
x = np.load(sys.argv[7])
t1 = time.time()
from bank import Registry, Router
router = Router.from_registry(Registry(sys.argv[1]), sys.argv[2].split(","), runtime=sys.argv[3])
t2 = time.time()
router.score(x[:1])
first = time.time() - float(sys.argv[6])
calls, reps = int(sys.argv[4]), int(sys.argv[5])
def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t
router.score(x[1:2])
one = statistics.median(timed(lambda i=i: router.score(x[i % len(x) : i % len(x) + 1])) for i in range(calls))
router.score(x[:256])
batch = min(timed(lambda: router.score(x)) for _ in range(reps))
alone = min(timed(lambda: router.errors(x)) for _ in range(reps))
np.save(sys.argv[8], router.errors(x))
hwm = [float(s.split()[1]) / 1024 for s in open("/proc/self/status") if s.startswith("VmHWM:")][0]
print(json.dumps({"load_s": t2 - t1, "first_answer_s": first, "single_ms": 1000 * one, "img_per_s": len(x) / batch,
                  "errors_img_per_s": len(x) / alone,
                  "peak_rss_mb": hwm, "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def digits() -> np.ndarray:
    """The 1,797 8x8 digits of scikit-learn, float32 in [0, 1], (N, 8, 8)."""
    from sklearn.datasets import load_digits

    return (load_digits().images / 16.0).astype(np.float32)


def digit_class(epochs: int = 10, seed: int = 0):
    """A fitted 8x8 dense autoencoder of the zeros of ``load_digits`` (the default architecture)."""
    from sklearn.datasets import load_digits

    from bank import AutoencoderModel

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    return AutoencoderModel(epochs=epochs, batch_size=32, seed=seed, verbose=0).fit(x[d.target == 0])


def copies_registry(det, root: Path, n: int):
    """A registry at ``root`` holding ``det`` as class ``c0000`` and n - 1 copies of its folder, ``c0001``, ...
    (each card renamed): n classes for one registration. Returns the Registry."""
    from bank import Registry

    reg = Registry(root)
    reg.register("c0000", det)
    src = root / "c0000"
    for k in range(1, n):
        dst = root / f"c{k:04d}"
        shutil.copytree(src, dst)
        for card in dst.glob("*/card.json"):
            c = json.loads(card.read_text())
            c["class"] = dst.name
            card.write_text(json.dumps(c))
    return reg


def dense_macs(reg) -> int:
    """Multiply-adds per image of one class's dense layers, from its card's layout."""
    e = reg.entry("c0000")
    widths = [e.spec.height * e.spec.width * e.spec.channels] + [u for u, _ in e.card["params"]["dense"]["layers"]]
    return sum(i * o for i, o in zip(widths, widths[1:]))


def matmul_gflops(n: int = 2048, reps: int = 5, threads: int | None = None) -> float:
    """float32 NumPy matmul of two n x n matrices, best of ``reps``, on ``threads`` BLAS threads (None: as set)."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    a, b = (np.random.default_rng(i).random((n, n), dtype=np.float32) for i in (0, 1))
    with threadpool_limits(threads, user_api="blas") if threads else nullcontext():
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure_bank(root: Path, classes: list[str], runtime: str, calls: int, reps: int,
                 pythonpath: str | None = None) -> tuple[dict, np.ndarray]:
    """One bank answering in a fresh process (:data:`BANK_RUN`): its numbers, and its (N, K) errors on the digits.
    ``pythonpath``: a checkout whose ``bank`` to run instead of this one."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        x, out = Path(tmp) / "digits.npy", Path(tmp) / "errors.npy"
        np.save(x, digits())
        done = subprocess.run([sys.executable, "-c", BANK_RUN, str(root), ",".join(classes), runtime, str(calls),
                               str(reps), repr(time.time()), str(x), str(out)], capture_output=True, text=True,
                              env=env, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out)


def measure(counts: list[int], epochs: int, calls: int, old_checkout: str | None = None) -> dict:
    """Every bank size, before and after: the rows of the table, and the machine's matmul."""
    from bank.nets.stacked import BLOCK_FLOATS, ROWS

    say(f"training one 8x8 dense digit class ({epochs} epochs)")
    det = digit_class(epochs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reg = copies_registry(det, Path(tmp) / "registry", max(counts))
        macs = dense_macs(reg)
        names = reg.classes()
        for n in counts:
            errors = {}
            for way, runtime, path in (("before", "litert" if not old_checkout else "auto", old_checkout),
                                       ("after", "auto", None)):
                say(f"{n} classes, {way}")
                # the way before at 1,000 classes is seconds a batch: fewer calls
                few = way == "before" and n >= 100
                row, errors[way] = measure_bank(reg.root, names[:n], runtime, max(10, calls // 5) if few else calls,
                                                1 if few else 3, path)
                rows.append({"classes": n, "way": way, **row, "class_img_per_s": n * row["img_per_s"],
                             "gflops": 2 * macs * n * row["img_per_s"] / 1e9,
                             "errors_gflops": 2 * macs * n * row["errors_img_per_s"] / 1e9})
            diff = float(np.max(np.abs(errors["after"] - errors["before"]) / np.abs(errors["before"])))
            rows[-1]["max_rel_diff"] = rows[-2]["max_rel_diff"] = diff
    say("float32 matmul")
    mm, mm1 = matmul_gflops(), matmul_gflops(threads=1)
    for r in rows:  # against matmul on one BLAS thread (the stacked products run on one) and on all
        for key in ("gflops", "errors_gflops"):
            r[key.replace("gflops", "pct_matmul")] = [100 * r[key] / mm1, 100 * r[key] / mm]
    after = {r["classes"]: r for r in rows if r["way"] == "after"}
    lo, hi = min(after), max(after)
    scaling = {k: after[hi][k] / after[lo][k] for k in ("gflops", "errors_gflops")} if hi != lo else None
    return {"rows": rows, "matmul_gflops": mm, "matmul_gflops_1_thread": mm1, "macs_per_class_image": macs,
            "n_images": 1797, "before": "checkout " + old_checkout if old_checkout else "runtime='litert'",
            "rows_per_chunk": ROWS, "block_floats": BLOCK_FLOATS, "cores": len(os.sched_getaffinity(0)),
            "scaling": scaling, "scaling_of": [lo, hi]}


def pct(shares: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in shares)


def print_table(out: dict) -> None:
    """The markdown table of :func:`measure`."""
    print(f"1,797 8x8 digits through n copies of one dense digit class ({out['macs_per_class_image']:,} "
          f"multiply-adds a class-image); before: {out['before']}; float32 NumPy matmul "
          f"{out['matmul_gflops']:.0f} GFLOP/s ({out['matmul_gflops_1_thread']:.0f} on one thread); "
          f"{out['cores']} cores\n")
    print("| classes | way | images/s | class-images/s | GFLOP/s | % of matmul, 1 thread / all | errors alone: "
          "images/s | GFLOP/s | % of matmul, 1 thread / all | one image warm ms | first answer, fresh process s | "
          "load s | peak RSS MB | max rel diff |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in out["rows"]:
        print(f"| {r['classes']:,} | {r['way']} | {r['img_per_s']:,.0f} | {r['class_img_per_s']:,.0f} | "
              f"{r['gflops']:.2f} | {pct(r['pct_matmul'])} | {r['errors_img_per_s']:,.0f} | {r['errors_gflops']:.2f} | "
              f"{pct(r['errors_pct_matmul'])} | {r['single_ms']:.2f} | {r['first_answer_s']:.2f} | {r['load_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['max_rel_diff']:.1e} |")
    if out["scaling"] is not None:
        lo, hi = out["scaling_of"]
        print(f"\nAfter, GFLOP/s at {hi:,} classes against {lo:,} (target >= 50%): "
              f"{100 * out['scaling']['gflops']:.0f}% through score, {100 * out['scaling']['errors_gflops']:.0f}% "
              "for the errors alone.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default=",".join(map(str, COUNTS)), help="bank sizes, comma-separated")
    ap.add_argument("--epochs", type=int, default=10, help="epochs to train the one class (speed does not depend)")
    ap.add_argument("--calls", type=int, default=100, help="single-image calls timed (a fifth for the slow way)")
    ap.add_argument("--old-checkout", help="a checkout of bank to run as 'before' (runtime auto) instead of litert")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args(argv)
    out = measure([int(c) for c in args.counts.split(",")], args.epochs, args.calls, args.old_checkout)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print_table(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
