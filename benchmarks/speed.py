"""Speed benchmark: the 10-class MNIST bank, random-initialised (timing only), in one run.

    python benchmarks/speed.py [--quick] [--json] [--classes 1,10,50,100] [--batches 1,4,16,64,256,1024]
                               [--train-data ../shared/data/mnist [--train-images 2000] [--train-epochs 3]]

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

from bank.runtime import cores

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
from bank.decoding import read_image
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

    from bank import AutoencoderDetector, InputSpec, fit_error_stats, models

    keras.utils.set_random_seed(seed)
    det = AutoencoderDetector(verbose=0)
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

    from bank.data import load_idx_split
    from bank.training import train_all

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
    print(f"| peak RSS of this process after the rows (a) to (c) | {mb(out['peak_rss_mb_ways'])} |")
    print(f"| ... at the end, after the scaling | {mb(out['peak_rss_mb'])} |")
    print(f"| a fresh process loading {big['classes']} classes and scoring a batch of {big['batch']}: peak RSS | "
          f"{mb(big['peak_rss_mb'])} (load {big['load_s']:.2f} s, answer {big['answer_s']:.2f} s) |")
    print(f"| cold start: a fresh Python process to its first answer, {BANK}-class registry | "
          f"{out['cold_start_s']:.2f} s (interpreter {c['python_s']:.2f} s, import and load {c['load_s']:.2f} s, "
          f"first answer {c['answer_s']:.2f} s) |")
    print(f"| peak RSS of that process at its first answer | {mb(c['peak_rss_mb'])} |")
    print(f"| `bank classify one.png`: wall time of the fresh process | {out['cli_classify_s']:.2f} s |")
    print(f"| TensorFlow imported by the fresh process | {'yes' if out['tensorflow_imported'] else 'no'} |")


# ------------------------------------------------------------ main

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
    cfg["classes"] = args.classes or ints(cfg["classes"])
    cfg["batches"] = args.batches or ints(cfg["batches"])
    cfg.update(train_data=args.train_data, train_images=args.train_images, train_epochs=args.train_epochs)
    return cfg


def versions() -> str:
    import keras
    import tensorflow as tf

    return (f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"NumPy {np.__version__}, ai-edge-litert {litert_version() or 'not installed'}")


def measure(cfg: dict, seed: int, say) -> dict:
    """Every figure, in one dict."""
    from bank import models  # noqa: F401  (imports TensorFlow, quietly)

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
                   "sequential training of the 10 digits")
    p.add_argument("--train-images", type=int, default=2000, metavar="N", help="training images per digit "
                   "(default 2000)")
    p.add_argument("--train-epochs", type=int, default=3, metavar="E", help="epochs per digit (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    t0 = time.perf_counter()
    out = measure(settings(args), args.seed, say)
    out["seconds"] = time.perf_counter() - t0
    say(f"done in {out['seconds']:.0f} s")
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_tables(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
