"""``bank serve``: the bank over HTTP (FastAPI; OpenAPI docs at ``/docs``).

One router is loaded at start-up and answers every request; ``/v1/reload``
swaps in a new one while requests in flight finish on the old. Uploads are
read and decoded within bounds (:mod:`bank.answering.uploads`); concurrent requests are
gathered into one router call (:class:`bank.answering.batching.Batcher`), run in a
worker thread so the event loop never waits on a model. Answers to
``/v1/classify`` and ``/v1/score`` are the JSON of ``bank classify --json``.

Bad input is refused with a JSON ``{"error": ...}`` naming what was wrong,
never a traceback: 413 past the upload limit, 422 for a file that is not a
usable image (in a request of several files, each bad file gets its own
``skipped`` entry and the others are answered), 400 for a malformed
multipart body, 401 without the bearer token when one is set. ``/metrics``
gives Prometheus counts of requests and errors, latencies and batch sizes.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import importlib.resources
import logging
import math
import time
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..version import __version__
from .batching import Batcher
from ..io.decoding import Busy, PixelBudget, check_max_pixels, default_max_pixels, threads
from ..errors import InputError
from ..registry.store import Registry, RegistryError
from ..verdict.decision import skipped_json
from .router import Router
from .uploads import FILES_FIELD, ByteBudget, HTTPError, busy, decode_all, read_uploads, too_large

log = logging.getLogger("bank.serve")

#: Most images one request may carry: each becomes a (H, W, C) array at the bank's size.
MAX_IMAGES = 1000
#: Uploads held in memory at once, all requests together (at least one request's limit).
INFLIGHT_BYTES = 256 * 2**20
#: How long a request may wait for room to be read and decoded before it gets 503.
QUEUE_SECONDS = 10.0
#: Paths open without the token: the liveness probe, the web page and the API docs (they hold no data; their calls
#: to the API need the token).
OPEN_PATHS = frozenset({"/", "/healthz", "/docs", "/openapi.json"})
#: Where Swagger UI's files (from the fastapi-offline package: no CDN) are served; open like the docs.
DOCS_ASSETS = "/docs/assets"

_NO_IMAGE = (f"no image in the request: send image files in the multipart field {FILES_FIELD!r}, or one image's "
             "bytes as the request body")

_UPLOAD_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": [FILES_FIELD], "properties": {
        FILES_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


# --------------------------------------------------------------------- app

class Metrics:
    """Prometheus metrics of one app (its own registry: two apps in a process never mix counts)."""

    PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/v1/classes",
                       "/v1/classify", "/v1/score", "/v1/reload"})

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("bank_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=self.registry)
        self.errors = Counter("bank_request_errors", "HTTP requests answered with a status of 400 or more",
                              ["path", "status"], registry=self.registry)
        self.latency = Histogram("bank_request_seconds", "Time to answer an HTTP request", ["path"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.batch = Histogram("bank_batch_images", "Images per router call (request batching)",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)

    def path(self, raw: str) -> str:
        return raw if raw in self.PATHS else "other"  # unknown paths share one label: bounded cardinality

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Measured:
    """ASGI middleware: counts every HTTP request by path and status and times it."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]
        start = time.perf_counter()

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = self.metrics.path(scope["path"])
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
            self.metrics.requests.labels(path, str(status[0])).inc()
            if status[0] >= 400:
                self.metrics.errors.labels(path, str(status[0])).inc()


class BearerToken:
    """ASGI middleware: every HTTP request but :data:`OPEN_PATHS` needs ``Authorization: Bearer <token>``."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in OPEN_PATHS and not path.startswith(DOCS_ASSETS + "/"):
            got = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                response = JSONResponse({"error": "missing or wrong token: send the header 'Authorization: Bearer "
                                         "<token>'"}, 401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def classes_json(router: Router) -> dict:
    """The classes a router serves: version, input spec and statistics; the classes it skipped; its rule."""
    return {"classes": [{"class": c, "version": router.versions.get(c, (None,))[0], "kind": det.kind,
                         "input_spec": det.spec_.to_dict(), "stats": det.stats_.to_dict()}
                        for c, det in router.detectors.items()],
            "skipped_classes": skipped_json(router.skipped, "class"),
            "method": router.method, "compare": router.comparison, "threshold": router.threshold,
            "margin": router.margin, "complexity_threshold": router.complexity_threshold, "runtime": router.runtime}


def create_app(registry_root: str | Path | None, *, token: str | None = None, max_batch: int = 64,
               max_wait_ms: float = 5.0, max_upload_bytes: int = 20 * 2**20, max_images: int = MAX_IMAGES,
               max_pixels: int | None = None, decode_pixels: int | None = None,
               max_inflight_bytes: int | None = None, queue_seconds: float = QUEUE_SECONDS,
               runtime: str = "auto", **router_kwargs) -> FastAPI:
    """The HTTP service over the registry at ``registry_root``.

    ``router_kwargs`` go to :meth:`Router.from_registry` (``classes``,
    ``threshold``, ``method``, ``margin``, ``complexity_threshold``); broken
    classes are skipped and listed. A registry that cannot be loaded at all
    leaves the service up but not ready (``/readyz`` 503) until a
    ``/v1/reload`` succeeds.

    What a request may cost is bounded: ``max_upload_bytes`` and
    ``max_images`` per request (413 past them); ``max_pixels`` per image
    (413 naming the file when none of the request's images could be read,
    else a ``skipped`` entry); images are decoded no larger than the bank
    needs, by one thread per core, ``decode_pixels`` at once (default
    ``max_pixels``), while at most ``max_inflight_bytes`` of uploads are held
    (default the larger of 256 MiB and one upload). A request that cannot get
    its share within ``queue_seconds`` gets 503 with ``Retry-After``.
    """
    if token is not None and not token:
        raise InputError("token: expected a non-empty string, or None for no token")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise InputError(f"max_batch: expected an integer >= 1, got {max_batch!r}")
    if not (math.isfinite(max_wait_ms) and max_wait_ms >= 0):
        raise InputError(f"max_wait_ms: expected a number >= 0, got {max_wait_ms!r}")
    if not max_upload_bytes >= 1:
        raise InputError(f"max_upload_bytes: expected a positive number of bytes, got {max_upload_bytes!r}")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise InputError(f"max_images: expected an integer >= 1, got {max_images!r}")
    if not (math.isfinite(queue_seconds) and queue_seconds >= 0):
        raise InputError(f"queue_seconds: expected a number of seconds >= 0, got {queue_seconds!r}")
    max_pixels = default_max_pixels() if max_pixels is None else check_max_pixels(max_pixels)
    pixels = PixelBudget(max_pixels if decode_pixels is None else check_max_pixels(decode_pixels, "decode_pixels"))
    registry = Registry(registry_root)
    max_upload_bytes = int(max_upload_bytes)
    inflight = max(max_upload_bytes, INFLIGHT_BYTES) if max_inflight_bytes is None else int(max_inflight_bytes)
    if inflight < max_upload_bytes:
        raise InputError(f"max_inflight_bytes: expected at least one upload's limit ({max_upload_bytes} bytes), got "
                         f"{inflight}")

    def load() -> Router:
        return Router.from_registry(registry, skip_broken=True, runtime=runtime, **router_kwargs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.router, app.state.load_error = None, "loading"
        batcher = Batcher(lambda: app.state.router, max_batch, max_wait_ms / 1000, metrics.batch.observe)
        app.state.batcher, app.state.batch_sizes = batcher, batcher.sizes
        app.state.reload_lock = asyncio.Lock()
        app.state.uploads = ByteBudget(inflight)
        app.state.decoders = threads()
        try:
            _serving(app, await asyncio.to_thread(load))
        except (RegistryError, ValueError, OSError) as e:
            app.state.load_error = str(e)
            log.error("no classes loaded from %s: %s (fix the registry, then POST /v1/reload)", registry.root, e)
        task = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            batcher.close()
            app.state.decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPIOffline(title="bank", version=__version__, lifespan=lifespan, docs_url="/docs", redoc_url=None,
                         static_url=DOCS_ASSETS, description="A bank of one-class models: per image, the class "
                         "whose model fits it best (the lowest error among those that accept it), or unknown; per class, error, z-scores, p-value, margin "
                         "and flag.")
    if token is not None:
        _declare_bearer(app)
    metrics = Metrics()
    app.state.metrics = metrics
    if token is not None:
        app.add_middleware(BearerToken, token=token)
    app.add_middleware(Measured, metrics=metrics)  # outermost: refused requests are counted too

    @app.exception_handler(HTTPError)
    async def refused(request: Request, e: HTTPError) -> JSONResponse:
        return JSONResponse({"error": e.message, **e.extra}, e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:  # 404, 405: same form
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception) -> JSONResponse:  # the server logs the traceback
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, 500)

    def router() -> Router:
        r = app.state.router
        if r is None:
            raise HTTPError(503, f"not ready: no classes loaded ({app.state.load_error})")
        return r

    @app.get("/", summary="the web page: pick or drop images, see each one's verdict and per-class scores",
             response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((importlib.resources.files("bank") / "static" / "index.html").read_text("utf-8"))

    @app.get("/healthz", summary="liveness: the process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="readiness: 200 once the classes are loaded, else 503")
    async def readyz() -> JSONResponse:
        r = app.state.router
        if r is None:
            return JSONResponse({"status": "not ready", "error": app.state.load_error}, 503)
        return JSONResponse({"status": "ready", "classes": r.classes})

    @app.get("/metrics", summary="Prometheus metrics: requests, errors, latency, batch sizes")
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/classes", summary="the classes served: version, input spec, statistics; and those skipped")
    async def classes() -> dict:
        return classes_json(router())

    async def route(request: Request) -> JSONResponse:
        current = router()  # 503 before reading an upload we could not answer
        deadline = time.monotonic() + queue_seconds
        length = request.headers.get("content-length", "")
        size = int(length) if length.isdigit() else max_upload_bytes
        if size > max_upload_bytes:
            raise too_large("the request", max_upload_bytes, size)
        try:
            async with app.state.uploads.hold(size, deadline):
                with app.state.batcher.coming():
                    files = await read_uploads(request, max_upload_bytes)
                    if not files:
                        raise HTTPError(422, _NO_IMAGE)
                    if len(files) > max_images:
                        raise HTTPError(413, f"the request has {len(files)} images, more than the limit of "
                                        f"{max_images} per request; send them in several requests",
                                        limit_images=max_images)
                    work = functools.partial(decode_all, files, current, max_pixels=max_pixels,
                                             budget=pixels, deadline=deadline)
                    loaded, oversized = await asyncio.get_running_loop().run_in_executor(app.state.decoders, work)
                    del files, work  # the uploads' bytes are no longer needed
        except Busy as e:
            raise busy(str(e)) from None
        if not loaded.images:
            skipped = {"skipped": skipped_json(loaded.skipped),
                       "skipped_classes": skipped_json(current.skipped, "class")}
            if oversized:
                e = oversized[0]
                raise HTTPError(413, str(e), image=e.source, pixels=e.pixels, limit_pixels=e.limit, **skipped)
            raise HTTPError(422, "no image could be read: " + "; ".join(f"{n}: {r}" for n, r in loaded.skipped),
                            **skipped)
        body = await app.state.batcher.submit(loaded.images, loaded.names, loaded.skipped)
        return Response(body, media_type="application/json")

    doc = ("Multipart files in the field 'files' (repeatable), or one image's bytes as the body (named 'body'). "
           "The answer is the JSON of 'bank {} --json'; an unreadable file is listed under 'skipped'.")
    app.post("/v1/classify", summary="per image: the class whose model fits it best, or unknown",
             description=doc.format("classify"), openapi_extra=_UPLOAD_DOC)(route)
    app.post("/v1/score", summary="per image and class: error, z, score, p-value, margin, flag",
             description=doc.format("score"), openapi_extra=_UPLOAD_DOC)(route)

    @app.post("/v1/reload", summary="load the registry's active versions now; a broken new entry keeps the old")
    async def reload() -> dict:
        async with app.state.reload_lock:
            old = app.state.router
            try:
                new = await asyncio.to_thread(old.reload if old is not None else load)
            except (RegistryError, ValueError, OSError) as e:
                still = "still serving the classes loaded before" if old is not None else "no classes loaded"
                raise HTTPError(409 if old is not None else 503, f"reload refused ({still}): {e}") from None
            _serving(app, new)
        return classes_json(new)

    return app


def _declare_bearer(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document: Swagger UI then offers its Authorize button."""
    plain = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
        return app.openapi_schema

    app.openapi = openapi


def _serving(app: FastAPI, router: Router) -> None:
    """Make ``router`` the one new requests use, and say what it serves."""
    app.state.router, app.state.load_error = router, None
    log.info("serving %s", ", ".join(f"{c} (version {router.versions[c][0]})" for c in router.classes))
    for _, reason in router.skipped:
        log.warning("skipped a broken class: %s", reason)
