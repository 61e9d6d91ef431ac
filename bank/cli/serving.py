"""``bank serve`` and ``bank export``: the bank over HTTP, or as a SavedModel for TensorFlow Serving."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os

from .common import (CommandError, add_max_pixels, add_tests, classes_option, emit_json, pixels, positive,
                     registry_of, say)

#: Where ``bank serve`` finds its token when --token is not given.
TOKEN_ENV = "BANK_TOKEN"


def _loopback(host: str) -> bool:
    """True for an address only this machine can reach (serving anywhere else needs a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def cmd_export(args: argparse.Namespace) -> int:
    from ..answering.export import export_bank

    say("exporting (loads TensorFlow) ...")
    path = export_bank(registry_of(args), args.out, name=args.name, version=args.version,
                       classes=classes_option(args), threshold=args.threshold, method=args.method,
                       margin=args.margin, complexity_threshold=args.complexity)
    meta = json.loads((path / "assets.extra" / "bank.json").read_text())
    if args.json:
        emit_json({"path": str(path), **meta})
        return 0
    spec = meta["input"]
    print(f"wrote {path}: {len(meta['classes'])} classes ({', '.join(meta['classes'])}), input "
          f"{spec['height']}x{spec['width']}x{spec['channels']} float32 in [0, 1]")
    print(f"serve it: docker run -p 8501:8501 -v {path.parent.resolve()}:/models/{args.name} "
          f"-e MODEL_NAME={args.name} tensorflow/serving")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not _loopback(args.host):
        say(f"bank serve: error: --host {args.host} can be reached from other machines: set a token with --token T "
             f"or ${TOKEN_ENV} (or bind 127.0.0.1)")
        return 2
    try:
        import uvicorn

        from ..answering.server import create_app
    except ImportError as e:
        raise CommandError(f"serving needs FastAPI and uvicorn: pip install -e '.[serve]' ({e})") from None
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    app = create_app(registry_of(args).root, token=token, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                     max_upload_bytes=int(args.max_upload_mb * 2**20), max_images=args.max_images,
                     max_pixels=args.max_pixels, decode_pixels=args.decode_pixels,
                     max_inflight_bytes=int(args.max_inflight_mb * 2**20) if args.max_inflight_mb else None,
                     queue_seconds=args.queue_seconds, runtime=args.runtime,
                     classes=classes_option(args), threshold=args.threshold, method=args.method, margin=args.margin,
                     complexity_threshold=args.complexity, compare=args.compare)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def register(add, sub) -> None:
    """Add ``serve`` (its own options: no --json) and ``export``."""
    help = "serve the bank over HTTP: /v1/classify, /v1/score, /v1/classes, /v1/reload (docs at /docs)"
    sp = sub.add_parser("serve", help=help, description=help + ". Broken classes are skipped and listed. Needs "
                        "pip install -e '.[serve]'.")
    sp.set_defaults(func=cmd_serve)
    sp.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS,
                    help="registry folder (default: $BANK_REGISTRY, else ./registry)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only; any "
                    "other needs a token)")
    sp.add_argument("--port", type=int, default=8000, help="default 8000")
    sp.add_argument("--token", metavar="T", help=f"require the header 'Authorization: Bearer T' on every request but "
                    f"/healthz (default: ${TOKEN_ENV}, which keeps it out of the process list)")
    sp.add_argument("--max-batch", type=int, default=64, metavar="N",
                    help="most images per model call when gathering concurrent requests (default 64)")
    sp.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                    help="how long a request waits for others to share its model call (default 5)")
    sp.add_argument("--max-upload-mb", type=positive, default=20.0, metavar="MB",
                    help="most MiB one request may upload, all its files together (default 20)")
    sp.add_argument("--max-images", type=int, default=1000, metavar="N",
                    help="most images one request may carry (default 1000)")
    add_max_pixels(sp)
    sp.add_argument("--decode-pixels", type=pixels, metavar="N", help="most pixels being decoded at once, all "
                    "requests together (default: --max-pixels, so memory for decoding is that of one largest image)")
    sp.add_argument("--max-inflight-mb", type=positive, metavar="MB", help="most MiB of uploads held in memory at "
                    "once, all requests together (default 256, at least --max-upload-mb)")
    sp.add_argument("--queue-seconds", type=float, default=10.0, metavar="S", help="how long a request may wait for "
                    "room to be read and decoded before it is answered 503 with Retry-After (default 10)")
    add_tests(sp, skip_broken=False)

    help = "write the active bank as one TensorFlow SavedModel for TensorFlow Serving (OUT/NAME/VERSION)"
    sp = add("export", cmd_export, help)
    sp.description = (help + ". Signatures: serving_default (images, complexity) gives the router's default answer; "
                      "images_only (images) the answer without the complexity test. Every class must share one "
                      "input spec. See assets.extra/bank.json in the export for the inputs and the class order.")
    sp.add_argument("out", metavar="OUT", help="the models folder TensorFlow Serving reads (its --model_base_path "
                    "is OUT/NAME)")
    sp.add_argument("--name", default="bank", help="the model's name in TensorFlow Serving (default bank)")
    sp.add_argument("--version", type=int, help="the version folder (default: one past the highest in OUT/NAME)")
    add_tests(sp, skip_broken=False, runtime=False, compare=False)  # the export is TensorFlow's, autoencoders only
