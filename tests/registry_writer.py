"""A registry writer in its own process, for the concurrency and crash tests.

    python registry_writer.py ROOT CLASS TAG TEMPLATE [--times N] [--start FILE] [--die-at POINT]

Registers ``N`` copies of a real trained model (``TEMPLATE``: a folder with
the ``model.keras`` and ``fields.json`` of a fitted detector) into ``ROOT``
as class ``CLASS``, each card's training record stamped with ``TAG`` and the
copy's number. It does not import TensorFlow: the registry's file protocol is
what is under test, so the model file is copied rather than re-saved.

``--start FILE`` waits until FILE exists, so many writers start together.
``--die-at POINT`` kills this process with SIGKILL at one point of the
registration: ``save`` (half the model file written), ``card`` (card written,
not yet renamed into place), ``rename`` (renamed, ACTIVE not yet written),
``active`` (new ACTIVE written, not yet renamed over the old), or ``remove``
(a version moved to the trash, not yet deleted).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from bank.registry import store as registry_module
from bank.registry.store import Registry


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CopiedModel:
    """Stands in for a Keras model: ``save`` copies a saved file."""

    def __init__(self, src: Path, die_in_save: bool):
        self.src, self.die_in_save = src, die_in_save

    def save(self, path: Path) -> None:
        data = self.src.read_bytes()
        if self.die_in_save:
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
            die()
        Path(path).write_bytes(data)


class CopiedDetector:
    """Stands in for a fitted class model: ``save`` writes the template's model file and gives its card fields."""

    kind = "autoencoder"

    def __init__(self, template: Path, tag: str, die_in_save: bool = False):
        self.fields = json.loads((template / "fields.json").read_text())
        self.fields["training"] = {**self.fields["training"], "writer": tag}
        self.model_ = CopiedModel(template / "model.keras", die_in_save)

    def _check_fitted(self) -> None:
        pass

    def save(self, folder: Path, litert: bool = True) -> dict:
        self.model_.save(Path(folder) / "model.keras")
        return self.fields


def patch_death(point: str) -> None:
    """Make the registry's next step at ``point`` kill this process."""
    if point == "card":
        real = registry_module._write_text

        def write_then_die(path, text):
            real(path, text)
            if Path(path).name == "card.json":
                die()

        registry_module._write_text = write_then_die
    elif point in ("rename", "remove"):
        real_rename = os.rename

        def rename_then_die(src, dst):
            real_rename(src, dst)
            if point == "rename" or ".trash-" in str(dst):
                die()

        registry_module.os.rename = rename_then_die
    elif point == "active":
        registry_module.os.replace = lambda src, dst: die()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("class_name")
    p.add_argument("tag")
    p.add_argument("template", type=Path)
    p.add_argument("--times", type=int, default=1)
    p.add_argument("--start")
    p.add_argument("--die-at", choices=["save", "card", "rename", "active", "remove"])
    args = p.parse_args()
    reg = Registry(args.root)
    if args.start:
        while not os.path.exists(args.start):
            time.sleep(0.001)
    if args.die_at == "remove":
        patch_death("remove")
        reg.remove(args.class_name, reg.versions(args.class_name)[-1])
        return 0
    if args.die_at:
        patch_death(args.die_at)
    for i in range(args.times):
        det = CopiedDetector(args.template, f"{args.tag}/{i}", die_in_save=args.die_at == "save")
        entry = reg.register(args.class_name, det, litert=False)  # the file protocol is under test, not LiteRT
        print(entry.version, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
