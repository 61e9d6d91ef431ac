"""Import TensorFlow without its C++ start-up chatter on the terminal.

TensorFlow's CUDA probes write to file descriptor 2 before its own log level
applies, so the import runs with descriptor 2 sent to a temporary file; if the
import fails, what it wrote is replayed so nothing useful is lost.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras once, quietly."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe, while quiet
            tf.constant(0.0) + 1.0  # noqa: B018  (the first op initialises the runtime)
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices
