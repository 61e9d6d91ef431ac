"""The card of a registry entry: ``card.json``, what a class model version is.

A card holds the entry's kind, input spec, the kind's parameters, training
record, error statistics, the SHA-256 of each of its files, and the versions
of the software that wrote it (see registry/README.md). Every kind's card has
this one format; a card written before it (an autoencoder's, with no ``kind``)
is read through one upgrade step (:func:`parse_card`). This module parses and
checks a card, and gives the :class:`Entry` read from one; where entries live
and how they are written is :mod:`bank.registry.store`'s part.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..digest import sha256_bytes
from ..errors import RegistryError
from ..io.images import InputSpec
from ..kinds import KINDS, LEGACY_KIND, kind_class
from ..verdict.stats import ErrorStats

FORMAT_VERSION = 1
CARD_FILE = "card.json"
#: How a card written before every kind had one format named its LiteRT files.
LEGACY_LITERT = "model-b{batch}.tflite"
#: The hidden folder under a registry's root that keeps files several classes share (a pretrained
#: backbone), each once: ``<root>/.shared/<name stem>-<first 16 hex of its SHA-256><suffix>``.
SHARED_DIR = ".shared"


def shared_path(root: Path, name: str, sha256: str) -> Path:
    """Where a registry at ``root`` keeps the shared file ``name`` of digest ``sha256``: named by its content,
    so that different bytes never take one another's place."""
    p = Path(name)
    return Path(root) / SHARED_DIR / f"{p.stem}-{sha256[:16]}{p.suffix}"


def _versions_stamp() -> dict:
    from ..version import __version__

    out = {"bank": __version__, "python": platform.python_version()}
    for mod in ("numpy", "keras", "tensorflow", "ai_edge_litert"):
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
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def model_files(self) -> list[tuple[str, str]]:
        """Every file the model is loaded from, with its SHA-256 from the card (its ``files``)."""
        return sorted(self.card["files"].items())

    @property
    def has_litert(self) -> bool:
        """Whether the model has LiteRT flatbuffers among its files (it can answer without TensorFlow)."""
        return any(f.endswith(".tflite") for f, _ in self.model_files)

    @property
    def model_id(self) -> str:
        """A digest naming the model's bytes: of its files' and its shared files' SHA-256."""
        return sha256_bytes("".join(h for _, h in self.model_files + self.shared_files).encode())

    @property
    def shared_files(self) -> list[tuple[str, str]]:
        """The files the entry shares with other classes (a backbone), with their SHA-256: ``card["shared"]``."""
        return sorted((self.card.get("shared") or {}).items())

    @property
    def root(self) -> Path:
        """The registry folder the entry is in."""
        return self.path.parent.parent



#: The longest class name.
MAX_NAME = 100


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
    elif norm.casefold() == "unknown":
        problem = "is reserved for the verdict 'none of the classes'"
    if problem:
        raise RegistryError(f"class name {name!r} {problem}; use letters, digits, '-', '_' or spaces")
    return norm


def _is_version(name: str) -> bool:
    """A version folder's name: ASCII digits, no leading zero (so one number has one folder)."""
    return name.isascii() and name.isdigit() and str(int(name)) == name


def _check_legacy(card: dict, where: str) -> None:
    """The fields of a card written before every kind had one format: ``architecture``, ``model_sha256`` and the
    optional ``litert`` (files named for their batch size, batch 1 among them)."""
    arch = card["architecture"]
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("params"), dict):
        raise RegistryError(f"{where}: card.json architecture must be an object with 'name' and 'params'")
    if not (isinstance(card["model_sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", card["model_sha256"])):
        raise RegistryError(f"{where}: card.json model_sha256 must be a SHA-256 hex digest")
    if "litert" not in card:
        return
    field = card["litert"]
    bad = f"{where}: card.json litert must be an object with 'files', a list of {{'batch', 'file', 'sha256'}}"
    if not isinstance(field, dict) or not isinstance(field.get("files"), list):
        raise RegistryError(bad)
    batches = []
    for f in field["files"]:
        if not (isinstance(f, dict) and type(f.get("batch")) is int and f["batch"] >= 1
                and f.get("file") == LEGACY_LITERT.format(batch=f["batch"])
                and isinstance(f.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", f["sha256"])):
            raise RegistryError(f"{bad}; got {f!r}"[:300])
        batches.append(f["batch"])
    if batches and (1 not in batches or len(set(batches)) != len(batches)):
        raise RegistryError(f"{where}: card.json litert needs one file per batch size, batch 1 among them; "
                            f"got {batches}")


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
    if "kind" not in card and "model_sha256" in card:  # written before every kind had one card format
        if "architecture" not in card:
            raise RegistryError(f"{where}: card.json lacks the field 'architecture'")
        _check_legacy(card, where)
        card = kind_class(LEGACY_KIND).upgrade_card(card)  # read through the one upgrade step
    if "kind" not in card:
        raise RegistryError(f"{where}: card.json lacks the field 'kind'")
    kind = card["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise RegistryError(f"{where}: card.json kind {kind!r} is not one this bank knows ({', '.join(KINDS)})")
    for key in ("class", "version", "input_spec", "stats", "files"):
        if key not in card:
            raise RegistryError(f"{where}: card.json lacks the field {key!r}")
    try:
        InputSpec.from_dict(card["input_spec"])
        ErrorStats.from_dict(card["stats"])
    except ValueError as e:
        raise RegistryError(f"{where}: card.json {e}") from None
    files = card["files"]
    if not (isinstance(files, dict) and files and all(
            isinstance(f, str) and f == Path(f).name and not f.startswith(".") and f != CARD_FILE
            and isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for f, h in files.items())):
        raise RegistryError(f"{where}: card.json files must map plain file names to SHA-256 hex digests")
    shared = card.get("shared", {})
    if not (isinstance(shared, dict) and all(
            isinstance(f, str) and f == Path(f).name and not f.startswith(".") and f not in files
            and isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for f, h in shared.items())):
        raise RegistryError(f"{where}: card.json shared must map plain file names (not its own files') to "
                            "SHA-256 hex digests")
    return card
