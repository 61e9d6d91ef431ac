"""Uploads in: the images of a request, read within limits and decoded to the bank's size.

A request's body is read as it arrives, counted against the upload limit
(413 past it), from multipart/form-data (the field ``files``, repeatable) or
as one raw image. :class:`ByteBudget` bounds the uploads held at once across
requests; :func:`decode_all` decodes each file no larger than the bank needs
(see :mod:`bank.io.decoding`). Refusals are :class:`HTTPError`: the server
answers them as ``{"error": ...}`` with their status.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from ..io.data import Loaded
from ..io.decoding import Busy, ImageTooLarge, PixelBudget, decode_image
from ..io.images import ImageError
from .router import Router

#: The multipart field that carries the images (repeatable).
FILES_FIELD = "files"
#: The name of an image sent as the raw request body.
BODY_NAME = "body"
#: Seconds a client is told to wait (Retry-After) when the server is momentarily full.
RETRY_AFTER = 1


class HTTPError(Exception):
    """A refusal, answered as ``{"error": message, **extra}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: object):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers, extra


def busy(what: str) -> HTTPError:
    return HTTPError(503, f"the server is busy ({what}); try again in a moment", {"Retry-After": str(RETRY_AFTER)})


def too_large(name: str, limit: int, size: int | None = None) -> HTTPError:
    what = "the upload" if size is None else f"the upload of {size} bytes"
    mib = f" ({limit / 2**20:g} MiB)" if limit >= 2**20 else ""
    return HTTPError(413, f"{name}: {what} is larger than the limit of {limit} bytes{mib} per request",
                     image=name, limit_bytes=limit)


@dataclass
class _Part:
    form_field: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _MultipartReader:
    """The parts of a multipart/form-data body, collected from python-multipart's streaming callbacks."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self.ended = False
        self._header = [b"", b""]  # the name and value of the header being read

    def callbacks(self) -> dict:
        return {"on_part_begin": lambda: self.parts.append(_Part()),
                "on_header_field": lambda d, a, b: self._add(0, d[a:b]),
                "on_header_value": lambda d, a, b: self._add(1, d[a:b]),
                "on_header_end": self._header_end,
                "on_part_data": lambda d, a, b: self.parts[-1].data.extend(d[a:b]),
                "on_end": lambda: setattr(self, "ended", True)}

    def _add(self, i: int, data: bytes) -> None:
        self._header[i] += data

    def _header_end(self) -> None:
        name, value = self._header
        self._header = [b"", b""]
        if name.strip().lower() == b"content-disposition":
            _, opts = parse_options_header(value)
            part = self.parts[-1]
            part.form_field = opts.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in opts:
                part.filename = opts[b"filename"].decode("utf-8", "replace")

    def current(self) -> str:
        """What is being read: the current part's file name, else the request."""
        part = self.parts[-1] if self.parts else None
        return (part.filename or part.form_field or "the request") if part else "the request"


async def read_uploads(request: Request, limit: int) -> list[tuple[str, bytes]]:
    """The uploaded images as ``(name, bytes)``, at most ``limit`` bytes in all.

    A multipart/form-data body gives the files of the field ``files``, each
    named by its file name; any other body is one image named ``body``. The
    Content-Length is checked before reading and the bytes are counted as
    they arrive, so a client never makes the server hold more than ``limit``.
    """
    ctype, params = parse_options_header(request.headers.get("content-type"))
    multipart = ctype == b"multipart/form-data"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large("the request" if multipart else BODY_NAME, limit, int(length))
    try:
        if not multipart:
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(BODY_NAME, limit)
            return [(BODY_NAME, bytes(body))] if body else []
        return await _read_multipart(request, params.get(b"boundary"), limit)
    except ClientDisconnect:
        raise HTTPError(400, "the client closed the connection before the request body was read") from None


async def _read_multipart(request: Request, boundary: bytes | None, limit: int) -> list[tuple[str, bytes]]:
    if not boundary:
        raise HTTPError(400, "malformed multipart body: no boundary in the Content-Type header")
    reader = _MultipartReader()
    total = 0
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        async for chunk in request.stream():
            total += len(chunk)
            parser.write(chunk)
            if total > limit:
                raise too_large(reader.current(), limit)
    except FormParserError as e:
        raise HTTPError(400, f"malformed multipart body ({e})") from None
    if not reader.ended:
        raise HTTPError(400, "malformed multipart body: it ends before its closing boundary")
    files = []
    for i, part in enumerate(reader.parts, 1):
        if part.form_field != FILES_FIELD:
            raise HTTPError(422, f"unexpected form field {part.form_field!r}: send images as files in the field "
                            f"{FILES_FIELD!r}")
        files.append((part.filename or f"file {i}", part.data))
    return files


def decode_all(files: list[tuple[str, bytes | bytearray]], router: Router, *, max_pixels: int | None = None,
               budget: PixelBudget | None = None, deadline: float | None = None) -> tuple[Loaded, list[ImageTooLarge]]:
    """Decode each upload no larger than the bank needs and bring it to the router's specs
    (:meth:`Router.prepare`); one that is not a usable image goes to ``skipped`` with its reason. Also
    returns the files refused for their pixels. :class:`~bank.io.decoding.Busy` when ``budget`` had no room
    before ``deadline``."""
    out, too_large = Loaded(), []
    for name, data in files:
        try:
            img = decode_image(data, name, fit=router.decode_size, max_pixels=max_pixels, budget=budget, deadline=deadline)
            out.images.append(router.prepare(img))
            out.names.append(name)
        except ImageError as e:
            out.skipped.append((e.source, e.reason))
            if isinstance(e, ImageTooLarge):
                too_large.append(e)
    return out, too_large


class ByteBudget:
    """The bytes of uploads held at once, across requests (in the event loop): a request waits for its
    share before its body is read, or is turned away at its deadline."""

    def __init__(self, total: int):
        self.total, self.used = int(total), 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, size: int, deadline: float):
        """Hold ``size`` bytes (at most the total) until the block ends; :class:`Busy` past ``deadline``
        (a :func:`time.monotonic` time)."""
        need = min(int(size), self.total)
        async with self._cond:
            while self.used + need > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy(f"{self.used} bytes of uploads are being read or decoded")
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), left)
            self.used += need
        try:
            yield
        finally:
            async with self._cond:
                self.used -= need
                self._cond.notify_all()
