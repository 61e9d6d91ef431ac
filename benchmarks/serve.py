"""Load benchmark of ``bank serve``: many clients, each sending one image per request.

    python benchmarks/serve.py [--registry PATH] [--clients 1,8,32,128] [--seconds 10] [--json]

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
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bank.runtime import cores  # noqa: E402
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
    from bank.images import decode_image

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


def start_server(registry: Path, port: int, say) -> subprocess.Popen:
    proc = subprocess.Popen([*bank_command(), "serve", "--registry", str(registry), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bank serve stopped:\n{proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                say(f"server ready on port {port}")
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bank serve was not ready within 120 s")


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


def measure(args, say) -> dict:
    pngs = test_images(64)
    with tempfile.TemporaryDirectory(prefix="bank-serve-") as tmp:
        registry = Path(args.registry) if args.registry else random_registry(Path(tmp), say)
        say("in-process router")
        out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {cores()} cores",
               "registry": str(args.registry or "random-weight 10-class bank"), "seconds_per_row": args.seconds,
               **in_process(registry, pngs)}
        port = free_port()
        server = start_server(registry, port, say)
        try:
            rows = []
            for n in args.clients:
                say(f"{n} client(s)")
                rows.append(asyncio.run(load(f"http://127.0.0.1:{port}", pngs, n, args.seconds)))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for r in rows:
        r["share_of_router"] = r["req_per_s"] / out["router_score_img_per_s"]
    out["rows"] = rows
    target = next((r for r in rows if r["clients"] == TARGET_CLIENTS), None)
    if target:
        out["target"] = {"clients": TARGET_CLIENTS, "share": target["share_of_router"], "p99_ms": target["p99_ms"],
                         "met": target["share_of_router"] >= TARGET_SHARE and target["p99_ms"] < TARGET_P99_MS}
    return out


def print_table(out: dict) -> None:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", help="a registry to serve (default: a temporary 10-class random-weight bank)")
    p.add_argument("--clients", type=ints, default=[1, 8, 32, 128], metavar="N1,N2,...")
    p.add_argument("--seconds", type=float, default=10.0, help="load time per row (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
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
