"""Request batching: concurrent requests gathered into one router call, answered in a worker thread."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..verdict.decision import skipped_json
from .router import Router


@dataclass
class _Job:
    images: list[dict]  # each image at the router's specs (Router.prepare)
    names: list[str]
    skipped: list[tuple[str, str]]  # the request's unreadable files, answered beside its images
    answer: asyncio.Future  # the JSON body, as bytes


def _answer(router: Router, jobs: list[_Job]) -> list[bytes | Exception]:
    """Each job's JSON body, from one router call over every job's images (run in a worker thread).

    The verdicts are taken once for the whole batch (they are per image:
    an image's answer never depends on its batch), then each request gets
    its rows, in the document of ``bank classify --json``.
    """
    images = [im for j in jobs for im in j.images]
    result = router.result(*router.measure_prepared(images), names=[n for j in jobs for n in j.names])
    doc = result.to_json(skipped_classes=router.skipped)
    out: list[bytes | Exception] = []
    i = 0
    for j in jobs:
        k = i + len(j.images)
        try:
            body = {**doc, "results": doc["results"][i:k], "skipped": skipped_json(j.skipped)}
            out.append(json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode())
        except Exception as e:  # noqa: BLE001  (one request's failure is its own)
            out.append(e)
        i = k
    return out


class Batcher:
    """Gathers concurrent requests into one router call.

    A single task takes the first waiting request, keeps collecting for at
    most ``max_wait`` seconds or until ``max_batch`` images, then in a worker
    thread runs one ``router.score`` and writes each request's JSON, so the
    event loop only moves bytes. It waits only while other requests are
    being read or decoded, so a lone client never pays the wait. A request
    is never split: one larger than ``max_batch`` runs alone, one that would
    overflow the batch opens the next. ``sizes`` counts the
    router calls by their number of images.
    """

    def __init__(self, router: Callable[[], Router], max_batch: int, max_wait: float,
                 on_batch: Callable[[int], None] | None = None):
        self.router, self.max_batch, self.max_wait, self.on_batch = router, max_batch, max_wait, on_batch
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.sizes: Counter[int] = Counter()
        self._batch: list[_Job] = []  # the batch being gathered or served
        self._held: _Job | None = None  # taken from the queue, opens the next batch
        self.arriving = 0  # requests being read or decoded: worth waiting for

    @contextmanager
    def coming(self) -> Iterator[None]:
        """Count a request as on its way while it is read and decoded."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def submit(self, images: list[dict], names: list[str], skipped: list[tuple[str, str]]) -> bytes:
        """The JSON answer for these images (and these unreadable files), from the router of the batch
        they joined."""
        job = _Job(images, names, skipped, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.answer

    async def run(self) -> None:
        """Serve batches until cancelled."""
        while True:
            await self._gather()
            self._batch = [j for j in self._batch if not j.answer.done()]  # done: cancelled, the client went away
            if self._batch:
                await self._serve(self._batch)
            self._batch = []

    async def _gather(self) -> None:
        first, self._held = self._held or await self.queue.get(), None
        self._batch, n = [first], len(first.images)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while n < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0 or not self.arriving:  # nobody on the way: waiting would only add latency
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if n + len(job.images) > self.max_batch:
                self._held = job
                break
            self._batch.append(job)
            n += len(job.images)

    async def _serve(self, jobs: list[_Job]) -> None:
        router = self.router()  # this batch's router: a reload meanwhile does not change it
        try:
            answers = await asyncio.to_thread(_answer, router, jobs)
        except Exception as e:  # the requests get a 500 each; the batcher goes on
            for j in jobs:
                _settle(j, exception=e)
            return
        n = sum(len(j.images) for j in jobs)
        self.sizes[n] += 1
        if self.on_batch is not None:
            self.on_batch(n)
        for j, a in zip(jobs, answers):
            _settle(j, exception=a) if isinstance(a, Exception) else _settle(j, a)

    def close(self) -> None:
        """Fail the requests still waiting (after :meth:`run` is cancelled, at shutdown)."""
        waiting = self._batch + ([self._held] if self._held else [])
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        for j in waiting:
            _settle(j, exception=RuntimeError("the server is shutting down"))


def _settle(job: _Job, result: object = None, exception: BaseException | None = None) -> None:
    if job.answer.done():
        return
    if exception is not None:
        job.answer.set_exception(exception)
    else:
        job.answer.set_result(result)
