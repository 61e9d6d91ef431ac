"""Start TensorFlow and LiteRT without their C++ chatter on the terminal.

TensorFlow's CUDA probes and LiteRT's "Created TensorFlow Lite XNNPACK
delegate" line write to file descriptor 2 before any log level applies, so
those steps run with descriptor 2 sent to a temporary file; if the step
fails, what it wrote is replayed so nothing useful is lost.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager


#: Descriptor 2 is the process's, not a thread's: blocks take turns. Two at once (LiteRT interpreters made in
#: two threads) restored each other's redirection, and descriptor 2 stayed on a dead temporary file: every
#: later line on stderr was lost (bank classify's "skipped" lines, 14 runs in 20 with 8 threads).
_FD2 = threading.RLock()


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the block; replayed if the block raises. One block at a
    time in a process (:data:`_FD2`)."""
    with _FD2:
        yield from _quiet_block()


def _quiet_block() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras once, quietly."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    # 3: only fatal C++ logs. At 2, grappler's harmless "remapper failed" errors print on every conv training;
    # a real failure reaches the caller as an exception either way. Set the variable to see them all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe, while quiet
        tf.constant(0.0) + 1.0  # noqa: B018  (the first op initialises the runtime)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices
