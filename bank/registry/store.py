"""The on-disk registry of class models.

Layout (see registry/README.md)::

    <root>/<class>/<version>/card.json     what the model is (its kind), its error statistics, its files
    <root>/<class>/<version>/...           the files its kind wrote (a Keras model and its LiteRT twins,
                                           plain arrays), each listed in the card with its SHA-256
    <root>/<class>/ACTIVE                  the active version number
    <root>/.shared/                        files several classes share (a backbone), each once

An entry is written in full to a hidden temporary folder beside its final
place, then renamed into place: a reader sees a whole entry or none. Writers
of one class take turns, under a lock on ``<class>/.lock``, only for the short
step that picks the version number, renames and activates, so versions are
unique and the newest registration is the active one. A writer killed at any
point leaves at most a hidden leftover, which readers ignore and
:meth:`Registry.gc` (or the class's next registration) removes.

Loading reads each file once and verifies its sha256: the model used is
built from the bytes checked, never from the file read again, by its kind's
``load``. A network answers through its LiteRT flatbuffers (no TensorFlow
import; builtin operations only) when the entry has them, else through its
Keras model in safe mode (no Lambda layers, no arbitrary code); nothing is
pickled. The registry never follows a symbolic link out of its root.

The card format is :mod:`bank.registry.cards`; the locks and the careful file steps
are :mod:`bank.registry.locks`; the loading path (checksums, LiteRT or Keras) is
:mod:`bank.registry.loading`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..nets import trainstate
from .cards import (CARD_FILE, FORMAT_VERSION, Entry, RegistryError, _is_version, _versions_stamp, parse_card,
                    shared_path, validate_class_name)
from ..digest import sha256_bytes, sha256_file
from ..errors import InputError
from .loading import check_runtime, load_entry, read_checked, read_shared
from . import upkeep
from .locks import LOCK_FILE, TMP_PREFIX, _locked, _no_link, _remove_path, _write_text

ACTIVE_FILE = "ACTIVE"
#: The hidden folder under the root where trainings keep the state they resume from.
TRAINING_DIR = ".training"
#: Names an entry's extra files may not take.
RESERVED_FILES = frozenset({CARD_FILE, ACTIVE_FILE})
ENV_VAR = "BANK_REGISTRY"


def default_root() -> Path:
    """``$BANK_REGISTRY`` if set, else ``registry/`` in the working directory."""
    return Path(os.environ.get(ENV_VAR) or "registry")


class Registry:
    """A folder of class models, one sub-folder per class and version."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._chosen = "given" if root is not None else "env" if os.environ.get(ENV_VAR) else "default"

    @property
    def where(self) -> str:
        """The registry's path as the user gave it, and how it was chosen when they did not: for messages."""
        if self._chosen == "given":
            return str(self.root)
        if self._chosen == "env":
            return f"{self.root} (from ${ENV_VAR})"
        return (f"{self.root} (the default, in {Path.cwd()}; choose one with --registry PATH or ${ENV_VAR})")

    def missing(self) -> RegistryError:
        """The error for a registry folder that is not there."""
        return RegistryError(f"no registry at {self.where}: check the path, or train a class first ('bank train "
                             "CLASS DATA', or 'bank demo')")

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def _class_dir(self, name: str) -> Path:
        name = validate_class_name(name)
        return _no_link(self.root / name, f"class {name!r}")

    # ------------------------------------------------------------ reading

    def classes(self) -> list[str]:
        """Names of the classes with at least one version (folders that are not valid classes are left out)."""
        if not self.root.is_dir():
            return []
        names = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or d.is_symlink() or not d.is_dir():
                continue
            try:
                if validate_class_name(d.name) == d.name and self.versions(d.name):
                    names.append(d.name)
            except RegistryError:
                continue
        return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n.casefold(), n))

    def versions(self, name: str) -> list[int]:
        """Version numbers present for a class, ascending (broken ones too)."""
        d = self._class_dir(name)
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if _is_version(p.name) and p.is_dir())

    def active_version(self, name: str) -> int:
        """The version ``ACTIVE`` names; the newest when there is no ``ACTIVE`` file yet."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no class {name!r} in {self.root} (classes: {', '.join(self.classes()) or 'none'})")
        path = _no_link(self._class_dir(name) / ACTIVE_FILE, f"class {name!r}")
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return versions[-1]  # a first registration killed before it wrote ACTIVE
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryError(f"class {name!r}: cannot read {ACTIVE_FILE} ({e})") from None
        if not _is_version(text) or int(text) not in versions:
            raise RegistryError(f"class {name!r}: {ACTIVE_FILE} names version {text!r}, which is not there "
                                f"(versions: {versions}); choose one with 'bank activate {name} VERSION'")
        return int(text)

    def entry(self, name: str, version: int | None = None) -> Entry:
        """The parsed entry of a class (its active version by default)."""
        name = validate_class_name(name)
        if version is not None and not self.versions(name):
            raise RegistryError(f"no class {name!r} in {self.root} (classes: {', '.join(self.classes()) or 'none'})")
        v = self.active_version(name) if version is None else int(version)
        where = f"class {name!r} version {v}"
        path = _no_link(self._class_dir(name) / str(v), where)
        if not path.is_dir():
            raise RegistryError(f"{where}: not in {self.root} (versions: {self.versions(name)})")
        try:
            text = _no_link(path / CARD_FILE, where).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: cannot read card.json ({e})") from None
        card = parse_card(text, where)
        if card["class"] != name or card["version"] != v:
            raise RegistryError(f"{where}: card.json says class {card['class']!r} version {card['version']!r}")
        return Entry(name, v, path, card)

    def check_model(self, e: Entry) -> None:
        """Raise :class:`RegistryError` unless every model file of the entry matches its checksum."""
        for file, sha256 in e.model_files:
            self._read_checked(e, file, sha256, keep=False)
        for file, sha256 in e.shared_files:
            read_shared(e, file, sha256, keep=False)

    def _read_checked(self, e: Entry, file: str, sha256: str, keep: bool = True) -> bytes | None:
        """The bytes of one of the entry's files, read once and checked against ``sha256``
        (:func:`bank.registry.loading.read_checked`)."""
        return read_checked(e, file, sha256, keep)

    def load_detector(self, name: str, version: int | None = None, runtime: str = "auto"):
        """Load a fitted class model (of the entry's kind), checking every file's sha256.

        ``runtime``, for a kind that holds a network: "litert" runs the entry's LiteRT
        flatbuffers (no TensorFlow import); "keras" loads the Keras model (TensorFlow,
        the reference); "auto" (default) takes LiteRT when the entry has it and
        ``ai-edge-litert`` is installed, else Keras. See :func:`bank.registry.loading.load_entry`.
        """
        check_runtime(runtime)
        return self.load_entry(self.entry(name, version), runtime)

    def load_entry(self, e: Entry, runtime: str = "auto"):
        """:meth:`load_detector` of an entry already read by :meth:`entry` (its card not read again)."""
        check_runtime(runtime)
        return load_entry(e, runtime, read=self._read_checked)

    def verify(self, load: bool = True) -> list:
        """Check every version of every class; return what is wrong (empty when healthy): names, cards,
        checksums, ``ACTIVE``, and with ``load`` that each model loads (:func:`bank.registry.upkeep.verify`)."""
        return upkeep.verify(self, load)

    # ------------------------------------------------------------ writing

    def register(self, name: str, detector, litert: bool = True, extras: dict[str, bytes] | None = None) -> Entry:
        """Add a fitted class model as the next version of ``name`` and make it active.

        The model writes its own files (its kind's ``save``). With ``litert``
        (default) a network is also written as LiteRT flatbuffers, checked
        against Keras, for answering without TensorFlow; when that fails the
        entry is written without them and a warning says why.
        Safe with other writers in other processes; a writer that dies
        midway leaves only a hidden leftover (see :meth:`gc`). ``extras``:
        more files for the entry's folder by name (such as the training-loss
        plot ``loss.png``), for people to look at: listed in the card with
        their checksum, never loaded.
        """
        name = validate_class_name(name)
        extras = dict(extras or {})
        for file in extras:
            if file in RESERVED_FILES or file.startswith(".") or Path(file).name != file or file.endswith(".tflite"):
                raise InputError(f"extras: {file!r} is not a plain file name free for an entry's folder")
        detector._check_fitted()
        cdir = self._class_dir(name)
        cdir.mkdir(parents=True, exist_ok=True)
        for p in upkeep.trash(self.root) + upkeep.class_leftovers(cdir):  # what interrupted writes left
            _remove_path(p)
        token = f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp = cdir / token
        with _locked(cdir / f"{token}.lock"):  # marks tmp as in progress for gc
            try:
                tmp.mkdir()
                try:  # the kind writes its files and says what they are, with their checksums
                    with warnings.catch_warnings(record=True) as said:
                        warnings.simplefilter("always")
                        fields = detector.save(tmp, litert=litert)
                except InputError as err:
                    raise InputError(f"class {name!r}: {err}") from None
                for w in said:  # ours (a network written without its LiteRT twins) said for the class
                    if issubclass(w.category, UserWarning):
                        warnings.warn(f"class {name!r}: {w.message}", w.category, stacklevel=2)
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                card = {"format_version": FORMAT_VERSION, "class": name, "version": None,
                        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        **fields, "versions": _versions_stamp()}
                self._put_shared(card.get("shared") or {}, detector)
                for file, data in extras.items():
                    if file in card["files"]:
                        raise InputError(f"extras: {file!r} is a file of the {detector.kind} model")
                    (tmp / file).write_bytes(data)
                if extras:
                    card["extras"] = [{"file": f, "sha256": sha256_bytes(d)} for f, d in extras.items()]
                with _locked(cdir / LOCK_FILE):
                    version = (self.versions(name) or [0])[-1] + 1
                    card["version"] = version
                    _write_text(tmp / CARD_FILE, json.dumps(card, indent=2))
                    os.rename(tmp, cdir / str(version))  # fails, rather than merge, if the number is taken
                    self._write_active(cdir, version)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            finally:
                (cdir / f"{token}.lock").unlink(missing_ok=True)
        return self.entry(name, version)

    def _put_shared(self, shared: dict[str, str], detector) -> None:
        """Write the files a class shares with others (its backbone) into the registry's shared folder, each
        once: a file of the same bytes already there is kept (it is checked when a class loads)."""
        if not shared:
            return
        files = detector.shared_files()
        for name, sha in shared.items():
            data = files.get(name)
            if data is None or sha256_bytes(data) != sha:
                raise InputError(f"the model names the shared file {name!r} but does not give its bytes")
            path = shared_path(self.root, name, sha)
            if path.is_file() and not path.is_symlink() and sha256_file(path) == sha:
                os.utime(path)  # in use again: young, so gc leaves it while this entry is being written
                continue  # already there (a file of other bytes under its name was corrupt: replaced)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, _no_link(path, f"shared file {name}"))  # whole or not at all
            finally:
                tmp.unlink(missing_ok=True)

    def training_path(self, name: str) -> Path:
        """The folder under which trainings of class ``name`` keep the state they resume from
        (``<root>/.training/<name>``, one sub-folder per run: see :meth:`training_dir`)."""
        return self.root / TRAINING_DIR / validate_class_name(name)

    @contextmanager
    def training_dir(self, name: str, key: str, fresh: bool = False) -> Iterator[Path]:
        """A folder, held by this process, where the training run ``key`` of class ``name`` keeps
        its state (``<root>/.training/<name>/<key prefix>[-N]``; ``key``: the detector's
        :meth:`~bank.kinds.autoencoder.AutoencoderModel.run_key`). A free folder with state of the same run
        is resumed; a folder a live process holds is never touched, so concurrent trainings of a
        class each get their own. ``fresh`` empties the folder taken first (no resuming). What a
        rerun cannot resume from is removed afterwards (see :mod:`bank.nets.trainstate`)."""
        try:
            with trainstate.claim(self.training_path(name), key, fresh=fresh) as work:
                yield work
        finally:
            with suppress(OSError):
                (self.root / TRAINING_DIR).rmdir()  # only when empty

    def _write_active(self, cdir: Path, version: int) -> None:
        tmp = cdir / f".active-{uuid.uuid4().hex}"
        _write_text(tmp, f"{int(version)}\n")
        os.replace(tmp, _no_link(cdir / ACTIVE_FILE, f"class {cdir.name!r}"))

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` the active one, in one atomic rename."""
        name = validate_class_name(name)
        self.check_model(self.entry(name, version))  # must exist, parse and match its checksum
        cdir = self._class_dir(name)
        with _locked(cdir / LOCK_FILE):
            if int(version) not in self.versions(name):
                raise RegistryError(f"class {name!r} version {version}: removed meanwhile")
            self._write_active(cdir, int(version))

    def remove(self, name: str, version: int | None = None) -> list[int]:
        """Remove one version, or every version of the class when ``version`` is None.

        Returns the versions removed. Removing the active version makes the
        newest remaining one active. Everything happens under the class lock,
        and the class folder itself stays (with its lock), so writers of the
        class at the same moment are never disturbed.
        """
        name = validate_class_name(name)
        cdir = self._class_dir(name)
        if not cdir.is_dir():
            raise RegistryError(f"no class {name!r} in {self.root}")
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        with _locked(cdir / LOCK_FILE):
            versions = self.versions(name)
            if not versions:
                raise RegistryError(f"no class {name!r} in {self.root}")
            if version is not None and int(version) not in versions:
                raise RegistryError(f"class {name!r} has no version {version} (versions: {versions})")
            gone = versions if version is None else [int(version)]
            rest = [v for v in versions if v not in gone]
            try:
                was_active = self.active_version(name) in gone
            except RegistryError:
                was_active = True  # ACTIVE was unreadable: repair it
            if rest and was_active:  # re-point first: ACTIVE never names a missing version
                self._write_active(cdir, rest[-1])
            trash.mkdir()
            for v in gone:
                os.rename(cdir / str(v), trash / str(v))
            if not rest:
                (cdir / ACTIVE_FILE).unlink(missing_ok=True)
        shutil.rmtree(trash, ignore_errors=True)
        return gone

    # ------------------------------------------------------------ cleaning

    def leftovers(self) -> list[Path]:
        """Hidden remains of interrupted writes and removals, not in use by a live writer
        (:func:`bank.registry.upkeep.leftovers`)."""
        return upkeep.leftovers(self)

    def gc(self) -> list[Path]:
        """Remove the leftovers of interrupted writes; return what was removed."""
        gone = self.leftovers()
        for p in gone:
            _remove_path(p)
        return gone
