"""Speed benchmark: the 10-class MNIST bank, random-initialised (timing only), in one run.

    python benchmarks/speed.py [--quick] [--json] [--classes 1,10,50,100] [--batches 1,4,16,64,256,1024]
                               [--train-data ../shared/data/mnist [--train-images 2000] [--train-epochs 3]]
                               [--kind autoencoder|pca|hog-ocsvm|ae-hog|geotrans]
    python benchmarks/speed.py --kind autoencoder,ae-hog --train-data ../shared/data/mnist [--quick]
    python benchmarks/speed.py --many 10,100,1000
    python benchmarks/speed.py --kind pretrained --photos ../shared/data/pets [--train-images 50] [--classes 2,10,100]

No training: each class model is the default 28x28 conv autoencoder (filters
32, 64; latent 16) with random weights, and its statistics are fitted to
random errors, so the verdicts mean nothing; only the times do. Measured:

(a) ``naive``: the seeds' way, one ``model.predict`` per class, the error in NumPy;
(b) ``router_tf``: ``bank.Router`` on the Keras models, every class in one
    fused TensorFlow graph: the reference;
(c) ``router``: the default, ``bank.Router.from_registry`` on a registry the
    bank was just registered in: each class's LiteRT models, written and
    checked at registration, no TensorFlow (``router_score`` also: input
    complexities and verdicts). Its errors are checked against (b) (max
    relative difference, at most 1e-5) and its argmin too.

For each: throughput (images/s, batches of 256), single-image latency (the
median of at least 100 calls; ``--quick`` calls the naive way 10 times),
speed-ups, and GFLOP/s from the multiply-adds of the conv, conv-transpose
and dense layers, against float32 NumPy matmul measured in the same run (the
ceiling). Then the default router's scaling with the number of classes and
both routers' with the batch size, peak RSS (this process; and a fresh
process that loads the largest bank and scores a batch of 256), cold start (a
fresh Python process to the first answer from the 10-class bank) and the wall
time of ``bank classify one.png`` against that registry. With
``--train-data``: ``bank train-all`` (one process per core) against
training the 10 digits one after another in one process. ``--quick`` keeps
to 1 and 10 classes, batches 1, 32 and 256, fewer repetitions: about 2
minutes on 2 busy cores, where the full run takes about 10 (100 single-image
calls the naive way are 2 minutes alone). ``--json`` prints one JSON object
instead of the markdown tables; progress goes to stderr.

``--kind pca``, ``hog-ocsvm``, ``ae-hog`` or ``geotrans`` (default
``autoencoder``: all of the above) times a bank of that kind instead, with
real fitted models, as they answer without TensorFlow (NumPy, and LiteRT
for the networks of ``ae-hog`` and ``geotrans``): ``PCAModel()``,
``HOGOCSVMModel()``, ``AEHOGModel()`` or ``GeoTransModel()`` with their
defaults and ``--seed`` (the two that train a network for
``--train-epochs``, default 3: their speed does not depend on it), each
class fitted on ``--train-images``
images of its digit from ``--train-data`` (MNIST IDX; classes past the tenth
repeat the digits on other random draws of the images) and timed on MNIST
test digits, or, without ``--train-data``, on synthetic 28x28 images (a
random stroke pattern per class, shifted and noisy; the output says which).
Each class is registered in a temporary registry and answered through
``bank.Router.from_registry``. Measured: (1) the kind's scoring alone, on
images already at the spec (``pca``: the fused product,
``bank.kinds.pca.fused_scores``; ``hog-ocsvm``: the HOG of a batch once, every
class's kernel sum in one float32 product, its ``group_scorer``); (2) ``Router.errors``; (3)
``Router.score`` (errors, input complexities, verdicts): images/s at batches
of 256 and single-image latency (median of at least 100 calls), with the
users' targets for a 10-class ``pca`` MNIST bank beside them (one image in
at most 0.3 ms, at least 20,000 images/s batched); the router's errors
against each model's ``score_samples``; scaling with the batch size and the
number of classes; fit and registration time per class; peak RSS; cold start
and ``bank classify one.png`` as for the autoencoder. ``--train-epochs`` is
ignored by ``pca`` and ``hog-ocsvm``, and the output says so; ``bank
train-all`` is not timed for these kinds. The versions line
names NumPy's BLAS and its threads: the ``pca`` products use them, and on
cores shared with other work several BLAS threads can be many times slower
than one (compare a run under ``OPENBLAS_NUM_THREADS=1``).

Several kinds, comma-separated (``--kind autoencoder,ae-hog,hog-ocsvm``),
puts 10-class digit banks of each side by side in one run: each fitted for
real on the same images (as above; the autoencoder too, with
``--train-epochs``), registered, and timed through ``Router.score`` in
turns, a repetition of every kind and then the next, so that the shared
machine's noise falls on all of them alike: images/s at batches of 256,
one image's latency (median), each against the first kind, and float32
matmul in the same run.

``--many 10,100,1000`` times banks of that many copies of one 8x8 dense
digit class instead, stacked in NumPy against one LiteRT call a class
(``benchmarks/classes.py``: images/s, GFLOP/s against matmul, one image
warm, a fresh process's first answer, load time and peak RSS).

``--kind pretrained`` times photos instead: each sub-folder of ``--photos``
is a class, ``PretrainedModel()`` (its defaults, ``--seed``) fitted on its
first ``--train-images`` photos (default 50: enough for timing), copied
under other names up to the largest of ``--classes`` (default 2, 10, 100:
classes sharing one backbone), registered in a temporary registry and
answered through ``bank.Router.from_registry``, on 256 other photos at
224x224 RGB. Measured: (1) the backbone alone (features, LiteRT), (2) the
kind's ``group_scorer`` (one backbone pass, every class's head) and (3)
``Router.score`` for each bank size: images/s (batches of 256), class-images/s
and single-image latency (median of at least 100 calls), with the GFLOP/s
of the backbone's multiply-adds (counted from its Keras layers: conv,
depthwise conv, dense) against float32 NumPy matmul measured in the same
run; the load time from the registry, peak RSS and a cold start.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bank.kinds import KINDS
from bank.nets.runtime import cores

SHAPE = (28, 28, 1)
PARAMS = {"filters": [32, 64], "latent_dim": 16}  # the default for 28x28
BANK = 10
BATCH = 256
TOLERANCE = 1e-5
#: images: for throughput; reps: timed calls of a batch; calls: single-image calls (naive_calls for the naive
#: way, scale_calls in the scaling); batch_images: images timed per batch size; cold_reps: start-up runs.
FULL = {"images": 1024, "reps": 3, "calls": 200, "naive_calls": 100, "scale_calls": 50, "batch_images": 256,
        "cold_reps": 3, "classes": "1,10,50,100", "batches": "1,4,16,64,256,1024"}
QUICK = {"images": 256, "reps": 2, "calls": 100, "naive_calls": 10, "scale_calls": 20, "batch_images": 64,
         "cold_reps": 1, "classes": "1,10", "batches": "1,32,256"}
#: Run in a fresh process: argv = registry, image, the parent's clock at launch, classes, images.
#: Prints one JSON line.
COLD_START = """
import json, sys, time
t0 = time.time()
from bank import Registry, Router
from bank.io.decoding import read_image
router = Router.from_registry(Registry(sys.argv[1]), sys.argv[4].split(","))
t1 = time.time()
label = router.classify([read_image(sys.argv[2])] * int(sys.argv[5]))[0]
t2 = time.time()
try:  # VmHWM: getrusage would count the parent's pages this process inherited at fork
    hwm = [float(s.split()[1]) / 1024 for s in open("/proc/self/status") if s.startswith("VmHWM:")][0]
except (OSError, IndexError):
    hwm = None
print(json.dumps({"first_answer_s": t2 - float(sys.argv[3]), "python_s": t0 - float(sys.argv[3]),
                  "load_s": t1 - t0, "answer_s": t2 - t1, "peak_rss_mb": hwm, "label": label,
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


# ------------------------------------------------------------ the bank

def random_detector(seed: int, rng: np.random.Generator):
    """A "fitted" detector without training: random weights, statistics of random errors."""
    import keras

    from bank import AutoencoderModel, InputSpec, fit_error_stats
    from bank.nets import models

    keras.utils.set_random_seed(seed)
    det = AutoencoderModel(verbose=0)
    det.spec_ = InputSpec(*SHAPE[:2], "gray")
    det.architecture_, det.params_ = "conv", dict(PARAMS)
    det.model_ = models.build("conv", SHAPE, PARAMS)
    det.training_ = {"random_weights": True, "seed": seed, "warnings": []}
    det.history_ = {}
    errors, cx = rng.lognormal(np.log(0.08), 0.2, 200), rng.lognormal(np.log(2.0), 0.2, 200)
    det.stats_ = fit_error_stats(errors, cx)
    return det


def random_bank(n: int, seed: int) -> dict:
    """n random detectors, named "0", "1", ..."""
    rng = np.random.default_rng(seed)
    return {str(k): random_detector(seed + k, rng) for k in range(n)}


def first(bank: dict, n: int) -> dict:
    """The bank's first n classes."""
    return dict(list(bank.items())[:n])


def macs(model) -> int:
    """Multiply-adds per image of the conv, conv-transpose and dense layers."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):  # every input pixel meets the whole kernel
            total += math.prod(layer.input.shape[1:3]) * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Conv2D):  # every output pixel does
            total += math.prod(layer.output.shape[1:3]) * math.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Dense):
            total += math.prod(layer.input.shape[1:-1]) * math.prod(layer.kernel.shape)
    return total


def flop_per_image(bank: dict) -> int:
    """FLOP (2 per multiply-add) one image costs the whole bank."""
    return 2 * sum(macs(d.model_) for d in bank.values())


def random_images(n: int, seed: int) -> np.ndarray:
    """(n, 28, 28, 1) float32 images in [0, 1], 8-bit levels like decoded PNGs."""
    pixels = np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    return pixels.astype(np.float32) / 255.0


# ------------------------------------------------------------ timing

def seconds(fn, reps: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``reps`` calls of fn, after ``warmup`` calls (tracing, allocation)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def throughput(fn, x: np.ndarray, reps: int) -> float:
    """Images per second of fn(x), from the median call."""
    return len(x) / statistics.median(seconds(lambda: fn(x), reps))


def latency_ms(fn, x1: np.ndarray, calls: int) -> float:
    """Median milliseconds of fn on one image."""
    return 1000 * statistics.median(seconds(lambda: fn(x1), calls, warmup=2))


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """float32 NumPy matmul of two n x n matrices, best of reps: the ceiling of this machine."""
    a, b = (np.random.default_rng(i).random((n, n), dtype=np.float32) for i in (0, 1))
    return 2 * n**3 / min(seconds(lambda: a @ b, reps)) / 1e9


def peak_rss_mb() -> float:
    """This process's peak RSS so far (getrusage; KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------ the three ways

def naive_errors(bank: dict, x: np.ndarray) -> np.ndarray:
    """The seeds' way: one model.predict per class, then the per-pixel MSE in NumPy."""
    cols = [np.mean((d.model_.predict(x, batch_size=BATCH, verbose=0) - x) ** 2, axis=(1, 2, 3)) for d in bank.values()]
    return np.stack(cols, axis=1)


def litert_version() -> str | None:
    """The ai-edge-litert version, or None when it does not import."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401  (the row needs it to import, not just to exist)
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "unknown version"


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |b|."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.abs(b)))


def way(name: str, errors_fn, x: np.ndarray, reps: int, calls: int, flop: int) -> dict:
    """Throughput, single-image latency and GFLOP/s of one way of getting the (N, K) errors."""
    ips = throughput(errors_fn, x, reps)
    return {"way": name, "img_per_s": ips, "single_ms": latency_ms(errors_fn, x[:1], calls), "calls": calls,
            "gflops": flop * ips / 1e9}


def ways(bank: dict, reg, x: np.ndarray, cfg: dict, say) -> list[dict]:
    """Rows (a), (b) and (c); (c) with the max relative difference of its errors from (b)'s."""
    from bank import Router

    flop = flop_per_image(bank)
    tf_router = Router(bank, batch_size=BATCH)
    router = Router.from_registry(reg, list(bank), batch_size=BATCH)
    say("(a) naive: model.predict per class")
    rows = [way("naive", lambda v: naive_errors(bank, v), x, cfg["reps"], cfg["naive_calls"], flop)]
    say("(b) bank.Router, TensorFlow")
    rows.append(way("router_tf", tf_router.errors, x, cfg["reps"], cfg["calls"], flop))
    say("(c) bank.Router, the default (LiteRT)")
    ref, got = tf_router.errors(x), router.errors(x)
    two = np.sort(ref, axis=1)[:, :2]
    tie = (two[:, 1] - two[:, 0]) / two[:, 0] <= TOLERANCE  # random models: some images have near-equal errors
    differ = got.argmin(1) != ref.argmin(1)
    check = {"max_rel_diff": max(max_rel_diff(got, ref), max_rel_diff(router.errors(x[:1]), ref[:1])),
             "same_argmin": bool(not np.any(differ & ~tie)), "argmin_differs": int(differ.sum()),
             "argmin_ties": int(tie.sum()), "images": len(x)}
    rows.append({**way("router", router.errors, x, cfg["reps"], cfg["calls"], flop), **check})
    rows.append(way("router_score", router.score, x, cfg["reps"], cfg["calls"], flop))
    return rows


# ------------------------------------------------------------ scaling

def scale_classes(bank: dict, reg, counts: list[int], cfg: dict, say) -> list[dict]:
    """Default router throughput (one batch of 256) and single-image latency for banks of each size."""
    from bank import Router

    x = random_images(BATCH, 1)
    out = []
    for k in counts:
        say(f"scaling: {k} classes")
        sub = first(bank, k)
        router = Router.from_registry(reg, list(sub), batch_size=BATCH)
        row = way("router", router.errors, x, cfg["reps"], cfg["scale_calls"], flop_per_image(sub))
        out.append({"classes": k, **{n: row[n] for n in ("img_per_s", "single_ms", "calls", "gflops")}})
    return out


def scale_batches(bank: dict, reg, sizes: list[int], cfg: dict, say) -> list[dict]:
    """Both routers' images/s on one batch of each size; small batches are timed more often."""
    from bank import Router

    routers = {"router_tf": Router(bank, batch_size=max(sizes)),
               "router": Router.from_registry(reg, list(bank), batch_size=max(sizes))}
    x = random_images(max(sizes), 2)
    out = []
    for b in sizes:
        say(f"scaling: batch {b}")
        reps = max(cfg["reps"], cfg["batch_images"] // b)
        out.append({"batch": b, **{f"{n}_img_per_s": throughput(r.errors, x[:b], reps) for n, r in routers.items()}})
    return out


# ------------------------------------------------------------ start-up

def saved_registry(bank: dict, root: Path, say):
    """Register every class of the bank (writing its LiteRT models) in ``root/registry``; the Registry."""
    from bank import Registry

    say(f"registering {len(bank)} classes (LiteRT conversion and check at registration)")
    reg = Registry(root / "registry")
    t = time.perf_counter()
    for name, det in bank.items():
        reg.register(name, det)
    return reg, (time.perf_counter() - t) / len(bank)


def cold_start(root: Path, png: Path, classes: list[str] | None = None, batch: int = 1) -> dict:
    """A fresh Python process from launch to its first answer (the child reports its phases):
    the 10-class bank on one image, or ``classes`` on ``batch`` copies of it."""
    t = time.perf_counter()
    launched = time.time()
    run = subprocess.run([sys.executable, "-c", COLD_START, str(root / "registry"), str(png), repr(launched),
                          ",".join(classes or [str(k) for k in range(BANK)]), str(batch)],
                         capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - t
    if run.returncode:
        raise RuntimeError(f"cold start failed:\n{run.stderr[-2000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "wall_s": wall}


def bank_command() -> list[str]:
    """The ``bank`` command of this Python environment."""
    exe = Path(sys.executable).with_name("bank")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bank"]


def cli_classify(root: Path, png: Path) -> float:
    """Wall seconds of ``bank classify one.png`` against the 10-class bank, as a fresh process."""
    cmd = bank_command()
    t = time.perf_counter()
    classes = ",".join(str(k) for k in range(BANK))  # the registry may hold more (the scaling's)
    run = subprocess.run([*cmd, "classify", str(png), "--registry", str(root / "registry"), "--classes", classes],
                         capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - t
    if run.returncode:
        raise RuntimeError(f"bank classify failed:\n{run.stderr[-2000:]}")
    return wall


def start_up(root: Path, image: np.ndarray, classes: list[str], reps: int, say) -> dict:
    """Cold start and CLI wall times (medians of ``reps`` runs each) against the registry in ``root``;
    and a fresh process that loads every class and scores a batch of 256."""
    from PIL import Image

    png = root / "one.png"
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(png)
    say(f"cold start and bank classify, {reps} run(s) each")
    colds = [cold_start(root, png) for _ in range(reps)]
    clis = [cli_classify(root, png) for _ in range(reps)]
    say(f"a fresh process: {len(classes)} classes, a batch of {BATCH}")
    big = cold_start(root, png, classes, BATCH)
    keys = ("first_answer_s", "python_s", "load_s", "answer_s", "wall_s", "peak_rss_mb")
    med = {k: statistics.median(c[k] for c in colds) if colds[0][k] is not None else None for k in keys}
    return {"cold_start_s": med["first_answer_s"], "cold_start": med, "cli_classify_s": statistics.median(clis),
            "start_up_runs": reps, "tensorflow_imported": any(c["tensorflow_imported"] for c in colds),
            "largest_bank": {"classes": len(classes), "batch": BATCH, **big}}


# ------------------------------------------------------------ training

def training(data: Path, per_class: int, epochs: int, say) -> dict:
    """``bank train-all`` against sequential training in this process, on the MNIST digits
    (``per_class`` training images of each, written as PNG folders): wall time, seconds per class."""
    from PIL import Image

    from bank.io.data import load_idx_split
    from bank.training.runs import train_all

    images, labels = load_idx_split(data, "train")
    params = {"epochs": epochs, "patience": epochs, "seed": 0}
    out = {"images_per_class": per_class, "epochs": epochs, "classes": 10}
    with tempfile.TemporaryDirectory(prefix="bank-train-") as tmp:
        root = Path(tmp) / "digits"
        for d in range(10):
            (root / str(d)).mkdir(parents=True)
            for i, img in enumerate(images[labels == d][:per_class]):
                Image.fromarray(img).save(root / str(d) / f"{i}.png")
        for name, jobs in (("sequential", 1), ("train_all", None)):
            say(f"training: {name}")
            t = time.perf_counter()
            runs = train_all(root, Path(tmp) / name, params, n_jobs=jobs)
            failed = [r.error for r in runs if r.error]
            if failed:
                raise RuntimeError(f"training failed: {failed}")
            out[name] = {"wall_s": time.perf_counter() - t, "jobs": jobs or min(cores(), 10),
                         "per_class_s": statistics.mean(r.seconds for r in runs)}
    out["speed_up"] = out["sequential"]["wall_s"] / out["train_all"]["wall_s"]
    return out


def print_training(out: dict) -> None:
    t = out.get("training")
    if not t:
        print("\nTraining: not measured (give --train-data DIR with the MNIST IDX files).")
        return
    print(f"\nTraining the 10 MNIST digits ({t['images_per_class']} training images each, {t['epochs']} epochs; "
          "each class read from PNGs, trained, its statistics fitted, registered with its LiteRT models):\n")
    print("| way | processes | wall time | seconds per class (mean, inside its process) | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for name, label in (("sequential", "one after another, in one process"), ("train_all", "`bank train-all`")):
        r = t[name]
        print(f"| {label} | {r['jobs']} | {r['wall_s']:.0f} s | {r['per_class_s']:.1f} | "
              f"{t['sequential']['wall_s'] / r['wall_s']:.2f} |")


# ------------------------------------------------------------ output

LABELS = {"naive": "(a) naive: one model.predict per class",
          "router_tf": "(b) bank.Router on the Keras models (TensorFlow, the reference)",
          "router": "(c) bank.Router, the default: LiteRT models from the registry (errors)",
          "router_score": "(c) bank.Router.score, the default (errors, complexity, verdicts)"}


def headline(rows: list[dict], matmul: float) -> dict:
    """The figures as top-level keys: per way, images/s, single-image ms and GFLOP/s; the ratios."""
    by = {r["way"]: r for r in rows}
    res = {f"{w}_{k}": r[k] for w, r in by.items() for k in ("img_per_s", "single_ms", "gflops")}
    naive, router, ref = by["naive"], by["router"], by["router_tf"]
    res["router_vs_naive_throughput"] = router["img_per_s"] / naive["img_per_s"]
    res["router_vs_naive_single"] = naive["single_ms"] / router["single_ms"]
    res["router_vs_tf_throughput"] = router["img_per_s"] / ref["img_per_s"]
    res["router_vs_tf_single"] = ref["single_ms"] / router["single_ms"]
    for k in ("max_rel_diff", "same_argmin", "argmin_differs", "argmin_ties"):
        res[f"router_{k}"] = router[k]
    res["router_share_of_matmul"] = router["gflops"] / matmul
    return res


def print_tables(out: dict) -> None:
    print(f"Speed of the {BANK}-class MNIST bank (random weights: timing only), {out['date']}, {out['machine']}; "
          f"{out['versions']}")
    print(f"One image costs {out['mflop_per_image_per_class']:.1f} MFLOP per class (2 x multiply-adds of conv, "
          f"conv-transpose and dense layers); float32 NumPy matmul here: {out['matmul_gflops']:.1f} GFLOP/s.\n")
    print_ways(out)
    print_scaling(out)
    print_start_up(out)
    print_training(out)


def print_ways(out: dict) -> None:
    by = {r["way"]: r for r in out["ways"]}
    naive, ref, mm = by["naive"], by["router_tf"], out["matmul_gflops"]
    print("| way | images/s (batches of 256) | x naive | x TF router | single image, ms (median) | x naive "
          "| x TF router | GFLOP/s | of matmul |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in by.values():
        print(f"| {LABELS[r['way']]} | {r['img_per_s']:.0f} | {r['img_per_s'] / naive['img_per_s']:.1f} | "
              f"{r['img_per_s'] / ref['img_per_s']:.2f} | {r['single_ms']:.2f} ({r['calls']} calls) | "
              f"{naive['single_ms'] / r['single_ms']:.1f} | {ref['single_ms'] / r['single_ms']:.2f} | "
              f"{r['gflops']:.1f} | {r['gflops'] / mm:.0%} |")
    d = out["router_max_rel_diff"]
    print(f"\nThe default router's errors differ from the TensorFlow reference's by at most {d:.1e} relative "
          f"({'within' if d <= TOLERANCE else 'OVER'} {TOLERANCE:g}); the argmin differs on "
          f"{out['router_argmin_differs']} images, {'all' if out['router_same_argmin'] else 'NOT all'} among the "
          f"{out['router_argmin_ties']} whose two best errors are within {TOLERANCE:g} (random weights: near-ties). "
          f"Registration took {out['register_s_per_class']:.2f} s per class (save, convert at each batch size, "
          "check against Keras).")


def print_scaling(out: dict) -> None:
    print("\nScaling with the number of classes (the default router, one batch of 256):\n")
    print("| classes | images/s | class-images/s | single image, ms (median) | GFLOP/s | of matmul |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in out["scaling_classes"]:
        print(f"| {r['classes']} | {r['img_per_s']:.0f} | {r['img_per_s'] * r['classes']:.0f} | {r['single_ms']:.2f} "
              f"({r['calls']} calls) | {r['gflops']:.1f} | {r['gflops'] / out['matmul_gflops']:.0%} |")
    print(f"\nScaling with the batch size ({BANK} classes, images/s, one batch per call):\n")
    print("| batch | TF router | default router | default / TF |")
    print("| --- | --- | --- | --- |")
    for r in out["scaling_batches"]:
        print(f"| {r['batch']} | {r['router_tf_img_per_s']:.0f} | {r['router_img_per_s']:.0f} | "
              f"{r['router_img_per_s'] / r['router_tf_img_per_s']:.2f} |")


def print_start_up(out: dict) -> None:
    c, mb = out["cold_start"], lambda v: "n/a" if v is None else f"{v:.0f} MB"  # noqa: E731
    print(f"\nMemory and start-up (start-up: median of {out['start_up_runs']} run(s)):\n")
    print("| what | figure |")
    print("| --- | --- |")
    big = out["largest_bank"]
    rows = "(a) to (c)" if out.get("kind", "autoencoder") == "autoencoder" else "(1) to (3)"
    print(f"| peak RSS of this process after the rows {rows} | {mb(out['peak_rss_mb_ways'])} |")
    print(f"| ... at the end, after the scaling | {mb(out['peak_rss_mb'])} |")
    print(f"| a fresh process loading {big['classes']} classes and scoring a batch of {big['batch']}: peak RSS | "
          f"{mb(big['peak_rss_mb'])} (load {big['load_s']:.2f} s, answer {big['answer_s']:.2f} s) |")
    print(f"| cold start: a fresh Python process to its first answer, {BANK}-class registry | "
          f"{out['cold_start_s']:.2f} s (interpreter {c['python_s']:.2f} s, import and load {c['load_s']:.2f} s, "
          f"first answer {c['answer_s']:.2f} s) |")
    print(f"| peak RSS of that process at its first answer | {mb(c['peak_rss_mb'])} |")
    print(f"| `bank classify one.png`: wall time of the fresh process | {out['cli_classify_s']:.2f} s |")
    print(f"| TensorFlow imported by the fresh process | {'yes' if out['tensorflow_imported'] else 'no'} |")


# ------------------------------------------------------------ other kinds: real models, fitted quickly

#: Users' targets for a 10-class ``pca`` MNIST bank, through ``Router.score``.
TARGETS = {"pca": {"single_ms": 0.3, "img_per_s": 20_000}}
#: Throughput is timed over at least this many seconds (a fast kind does a batch in milliseconds).
MIN_SECONDS = 0.3


def synthetic_class(k: int, n: int, seed: int) -> np.ndarray:
    """n synthetic 28x28 images of class k, uint8 (n, 28, 28): the class's random strokes (seeded by k),
    each image shifted by up to 2 pixels with Gaussian noise."""
    from PIL import Image, ImageDraw

    trng = np.random.default_rng(10_000 + k)  # the class's pattern, whatever the seed
    im = Image.new("L", SHAPE[:2], 0)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        draw.line([tuple(int(v) for v in trng.integers(5, 23, 2)) for _ in range(3)], fill=255, width=3)
    template = np.asarray(im, np.float32) / 255
    rng = np.random.default_rng(seed * 100_003 + k)
    out = np.empty((n, *SHAPE[:2]), np.uint8)
    for i in range(n):
        dy, dx = rng.integers(-2, 3, 2)
        img = np.roll(template, (dy, dx), axis=(0, 1)) + rng.normal(0, 0.08, SHAPE[:2])
        out[i] = np.round(np.clip(img, 0, 1) * 255)
    return out


def kind_data(cfg: dict, n_classes: int, n_test: int, seed: int, say) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Training images of each of ``n_classes`` classes (uint8 (n, 28, 28)), test images ((N, 28, 28, 1)
    float32 in [0, 1]) and a description of where they come from."""
    per = cfg["train_images"]
    if cfg.get("train_data"):
        from bank.io.data import load_idx_split

        say(f"reading MNIST from {cfg['train_data']}")
        images, labels = load_idx_split(cfg["train_data"], "train")
        test, _ = load_idx_split(cfg["train_data"], "test")
        train = []
        for k in range(n_classes):
            pool = images[labels == k % 10]
            if k < 10:  # the digit bank: the first images of each digit
                train.append(pool[:per])
            else:  # more classes than digits: the digits again, other random draws
                train.append(pool[np.sort(np.random.default_rng(seed + k).choice(len(pool), min(per, len(pool)),
                                                                                  replace=False))])
        x = test[:n_test]
        data = {"source": "mnist", "path": str(cfg["train_data"]),
                "text": f"fitted on MNIST ({cfg['train_data']}): class k on up to {per} training images of digit "
                        "k mod 10; timed on MNIST test digits"}
    else:
        say(f"drawing synthetic 28x28 images ({per} per class; no --train-data given)")
        train = [synthetic_class(k, per, seed) for k in range(n_classes)]
        pick = np.random.default_rng(seed).integers(0, min(n_classes, BANK), n_test)
        x = np.stack([synthetic_class(int(k), 1, seed + 1 + i)[0] for i, k in enumerate(pick)])
        data = {"source": "synthetic",
                "text": f"fitted on SYNTHETIC 28x28 images, not MNIST (no --train-data given): a random stroke "
                        f"pattern per class, shifted and noisy, {per} per class; timed on more of them. Give "
                        "--train-data DIR (MNIST IDX) for the digit bank the targets are about"}
    data["train_images_per_class"] = per
    return train, (x.astype(np.float32) / 255.0)[..., None], data


def fitted_kind_bank(kind: str, train: list[np.ndarray], seed: int, say,
                     epochs: int | None = None) -> tuple[dict, float, list[str]]:
    """Class "k" of ``kind`` fitted on ``train[k]``, with its defaults and ``seed`` (and ``epochs`` for a kind
    that trains a network: its speed does not depend on them); the mean fit seconds and the distinct warnings
    the fits gave."""
    import warnings

    from bank.kinds import kind_class

    say(f"fitting {len(train)} {kind} class models")
    extra = {} if epochs is None else {"epochs": epochs, "verbose": 0}
    bank, secs, caught_all = {}, [], []
    for k, images in enumerate(train):
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            bank[str(k)] = kind_class(kind).from_options(None, seed=seed, **extra).fit(images)
        secs.append(time.perf_counter() - t)
        caught_all += [str(w.message) for w in caught]
    return bank, statistics.mean(secs), list(dict.fromkeys(caught_all))


def throughput_for(fn, x: np.ndarray, reps: int) -> float:
    """Images per second of fn(x), from the median call; repeated for at least ``MIN_SECONDS``."""
    t = statistics.median(seconds(lambda: fn(x), 1))
    return throughput(fn, x, max(reps, min(1000, math.ceil(MIN_SECONDS / max(t, 1e-6)))))


def in_batches(fn, size: int = BATCH):
    """fn applied to the images ``size`` at a time, as the router batches them."""
    return lambda v: [fn(v[i : i + size]) for i in range(0, len(v), size)]


def kind_scorer(kind: str, models: list):
    """The kind's own scoring of many classes at once, on images already at the spec: pca's fused
    product (``fused_scores``), or the kind's ``group_scorer`` (hog-ocsvm: one HOG and one product for all its classes)."""
    if kind == "pca":
        from bank.kinds.pca import fused_scores

        cores_ = [m.core_ for m in models]
        return lambda v: fused_scores(cores_, v)
    return type(models[0]).group_scorer(models)


def kind_ways(kind: str, router, x: np.ndarray, cfg: dict, say) -> tuple[list[dict], dict]:
    """Rows (1) to (3), and the check of the router's errors against each model's ``score_samples``."""
    models = list(router.detectors.values())
    scorer = kind_scorer(kind, models)
    say(f"checking the router's errors against {len(models)} models' score_samples")
    ref = np.stack([m.score_samples(x) for m in models], axis=1)
    got, alone = router.errors(x), scorer(x)
    one = router.errors(x[:1])
    scale = np.maximum(np.abs(ref), 1e-12)
    check = {"max_rel_diff": float(max(np.max(np.abs(got - ref) / scale), np.max(np.abs(one - ref[:1]) / scale[:1]))),
             "scorer_max_rel_diff": float(np.max(np.abs(alone - ref) / scale)),
             "same_argmin": bool(np.array_equal(got.argmin(1), ref.argmin(1))), "images": len(x)}
    rows = []
    for name, fn in (("scorer", in_batches(scorer)), ("router", router.errors), ("router_score", router.score)):
        say(f"({len(rows) + 1}) {name}")
        rows.append({"way": name, "img_per_s": throughput_for(fn, x, cfg["reps"]),
                     "single_ms": latency_ms(fn, x[:1], cfg["calls"]), "calls": cfg["calls"]})
    return rows, check


def kind_scale_batches(kind: str, reg, classes: list[str], sizes: list[int], x: np.ndarray, cfg: dict, say) -> list:
    """The scoring alone, Router.errors and Router.score: images/s on one batch of each size."""
    from bank import Router

    router = Router.from_registry(reg, classes, batch_size=max(sizes))
    fns = {"scorer": kind_scorer(kind, list(router.detectors.values())), "router": router.errors,
           "router_score": router.score}
    xs = np.concatenate([x] * math.ceil(max(sizes) / len(x)))[: max(sizes)]
    out = []
    for b in sizes:
        say(f"scaling: batch {b}")
        reps = max(cfg["reps"], cfg["batch_images"] // b)
        out.append({"batch": b, **{f"{n}_img_per_s": throughput_for(fn, xs[:b], reps) for n, fn in fns.items()}})
    return out


def kind_scale_classes(reg, counts: list[int], x: np.ndarray, cfg: dict, say) -> list[dict]:
    """Router.score from the registry: images/s (batches of 256) and single-image latency, per bank size."""
    from bank import Router

    out = []
    for k in counts:
        say(f"scaling: {k} classes")
        router = Router.from_registry(reg, [str(c) for c in range(k)], batch_size=BATCH)
        out.append({"classes": k, "img_per_s": throughput_for(router.score, x, cfg["reps"]),
                    "single_ms": latency_ms(router.score, x[:1], cfg["calls"]), "calls": cfg["calls"]})
    return out


def kind_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        sk = version("scikit-learn")
    except PackageNotFoundError:
        sk = "not installed"
    return f"Python {platform.python_version()}, NumPy {np.__version__} ({blas()}), scikit-learn {sk} (fitting only)"


def blas() -> str:
    """NumPy's BLAS and its threads (matrix products of the pca kind use them; on cores shared with other work,
    several BLAS threads can be far slower than one: compare a run under OPENBLAS_NUM_THREADS=1)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS threads unknown"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "BLAS threads unknown"
    return ", ".join(f"{p.get('internal_api', 'blas')} {p.get('version') or ''} {p.get('num_threads')} thread(s)"
                     .replace("  ", " ") for p in pools)


def kind_params(kind: str, bank: dict) -> str:
    """What the fitted models are, in words."""
    models = list(bank.values())
    if kind == "pca":
        ks = sorted({len(m.core_.components_) for m in models})
        return f"PCAModel() defaults: n_components={models[0].n_components} ({'-'.join(map(str, ks))} kept per class)"
    if kind == "geotrans":
        m = models[0]
        return (f"GeoTransModel() defaults: {m.transforms} transformations, filters {list(m.filters)}, "
                f"dense {m.dense}, {m.epochs} epochs")
    if kind == "ae-hog":
        sv = [len(m.hog_.support_vectors_) for m in models]
        return f"AEHOGModel() defaults: the default autoencoder and {min(sv)}-{max(sv)} HOG support vectors per class"
    sv = [len(m.core_.support_vectors_) for m in models]
    return (f"HOGOCSVMModel() defaults: {models[0].core_.support_vectors_.shape[1]} HOG values, "
            f"{min(sv)}-{max(sv)} support vectors per class")


def measure_kind(kind: str, cfg: dict, seed: int, say) -> dict:
    """Every figure of a bank of ``kind`` (not the autoencoder), in one dict."""
    from bank import Registry, Router

    n = max(cfg["classes"] + [BANK])
    n_test = max(BATCH, cfg["images"] // BATCH * BATCH)
    train, x, data = kind_data(cfg, n, n_test, seed, say)
    everything, fit_s, warned = fitted_kind_bank(kind, train, seed, say, cfg.get("train_epochs"))
    for w in warned:
        say(f"warning from the fits: {w}")
    bank = first(everything, BANK)
    out = {"kind": kind, "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "versions": kind_versions(), "settings": cfg, "data": data, "models": kind_params(kind, bank),
           "fit_s_per_class": fit_s, "fit_warnings": warned, "targets": TARGETS.get(kind, {})}
    if cfg.get("ignored"):
        out["ignored_options"] = cfg["ignored"]
    with tempfile.TemporaryDirectory(prefix="bank-speed-") as tmp:
        say(f"registering {len(everything)} classes")
        reg = Registry(Path(tmp) / "registry")
        t = time.perf_counter()
        for name, model in everything.items():
            reg.register(name, model)
        out["register_s_per_class"] = (time.perf_counter() - t) / len(everything)
        router = Router.from_registry(reg, list(bank), batch_size=BATCH)
        out["ways"], out["check"] = kind_ways(kind, router, x, cfg, say)
        out.update({f"{r['way']}_{k}": r[k] for r in out["ways"] for k in ("img_per_s", "single_ms")})
        out["peak_rss_mb_ways"] = peak_rss_mb()
        out["scaling_batches"] = kind_scale_batches(kind, reg, list(bank), cfg["batches"], x, cfg, say)
        out["scaling_classes"] = kind_scale_classes(reg, cfg["classes"], x, cfg, say)
        out["peak_rss_mb"] = peak_rss_mb()
        out.update(start_up(Path(tmp), x[0], list(everything), cfg["cold_reps"], say))
    out["tensorflow_imported_here"] = "tensorflow" in sys.modules
    met = {}
    for key, target in out["targets"].items():
        got = out[f"router_score_{key}"]
        met[key] = bool(got <= target if key == "single_ms" else got >= target)
    out["targets_met"] = met
    return out


KIND_LABELS = {"scorer": "(1) the kind's scoring alone, NumPy, images at the spec",
               "router": "(2) bank.Router.errors, from the registry (errors)",
               "router_score": "(3) bank.Router.score, from the registry (errors, complexity, verdicts)"}


def target_cell(out: dict, way: str, key: str) -> str:
    """The target beside a measured figure, and whether it is met (only Router.score has targets)."""
    target = out["targets"].get(key) if way == "router_score" else None
    if target is None:
        return "-"
    bound = f"<= {target:g} ms" if key == "single_ms" else f">= {target:,}"
    return f"{bound}: {'met' if out['targets_met'][key] else 'NOT met'}"


def print_kind_tables(out: dict) -> None:
    kind = out["kind"]
    print(f"Speed of a {BANK}-class {kind} bank, {out['date']}, {out['machine']}; {out['versions']}")
    print(f"Data: {out['data']['text']}.")
    print(f"Models: {out['models']}; fit {out['fit_s_per_class']:.2f} s per class (mean), registration "
          f"{out['register_s_per_class']:.3f} s per class.")
    if out.get("ignored_options"):
        print(f"Ignored (the autoencoder's options): {', '.join(out['ignored_options'])}.")
    for w in out["fit_warnings"]:
        print(f"Warning from the fits: {w}")
    scorer = {"pca": "the fused product, bank.kinds.pca.fused_scores",
              "ae-hog": "the kind's group_scorer: the autoencoders fused (LiteRT threads), the HOG of the batch once "
                        "and every class's kernel sum in one product",
              "geotrans": "the kind's group_scorer: each class's network on the turned (and mirrored) copies"
              }.get(kind, "the kind's group_scorer: the HOG of the batch once, every class's kernel sum in one float32 "
                          "product")
    print(f"\n(1) is {scorer}.")
    if out["targets"]:
        print(f"Targets (users', for a {BANK}-class {kind} bank on MNIST): through Router.score, one image in at most "
              f"{out['targets']['single_ms']} ms, at least {out['targets']['img_per_s']:,} images/s batched.")
        if out["data"]["source"] != "mnist":
            print("(These data are synthetic, not MNIST: the figures are indicative.)")
    print()
    print(f"| way, {BANK} classes | images/s (batches of 256) | target | single image, ms (median) | target |")
    print("| --- | --- | --- | --- | --- |")
    for r in out["ways"]:
        print(f"| {KIND_LABELS[r['way']]} | {r['img_per_s']:,.0f} | {target_cell(out, r['way'], 'img_per_s')} | "
              f"{r['single_ms']:.3f} ({r['calls']} calls) | {target_cell(out, r['way'], 'single_ms')} |")
    c = out["check"]
    print(f"\nThe router's errors differ from each model's score_samples by at most {c['max_rel_diff']:.1e} relative "
          f"({'within' if c['max_rel_diff'] <= TOLERANCE else 'OVER'} {TOLERANCE:g}), (1)'s by "
          f"{c['scorer_max_rel_diff']:.1e}; the argmin is {'the same' if c['same_argmin'] else 'NOT the same'} on "
          f"{c['images']} images.")
    print(f"\nScaling with the batch size ({BANK} classes, images/s, one batch per call):\n")
    print("| batch | (1) scoring alone | (2) Router.errors | (3) Router.score |")
    print("| --- | --- | --- | --- |")
    for r in out["scaling_batches"]:
        print(f"| {r['batch']} | {r['scorer_img_per_s']:,.0f} | {r['router_img_per_s']:,.0f} | "
              f"{r['router_score_img_per_s']:,.0f} |")
    print("\nScaling with the number of classes (Router.score from the registry):\n")
    print("| classes | images/s (batches of 256) | class-images/s | single image, ms (median) |")
    print("| --- | --- | --- | --- |")
    for r in out["scaling_classes"]:
        print(f"| {r['classes']} | {r['img_per_s']:,.0f} | {r['img_per_s'] * r['classes']:,.0f} | "
              f"{r['single_ms']:.3f} ({r['calls']} calls) |")
    print_start_up(out)
    print(f"| TensorFlow imported by this process | {'yes' if out['tensorflow_imported_here'] else 'no'} |")


# ------------------------------------------------------------ kinds side by side

#: What a 10-class digit bank of any kind should reach through Router.score (issue 28: the autoencoder's pace).
SIDE_TARGETS = {"single_ms": 2.0}


def measure_side_by_side(kinds: list[str], cfg: dict, seed: int, say) -> dict:
    """10-class banks of each of ``kinds``, fitted for real on the same images, registered, and timed through
    ``Router.score`` in turns (a repetition of every kind, then the next), so the machine's noise falls on
    all alike: images/s at batches of 256 and one image's latency, with float32 matmul beside them."""
    from bank import Registry, Router

    n_test = max(BATCH, cfg["images"] // BATCH * BATCH)
    train, x, data = kind_data(cfg, BANK, n_test, seed, say)
    out = {"kinds": kinds, "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "versions": kind_versions(), "settings": cfg, "data": data, "rows": {}}
    routers = {}
    with tempfile.TemporaryDirectory(prefix="bank-speed-") as tmp:
        for kind in kinds:
            epochs = cfg.get("train_epochs") if trains_network(kind) else None
            bank, fit_s, _ = fitted_kind_bank(kind, train, seed, say, epochs)
            reg = Registry(Path(tmp) / kind)
            for name, model in bank.items():
                reg.register(name, model)
            routers[kind] = Router.from_registry(reg, batch_size=BATCH)
            out["rows"][kind] = {"fit_s_per_class": fit_s}
        say("float32 NumPy matmul")
        out["matmul_gflops"] = matmul_gflops(reps=cfg["reps"] + 2)
        batch, one = {k: [] for k in kinds}, {k: [] for k in kinds}
        turns = max(3, cfg["reps"] * 2)
        say(f"timing {', '.join(kinds)} in {turns} turns")
        for kind in kinds:  # warm each: first calls allocate
            routers[kind].score(x[:BATCH]), routers[kind].score(x[:1])
        for _ in range(turns):
            for kind in kinds:
                batch[kind] += seconds(lambda: routers[kind].score(x[:BATCH]), 1, warmup=0)
                one[kind] += seconds(lambda: routers[kind].score(x[:1]), max(10, cfg["calls"] // turns), warmup=0)
    first_ips = None
    for kind in kinds:
        row = out["rows"][kind]
        row["img_per_s"] = BATCH / statistics.median(batch[kind])
        row["single_ms"] = 1000 * statistics.median(one[kind])
        row["single_calls"] = len(one[kind])
        first_ips = first_ips or row["img_per_s"]
        row["vs_first"] = row["img_per_s"] / first_ips
    return out


def print_side_by_side(out: dict) -> None:
    kinds = out["kinds"]
    print(f"Kinds side by side: {BANK}-class digit banks, {out['date']}, {out['machine']}; {out['versions']}")
    print(f"Data: {out['data']['text']}. Each bank registered and answered through Router.score from its registry "
          f"(no TensorFlow), timed in turns; float32 NumPy matmul {out['matmul_gflops']:.0f} GFLOP/s in the same run.")
    print()
    print(f"| kind | images/s (batches of {BATCH}) | against {kinds[0]} | one image, ms (median) | "
          f"target <= {SIDE_TARGETS['single_ms']:g} ms | fit s a class |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        r = out["rows"][kind]
        met = "met" if r["single_ms"] <= SIDE_TARGETS["single_ms"] else "NOT met"
        print(f"| {kind} | {r['img_per_s']:,.0f} | {r['vs_first']:.2f}x | {r['single_ms']:.3f} ({r['single_calls']} "
              f"calls) | {met} | {r['fit_s_per_class']:.1f} |")


# ------------------------------------------------------------ photos: the pretrained kind

#: Photos of each class the pretrained classes are fitted on, and the bank sizes timed, unless told.
PHOTO_TRAIN = 50
PHOTO_CLASSES = "2,10,100"


def backbone_macs(name: str, say) -> int:
    """Multiply-adds per image of the backbone's Keras network (built from its package's weights):
    its conv, depthwise conv and dense layers."""
    from keras import layers

    from bank.nets import models  # noqa: F401  (imports TensorFlow, quietly)
    from bank.backbones import backbone as bbs

    say(f"counting the multiply-adds of {name}")
    mod = bbs.module(name)
    net = mod.build(mod.read_weights())
    total = macs(net)
    for layer in net.layers:  # each output pixel meets its channel's kernel (macs counts Conv2D and Dense)
        if isinstance(layer, layers.DepthwiseConv2D) and not isinstance(layer, layers.Conv2D):
            total += math.prod(layer.output.shape[1:3]) * math.prod(layer.kernel.shape)
    return total


def photo_data(folder: Path, per: int, n_test: int, say) -> tuple[dict, list[str], dict]:
    """Per class (each sub-folder of ``folder``, sorted) its first ``per`` photos to fit on; ``n_test`` other
    photos, taken from the classes in turn, to time on; and a description."""
    from bank.io.data import list_image_files

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise SystemExit(f"speed.py: --photos {folder}: expected a sub-folder per class, found {classes}")
    files = {c: sorted(list_image_files([folder / c])[0], key=lambda p: p.name) for c in classes}
    train = {c: [str(p) for p in f[:per]] for c, f in files.items()}
    rest = [f[per:] for f in files.values()]
    test = [str(r[i]) for i in range(max(map(len, rest))) for r in rest if i < len(r)][:n_test]
    say(f"photos: {', '.join(f'{len(t)} {c}' for c, t in train.items())} to fit on, {len(test)} others to time on")
    return train, test, {"path": str(folder), "classes": classes, "train_per_class": per, "test": len(test)}


def measure_photos(cfg: dict, seed: int, say) -> dict:
    """A bank of ``pretrained`` classes on photos: each class of ``cfg["photos"]`` fitted on a few photos, copied
    under other names up to the largest bank timed, registered, and answered through ``Router.from_registry``."""
    import warnings

    from bank import Registry, Router
    from bank.backbones import backbone as bbs
    from bank.io.inputs import prepare
    from bank.kinds.pretrained import PretrainedModel

    out = {"kind": "pretrained", "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "settings": cfg}
    counts = cfg["classes"]
    train, test, out["data"] = photo_data(Path(cfg["photos"]), cfg["train_images"], BATCH, say)
    say("building the backbone (Keras from its weights, converted for LiteRT)")
    t = time.perf_counter()
    bbs.build()
    out["backbone_build_s"] = time.perf_counter() - t
    fitted, fit_s = {}, []
    for c, paths in train.items():
        say(f"fitting {c} on {len(paths)} photos")
        t = time.perf_counter()
        with warnings.catch_warnings(record=True):  # few held-out photos: warned, and said in the table
            warnings.simplefilter("always", UserWarning)
            fitted[c] = PretrainedModel(seed=seed).fit(paths)
        fit_s.append(time.perf_counter() - t)
    out["fit_s_per_class"] = statistics.mean(fit_s)
    m = next(iter(fitted.values()))
    out["models"] = (f"PretrainedModel() defaults: head {m.head}, k {m.k}, backbone {m.backbone}, input {m.spec_}, "
                     f"{m.training_['n_train']} training features and {m.training_['n_calibration']} held out a class")
    out["versions"] = (f"Python {platform.python_version()}, NumPy {np.__version__} ({blas()}), ai-edge-litert "
                       f"{litert_version() or 'not installed'} ({m.backbone_.model.__class__.__name__} on its threads)")
    copies = {f"{c}-{i}" if i else c: c for i in range(math.ceil(max(counts) / len(fitted))) for c in fitted}
    names = list(copies)[:max(counts)]
    x = prepare(test, m.spec_)
    out["mflop_per_image"] = 2 * backbone_macs(m.backbone, say) / 1e6
    say("float32 NumPy matmul")
    out["matmul_gflops"] = matmul_gflops(reps=cfg["reps"] + 2)
    flop = out["mflop_per_image"] * 1e6
    with tempfile.TemporaryDirectory(prefix="bank-speed-") as tmp:
        reg = Registry(Path(tmp) / "registry")
        say(f"registering {len(names)} classes (copies of {', '.join(fitted)})")
        t = time.perf_counter()
        for name in names:
            reg.register(name, fitted[copies[name]])
        out["register_s_per_class"] = (time.perf_counter() - t) / len(names)
        rows = []
        bb = None
        for k in counts:
            say(f"{k} classes: load, check, time")
            t = time.perf_counter()
            router = Router.from_registry(reg, names[:k], batch_size=BATCH)
            load_s = time.perf_counter() - t
            models = list(router.detectors.values())
            if bb is None:  # the backbone alone: the one every class loaded shares
                bb = models[0].backbone_
                ips = throughput_for(bb.features, x, cfg["reps"])
                rows.append({"way": "backbone", "classes": None, "img_per_s": ips, "gflops": flop * ips / 1e9,
                             "single_ms": latency_ms(bb.features, x[:1], cfg["calls"]), "calls": cfg["calls"]})
            few = x[:8]
            ref = np.stack([mm.score_samples(few) for mm in models[:10]], axis=1)
            got = router.errors(few)[:, :10]
            diff = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)))
            scorer = PretrainedModel.group_scorer(models)
            for way, fn in (("scorer", in_batches(scorer)), ("router_score", router.score)):
                ips = throughput_for(fn, x, cfg["reps"])
                rows.append({"way": way, "classes": k, "img_per_s": ips, "gflops": flop * ips / 1e9,
                             "single_ms": latency_ms(fn, x[:1], cfg["calls"]), "calls": cfg["calls"],
                             "load_s": load_s, "max_rel_diff": diff})
        out["ways"] = rows
        out["peak_rss_mb"] = peak_rss_mb()
        one = Path(tmp) / "one.jpg"
        one.write_bytes(Path(test[0]).read_bytes())
        ten = names[:10]
        say("cold start: a fresh process to its first answer, 10 classes")
        out["cold_start"] = cold_start(Path(tmp), one, ten)
    return out


PHOTO_LABELS = {"backbone": "(1) the backbone alone: features (LiteRT)",
                "scorer": "(2) the kind's group_scorer: one backbone pass, every class's head",
                "router_score": "(3) bank.Router.score, from the registry (scores, verdicts)"}


def print_photo_tables(out: dict) -> None:
    d, mm = out["data"], out["matmul_gflops"]
    print(f"Speed of a bank of pretrained classes on photos, {out['date']}, {out['machine']}; {out['versions']}")
    print(f"Data: {d['classes'][0]} and {d['classes'][1]} photos from {d['path']}, {d['train_per_class']} a class "
          f"to fit on; the other classes of each bank are copies of these (the same model under another name, "
          f"registered in a temporary registry); timed on {d['test']} other photos at 224x224 RGB.")
    print(f"Models: {out['models']}; backbone built and converted once in {out['backbone_build_s']:.1f} s; fit "
          f"{out['fit_s_per_class']:.2f} s per class (mean), registration {out['register_s_per_class']:.3f} s per "
          "class.")
    print(f"One image costs the backbone {out['mflop_per_image']:,.0f} MFLOP (2 x multiply-adds of its conv, "
          f"depthwise conv and dense layers), once for every class; float32 NumPy matmul here: {mm:.1f} GFLOP/s.\n")
    print("| way | classes | images/s (batches of 256) | class-images/s | single image, ms (median) | GFLOP/s "
          "| of matmul | load from the registry |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in out["ways"]:
        k = r["classes"]
        per_class, load = (f"{r['img_per_s'] * k:,.0f}", f"{r['load_s']:.2f} s") if k else ("-", "-")
        print(f"| {PHOTO_LABELS[r['way']]} | {k or '-'} | {r['img_per_s']:,.1f} | {per_class} | "
              f"{r['single_ms']:.2f} ({r['calls']} calls) | {r['gflops']:.1f} | {r['gflops'] / mm:.0%} | {load} |")
    bb = out["ways"][0]
    last = [r for r in out["ways"] if r["way"] == "router_score"]
    print(f"\nRouter.score's cost over the backbone alone: one image +{last[0]['single_ms'] - bb['single_ms']:.2f} ms "
          f"at {last[0]['classes']} classes, +{last[-1]['single_ms'] - bb['single_ms']:.2f} ms at {last[-1]['classes']}; "
          f"batched {last[0]['img_per_s'] / bb['img_per_s']:.0%} and {last[-1]['img_per_s'] / bb['img_per_s']:.0%} "
          "of the backbone's images/s. The router's scores differ from each model's score_samples by at most "
          f"{max(r['max_rel_diff'] for r in last):.1e} relative (8 photos, the first 10 classes).")
    c = out["cold_start"]
    print(f"\nPeak RSS of this process at the end: {out['peak_rss_mb']:.0f} MB. Cold start, a fresh process to its "
          f"first answer from 10 classes: {c['first_answer_s']:.2f} s (import and load {c['load_s']:.2f} s, first "
          f"answer {c['answer_s']:.2f} s), peak RSS {c['peak_rss_mb']:.0f} MB, TensorFlow imported: "
          f"{'yes' if c['tensorflow_imported'] else 'no'}.")


# ------------------------------------------------------------ main

def kind_list(text: str) -> list[str]:
    """Kinds separated by commas, each one of :data:`bank.kinds.KINDS`."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    wrong = [k for k in kinds if k not in KINDS]
    if not kinds or wrong:
        raise argparse.ArgumentTypeError(f"expected kinds among {', '.join(KINDS)}, got {text!r}")
    return kinds


def ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def settings(args: argparse.Namespace) -> dict:
    cfg = dict(QUICK if args.quick else FULL)
    if args.kind == "pretrained":  # photos: its own section
        cfg = {k: cfg[k] for k in ("reps", "calls")}
        cfg.update(classes=args.classes or ints(PHOTO_CLASSES), photos=args.photos,
                   train_images=args.train_images or PHOTO_TRAIN)
        given = {"--batches": args.batches, "--train-data": args.train_data, "--train-epochs": args.train_epochs}
        cfg["ignored"] = [o for o, v in given.items() if v is not None]
        return cfg
    cfg["classes"] = args.classes or ints(cfg["classes"])
    cfg["batches"] = args.batches or ints(cfg["batches"])
    cfg.update(train_data=args.train_data, train_images=args.train_images or 2000, kind=args.kind,
               train_epochs=3 if args.train_epochs is None else args.train_epochs)
    if args.kind != "autoencoder":
        for key in ("naive_calls", "scale_calls"):  # the autoencoder's only
            del cfg[key]
        if args.kind != "side by side" and not trains_network(args.kind):  # fitted with --train-epochs
            del cfg["train_epochs"]
        cfg["ignored"] = ["--train-epochs"] if args.train_epochs is not None and "train_epochs" not in cfg else []
    return cfg


def trains_network(kind: str) -> bool:
    """Whether ``kind`` trains a network for some epochs (ae-hog's autoencoder, geotrans)."""
    from bank.kinds import kind_class

    return "epochs" in kind_class(kind).training_options


def versions() -> str:
    import keras
    import tensorflow as tf

    return (f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"NumPy {np.__version__}, ai-edge-litert {litert_version() or 'not installed'}")


def measure(cfg: dict, seed: int, say) -> dict:
    """Every figure, in one dict."""
    from bank.nets import models  # noqa: F401  (imports TensorFlow, quietly)

    n = max(cfg["classes"] + [BANK])
    say(f"building {n} random-initialised class models")
    everything = random_bank(n, seed)
    bank = first(everything, BANK)
    x = random_images(max(BATCH, cfg["images"] // BATCH * BATCH), seed)
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
           "versions": versions(), "settings": cfg, "mflop_per_image_per_class": flop_per_image(first(bank, 1)) / 1e6}
    say("float32 NumPy matmul")
    out["matmul_gflops"] = matmul_gflops(reps=cfg["reps"] + 2)
    with tempfile.TemporaryDirectory(prefix="bank-speed-") as tmp:
        reg, out["register_s_per_class"] = saved_registry(everything, Path(tmp), say)
        out["ways"] = ways(bank, reg, x, cfg, say)
        out["peak_rss_mb_ways"] = peak_rss_mb()
        out.update(headline(out["ways"], out["matmul_gflops"]))
        out["scaling_batches"] = scale_batches(bank, reg, cfg["batches"], cfg, say)
        out["scaling_classes"] = scale_classes(everything, reg, cfg["classes"], cfg, say)
        out["peak_rss_mb"] = peak_rss_mb()
        out.update(start_up(Path(tmp), x[0], list(everything), cfg["cold_reps"], say))
    if cfg.get("train_data"):
        out["training"] = training(Path(cfg["train_data"]), cfg["train_images"], cfg["train_epochs"], say)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run: 1 and 10 classes, batches 1, 32, 256, fewer "
                   "repetitions")
    p.add_argument("--classes", type=ints, metavar="K1,K2,...", help="bank sizes to scale over (default 1,10,50,100)")
    p.add_argument("--batches", type=ints, metavar="B1,B2,...", help="batch sizes to scale over "
                   "(default 1,4,16,64,256,1024)")
    p.add_argument("--train-data", metavar="DIR", help="MNIST IDX folder: also time `bank train-all` against "
                   "sequential training of the 10 digits; for --kind pca or hog-ocsvm, the digits the models are "
                   "fitted on and timed with (else synthetic images)")
    p.add_argument("--train-images", type=int, metavar="N", help="training images per digit (default 2000); for "
                   f"--kind pretrained, photos per class (default {PHOTO_TRAIN})")
    p.add_argument("--train-epochs", type=int, metavar="E", help="epochs per digit (default 3; the autoencoder's, "
                   "and for --kind ae-hog or geotrans those the timed models are fitted with)")
    p.add_argument("--kind", type=kind_list, default=["autoencoder"], help="the kind of class model timed "
                   "(default autoencoder: random weights; the others are fitted for real; pretrained on --photos); "
                   "several, comma-separated (such as autoencoder,ae-hog): 10-class digit banks of each, fitted "
                   "for real and timed side by side in turns")
    p.add_argument("--photos", metavar="DIR", help="for --kind pretrained: a folder with a sub-folder of photos per "
                   "class, such as ../shared/data/pets (cats, dogs)")
    p.add_argument("--many", type=ints, metavar="K1,K2,...", help="banks of this many copies of one 8x8 dense digit "
                   "class, stacked against one LiteRT call a class (benchmarks/classes.py), such as 10,100,1000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    kinds, args.kind = args.kind, args.kind[0] if len(args.kind) == 1 else "side by side"
    if len(kinds) > 1 and "pretrained" in kinds:
        p.error("--kind pretrained times photos on its own; leave it out of a list of digit kinds")
    if args.train_images is not None and args.train_images < 4:
        p.error(f"--train-images: expected at least 4, got {args.train_images}")
    if args.kind == "pretrained" and not args.photos:
        p.error("--kind pretrained: give --photos DIR, a folder with a sub-folder of photos per class")

    t0 = time.perf_counter()
    if args.many:
        import classes  # benchmarks/classes.py, beside this script

        out = classes.measure(args.many, epochs=10, calls=QUICK["calls"] if args.quick else FULL["calls"])
        print(json.dumps(out, indent=2)) if args.json else classes.print_table(out)
        return 0
    cfg = settings(args)
    if len(kinds) > 1:
        out = measure_side_by_side(kinds, cfg, args.seed, say)
    elif args.kind == "autoencoder":
        out = measure(cfg, args.seed, say)
    elif args.kind == "pretrained":
        if cfg["ignored"]:
            say(f"note: {', '.join(cfg['ignored'])}: ignored by the photo section (--kind pretrained)")
        out = measure_photos(cfg, args.seed, say)
    else:
        if cfg["ignored"]:
            say(f"note: {', '.join(cfg['ignored'])}: the autoencoder's; ignored by {args.kind}")
        out = measure_kind(args.kind, cfg, args.seed, say)
    out["seconds"] = time.perf_counter() - t0
    say(f"done in {out['seconds']:.0f} s")
    if args.json:
        print(json.dumps(out, indent=2))
    elif len(kinds) > 1:
        print_side_by_side(out)
    elif args.kind == "autoencoder":
        print_tables(out)
    elif args.kind == "pretrained":
        print_photo_tables(out)
    else:
        print_kind_tables(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
