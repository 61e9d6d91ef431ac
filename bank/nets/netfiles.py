"""A Keras network as files and back: its LiteRT twins written beside it, and the model rebuilt from bytes.

Shared by the kinds that hold a Keras network among their files (the autoencoder, ae-hog, geotrans):
what is written is checked (the LiteRT models against Keras, to 1e-5), and what is loaded is built from
the very bytes whose checksum was checked, never from the file read again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

from . import runtime as rt
from ..digest import sha256_bytes
from ..errors import InputError
from ..io.images import InputSpec


def write_litert(name: str, model, spec: InputSpec, folder: Path, pattern: str,
                 out_shape: tuple[int, ...] | None = None, enabled: bool = True) -> dict:
    """Convert ``model`` for LiteRT at each batch size, check it against Keras, write the files named by
    ``pattern`` (``"model-b{batch}.tflite"``); a card's "litert" field. ``name`` says whose in a warning
    ("class 'cat'", "the geotrans network"). ``out_shape``: each image's
    output when it is not an image of the spec. A failure is a warning and a "skipped" reason, never a
    lost entry. Not ``enabled``: no files, and "skipped" says so."""
    if not enabled:
        return {"files": [], "skipped": "registered without LiteRT models (not asked for)"}
    try:
        if not rt.available():
            raise ImportError("ai-edge-litert is not installed")
        flatbuffers = {b: rt.convert(model, spec.shape, b) for b in rt.BATCH_SIZES}
        diff = rt.check(model, rt.LiteModel(flatbuffers, spec.shape, out_shape=out_shape))
    except Exception as err:  # the converter and LiteRT raise many kinds; the Keras model still lands
        reason = f"{type(err).__name__}: {err}"[:300]
        warnings.warn(f"{name}: registered without a LiteRT model ({reason}); it answers through "
                      "TensorFlow", stacklevel=3)
        return {"files": [], "skipped": reason}
    files = []
    for batch, data in flatbuffers.items():
        file = pattern.format(batch=batch)
        with open(folder / file, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        files.append({"batch": batch, "file": file, "sha256": sha256_bytes(data)})
    return {"files": files, "max_rel_diff": diff}


def keras_from_bytes(data: bytes, where: str, file: str, shape: tuple[int, ...],
                     out_shape: tuple[int, ...] | None = None):
    """The Keras model (safe mode: no Lambda layers, no code) from ``data``, the bytes of ``file``; InputError
    naming ``where`` when it cannot be loaded or does not map ``shape`` to ``out_shape`` (``shape`` when None:
    an autoencoder)."""
    from . import models  # noqa: F401  (quiet TensorFlow start-up)
    import keras

    # keras.saving.load_model takes a path, not bytes: a private copy only this process writes
    folder = tempfile.mkdtemp(prefix="bank-load-")  # mode 0700
    try:
        fd, path = tempfile.mkstemp(suffix=".keras", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:  # Keras raises many kinds for a bad or unsafe file
            raise InputError(f"{where}: cannot load {file} ({type(err).__name__}: {err})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    shapes = [tuple(model.input_shape[1:]), tuple(model.output_shape[1:])]
    want = [tuple(shape), tuple(shape if out_shape is None else out_shape)]
    if shapes != want:
        raise InputError(f"{where}: the model maps {shapes[0]} to {shapes[1]}, but its card says {want[0]} to "
                         f"{want[1]}")
    return model


def load_network(files: dict[str, bytes], keras_file: str, pattern: str, shape: tuple[int, ...],
                 out_shape: tuple[int, ...] | None, runtime: str, where: str, why_no_litert: str | None = None):
    """A kind's network from the checked bytes of its ``files``: the LiteRT twins (named by ``pattern``)
    for ``runtime`` "litert", or "auto" when they are all there and LiteRT is installed; else the Keras
    model ``keras_file`` in safe mode. InputError naming ``where`` for what is missing (``why_no_litert``:
    why the model was written without its LiteRT twins, from its card)."""
    lite = {b: files[pattern.format(batch=b)] for b in rt.BATCH_SIZES if pattern.format(batch=b) in files}
    whole = len(lite) == len(rt.BATCH_SIZES)
    if runtime == "litert" and not whole:
        raise InputError(f"{where}: no LiteRT model ({why_no_litert or 'registered without one'}); use the keras "
                         "runtime, or register the class again")
    if runtime == "litert" or (runtime == "auto" and whole and rt.available()):
        try:
            return rt.LiteModel(lite, shape, out_shape=out_shape)
        except ImportError as err:
            raise InputError(f"{where}: the LiteRT runtime is not installed ({err}); pip install ai-edge-litert, "
                             "or use the keras runtime") from None
        except (ValueError, RuntimeError) as err:
            raise InputError(f"{where}: cannot load its LiteRT model ({err})") from None
    if keras_file not in files:
        raise InputError(f"{where}: missing file {keras_file}")
    return keras_from_bytes(files[keras_file], where, keras_file, shape, out_shape)


def write_autoencoder(name: str, model, spec: InputSpec, folder: Path, keras_file: str, pattern: str,
                      dense_file: str, litert: bool = True) -> tuple[dict, list[str]]:
    """Write an autoencoder as every kind that holds one does: the Keras model ``keras_file``, its LiteRT
    twins (``pattern``) and, for a dense one, its weights as one plain array (``dense_file``, for a bank to
    stack: :mod:`bank.nets.stacked`), each checked against it. Returns the card's "litert" (and "dense")
    fields and the files written. ``litert`` False writes the Keras model alone."""
    from . import stacked

    if not hasattr(model, "save"):
        raise InputError(f"{name}: saving needs its Keras model; this one was loaded for LiteRT (load it with "
                         "runtime='keras')")
    model.save(folder / keras_file)
    lite = write_litert(name, model, spec, folder, pattern, enabled=litert)
    fields = {"litert": {k: v for k, v in lite.items() if k != "files"}}
    written = [keras_file, *(f["file"] for f in lite["files"])]
    dense = stacked.write(model, spec.shape, folder, dense_file, name) if litert else None
    if dense is not None:
        fields["dense"] = dense
        written += [dense["file"]] if "file" in dense else []
    return fields, written
