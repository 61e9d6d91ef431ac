"""What the machine this process runs on offers it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_BLAS: list = []  # threadpoolctl's controller of the BLAS libraries, made once (80 us a time; its limit 6 us)
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]  # threads inside one_blas_thread, and the limit that restores the count on the last way out


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread while any thread of the process is inside (the limit is the process's):
    the first one in sets it, the last one out restores what was there, so threads entering and leaving
    in any order never leave the process on one thread (small products spin on with several)."""
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            if not _BLAS:
                from threadpoolctl import ThreadpoolController

                _BLAS.append(ThreadpoolController())
            _BLAS_USERS[1] = _BLAS[0].limit(limits=1, user_api="blas")
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _BLAS_USERS[1].restore_original_limits()
                _BLAS_USERS[1] = None
