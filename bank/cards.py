"""The card of a registry entry: ``card.json``, what a class model version is.

A card holds the entry's input spec, architecture, training record, error
statistics, the SHA-256 of ``model.keras`` and of its LiteRT twins, and the
versions of the software that wrote it (see registry/README.md). This module
parses and checks a card, and gives the :class:`Entry` read from one; where
entries live and how they are written is :mod:`bank.registry`'s part.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import RegistryError
from .images import InputSpec
from .kinds import DEFAULT_KIND, KINDS
from .stats import ErrorStats

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
LITERT_FILE = "model-b{batch}.tflite"
#: The hidden folder under a registry's root that keeps files several classes share (a pretrained
#: backbone), each once: ``<root>/.shared/<name stem>-<first 16 hex of its SHA-256><suffix>``.
SHARED_DIR = ".shared"


def shared_path(root: Path, name: str, sha256: str) -> Path:
    """Where a registry at ``root`` keeps the shared file ``name`` of digest ``sha256``: named by its content,
    so that different bytes never take one another's place."""
    p = Path(name)
    return Path(root) / SHARED_DIR / f"{p.stem}-{sha256[:16]}{p.suffix}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions_stamp() -> dict:
    from . import __version__

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
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def kind(self) -> str:
        return self.card.get("kind", DEFAULT_KIND)

    @property
    def model_files(self) -> list[tuple[str, str]]:
        """Every file the model is loaded from, with its SHA-256 from the card: the model and its
        LiteRT twins for an autoencoder, the card's ``files`` for another kind."""
        if self.kind != DEFAULT_KIND:
            return sorted(self.card["files"].items())
        return [(MODEL_FILE, self.card["model_sha256"])] + [(f["file"], f["sha256"]) for f in self.litert_files]

    @property
    def model_id(self) -> str:
        """A digest naming the model's bytes (for an autoencoder, its model.keras's SHA-256)."""
        if self.kind == DEFAULT_KIND:
            return self.card["model_sha256"]
        return hashlib.sha256("".join(h for _, h in self.model_files + self.shared_files).encode()).hexdigest()

    @property
    def shared_files(self) -> list[tuple[str, str]]:
        """The files the entry shares with other classes (a backbone), with their SHA-256: ``card["shared"]``."""
        return sorted((self.card.get("shared") or {}).items())

    @property
    def root(self) -> Path:
        """The registry folder the entry is in."""
        return self.path.parent.parent

    @property
    def litert_files(self) -> list[dict]:
        """The LiteRT flatbuffers ({"batch", "file", "sha256"}); empty for entries without them."""
        return (self.card.get("litert") or {}).get("files", [])


def _check_litert(field: object, where: str) -> None:
    """The card's optional "litert" field: files named for their batch size, batch 1 among them."""
    bad = f"{where}: card.json litert must be an object with 'files', a list of {{'batch', 'file', 'sha256'}}"
    if not isinstance(field, dict) or not isinstance(field.get("files"), list):
        raise RegistryError(bad)
    batches = []
    for f in field["files"]:
        if not (isinstance(f, dict) and type(f.get("batch")) is int and f["batch"] >= 1
                and f.get("file") == LITERT_FILE.format(batch=f["batch"])
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
    kind = card.get("kind", DEFAULT_KIND)
    if kind not in KINDS:
        raise RegistryError(f"{where}: card.json kind {kind!r} is not one this bank knows ({', '.join(KINDS)})")
    needs = ("architecture", "model_sha256") if kind == DEFAULT_KIND else ("files",)
    for key in ("class", "version", "input_spec", "stats", *needs):
        if key not in card:
            raise RegistryError(f"{where}: card.json lacks the field {key!r}")
    try:
        InputSpec.from_dict(card["input_spec"])
        ErrorStats.from_dict(card["stats"])
    except ValueError as e:
        raise RegistryError(f"{where}: card.json {e}") from None
    if kind != DEFAULT_KIND:
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
    arch = card["architecture"]
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("params"), dict):
        raise RegistryError(f"{where}: card.json architecture must be an object with 'name' and 'params'")
    if "litert" in card:
        _check_litert(card["litert"], where)
    return card
