"""Speed benchmark: the 10-class MNIST bank, random-initialised (timing only), in one run.

    python benchmarks/speed.py [--quick] [--json] [--classes 1,10,50,100] [--batches 1,4,16,64,256,1024]

No training: each class model is the default 28x28 conv autoencoder (filters
32, 64; latent 16) with random weights, and its statistics are fitted to
random errors, so the verdicts mean nothing; only the times do. Measured:

(a) ``naive``: the seeds' way, one ``model.predict`` per class, the error in NumPy;
(b) ``router``: ``bank.Router``, every class in one fused Keras model
    (``router.score`` also: errors, input complexities and verdicts);
(c) ``litert``: the same fused graph (``bank.models.error_model``) converted
    to LiteRT (``pip install ai-edge-litert``; without it the row says "not
    installed"), 2 threads, the input resized to each batch; and
    ``litert_static``: one conversion per batch size, every shape fixed, which
    lets XNNPACK take the whole graph. Their errors are checked against the
    router's (max relative difference, at most 1e-5).

For each: throughput (images/s, batches of 256), single-image latency (the
median of at least 100 calls; ``--quick`` calls the naive way 10 times),
speed-ups, and GFLOP/s from the multiply-adds of the conv, conv-transpose
and dense layers, against float32 NumPy matmul measured in the same run (the
ceiling). Then the router's scaling with the number of classes and with the
batch size (beside LiteRT's), peak RSS, cold start (a fresh Python process to
the first answer from a 10-class bank in a temporary registry) and the wall
time of ``bank classify one.png`` against that registry. ``--quick`` keeps
to 1 and 10 classes, batches 1, 32 and 256, fewer repetitions: about 2
minutes on 2 busy cores, where the full run takes about 10 (100 single-image
calls the naive way are 2 minutes alone). ``--json`` prints one JSON object
instead of the markdown tables; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
#: Run in a fresh process: argv = registry, image, the parent's clock at launch. Prints one JSON line.
COLD_START = """
import json, sys, time
t0 = time.time()
from bank import Registry, Router
from bank.images import read_image
router = Router.from_registry(Registry(sys.argv[1]))
t1 = time.time()
label = router.classify([read_image(sys.argv[2])])[0]
t2 = time.time()
try:  # VmHWM: getrusage would count the parent's pages this process inherited at fork
    hwm = [float(s.split()[1]) / 1024 for s in open("/proc/self/status") if s.startswith("VmHWM:")][0]
except (OSError, IndexError):
    hwm = None
print(json.dumps({"first_answer_s": t2 - float(sys.argv[3]), "python_s": t0 - float(sys.argv[3]),
                  "load_s": t1 - t0, "answer_s": t2 - t1, "peak_rss_mb": hwm, "label": label}))
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


def to_litert(model, shape: tuple[int, ...]) -> bytes:
    """A one-input Keras model as a LiteRT flatbuffer, for inputs of ``shape`` (None: any batch size)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec(shape, tf.float32)])
    # No trackable_obj: given the Keras 3 model, the converter keeps the weights as variables that
    # LiteRT never initialises (NaN errors under XNNPACK); without it they are frozen into constants.
    # TF calls that path deprecated (an absl warning, muted here); the documented one, model.export
    # then from_saved_model, gives the same errors but takes about 5 times longer.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]).convert()
    finally:
        absl.setLevel(level)


class LiteRT:
    """A Keras model run by LiteRT, 2 threads.

    ``static=False``: one conversion with a free batch dimension, the input
    resized to each batch. ``static=True``: one conversion per batch size
    (on first use), every shape fixed. One interpreter is alive at a time.
    """

    def __init__(self, model, shape: tuple[int, int, int], static: bool = False, threads: int = 2):
        self.model, self.shape, self.static, self.threads = model, shape, static, threads
        self.flatbuffers: dict[int | None, bytes] = {}
        self.interp, self.key, self.batch = None, None, None

    def _ready(self, n: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        key = n if self.static else None
        if self.interp is None or key != self.key:
            if key not in self.flatbuffers:
                self.flatbuffers[key] = to_litert(self.model, (key, *self.shape))
            self.interp = None  # free the old arena first
            self.interp = Interpreter(model_content=self.flatbuffers[key], num_threads=self.threads)
            self.inp = self.interp.get_input_details()[0]["index"]
            self.out = self.interp.get_output_details()[0]["index"]
            self.key, self.batch = key, None
        if n != self.batch:
            self.interp.resize_tensor_input(self.inp, (n, *self.shape))
            self.interp.allocate_tensors()
            self.batch = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._ready(len(x))
        self.interp.set_tensor(self.inp, x)
        self.interp.invoke()
        return self.interp.get_tensor(self.out)

    def errors(self, x: np.ndarray) -> np.ndarray:
        """(N, K) errors, batches of 256."""
        return np.concatenate([self(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])

    @property
    def size_mb(self) -> float:
        return max(map(len, self.flatbuffers.values()), default=0) / 2**20


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


def make_litert(bank: dict) -> dict[str, LiteRT]:
    """The fused error graph in LiteRT: "litert" (input resized per batch) and "litert_static"."""
    from bank.models import error_model

    fused = error_model([d.model_ for d in bank.values()], SHAPE)
    return {"litert": LiteRT(fused, SHAPE), "litert_static": LiteRT(fused, SHAPE, static=True)}


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |b|."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.abs(b)))


def way(name: str, errors_fn, x: np.ndarray, reps: int, calls: int, flop: int) -> dict:
    """Throughput, single-image latency and GFLOP/s of one way of getting the (N, K) errors."""
    ips = throughput(errors_fn, x, reps)
    return {"way": name, "img_per_s": ips, "single_ms": latency_ms(errors_fn, x[:1], calls), "calls": calls,
            "gflops": flop * ips / 1e9}


def keras_ways(bank: dict, x: np.ndarray, cfg: dict, say) -> list[dict]:
    """Rows (a) and (b)."""
    from bank import Router

    flop = flop_per_image(bank)
    router = Router(bank, batch_size=BATCH)
    say("(a) naive: model.predict per class")
    rows = [way("naive", lambda v: naive_errors(bank, v), x, cfg["reps"], cfg["naive_calls"], flop)]
    say("(b) bank.Router")
    rows.append(way("router", router.errors, x, cfg["reps"], cfg["calls"], flop))
    rows.append(way("router_score", router.score, x, cfg["reps"], cfg["calls"], flop))
    return rows


def litert_ways(bank: dict, lites: dict[str, LiteRT], x: np.ndarray, cfg: dict, say) -> list[dict]:
    """Rows (c), each with the max relative difference of its errors from the router's."""
    from bank import Router

    ref = Router(bank, batch_size=BATCH).errors(x)
    rows = []
    for name, lite in lites.items():
        say(f"(c) {name}")
        diff = max(max_rel_diff(lite.errors(x), ref), max_rel_diff(lite(x[:1]), ref[:1]))
        row = way(name, lite.errors, x, cfg["reps"], cfg["calls"], flop_per_image(bank))
        rows.append({**row, "max_rel_diff": diff, "size_mb": lite.size_mb})
    return rows


# ------------------------------------------------------------ scaling

def scale_classes(bank: dict, counts: list[int], cfg: dict, say) -> list[dict]:
    """Router throughput (one batch of 256) and single-image latency for banks of each size."""
    from bank import Router

    x = random_images(BATCH, 1)
    out = []
    for k in counts:
        say(f"scaling: {k} classes")
        sub = first(bank, k)
        router = Router(sub, batch_size=BATCH)
        row = way("router", router.errors, x, cfg["reps"], cfg["scale_calls"], flop_per_image(sub))
        out.append({"classes": k, **{n: row[n] for n in ("img_per_s", "single_ms", "calls", "gflops")}})
    return out


def scale_batches(bank: dict, sizes: list[int], cfg: dict, lites: dict[str, LiteRT], say) -> list[dict]:
    """Router (and LiteRT) images/s on one batch of each size; small batches are timed more often."""
    from bank import Router

    router = Router(bank, batch_size=max(sizes))
    x = random_images(max(sizes), 2)
    out = []
    for b in sizes:
        say(f"scaling: batch {b}")
        reps = max(cfg["reps"], cfg["batch_images"] // b)
        row = {"batch": b, "router_img_per_s": throughput(router.errors, x[:b], reps)}
        for name, lite in lites.items():
            row[f"{name}_img_per_s"] = throughput(lite, x[:b], reps)
        out.append(row)
    return out


# ------------------------------------------------------------ start-up

def saved_registry(bank: dict, root: Path, image: np.ndarray) -> Path:
    """Register the bank in ``root`` and write ``one.png`` beside it; returns the PNG's path."""
    from PIL import Image

    from bank import Registry

    reg = Registry(root / "registry")
    for name, det in bank.items():
        reg.register(name, det)
    png = root / "one.png"
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(png)
    return png


def cold_start(root: Path, png: Path) -> dict:
    """A fresh Python process from launch to its first answer (the child reports its phases)."""
    t = time.perf_counter()
    launched = time.time()
    run = subprocess.run([sys.executable, "-c", COLD_START, str(root / "registry"), str(png), repr(launched)],
                         capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - t
    if run.returncode:
        raise RuntimeError(f"cold start failed:\n{run.stderr[-2000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "wall_s": wall}


def cli_classify(root: Path, png: Path) -> float:
    """Wall seconds of ``bank classify one.png --registry ...`` as a fresh process."""
    exe = Path(sys.executable).with_name("bank")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bank"]
    t = time.perf_counter()
    run = subprocess.run([*cmd, "classify", str(png), "--registry", str(root / "registry")], capture_output=True,
                         text=True, cwd=root)
    wall = time.perf_counter() - t
    if run.returncode:
        raise RuntimeError(f"bank classify failed:\n{run.stderr[-2000:]}")
    return wall


def start_up(bank: dict, image: np.ndarray, reps: int, say) -> dict:
    """Cold start and CLI wall times (medians of ``reps`` runs each) against a temporary registry."""
    with tempfile.TemporaryDirectory(prefix="bank-speed-") as tmp:
        root = Path(tmp)
        png = saved_registry(bank, root, image)
        say(f"cold start and bank classify, {reps} run(s) each")
        colds = [cold_start(root, png) for _ in range(reps)]
        clis = [cli_classify(root, png) for _ in range(reps)]
    keys = ("first_answer_s", "python_s", "load_s", "answer_s", "wall_s", "peak_rss_mb")
    med = {k: statistics.median(c[k] for c in colds) if colds[0][k] is not None else None for k in keys}
    return {"cold_start_s": med["first_answer_s"], "cold_start": med, "cli_classify_s": statistics.median(clis),
            "start_up_runs": reps}


# ------------------------------------------------------------ output

LABELS = {"naive": "(a) naive: one model.predict per class", "router": "(b) bank.Router (errors)",
          "router_score": "(b) bank.Router.score (errors, complexity, verdicts)",
          "litert": "(c) LiteRT, 2 threads, input resized per batch",
          "litert_static": "(c) LiteRT, 2 threads, one static-batch conversion per batch size"}


def headline(rows: list[dict], matmul: float) -> dict:
    """The figures as top-level keys: per way, images/s, single-image ms and GFLOP/s; the ratios."""
    by = {r["way"]: r for r in rows}
    res = {f"{w}_{k}": r[k] for w, r in by.items() for k in ("img_per_s", "single_ms", "gflops")}
    naive, router = by["naive"], by["router"]
    res["router_vs_naive_throughput"] = router["img_per_s"] / naive["img_per_s"]
    res["router_vs_naive_single"] = naive["single_ms"] / router["single_ms"]
    for name in ("litert", "litert_static"):
        if name in by:
            res[f"{name}_vs_router_throughput"] = by[name]["img_per_s"] / router["img_per_s"]
            res[f"{name}_vs_router_single"] = router["single_ms"] / by[name]["single_ms"]
            res[f"{name}_max_rel_diff"] = by[name]["max_rel_diff"]
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


def print_ways(out: dict) -> None:
    by = {r["way"]: r for r in out["ways"]}
    naive, router, mm = by["naive"], by["router"], out["matmul_gflops"]
    print("| way | images/s (batches of 256) | x naive | x router | single image, ms (median) | x naive | x router "
          "| GFLOP/s | of matmul |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in by.values():
        print(f"| {LABELS[r['way']]} | {r['img_per_s']:.0f} | {r['img_per_s'] / naive['img_per_s']:.1f} | "
              f"{r['img_per_s'] / router['img_per_s']:.2f} | {r['single_ms']:.2f} ({r['calls']} calls) | "
              f"{naive['single_ms'] / r['single_ms']:.1f} | {router['single_ms'] / r['single_ms']:.2f} | "
              f"{r['gflops']:.1f} | {r['gflops'] / mm:.0%} |")
    if "litert" not in by:
        print(f"| (c) LiteRT (ai-edge-litert), 2 threads | {out['litert']} | | | | | | | |")
        return
    d = max(by[n]["max_rel_diff"] for n in ("litert", "litert_static"))
    print(f"\nLiteRT {out['litert']}: its errors differ from the router's by at most {d:.1e} relative "
          f"({'within' if d <= TOLERANCE else 'OVER'} {TOLERANCE:g}); flatbuffer {by['litert']['size_mb']:.1f} MB. "
          "A free batch dimension leaves shape arithmetic (the Keras Reshape) in the graph, which keeps XNNPACK "
          "from all but a few pieces of it: hence the static rows.")


def print_scaling(out: dict) -> None:
    print("\nScaling with the number of classes (bank.Router, one batch of 256):\n")
    print("| classes | images/s | class-images/s | single image, ms (median) | GFLOP/s | of matmul |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in out["scaling_classes"]:
        print(f"| {r['classes']} | {r['img_per_s']:.0f} | {r['img_per_s'] * r['classes']:.0f} | {r['single_ms']:.2f} "
              f"({r['calls']} calls) | {r['gflops']:.1f} | {r['gflops'] / out['matmul_gflops']:.0%} |")
    lite = any("litert_img_per_s" in r for r in out["scaling_batches"])
    print(f"\nScaling with the batch size ({BANK} classes, images/s, one batch per call):\n")
    print("| batch | bank.Router | LiteRT, resized | LiteRT, static | static / router |" if lite else
          "| batch | bank.Router |")
    print("| --- | --- | --- | --- | --- |" if lite else "| --- | --- |")
    for r in out["scaling_batches"]:
        extra = (f" {r['litert_img_per_s']:.0f} | {r['litert_static_img_per_s']:.0f} | "
                 f"{r['litert_static_img_per_s'] / r['router_img_per_s']:.2f} |" if lite else "")
        print(f"| {r['batch']} | {r['router_img_per_s']:.0f} |{extra}")


def print_start_up(out: dict) -> None:
    c, mb = out["cold_start"], lambda v: "n/a" if v is None else f"{v:.0f} MB"  # noqa: E731
    print(f"\nMemory and start-up (start-up: median of {out['start_up_runs']} run(s)):\n")
    print("| what | figure |")
    print("| --- | --- |")
    print(f"| peak RSS of this process after rows (a) and (b) | {mb(out['peak_rss_mb_keras'])} |")
    print(f"| ... after rows (c), LiteRT | {mb(out.get('peak_rss_mb_litert'))} |")
    print(f"| ... at the end, after the scaling | {mb(out['peak_rss_mb'])} |")
    print(f"| cold start: a fresh Python process to its first answer, {BANK}-class registry | "
          f"{out['cold_start_s']:.2f} s (interpreter {c['python_s']:.2f} s, import and load {c['load_s']:.2f} s, "
          f"first answer {c['answer_s']:.2f} s) |")
    print(f"| peak RSS of that process at its first answer | {mb(c['peak_rss_mb'])} |")
    print(f"| `bank classify one.png`: wall time of the fresh process | {out['cli_classify_s']:.2f} s |")


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
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {_cores()} cores",
           "versions": versions(), "settings": cfg, "mflop_per_image_per_class": flop_per_image(first(bank, 1)) / 1e6}
    say("float32 NumPy matmul")
    out["matmul_gflops"] = matmul_gflops(reps=cfg["reps"] + 2)
    out["ways"] = keras_ways(bank, x, cfg, say)
    out["peak_rss_mb_keras"] = peak_rss_mb()
    out["litert"], lites = litert_version() or "not installed", {}
    if out["litert"] != "not installed":
        lites = make_litert(bank)
        out["ways"] += litert_ways(bank, lites, x, cfg, say)
        out["peak_rss_mb_litert"] = peak_rss_mb()
    out.update(headline(out["ways"], out["matmul_gflops"]))
    out["scaling_batches"] = scale_batches(bank, cfg["batches"], cfg, lites, say)
    out["scaling_classes"] = scale_classes(everything, cfg["classes"], cfg, say)
    out["peak_rss_mb"] = peak_rss_mb()
    out.update(start_up(bank, x[0], cfg["cold_reps"], say))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run: 1 and 10 classes, batches 1, 32, 256, fewer "
                   "repetitions")
    p.add_argument("--classes", type=ints, metavar="K1,K2,...", help="bank sizes to scale over (default 1,10,50,100)")
    p.add_argument("--batches", type=ints, metavar="B1,B2,...", help="batch sizes to scale over "
                   "(default 1,4,16,64,256,1024)")
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


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
