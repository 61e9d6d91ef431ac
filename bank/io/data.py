"""Datasets in: files and folders of images, labelled folder trees, MNIST IDX.

A folder run never stops for one bad file: every unreadable input is named in
``Loaded.skipped`` with its reason, and the rest load.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .decoding import PixelBudget, check_max_pixels, default_max_pixels, read_image, threads
from ..errors import InputError
from .images import ImageError

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def image_extensions() -> set[str]:
    """Lower-case file endings Pillow can open (".png", ".jpg", ...)."""
    Image.init()
    return {ext.lower() for ext in Image.registered_extensions()}


@dataclass
class Loaded:
    """Images read from files: the images, their names, and what was skipped."""

    images: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def list_image_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files and folders into image files, in a stable order.

    A folder contributes its image files (by extension, recursively, hidden
    entries left out); a file named explicitly is always kept, so a text file
    named ``.png`` is tried and reported, not silently dropped. Missing paths
    come back in the second list as (name, reason).
    """
    exts = image_extensions()
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(
                    Path(root, n) for n in sorted(names) if not n.startswith(".") and Path(n).suffix.lower() in exts
                )
        elif p.exists():
            files.append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    return files, missing


def load_images(paths: Iterable[str | os.PathLike], **decoding) -> Loaded:
    """Read every image under ``paths``; unreadable ones go to ``skipped``. ``decoding``: ``fit``,
    ``max_pixels`` and ``transform`` of :func:`iter_images`."""
    out = Loaded()
    for part in iter_images(paths, **decoding):
        out.images += part.images
        out.names += part.names
        out.skipped += part.skipped
    return out


def iter_images(paths: Iterable[str | os.PathLike], *, fit: tuple[int, int] | None = None,
                max_pixels: int | None = None, transform: Callable[[np.ndarray], object] | None = None,
                chunk: int = 256, n_jobs: int | None = None) -> Iterator[Loaded]:
    """The images under ``paths``, ``chunk`` files at a time, decoded in ``n_jobs`` threads (default one
    per core) sharing one :class:`~bank.io.decoding.PixelBudget` of ``max_pixels``, each no larger than
    ``fit`` needs (see :func:`bank.io.decoding.read_image`) and then passed through ``transform`` in its
    thread (to a model's size, say): memory holds a chunk and one largest decode, however many files
    there are. Missing paths and unreadable files come in ``skipped``, in order."""
    limit = default_max_pixels() if max_pixels is None else check_max_pixels(max_pixels)
    budget = PixelBudget(limit)
    files, missing = list_image_files(paths)

    def one(path: Path) -> object:
        try:
            img = read_image(path, fit=fit, max_pixels=limit, budget=budget)
        except ImageError as e:
            return e
        return img if transform is None else transform(img)

    if missing or not files:
        yield Loaded(skipped=list(missing))
    with threads(n_jobs) as pool:
        for i in range(0, len(files), chunk):
            part = Loaded()
            for f, got in zip(files[i : i + chunk], pool.map(one, files[i : i + chunk])):
                if isinstance(got, ImageError):
                    part.skipped.append((got.source, got.reason))
                else:
                    part.images.append(got)
                    part.names.append(str(f))
            yield part


# ------------------------------------------------------------------- IDX

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzip'd or raw, into a NumPy array."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise InputError(f"{name}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(f"{name}: not an IDX file (bad magic number)")
    ndim = data[3]
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise InputError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise InputError(f"{name}: IDX body has {len(data) - header} bytes, header says {expected} for shape {shape}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(folder: str | os.PathLike, split: str = "train") -> tuple[Path, Path]:
    """The (images, labels) IDX files of ``split`` in ``folder``, gzip'd or raw."""
    if split not in IDX_NAMES:
        raise InputError(f"split: expected one of {sorted(IDX_NAMES)}, got {split!r}")
    found = []
    for stem in IDX_NAMES[split]:
        for cand in (Path(folder, stem + ".gz"), Path(folder, stem)):
            if cand.is_file():
                found.append(cand)
                break
        else:
            raise InputError(f"{folder}: no {stem}[.gz] (expected MNIST's IDX file names)")
    return found[0], found[1]


def load_idx_split(folder: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style images (N, H, W) uint8 and labels (N,) from an IDX folder."""
    img_path, lab_path = find_idx(folder, split)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InputError(
            f"{folder}: IDX images {images.shape} and labels {labels.shape} do not pair up as (N, H, W) and (N,)"
        )
    return images, labels


def is_idx_folder(path: str | os.PathLike) -> bool:
    try:
        find_idx(path, "train")
        return True
    except ValueError:
        try:
            find_idx(path, "test")
            return True
        except ValueError:
            return False


# --------------------------------------------------------- labelled data

@dataclass
class Labelled:
    """Images by class: for each class name either an array batch or files."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.arrays) | set(self.files), key=_natural)


def _natural(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def load_labelled(path: str | os.PathLike, split: str = "train") -> Labelled:
    """Labelled images: an IDX folder (``split`` chooses train or test), or a
    root folder with one sub-folder of images per class."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir() and is_idx_folder(p):
        images, labels = load_idx_split(p, split)
        return Labelled(arrays={str(int(c)): images[labels == c] for c in np.unique(labels)})
    if not p.is_dir():
        raise InputError(f"{p}: expected a folder with one sub-folder per class, or a folder of MNIST IDX files")
    out = Labelled()
    for sub in sorted(q for q in p.iterdir() if q.is_dir() and not q.name.startswith(".")):
        files, _ = list_image_files([sub])
        if files:
            out.files[sub.name] = files
    if not out.files:
        raise InputError(f"{p}: found no sub-folders with images (expected one sub-folder per class)")
    return out


def class_source(data: str | os.PathLike | Sequence[str | os.PathLike], class_name: str) -> np.ndarray | list:
    """Where one class's training images are, from what a user points ``bank train`` at.

    - an IDX folder: the training images labelled ``class_name`` (a uint8 array);
    - a folder with a sub-folder named ``class_name``: that sub-folder;
    - a folder of sub-folders only, none named ``class_name``: refused (a typo would train on every class);
    - otherwise: the files and folders themselves are the class's images.
    Returns the IDX array, or the list of paths to read.
    """
    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if len(paths) == 1 and Path(paths[0]).is_dir():
        root = Path(paths[0])
        if is_idx_folder(root):
            labelled = load_labelled(root, "train")
            if class_name not in labelled.arrays:
                raise InputError(f"{root}: no images labelled {class_name!r}; labels are {labelled.classes}")
            return labelled.arrays[class_name]
        if (root / class_name).is_dir():
            return [root / class_name]
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if subs and not any(p.is_file() for p in root.iterdir()):  # the layout of a folder of classes
            near = [s for s in subs if s.casefold() == class_name.casefold()]
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise InputError(f"{root} holds sub-folders ({', '.join(subs[:8])}{', ...' if len(subs) > 8 else ''}) "
                             f"and none named {class_name!r}: {hint}name the class of one of them, point at the "
                             f"class's own folder, or pass the sub-folders themselves ({root}/*) to train "
                             f"{class_name!r} on all of them")
    return paths


def class_images(data: str | os.PathLike | Sequence[str | os.PathLike], class_name: str,
                 **decoding) -> np.ndarray | Loaded:
    """The images of one class (see :func:`class_source`), read into memory: an IDX array or a :class:`Loaded`
    (``decoding``: ``fit``, ``max_pixels`` and ``transform`` of :func:`iter_images`)."""
    source = class_source(data, class_name)
    return source if isinstance(source, np.ndarray) else load_images(source, **decoding)


@dataclass
class LabelledImages:
    """A labelled dataset flattened for the router: images, true classes, names, what was skipped."""

    images: np.ndarray | list[np.ndarray]
    truth: list[str]
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_labelled_images(path: str | os.PathLike, split: str = "test", limit: int | None = None,
                         **decoding) -> LabelledImages:
    """Every image of a labelled dataset (see :func:`load_labelled`), at most ``limit`` per class
    (``decoding``: ``fit``, ``max_pixels`` and ``transform`` of :func:`iter_images`)."""
    lab = load_labelled(path, split)
    if lab.arrays:
        parts = {c: lab.arrays[c][:limit] for c in lab.classes}
        truth = [c for c, a in parts.items() for _ in range(len(a))]
        names = [f"{split} {c} #{i}" for c, a in parts.items() for i in range(len(a))]
        return LabelledImages(np.concatenate(list(parts.values())), truth, names)
    out = LabelledImages([], [], [])
    for c in lab.classes:
        loaded = load_images(lab.files[c][:limit], **decoding)
        out.images += loaded.images
        out.names += loaded.names
        out.truth += [c] * len(loaded.images)
        out.skipped += loaded.skipped
    return out
