"""The on-disk registry of class models.

Layout (see registry/README.md)::

    <root>/<class>/<version>/model.keras   Keras native format
    <root>/<class>/<version>/card.json     what the model is, its error statistics
    <root>/<class>/ACTIVE                  the active version number

An entry is written in full to a hidden temporary folder beside its final
place, then renamed into place: a reader sees a whole entry or none. The
rename fails when another writer took that version number, so concurrent
writers each get their own version. Loading verifies the model's sha256 and
uses Keras safe mode; nothing is pickled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import sys
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from .images import InputSpec
from .stats import ErrorStats

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
ACTIVE_FILE = "ACTIVE"
MAX_NAME = 100
ENV_VAR = "BANK_REGISTRY"


class RegistryError(Exception):
    """A registry problem: a bad name, a missing class, a broken entry."""


def default_root() -> Path:
    """``$BANK_REGISTRY`` if set, else ``registry/`` in the working directory."""
    return Path(os.environ.get(ENV_VAR) or "registry")


def validate_class_name(name: str) -> str:
    """A class name safe to use as one folder name; returned NFC-normalized."""
    if not isinstance(name, str):
        raise RegistryError(f"class name: expected a string, got {type(name).__name__}")
    norm = unicodedata.normalize("NFC", name)
    problem = None
    if not norm or not norm.strip():
        problem = "is empty"
    elif len(norm) > MAX_NAME:
        problem = f"is longer than {MAX_NAME} characters"
    elif "/" in norm or "\\" in norm:
        problem = "contains a path separator"
    elif norm.startswith("."):
        problem = "starts with a dot"
    elif any(unicodedata.category(ch)[0] == "C" for ch in norm):
        problem = "contains a control or invisible character"
    elif norm != norm.strip():
        problem = "starts or ends with white space"
    if problem:
        raise RegistryError(f"class name {name!r} {problem}; use letters, digits, '-', '_' or spaces")
    return norm


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions_stamp() -> dict:
    from . import __version__

    out = {"bank": __version__, "python": platform.python_version()}
    for mod in ("numpy", "keras", "tensorflow"):
        m = sys.modules.get(mod)
        out[mod] = getattr(m, "__version__", None) if m else None
    return out


@dataclass(frozen=True)
class Entry:
    """One class model version in the registry, with its parsed card."""

    class_name: str
    version: int
    path: Path
    card: dict

    @property
    def spec(self) -> InputSpec:
        return InputSpec.from_dict(self.card["input_spec"])

    @property
    def stats(self) -> ErrorStats:
        return ErrorStats.from_dict(self.card["stats"])

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE


def parse_card(text: str, where: str) -> dict:
    """Parse and check a card.json; errors name ``where`` (class and version)."""
    try:
        card = json.loads(text)
    except json.JSONDecodeError as e:
        raise RegistryError(f"{where}: card.json is not valid JSON ({e})") from None
    if not isinstance(card, dict):
        raise RegistryError(f"{where}: card.json must hold a JSON object")
    fv = card.get("format_version")
    if fv != FORMAT_VERSION:
        raise RegistryError(f"{where}: unknown card format_version {fv!r} (this bank reads {FORMAT_VERSION})")
    for key in ("class", "version", "input_spec", "architecture", "stats", "model_sha256"):
        if key not in card:
            raise RegistryError(f"{where}: card.json lacks the field {key!r}")
    try:
        InputSpec.from_dict(card["input_spec"])
        ErrorStats.from_dict(card["stats"])
    except ValueError as e:
        raise RegistryError(f"{where}: card.json {e}") from None
    arch = card["architecture"]
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("params"), dict):
        raise RegistryError(f"{where}: card.json architecture must be an object with 'name' and 'params'")
    return card


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class Registry:
    """A folder of class models, one sub-folder per class and version."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def _class_dir(self, name: str) -> Path:
        return self.root / validate_class_name(name)

    # ------------------------------------------------------------ reading

    def classes(self) -> list[str]:
        """Names of the classes with at least one version."""
        if not self.root.is_dir():
            return []
        names = [d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        return sorted((n for n in names if self.versions(n)), key=lambda n: (not n.isdigit(), n.zfill(12)))

    def versions(self, name: str) -> list[int]:
        """Version numbers present for a class, ascending (broken ones too)."""
        d = self._class_dir(name)
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())

    def active_version(self, name: str) -> int:
        """The active version: the one ACTIVE names, else the newest."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no class {name!r} in {self.root} (classes: {', '.join(self.classes()) or 'none'})")
        try:
            v = int((self._class_dir(name) / ACTIVE_FILE).read_text().strip())
            if v in versions:
                return v
        except (OSError, ValueError):
            pass
        return versions[-1]

    def entry(self, name: str, version: int | None = None) -> Entry:
        """The parsed entry of a class (its active version by default)."""
        name = validate_class_name(name)
        v = self.active_version(name) if version is None else int(version)
        where = f"class {name!r} version {v}"
        path = self._class_dir(name) / str(v)
        if not path.is_dir():
            raise RegistryError(f"{where}: not in {self.root} (versions: {self.versions(name)})")
        try:
            text = (path / CARD_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: cannot read card.json ({e})") from None
        card = parse_card(text, where)
        if card["class"] != name or card["version"] != v:
            raise RegistryError(f"{where}: card.json says class {card['class']!r} version {card['version']!r}")
        return Entry(name, v, path, card)

    def load_detector(self, name: str, version: int | None = None):
        """Load a fitted :class:`~bank.detector.AutoencoderDetector`, checking the model's sha256."""
        e = self.entry(name, version)
        where = f"class {e.class_name!r} version {e.version}"
        try:
            digest = sha256_file(e.model_path)
        except OSError as err:
            raise RegistryError(f"{where}: cannot read {MODEL_FILE} ({err})") from None
        if digest != e.card["model_sha256"]:
            raise RegistryError(f"{where}: {MODEL_FILE} checksum mismatch (file changed or corrupt); not loaded")
        from . import models  # noqa: F401  (quiet TensorFlow start-up)
        import keras

        from .detector import AutoencoderDetector

        try:
            model = keras.saving.load_model(e.model_path, compile=False, safe_mode=True)
        except Exception as err:  # Keras raises many kinds for a bad file
            raise RegistryError(f"{where}: cannot load {MODEL_FILE} ({type(err).__name__}: {err})") from None
        return AutoencoderDetector.from_card(e.card, model)

    # ------------------------------------------------------------ writing

    def register(self, name: str, detector) -> Entry:
        """Add a fitted detector as the next version of ``name`` and make it active."""
        name = validate_class_name(name)
        fields = detector.card_fields()  # raises NotFittedError first
        cdir = self.root / name
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = cdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            detector.model_.save(tmp / MODEL_FILE)
            card = {
                "format_version": FORMAT_VERSION,
                "class": name,
                "version": None,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **fields,
                "model_file": MODEL_FILE,
                "model_sha256": sha256_file(tmp / MODEL_FILE),
                "versions": _versions_stamp(),
            }
            version = (self.versions(name) or [0])[-1] + 1
            while True:
                card["version"] = version
                _write_text(tmp / CARD_FILE, json.dumps(card, indent=2))
                try:
                    os.rename(tmp, cdir / str(version))
                    break
                except OSError:
                    if not (cdir / str(version)).exists():
                        raise
                    version += 1  # another writer took it
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.activate(name, version)
        return self.entry(name, version)

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` the active one, in one atomic rename."""
        name = validate_class_name(name)
        self.entry(name, version)  # must exist and parse
        tmp = self.root / name / f".active-{uuid.uuid4().hex}"
        _write_text(tmp, f"{int(version)}\n")
        os.replace(tmp, self.root / name / ACTIVE_FILE)

    def remove(self, name: str, version: int | None = None) -> list[int]:
        """Remove one version, or the whole class when ``version`` is None.

        Returns the versions removed. Removing the active version makes the
        newest remaining one active.
        """
        name = validate_class_name(name)
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no class {name!r} in {self.root}")
        if version is not None and int(version) not in versions:
            raise RegistryError(f"class {name!r} has no version {version} (versions: {versions})")
        cdir = self.root / name
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        if version is None:
            os.rename(cdir, trash)
            shutil.rmtree(trash, ignore_errors=True)
            return versions
        was_active = self.active_version(name) == int(version)
        os.rename(cdir / str(int(version)), trash)
        shutil.rmtree(trash, ignore_errors=True)
        rest = self.versions(name)
        if not rest:
            shutil.rmtree(cdir, ignore_errors=True)
        elif was_active:
            self.activate(name, rest[-1])
        return [int(version)]
