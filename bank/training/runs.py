"""Training classes: one from its images, or many at once in parallel processes.

:func:`train_all` trains one model per sub-folder of a root folder, each in
its own process through joblib: locally (loky, each process's TensorFlow
limited to its share of the cores) or on a Dask cluster through joblib's dask
backend. Every process registers its own class; the registry is safe with
many writers. A class whose training fails is reported and the rest land.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io.images import InputSpec, infer_spec, is_gray, parse_size
from ..io.inputs import as_images
from ..kinds import AUTO, AUTO_CHOICES, check_kind, choose_kind, kind_class
from ..registry.store import validate_class_name
from ..verdict.decision import skipped_json
from ..nets.trainstate import resumable

BACKENDS = ("loky", "dask")


#: The training settings every kind takes; the others each kind declares (``training_options``).
COMMON = ("seed",)
#: What :func:`make_detector`'s ``params`` may hold besides training settings.
NOT_TRAINING = ("size", "color", "kind", "fresh", "verbose", "progress")


def own_look(images) -> tuple[int, bool]:
    """The largest side of the images' own sizes, and whether every one is gray: what ``auto`` decides on."""
    from ..io.pipeline import ImageFiles

    if isinstance(images, ImageFiles):
        return max((max(s) for s in images.sizes), default=0), images.gray
    imgs = as_images(images)
    return max((max(i.shape[:2]) for i in imgs), default=0), all(is_gray(i) for i in imgs)


def resolve_kind(images, kind: str, size: str | None = None) -> str:
    """``kind``, or for ``"auto"`` the kind :func:`bank.kinds.choose_kind` picks for these images (their own
    size and colour) at the ``size`` asked for, if any."""
    if check_kind(kind, auto=True) != AUTO:
        return kind
    return choose_kind(*own_look(images), parse_size(size) if size else None)


def make_detector(images, *, size: str | None = None, color: str | None = None, kind: str = AUTO,
                  **params):
    """An unfitted class model of ``kind`` (``"auto"``, the default: the kind :func:`resolve_kind` picks for
    these images); ``size`` ("HxW") or ``color`` fix its input spec, the images' own size (as the kind
    chooses from it) and colour filling in what is not given. The kind takes the ``seed`` of ``params``
    and the training settings it declares (``training_options``: its ``from_options``)."""
    from ..io.pipeline import ImageFiles

    asked, kind = kind, resolve_kind(images, kind, size)
    dropped = ignored_by(kind, params) if asked == AUTO else []
    if dropped:  # said, as the command line says it, not dropped silently
        warnings.warn(f"auto chose {kind}, which does not take {', '.join(dropped)}: ignored", stacklevel=2)
    cls = kind_class(kind)
    spec = None
    if size or color:
        guess = cls.choose_spec(images.spec() if isinstance(images, ImageFiles) else infer_spec(as_images(images)))
        h, w = parse_size(size) if size else (guess.height, guess.width)
        spec = InputSpec(h, w, color or guess.color)
    return cls.from_options(spec, **params)


def ignored_by(kind: str, params: dict) -> list[str]:
    """The training settings in ``params`` that ``kind`` does not take (it would ignore them)."""
    takes = (*COMMON, *kind_class(kind).training_options, *NOT_TRAINING)
    return [k for k, v in params.items() if v is not None and k not in takes]


def check_params(params: dict) -> None:
    """Refuse bad training settings (:func:`make_detector`'s ``params``) before any image is read: a
    wrong size or option should not wait for a scan of the whole data to be said."""
    p = {k: v for k, v in params.items() if k != "fresh"}
    size, color = p.pop("size", None), p.pop("color", None)
    kind = check_kind(p.pop("kind", AUTO), auto=True)
    spec = InputSpec(*parse_size(size), color or "gray") if size else None
    if color is not None:
        InputSpec(1, 1, color)  # says which colours there are
    for k in (AUTO_CHOICES if kind == AUTO else (kind,)):  # auto: the images decide the spec, later
        kind_class(k).from_options(spec if kind != AUTO else None, **p)._check_params()


def mixing_note(registry, names: Iterable[str], kind: str, look: tuple[int, bool]) -> str | None:
    """What to tell a user about to train classes ``names`` of ``kind`` on images of ``look`` (largest side,
    all gray) into ``registry`` when its other classes are unlike them (another kind, or images of other
    colour or a size more than 4 times apart, such as 8x8 gray digits beside colour photos): one bank
    would mix them, and answers then compare each class's scores relative to its kind's. None when alike."""
    from ..registry.store import RegistryError

    others = []
    for c in registry.classes():
        if c in names:
            continue
        try:
            e = registry.entry(c)
        except RegistryError:
            continue
        others.append((c, e.kind, e.spec))
    if not others:
        return None
    side, gray = look
    s = max(1, min(side, 128))
    mine = kind_class(kind).choose_spec(InputSpec(s, s, "gray" if gray else "rgb"))  # near enough: what it sees
    unlike = [c for c, k, spec in others if k != kind or spec.color != mine.color
              or not 0.25 <= max(spec.height, spec.width) / max(mine.height, mine.width) <= 4]
    if not unlike:
        return None
    kinds = sorted({k for c, k, _ in others if c in unlike})
    specs = sorted({str(spec) for c, _, spec in others if c in unlike})
    shown = ", ".join(unlike[:6]) + (f" and {len(unlike) - 6} more" if len(unlike) > 6 else "")
    return (f"{registry.where} already holds class(es) unlike these ({shown}: {', '.join(kinds)} on "
            f"{', '.join(specs)} inputs; these are {kind} on {'gray' if gray else 'colour'} images of up to {side} px, "
            f"seen at {mine}): "
            "one bank will answer for all of them; where their score units differ it compares every class's "
            "scores relative to the held-out scores of its kind's classes (those of these classes too, which may "
            "change their answers), and an image of one may be named as another (a photo as a digit). To keep "
            "them apart, "
            "train into another --registry (or answer with --classes, or --compare raw)")


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
    if not det.resumes:  # no state to resume; loss curves for a kind that trains a network
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            det.fit(data)
        record_skipped(det, skipped)
        if not det.curves().get("loss"):
            return det, registry.register(name, det)
        with tempfile.TemporaryDirectory(prefix="bank-plot-") as tmp:
            return det, registry.register(name, det, extras=loss_plot(name, det, Path(tmp)))
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
    from ..reports.report import plot_losses

    path = plot_losses(Path(folder) / "loss.png", {name: detector.curves()}, detector.loss_label)
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
    resumed_from_epoch: int = 0  # > 0: went on from an interrupted training's state

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


#: Files looked at per class when ``auto`` chooses one kind for a whole root (their own size and colour).
AUTO_SAMPLE = 64


def root_look(folders: dict[str, Path]) -> tuple[int, bool]:
    """:func:`own_look` of a root's classes together, on up to :data:`AUTO_SAMPLE` files a class: the largest
    side of any, and whether every one is gray."""
    from ..io.pipeline import scan

    side, gray = 0, True
    for folder in folders.values():
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
        look = own_look(scan(files[:AUTO_SAMPLE]))
        side, gray = max(side, look[0]), gray and look[1]
    return side, gray


def root_kind(folders: dict[str, Path], kind: str, size: str | None = None) -> str:
    """``kind``, or for ``"auto"`` one kind for every class of a root (a bank of one kind compares raw and
    exports whole): photos if any class's images are (:func:`root_look`)."""
    if check_kind(kind, auto=True) != AUTO:
        return kind
    return choose_kind(*root_look(folders), parse_size(size) if size else None)


def train_one(name: str, folder: str | os.PathLike, registry_root: str | os.PathLike, params: dict,
              threads: int | None = None, progress: bool = False) -> ClassRun:
    """Read a class's images, train, register; never raises (the error is in the result).

    ``threads`` limits this process's TensorFlow (set before it is imported
    here; a process that already imported it keeps its setting).
    ``progress``: write a line per epoch to this process's stderr (a worker
    shares its parent's terminal), with the time this class has left if it runs every epoch.
    """
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
        _exit_with_parent()
    from ..io.pipeline import scan
    from ..registry.store import Registry

    run, t0 = ClassRun(name, str(folder)), time.perf_counter()
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    try:
        files = scan([folder], n_jobs=threads)
        run.n_images, run.skipped = len(files), list(files.skipped)
        for bad, reason in run.skipped:  # said now, before the training: the summary repeats the count
            say(f"class {name!r}: skipped {bad}: {reason}")
        if not len(files):
            raise InputError(f"no readable images in {folder}")
        extra = {"progress": epoch_line(name, say)} if progress else {}

        def started(work: Path, resuming: bool) -> None:
            if resuming:
                say(f"class {name!r}: going on from an interrupted training's state in {work}")

        det, entry = fit_and_register(Registry(registry_root), name, files, {"verbose": 0, **params, **extra},
                                      run.skipped, on_start=started)
        run.warnings = list(det.training_.get("warnings", []))
        run.version, run.resumed_from_epoch = entry.version, det.training_.get("resumed_from_epoch", 0)
    except Exception as err:  # noqa: BLE001  (one class's failure must not stop the others)
        run.error = f"{type(err).__name__}: {err}"
    run.seconds = time.perf_counter() - t0
    return run


def _exit_with_parent(every: float = 1.0) -> None:
    """In a local worker process: stop when the process that started it is gone (killed, or its terminal
    closed), rather than train on and hold the class's state, which the same command run again must
    be able to take and resume."""
    import threading

    if any(t.name == "bank-parent-watch" for t in threading.enumerate()):
        return  # a worker reused for another class: already watching
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="bank-parent-watch", daemon=True).start()


def epoch_line(name: str, say: Callable[[str], None]) -> Callable[[dict], None]:
    """A detector's ``progress`` that says each epoch of class ``name`` in one line, with the time left
    if it runs every epoch (the measured epochs' mean times the epochs left; early stopping may end it
    sooner, a busier machine later)."""
    seconds: list[float] = []

    def report(e: dict) -> None:
        seconds.append(e["seconds"])
        left = (e["epochs"] - e["epoch"]) * sum(seconds) / len(seconds)
        eta = (f"; about {_duration(left)} left for this class if it runs all {e['epochs']} epochs"
               if e["epoch"] < e["epochs"] else "")
        watched = "" if math.isnan(e["val_loss"]) else f", early-stopping loss {e['val_loss']:.4g}"
        say(f"class {name!r}: epoch {e['epoch']}/{e['epochs']}, loss {e['loss']:.4g}{watched} "
            f"({e['seconds']:.1f} s{eta})")

    return report


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def train_all(root: str | os.PathLike, registry_root: str | os.PathLike, params: dict | None = None, *,
              n_jobs: int | None = None, backend: str = "loky", scheduler: str | None = None,
              classes: list[str] | None = None, progress: bool = False,
              on_done: Callable[[ClassRun, int, int], None] | None = None) -> list[ClassRun]:
    """Train one class per sub-folder of ``root`` (or only ``classes``) into the registry at ``registry_root``.

    ``backend="loky"``: ``n_jobs`` local processes (default: one per core,
    at most one per class), each TensorFlow using cores / n_jobs threads.
    ``backend="dask"``: the tasks go to the Dask cluster at ``scheduler``
    (an address such as "tcp://10.0.0.1:8786") through joblib's dask
    backend; the registry must be a path every worker can write.
    ``params``: :func:`make_detector`'s (``kind``, ``size``, ``color``, training settings); ``"auto"``
    chooses one kind for every class (:func:`root_kind`).
    ``on_done(run, done, total)`` is called as each class finishes;
    ``progress`` has each training say its epochs on stderr (see
    :func:`train_one`). Returns the runs in folder order.
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
    check_params(params or {})
    for name in folders:
        validate_class_name(name)
    params = dict(params or {})
    params["kind"] = root_kind(folders, params.get("kind", AUTO), params.get("size"))
    tasks = [(name, str(path.absolute()), registry_root, dict(params)) for name, path in folders.items()]
    if backend == "dask":
        if not scheduler:
            raise InputError("backend 'dask' needs a scheduler address (--scheduler tcp://HOST:8786)")
        try:
            from dask.distributed import Client
        except ImportError as e:
            raise InputError(f"backend 'dask' needs Dask: pip install -e '.[dask]' ({e})") from None

        with Client(scheduler), joblib.parallel_config(backend="dask"):
            runs = joblib.Parallel(n_jobs=n_jobs or -1, return_as="generator_unordered")(
                joblib.delayed(train_one)(*t, None, progress) for t in tasks)
            return _in_order(runs, list(folders), on_done)
    from ..machine import cores

    n_cores = cores()
    n_jobs = max(1, min(n_jobs or n_cores, len(tasks)))
    if n_jobs == 1:  # in this process, TensorFlow on every core
        return _in_order((train_one(*t, None, progress) for t in tasks), list(folders), on_done)
    threads = max(1, n_cores // n_jobs)
    runs = joblib.Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(
        joblib.delayed(train_one)(*t, threads, progress) for t in tasks)
    return _in_order(runs, list(folders), on_done)


def _in_order(runs: Iterable[ClassRun], names: list[str], on_done) -> list[ClassRun]:
    """Collect the runs as they finish (telling ``on_done``), then put them in ``names`` order."""
    got: dict[str, ClassRun] = {}
    for run in runs:
        got[run.class_name] = run
        if on_done is not None:
            on_done(run, len(got), len(names))
    return [got[n] for n in names]
