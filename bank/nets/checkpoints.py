"""Training an autoencoder so that it can be interrupted and resumed: its checkpoint folder.

A run is named by its key, a digest of its images and of every setting that
shapes it (:func:`run_key`). While Keras trains, the folder keeps the loss log
(``history.csv``), the best epoch's weights, a backup of the last finished
epoch, and the run's stamp (``run.json``, see :mod:`bank.nets.trainstate`). A run
with the same key goes on from the last finished epoch; any other starts over.

Kept apart from :mod:`bank.kinds.autoencoder` so that the detector reads as the model
contract (fit, score, persist) and this module as the one place that knows
the folder's files and the Keras callbacks writing them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.images import InputSpec
from ..io.pipeline import ImageFiles
from .trainstate import STAMP_FILE, resumable
from .trainstate import stamp as _stamp

#: The detector's settings a run key digests besides the images, the input spec and the architecture.
RUN_SETTINGS = ("epochs", "batch_size", "learning_rate", "patience", "min_improvement", "shift",
                "calibration_fraction", "monitor_fraction", "seed")


@dataclass(frozen=True)
class _Plan:
    """A training resolved from its images and parameters (see :meth:`AutoencoderModel._plan`)."""

    files: ImageFiles | None  # streamed from disk, or None: in memory
    x: np.ndarray | None  # the images at ``spec`` when in memory
    spec: InputSpec
    n: int
    split: tuple[np.ndarray, np.ndarray, np.ndarray]  # train, monitor, calibration indices
    arch: str
    params: dict


def run_key(plan: _Plan, settings: dict) -> str:
    """What a checkpoint must match to be resumed (hex SHA-256): the data and every training parameter.
    ``settings``: the detector's values of :data:`RUN_SETTINGS`."""
    data_id = (plan.files.fingerprint() if plan.files is not None
               else hashlib.sha256(np.ascontiguousarray(plan.x)).hexdigest())
    what = {"spec": plan.spec.to_dict(), "architecture": plan.arch, "params": plan.params, "data": data_id,
            **settings}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def train(model, train, monitor, run_id: str, checkpoint_dir: str | Path | None, *, epochs: int, batch_size: int,
          patience: int, min_improvement: float, verbose: int, progress: Callable[[dict], None] | None,
          on_resume: Callable[[int, int], None]) -> dict[str, list[float]]:
    """Fit with Keras callbacks: the loss log, the best epoch's weights, early stopping and a backup
    each epoch in ``checkpoint_dir`` (None: a temporary folder, removed afterwards); resume from it
    when it holds the same run. Returns the history of every epoch (those before a resume too), the
    model left at its best epoch.

    ``train`` and ``monitor``: (input, target) arrays or a ``tf.data`` dataset. ``on_resume`` is told,
    before Keras starts, ``(resumed_from, best_since)``: the epochs finished before (0: a new run) and
    the epoch from which the kept best weights are chosen (past the resume when they were lost)."""
    import keras

    temporary = checkpoint_dir is None
    work = Path(tempfile.mkdtemp(prefix="bank-train-") if temporary else checkpoint_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        log, best, backup = work / "history.csv", work / "best.weights.h5", work / "backup"
        stamp = work / STAMP_FILE
        same = resumable(work, run_id)
        if not same:  # another run's state, none, or nothing to resume from: start over
            shutil.rmtree(backup, ignore_errors=True)
            log.unlink(missing_ok=True)
            best.unlink(missing_ok=True)
            _stamp(stamp, {"run": run_id})
        before = read_history(log)
        resumed_from = len(before.get("val_loss", [])) if same else 0
        best_since = 0  # the epochs the kept best weights were chosen among start here
        on_resume(resumed_from, best_since)
        if same and _stamp(stamp).get("finished") and best.exists():
            model.load_weights(str(best))  # finished before (then stopped before registering): reuse
            return before
        if best.exists():
            try:
                model.load_weights(str(best))  # only a check: the backup's weights are restored below
            except Exception:  # noqa: BLE001  (killed while writing it: the best is chosen anew from here)
                best.unlink()
                best_since = resumed_from
                on_resume(resumed_from, best_since)
        seen = [v for v in before.get("val_loss", [])[best_since:] if math.isfinite(v)]
        callbacks = [
            keras.callbacks.CSVLogger(str(log), append=True),
            keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True,
                                            save_weights_only=True,
                                            initial_value_threshold=min(seen) if seen else None),
            _log_loss(),  # early stopping on the log of the loss: progress counted relatively
            keras.callbacks.EarlyStopping(monitor="val_log_loss", mode="min", patience=patience,
                                          min_delta=-math.log1p(-min_improvement)),
            # last: an epoch is backed up once logged; the one before is kept while it is written,
            # and restored if a kill leaves the new one half-written
            _backup_and_restore(str(backup)),
        ]
        if progress is not None:
            callbacks.append(epoch_report(progress, epochs))
        fit_kw = {"batch_size": batch_size, "shuffle": True} if isinstance(train, tuple) else {"shuffle": False}
        with warnings.catch_warnings():  # a dataset's length is learnt in its first epoch, which Keras
            warnings.filterwarnings("ignore", message="Your input ran out of data")  # calls running out
            model.fit(*(train if isinstance(train, tuple) else (train,)), validation_data=monitor,
                      epochs=epochs, callbacks=callbacks, verbose=verbose, **fit_kw)
        if best.exists():
            model.load_weights(str(best))
        _stamp(stamp, {"run": run_id, "finished": True})
        return read_history(log)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def _backup_and_restore(folder: str):
    """Keras's BackupAndRestore with two checkpoints, falling back to the one before whatever makes the last
    unreadable: a training killed while writing its weights leaves a half-written HDF5 file, on which h5py
    raises RuntimeError ("addr overflow"), and Keras falls back only on OSError (the resumed run then died
    as an internal error)."""
    import os

    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            try:
                super().on_train_begin(logs)
            except Exception:  # noqa: BLE001  (any error of a half-written file)
                if not os.path.exists(self._prev_weights_path):
                    raise
                shutil.copyfile(self._prev_weights_path, self._weights_path)
                if os.path.exists(self._prev_training_metadata_path):
                    shutil.copyfile(self._prev_training_metadata_path, self._training_metadata_path)
                self._load_model()

    return Backup(folder, double_checkpoint=True)


def _best_epoch(val_loss: list[float], since: int = 0) -> int | None:
    """The epoch (from 1) of the lowest monitored loss from epoch ``since`` on; None without one."""
    tail = np.asarray(val_loss[since:], dtype=float)
    return None if not tail.size or np.all(np.isnan(tail)) else since + int(np.nanargmin(tail)) + 1


def read_history(path: Path) -> dict[str, list[float]]:
    """The per-epoch losses Keras's CSVLogger wrote, an epoch logged twice (a resume) counted once."""
    if not Path(path).is_file():
        return {}
    rows: dict[int, dict] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row.pop("epoch"))] = row
    keys = [k for k in (next(iter(rows.values())) if rows else {}) if k]
    return {k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}


def epoch_report(report: Callable[[dict], None], epochs: int):
    """A Keras callback that tells ``report`` each finished epoch's losses and time."""
    import keras

    start = [0.0]

    def begin(epoch: int, logs: dict | None = None) -> None:
        start[0] = time.perf_counter()

    def end(epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        report({"epoch": epoch + 1, "epochs": epochs, "loss": float(logs.get("loss", math.nan)),
                "val_loss": float(logs.get("val_loss", math.nan)), "seconds": time.perf_counter() - start[0]})

    return keras.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)


def _log_loss():
    """A Keras callback adding ``val_log_loss``, the log of the epoch's monitored loss, to its logs: a
    step of ``min_delta`` in it is a relative change, the same for a class whose loss is 0.05 as for
    one whose loss is 0.002."""
    import keras

    def end(epoch: int, logs: dict | None = None) -> None:
        if logs is not None and "val_loss" in logs:
            v = float(logs["val_loss"])
            logs["val_log_loss"] = math.log(v) if v > 0 else -math.inf

    return keras.callbacks.LambdaCallback(on_epoch_end=end)
