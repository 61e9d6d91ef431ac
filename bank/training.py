"""Training classes: one from its images, or many at once in parallel processes.

:func:`train_all` trains one model per sub-folder of a root folder, each in
its own process through joblib: locally (loky, each process's TensorFlow
limited to its share of the cores) or on a Dask cluster through joblib's dask
backend. Every process registers its own class; the registry is safe with
many writers. A class whose training fails is reported and the rest land.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError
from .images import InputSpec, as_images, infer_spec, parse_size
from .router import skipped_json
from .trainstate import resumable

BACKENDS = ("loky", "dask")


def make_detector(images, *, size: str | None = None, color: str | None = None, **params):
    """An unfitted AutoencoderDetector; ``size`` ("HxW") or ``color`` fix its input spec, the
    images' own size and colour filling in what is not given."""
    from .detector import AutoencoderDetector

    from .pipeline import ImageFiles

    spec = None
    if size or color:
        guess = images.spec() if isinstance(images, ImageFiles) else infer_spec(as_images(images))
        h, w = parse_size(size) if size else (guess.height, guess.width)
        spec = InputSpec(h, w, color or guess.color)
    return AutoencoderDetector(spec=spec, **params)


def record_skipped(detector, skipped: list[tuple[str, str]]) -> None:
    """Put the files that could not be read (count, and the first 100 by name) in the training record."""
    detector.training_["skipped_files"] = {"count": len(skipped), "files": skipped_json(skipped[:100])}


def fit_and_register(registry, name: str, data, params: dict, skipped: list[tuple[str, str]],
                     on_start: Callable[[Path, bool], None] | None = None):
    """Train class ``name`` on ``data`` and register it; return ``(detector, entry)``.

    The training keeps its state in a folder of its own under the registry's
    training folder for the class, named by the run's key (its images and
    settings): running it again after an interruption resumes from there,
    while other runs, at the same time or with other settings, use other
    folders (``params`` ``"fresh"`` starts over). ``on_start(folder,
    resuming)`` is told the folder taken, and whether the run goes on from
    the state in it, before training. The entry gets the loss curves
    (``loss.png``) and the files that could not be read (``skipped``); the
    folder is then cleared. ``params``: :func:`make_detector`'s. Warnings go
    to the card's training record, not to the caller.
    """
    params = dict(params)
    fresh = params.pop("fresh", False)
    det = make_detector(data, **params)
    key = det.run_key(data)  # before taking a folder: it picks the folder this run resumes from
    with registry.training_dir(name, key, fresh=fresh) as work:
        if on_start is not None:
            on_start(work, resumable(work, key))
        det.checkpoint_dir = work
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # kept in the card's training record instead
            det.fit(data)
        record_skipped(det, skipped)
        entry = registry.register(name, det, extras=loss_plot(name, det, work))
        shutil.rmtree(work, ignore_errors=True)
    return det, entry


def loss_plot(name: str, detector, folder: Path) -> dict[str, bytes]:
    """The training-loss curves as PNG bytes, ready for the registry entry: ``{"loss.png": ...}``."""
    from .report import plot_losses

    path = plot_losses(Path(folder) / "loss.png", {name: detector.history_})
    return {"loss.png": path.read_bytes()}


@dataclass
class ClassRun:
    """What training one class gave: its new version, or the error that stopped it."""

    class_name: str
    folder: str
    version: int | None = None
    n_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped": skipped_json(self.skipped)}


def class_folders(root: str | os.PathLike) -> dict[str, Path]:
    """The sub-folders of ``root`` (not hidden), by name: one class each."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected a folder with one sub-folder of images per class)")
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise InputError(f"{root}: no sub-folders (expected one sub-folder of images per class)")
    return folders


def train_one(name: str, folder: str | os.PathLike, registry_root: str | os.PathLike, params: dict,
              threads: int | None = None) -> ClassRun:
    """Read a class's images, train, register; never raises (the error is in the result).

    ``threads`` limits this process's TensorFlow (set before it is imported
    here; a process that already imported it keeps its setting).
    """
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    from .pipeline import scan
    from .registry import Registry

    run, t0 = ClassRun(name, str(folder)), time.perf_counter()
    try:
        files = scan([folder], n_jobs=threads)
        run.n_images, run.skipped = len(files), list(files.skipped)
        if not len(files):
            raise InputError(f"no readable images in {folder}")
        det, entry = fit_and_register(Registry(registry_root), name, files, {"verbose": 0, **params}, run.skipped)
        run.warnings = list(det.training_.get("warnings", []))
        run.version = entry.version
    except Exception as err:  # noqa: BLE001  (one class's failure must not stop the others)
        run.error = f"{type(err).__name__}: {err}"
    run.seconds = time.perf_counter() - t0
    return run


def train_all(root: str | os.PathLike, registry_root: str | os.PathLike, params: dict | None = None, *,
              n_jobs: int | None = None, backend: str = "loky", scheduler: str | None = None,
              classes: list[str] | None = None,
              on_done: Callable[[ClassRun, int, int], None] | None = None) -> list[ClassRun]:
    """Train one class per sub-folder of ``root`` (or only ``classes``) into the registry at ``registry_root``.

    ``backend="loky"``: ``n_jobs`` local processes (default: one per core,
    at most one per class), each TensorFlow using cores / n_jobs threads.
    ``backend="dask"``: the tasks go to the Dask cluster at ``scheduler``
    (an address such as "tcp://10.0.0.1:8786") through joblib's dask
    backend; the registry must be a path every worker can write.
    ``params``: AutoencoderDetector parameters, plus ``size`` and ``color``.
    ``on_done(run, done, total)`` is called as each class finishes (progress).
    Returns the runs in folder order.
    """
    import joblib

    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    folders = class_folders(root)
    if classes is not None:
        missing = sorted(set(classes) - set(folders))
        if missing:
            raise InputError(f"{root}: no sub-folder for class(es) {', '.join(map(repr, missing))}")
        folders = {c: folders[c] for c in classes}
    registry_root = str(Path(registry_root).absolute())
    tasks = [(name, str(path.absolute()), registry_root, dict(params or {})) for name, path in folders.items()]
    if backend == "dask":
        if not scheduler:
            raise InputError("backend 'dask' needs a scheduler address (--scheduler tcp://HOST:8786)")
        try:
            from dask.distributed import Client
        except ImportError as e:
            raise InputError(f"backend 'dask' needs Dask: pip install -e '.[dask]' ({e})") from None

        with Client(scheduler), joblib.parallel_config(backend="dask"):
            runs = joblib.Parallel(n_jobs=n_jobs or -1, return_as="generator_unordered")(
                joblib.delayed(train_one)(*t) for t in tasks)
            return _in_order(runs, list(folders), on_done)
    from .runtime import cores

    n_cores = cores()
    n_jobs = max(1, min(n_jobs or n_cores, len(tasks)))
    if n_jobs == 1:  # in this process, TensorFlow on every core
        return _in_order((train_one(*t) for t in tasks), list(folders), on_done)
    threads = max(1, n_cores // n_jobs)
    runs = joblib.Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(
        joblib.delayed(train_one)(*t, threads) for t in tasks)
    return _in_order(runs, list(folders), on_done)


def _in_order(runs: Iterable[ClassRun], names: list[str], on_done) -> list[ClassRun]:
    """Collect the runs as they finish (telling ``on_done``), then put them in ``names`` order."""
    got: dict[str, ClassRun] = {}
    for run in runs:
        got[run.class_name] = run
        if on_done is not None:
            on_done(run, len(got), len(names))
    return [got[n] for n in names]
