"""Load and memory benchmark of ``bank serve``: many clients, each sending one image per request.

    python benchmarks/serve.py [--registry PATH] [--clients 1,8,32,128] [--seconds 10] [--json]
    python benchmarks/serve.py --memory [--no-load] [--flat-clients 32] [--photo-clients 64] [--cli-files 200]

Starts ``bank serve`` on loopback (a real uvicorn process) over a 10-class
bank: ``--registry`` (such as the MNIST bank of ``examples/mnist.py``), or by
default a temporary registry of random-weight 28x28 default models (timing
only). For each number of concurrent clients (asyncio + aiohttp, ``pip
install -e ".[bench]"``; one PNG per request, for ``--seconds`` each): requests/s, p50 and p99 latency, and the
mean images per router call read from the server's ``/metrics``. Beside
them, measured in the same run: the in-process router's batched images/s
(``Router.score`` on batches of 256 decoded images), and the ratio of the
server's requests/s to it. The clients share the machine with the server:
on 2 cores they take a real part of it. ``--json`` prints one JSON object.

``--memory`` adds a second table, memory under pressure (issue 17: sixteen
uploads of a 258 KB PNG once took the server to 22 GB). Each server row is a
fresh ``bank serve`` process, hit by one burst of concurrent uploads
(multipart field ``files`` to ``/v1/classify``, each with a 120 s timeout):

- ``--flat-clients`` (32) uploads of a flat 9000x9000 RGB PNG (258 KB of
  file, 243 MB of pixels), against the default limits (each refused with
  413 from its header) and against ``--max-pixels 100000000`` (decoded, one
  at a time under the decode budget: 200, or 503 with ``Retry-After`` for
  those that could not start within ``--queue-seconds``);
- ``--photo-clients`` (64) uploads of a photo-like RGB PNG (a gradient plus
  noise, NumPy-made, just under the 20 MiB upload limit), default limits.

Per row: the answers by status (every request must be answered 200, 413 or
503; a connection error, a timeout or any other status is a failure), the
wall time of the burst, the server's resident memory before it (``VmRSS``)
and its peak (``VmHWM`` of ``/proc/<pid>/status``, read after the burst),
and one small normal PNG sent right after (it must get 200). A last row runs
``bank classify DIR --json`` (a fresh process) on ``--cli-files`` (200) hard
links of the photo-like PNG: its peak resident memory (``ru_maxrss``, read
by a small wrapper process), wall time and the images it classified. The
target: at most 2 GiB peak for the flat 9000x9000 rows, every request
answered. A process past ``--memory-cap-gib`` (8) is killed, so a runaway
server cannot take a shared machine down; that is reported as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Self

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bank.nets.runtime import cores  # noqa: E402
from speed import bank_command, ints, random_bank  # noqa: E402

TARGET_CLIENTS, TARGET_SHARE, TARGET_P99_MS = 32, 0.5, 100.0


def random_registry(root: Path, say) -> Path:
    """A 10-class registry of random-weight default models (the speed benchmark's)."""
    from bank import Registry

    say("registering 10 random-weight classes")
    reg = Registry(root / "registry")
    for name, det in random_bank(10, 0).items():
        reg.register(name, det)
    return reg.root


def test_images(n: int, seed: int = 0) -> list[bytes]:
    """n 28x28 gray PNGs: blurred strokes, like digits to the eye of a timer."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = Image.new("L", (28, 28))
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            draw.line([tuple(rng.integers(4, 24, 2)) for _ in range(3)], fill=255, width=3)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def in_process(registry: Path, pngs: list[bytes], reps: int = 3) -> dict:
    """The router in this process: images/s of ``score`` (and ``errors``) on batches of 256 decoded images."""
    from bank import Registry, Router
    from bank.io.decoding import decode_image

    router = Router.from_registry(Registry(registry))
    x = [decode_image(p, str(i)) for i, p in enumerate((pngs * 256)[:256])]
    out = {}
    for name, fn in (("score", router.score), ("errors", router.errors)):
        fn(x)
        t = time.perf_counter()
        for _ in range(reps):
            fn(x)
        out[f"router_{name}_img_per_s"] = reps * len(x) / (time.perf_counter() - t)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(registry: Path, port: int, say, options: tuple[str, ...] = ()) -> subprocess.Popen:
    """``bank serve`` on loopback with ``options``, once ``/readyz`` answers 200; its stderr goes to a temporary
    file (``proc.log``: a pipe nobody reads would stall the server once full). Stop it with :func:`stop_server`."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop_server)
    proc = subprocess.Popen([*bank_command(), "serve", "--registry", str(registry), "--port", str(port), *options],
                            stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bank serve stopped:\n{stop_server(proc)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                say(f"server ready on port {port}" + (f" ({' '.join(options)})" if options else ""))
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("bank serve was not ready within 120 s")


def stop_server(proc: subprocess.Popen, tail: int = 4000) -> str:
    """Stop the server (terminate, then kill after 30 s) and return the end of its stderr."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log.seek(0)
    text = proc.log.read().decode("utf-8", "replace")
    proc.log.close()
    return text[-tail:]


def batch_stats(text: str) -> tuple[float, float]:
    """(sum, count) of the server's images-per-router-call histogram."""
    got = {}
    for key in ("sum", "count"):
        m = re.search(rf"^bank_batch_images_{key} (\S+)$", text, re.M)
        got[key] = float(m.group(1)) if m else 0.0
    return got["sum"], got["count"]


async def load(url: str, pngs: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` tasks, each posting one PNG at a time to /v1/classify for ``seconds`` (aiohttp: a client
    light enough that on a shared machine the server, not the client, is what is measured)."""
    import aiohttp

    latencies: list[float] = []
    failures = 0
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients)) as client:
        async with client.get("/metrics") as r:
            before = batch_stats(await r.text())
        stop = time.perf_counter() + seconds

        async def one_client(k: int) -> None:
            nonlocal failures
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with client.post("/v1/classify", data=pngs[i % len(pngs)],
                                       headers={"content-type": "image/png"}) as r:
                    await r.read()
                    failures += r.status != 200
                latencies.append(time.perf_counter() - t)
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        wall = time.perf_counter() - t0
        async with client.get("/metrics") as r:
            after = batch_stats(await r.text())
    calls = after[1] - before[1]
    ms = sorted(v * 1e3 for v in latencies)
    return {"clients": clients, "requests": len(ms), "failures": failures, "req_per_s": len(ms) / wall,
            "p50_ms": ms[len(ms) // 2], "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
            "mean_batch": (after[0] - before[0]) / calls if calls else float("nan")}


def measure_load(registry: Path, args, say) -> dict:
    """The load table: the in-process router, then one row per number of clients against one server."""
    pngs = test_images(64)
    say("in-process router")
    out = {"seconds_per_row": args.seconds, **in_process(registry, pngs)}
    port = free_port()
    server = start_server(registry, port, say)
    try:
        rows = []
        for n in args.clients:
            say(f"{n} client(s)")
            rows.append(asyncio.run(load(f"http://127.0.0.1:{port}", pngs, n, args.seconds)))
    finally:
        stop_server(server)
    for r in rows:
        r["share_of_router"] = r["req_per_s"] / out["router_score_img_per_s"]
    out["rows"] = rows
    target = next((r for r in rows if r["clients"] == TARGET_CLIENTS), None)
    if target:
        out["target"] = {"clients": TARGET_CLIENTS, "share": target["share_of_router"], "p99_ms": target["p99_ms"],
                         "met": target["share_of_router"] >= TARGET_SHARE and target["p99_ms"] < TARGET_P99_MS}
    return out


def measure(args, say) -> dict:
    with tempfile.TemporaryDirectory(prefix="bank-serve-") as tmp:
        registry = Path(args.registry) if args.registry else random_registry(Path(tmp), say)
        out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
               "registry": str(args.registry or "random-weight 10-class bank")}
        if not args.no_load:
            out.update(measure_load(registry, args, say))
        if args.memory:
            out["memory"] = measure_memory(registry, Path(tmp), args, say)
    return out


# Memory under pressure (--memory) ------------------------------------------------------------------------------

#: The flat image of issue 17: a 9000x9000 RGB PNG of one colour, 258 KB of file for 243 MB of 8-bit pixels.
FLAT_SIDE, FLAT_COLOUR = 9000, (200, 100, 50)
#: The target: the server's peak resident memory through a burst of flat 9000x9000 uploads.
PEAK_TARGET_BYTES = 2 * 2**30
#: ``bank serve``'s default upload limit (--max-upload-mb 20), which the photo-like PNG stays just under.
UPLOAD_LIMIT_BYTES = 20 * 2**20
#: The answers a request under pressure may get: classified, refused for its pixels, or busy (try later).
ANSWERS = (200, 413, 503)
#: Seconds each client request may take, and ``bank classify`` over its folder.
REQUEST_TIMEOUT, CLI_TIMEOUT = 120.0, 1800.0
#: Runs ``argv[2:]`` with a timeout of ``argv[1]`` seconds, then writes its peak resident memory (kB) to stderr.
#: A small process in between: a child's ``ru_maxrss`` starts from its parent's resident memory at the fork
#: (Linux keeps the larger across exec), and this benchmark's process holds TensorFlow.
MAXRSS_WRAPPER = """import resource, subprocess, sys
code = subprocess.call(sys.argv[2:], timeout=float(sys.argv[1]))
print(f"maxrss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


def flat_png(side: int = FLAT_SIDE) -> bytes:
    """Issue 17's upload: a flat ``side`` x ``side`` RGB PNG (258 KB at 9000)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), FLAT_COLOUR).save(buf, "PNG")
    return buf.getvalue()


def photo_pixels(height: int, width: int, sigma: float = 24.0, seed: int = 0) -> np.ndarray:
    """A photo-like RGB picture, uint8 (H, W, 3): smooth colour gradients plus Gaussian noise (grain that
    PNG cannot compress away, as in a real photo)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    smooth = np.stack(np.broadcast_arrays(255 * x, 255 * y, 127.5 * (1 + np.sin(6 * x + 4 * y))), axis=-1)
    noisy = smooth + rng.normal(0, sigma, (height, width, 3)).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def photo_png(path: Path, limit: int = UPLOAD_LIMIT_BYTES, width: int = 3000, say=print) -> dict:
    """Write a photo-like PNG ``width`` wide to ``path``, as tall as keeps it just under ``limit`` bytes (64 KiB
    left for the multipart envelope); its height is found from a 200-row strip, then trimmed (a few tries)."""
    target = limit - 64 * 2**10
    strip = 200
    height = int(target / len(encode_png(photo_pixels(strip, width))) * strip)
    for _ in range(6):
        data = encode_png(photo_pixels(height, width))
        if len(data) <= target:
            break
        height = int(height * target / len(data) * 0.998)
    else:
        raise RuntimeError(f"could not make a photo-like PNG under {target} bytes")
    path.write_bytes(data)
    say(f"photo-like PNG: {width}x{height}, {len(data) / 2**20:.2f} MiB")
    return {"width": width, "height": height, "bytes": len(data)}


def proc_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc/<pid>/task/*/children``), parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:  # gone meanwhile
                pass
    return out


class RssGuard:
    """Watch the resident memory of a process and its descendants while a block runs: summed and sampled
    every ``every`` seconds in a thread (``peak_kb``), and every one of them killed once past ``cap_bytes``
    (``killed``), so that a runaway process cannot take a shared machine down with it."""

    def __init__(self, proc: subprocess.Popen, cap_bytes: float, every: float = 0.05):
        self.proc, self.cap_kb, self.every = proc, cap_bytes / 1024, every
        self.peak_kb, self.killed = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.every) and self.proc.poll() is None:
            pids = process_tree(self.proc.pid)
            rss = sum(proc_kb(p, "VmRSS") or 0 for p in pids)
            self.peak_kb = max(self.peak_kb, rss)
            if rss > self.cap_kb:
                self.killed = True
                for p in reversed(pids):
                    with suppress(OSError):
                        os.kill(p, signal.SIGKILL)
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def burst(url: str, png: bytes, filename: str, n: int) -> dict:
    """``n`` clients at once, each posting ``png`` once to /v1/classify (multipart field ``files``, timeout
    :data:`REQUEST_TIMEOUT`): the answers by status (a failure without an answer is counted by its error), the
    wall time, and ``problems``: answers other than :data:`ANSWERS`, a 413 that does not name the image and its
    pixels, a 503 without ``Retry-After``."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    problems: list[str] = []

    async def one(client: aiohttp.ClientSession) -> str:
        form = aiohttp.FormData()
        form.add_field("files", png, filename=filename, content_type="image/png")
        try:
            async with client.post("/v1/classify", data=form) as r:
                body = await r.read()
                if r.status not in ANSWERS:
                    problems.append(f"{r.status}: {body[:300].decode('utf-8', 'replace')}")
                elif r.status == 413:
                    try:
                        fields = json.loads(body)
                    except ValueError:
                        fields = {}
                    if not (fields.get("image") == filename and {"pixels", "limit_pixels"} <= fields.keys()):
                        problems.append(f"413 without image, pixels and limit_pixels: {body[:300]!r}")
                elif r.status == 503 and "Retry-After" not in r.headers:
                    problems.append("503 without Retry-After")
                return str(r.status)
        except (TimeoutError, aiohttp.ClientError) as e:  # aiohttp's timeouts are TimeoutErrors
            what = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
            problems.append(f"no answer: {what}: {e}")
            return what

    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=n), timeout=timeout) as client:
        t = time.perf_counter()
        statuses = await asyncio.gather(*(one(client) for _ in range(n)))
        wall = time.perf_counter() - t
    return {"answers": dict(sorted(Counter(statuses).items())), "wall_s": wall, "problems": problems}


def normal_request(url: str) -> dict:
    """One small normal PNG to /v1/classify: its status and seconds (status None: no answer)."""
    import httpx

    t = time.perf_counter()
    try:
        r = httpx.post(f"{url}/v1/classify", files={"files": ("normal.png", test_images(1)[0], "image/png")},
                       timeout=REQUEST_TIMEOUT)
        status, error = r.status_code, None if r.status_code == 200 else r.text[:300]
    except httpx.HTTPError as e:
        status, error = None, f"{type(e).__name__}: {e}"
    return {"status": status, "seconds": time.perf_counter() - t, "error": error}


def server_case(case: str, registry: Path, png: bytes, filename: str, n: int, options: tuple[str, ...],
                args, say) -> dict:
    """One row: a fresh server with ``options``, its RSS at start, one burst of ``n`` uploads of ``png``, its
    peak RSS (VmHWM, which covers the burst: the process is new), then one normal image. Always stopped."""
    say(f"memory: {case}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(registry, port, say, options)
    row = {"case": case, "options": list(options), "requests": n, "upload_bytes": len(png), "problems": []}
    try:
        row["rss_before_kb"] = proc_kb(server.pid, "VmRSS")
        with RssGuard(server, args.memory_cap_gib * 2**30) as guard:
            got = asyncio.run(burst(url, png, filename, n))
        row["problems"] += got.pop("problems")
        row.update(got)
        row["peak_rss_kb"] = proc_kb(server.pid, "VmHWM")
        row["sampled_peak_rss_kb"] = guard.peak_kb
        if guard.killed:
            row["problems"].append(f"server killed past --memory-cap-gib {args.memory_cap_gib:g} "
                                   f"(RSS {guard.peak_kb / 2**20:.2f} GiB)")
        row["normal_after"] = normal_request(url)
        if row["normal_after"]["status"] != 200:
            n = row["normal_after"]
            row["problems"].append(f"normal image after: {n['status'] or 'no answer'}: {n['error']}")
    finally:
        code = server.poll()
        log = stop_server(server)
    if code is not None:
        row["problems"].append(f"server exited with code {code} during the row")
    if row["problems"]:
        row["server_log_tail"] = log
    return row


def cli_case(registry: Path, photo: Path, n: int, folder: Path, args, say) -> dict:
    """``bank classify DIR --json`` as a fresh process over ``n`` hard links of ``photo``: its peak RSS
    (``ru_maxrss``, through :data:`MAXRSS_WRAPPER`), wall time, and the images classified; the folder is removed."""
    say(f"memory: bank classify on {n} files")
    images = folder / "cli-images"
    images.mkdir()
    row = {"case": f"bank classify, {n} x photo-like PNG", "requests": n, "upload_bytes": photo.stat().st_size,
           "problems": []}
    command = [sys.executable, "-c", MAXRSS_WRAPPER, str(CLI_TIMEOUT),
               *bank_command(), "classify", str(images), "--registry", str(registry), "--json"]
    try:
        for i in range(n):
            try:
                os.link(photo, images / f"photo-{i:03d}.png")
            except OSError:  # no hard links here: copies
                shutil.copyfile(photo, images / f"photo-{i:03d}.png")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t = time.perf_counter()
            proc = subprocess.Popen(command, stdout=out, stderr=err)
            with RssGuard(proc, args.memory_cap_gib * 2**30) as guard:
                try:
                    proc.wait(timeout=CLI_TIMEOUT + 60)  # the wrapper stops bank classify after CLI_TIMEOUT
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            row["wall_s"] = time.perf_counter() - t
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read().decode("utf-8", "replace")
    finally:
        shutil.rmtree(images, ignore_errors=True)
    m = re.search(r"^maxrss_kb=(\d+)$", stderr, re.MULTILINE)
    row["peak_rss_kb"] = int(m.group(1)) if m else None
    row["sampled_peak_rss_kb"] = guard.peak_kb
    if guard.killed:
        row["problems"].append(f"bank classify killed past --memory-cap-gib {args.memory_cap_gib:g} "
                               f"(RSS {guard.peak_kb / 2**20:.2f} GiB)")
    if proc.returncode:
        row["problems"].append(f"bank classify exited with code {proc.returncode}: {stderr[-2000:]}")
        row["answers"] = {"failed": n}
        return row
    doc = json.loads(stdout)
    row["answers"] = {"classified": len(doc["results"]), "skipped": len(doc["skipped"])}
    if len(doc["results"]) != n:
        row["problems"].append(f"classified {len(doc['results'])} of {n} images; skipped: {doc['skipped'][:3]}")
    return row


def measure_memory(registry: Path, tmp: Path, args, say) -> dict:
    """The memory table's rows (see the module's docstring) and the target."""
    flat = flat_png()
    say(f"flat {FLAT_SIDE}x{FLAT_SIDE} PNG: {len(flat) / 1000:.0f} KB")
    photo = tmp / "photo.png"
    out = {"flat_png_bytes": len(flat), "photo_png": photo_png(photo, say=say),
           "target_peak_bytes": PEAK_TARGET_BYTES}
    flat_name = f"flat-{FLAT_SIDE}x{FLAT_SIDE}.png"
    side = f"{FLAT_SIDE}x{FLAT_SIDE}"
    rows = [
        server_case(f"{args.flat_clients} x flat {side} PNG, default limits", registry, flat, flat_name,
                    args.flat_clients, (), args, say),
        server_case(f"{args.flat_clients} x flat {side} PNG, --max-pixels 100000000", registry, flat, flat_name,
                    args.flat_clients, ("--max-pixels", "100000000"), args, say),
        server_case(f"{args.photo_clients} x photo-like PNG, default limits", registry, photo.read_bytes(),
                    photo.name, args.photo_clients, (), args, say),
    ]
    if args.cli_files:
        rows.append(cli_case(registry, photo, args.cli_files, tmp, args, say))
    photo.unlink()
    out["rows"] = rows
    flat_rows = rows[:2]
    peaks = [r.get("peak_rss_kb") or r.get("sampled_peak_rss_kb") or 0 for r in flat_rows]
    out["target"] = {"peak_kb": peaks, "met": all(p * 1024 <= PEAK_TARGET_BYTES for p in peaks)
                     and not any(r["problems"] for r in flat_rows)}
    return out


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f} MiB"


def print_load(out: dict) -> None:
    print(f"`bank serve` under load, {out['date']}, {out['machine']}; bank: {out['registry']}; "
          f"{out['seconds_per_row']:g} s per row; in-process Router.score {out['router_score_img_per_s']:.0f} "
          f"images/s (errors only {out['router_errors_img_per_s']:.0f}), batches of 256\n")
    print("| clients | requests/s | p50 ms | p99 ms | mean images per router call | of in-process images/s | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in out["rows"]:
        print(f"| {r['clients']} | {r['req_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['mean_batch']:.1f} | {r['share_of_router']:.0%} | {r['failures']} |")
    t = out.get("target")
    if t:
        print(f"\nTarget at {t['clients']} clients: >= {TARGET_SHARE:.0%} of the in-process images/s and p99 under "
              f"{TARGET_P99_MS:g} ms: {t['share']:.0%}, {t['p99_ms']:.0f} ms: {'met' if t['met'] else 'NOT met'}.")


def print_memory(out: dict) -> None:
    m = out["memory"]
    p = m["photo_png"]
    print(f"`bank serve` under memory pressure, {out['date']}, {out['machine']}; bank: {out['registry']}; "
          f"flat {FLAT_SIDE}x{FLAT_SIDE} RGB PNG of {m['flat_png_bytes'] / 1000:.0f} KB; photo-like "
          f"{p['width']}x{p['height']} RGB PNG of {p['bytes'] / 2**20:.2f} MiB; a fresh process per row, every "
          f"request with a {REQUEST_TIMEOUT:g} s timeout\n")
    print("| case | requests | answers by status | wall s | server RSS before | peak RSS | normal image after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in m["rows"]:
        answers = ", ".join(f"{k}: {v}" for k, v in r.get("answers", {}).items()) or "-"
        n = r.get("normal_after")
        normal = "-" if n is None else f"{n['status'] or 'no answer'} in {n['seconds']:.2f} s"
        wall = f"{r['wall_s']:.1f}" if "wall_s" in r else "-"
        peak = r.get("peak_rss_kb") or r.get("sampled_peak_rss_kb")
        print(f"| {r['case']} | {r['requests']} | {answers} | {wall} | {mib(r.get('rss_before_kb'))} | "
              f"{mib(peak)} | {normal} |")
    t = m["target"]
    print(f"\nTarget for the flat {FLAT_SIDE}x{FLAT_SIDE} rows: peak RSS at most {PEAK_TARGET_BYTES / 2**30:g} GiB, "
          f"every request answered ({', '.join(map(str, ANSWERS))}), the normal image after it 200: "
          f"{' and '.join(mib(k) for k in t['peak_kb'])}: {'met' if t['met'] else 'NOT met'}.")
    for r in m["rows"]:
        for problem, times in Counter(r["problems"]).items():
            print(f"- {r['case']}: {problem}" + (f" (x{times})" if times > 1 else ""))
    for r in m["rows"]:
        if r.get("server_log_tail"):
            print(f"\nserver log, end ({r['case']}):\n{r['server_log_tail']}")


def print_table(out: dict) -> None:
    if "rows" in out:
        print_load(out)
    if "memory" in out:
        if "rows" in out:
            print()
        print_memory(out)


def count(least: int):
    """An argparse type: a whole number >= ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", help="a registry to serve (default: a temporary 10-class random-weight bank)")
    p.add_argument("--clients", type=ints, default=[1, 8, 32, 128], metavar="N1,N2,...")
    p.add_argument("--seconds", type=float, default=10.0, help="load time per row (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--no-load", action="store_true", help="skip the load table")
    p.add_argument("--memory", action="store_true",
                   help="add the memory table: bursts of large uploads, and bank classify on a folder of them")
    p.add_argument("--flat-clients", type=count(1), default=32, metavar="N",
                   help="concurrent uploads of the flat 9000x9000 PNG (default 32)")
    p.add_argument("--photo-clients", type=count(1), default=64, metavar="N",
                   help="concurrent uploads of the ~20 MiB photo-like PNG (default 64)")
    p.add_argument("--cli-files", type=count(0), default=200, metavar="N",
                   help="files for bank classify, hard links of the photo-like PNG (default 200; 0 skips that row)")
    p.add_argument("--memory-cap-gib", type=float, default=8.0, metavar="GIB",
                   help="kill a process past this resident memory, and report it (default 8)")
    args = p.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    out = measure(args, say)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
