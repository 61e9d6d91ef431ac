"""Export the active bank as one TensorFlow SavedModel, in TensorFlow Serving's layout.

``OUT/<name>/<version>/`` holds a SavedModel whose signatures run every class
model (as its kind writes itself for TensorFlow: ``tf_network``, ``tf_score``; a backbone several
classes share runs once) and the router's tests in one TensorFlow graph:

- ``serving_default``: inputs ``images`` (float32, (N, H, W, C) at the bank's
  input spec, values in [0, 1]) and ``complexity`` (float64, (N,): each
  image's zlib bits per value, :func:`bank.io.images.complexity`; zlib has no
  TensorFlow op, so the client sends it). The router's default answer.
- ``images_only``: ``images`` alone; the answer the router gives without
  complexities (lognormal z, margin, no complexity test).

Outputs, per image: ``error``, ``z``, ``score``, ``test_z``, ``p_value``, ``conformal_p_value``,
``margin``, ``flag`` and its reasons ``flag_error``, ``flag_margin``,
``flag_complexity`` (N, K, classes in the order of ``bank.json``), and
``argmin``, ``nearest``, ``unknown``, ``label`` (N). Every statistic is a
constant of the graph, computed in float64 as :func:`bank.verdict.decision.decide`
does. ``assets.extra/bank.json`` says what was exported and how to prepare
an input. The version folder appears whole (written beside it, then renamed):
a TensorFlow Serving that watches ``OUT/<name>`` never loads half a model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..verdict import stats as st
from ..errors import InputError
from ..io.images import InputSpec
from ..verdict.decision import UNKNOWN
from ..kinds import KINDS, kind_class
from .router import Router

#: The file, inside the version folder, that describes the export.
METADATA = "assets.extra/bank.json"

#: How a client computes the ``complexity`` input (the same as :func:`bank.io.images.complexity`).
COMPLEXITY_RECIPE = ("8 * len(zlib.compress(q.tobytes(), 6)) / q.size, where q = "
                     "numpy.clip(numpy.rint(image * 255), 0, 255).astype(numpy.uint8) is the image at the input spec")


def next_version(folder: Path) -> int:
    """One past the highest numbered version in ``folder`` (1 for none)."""
    have = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return max(have, default=0) + 1


def _constants(router: Router) -> dict[str, np.ndarray]:
    """Each class's statistics as float64 vectors, the router's own columns
    (:class:`bank.verdict.columns.StatsColumns`: a class without the complexity fit has neutral values there,
    never selected), and its held-out errors for the conformal p-value, padded with -inf (never "at least as
    high")."""
    cols = router.columns
    out = {"mean": cols.mean, "std": cols.std, "log_mean": cols.log_mean, "log_std": cols.log_std,
           "log_shift": cols.log_shift, "has_cx": cols.has_complexity.astype(np.float64),
           "c_mean": cols.complexity_mean, "c_std": cols.complexity_std, "slope": cols.complexity_slope,
           "residual_std": cols.residual_std}
    held = [s.calibration or () for s in router.stats]
    out["calibration"] = np.full((len(held), max(1, *map(len, held))), -np.inf)
    for k, row in enumerate(held):
        out["calibration"][k, : len(row)] = row
    out["n_calibration"] = cols.calibration_n.astype(np.float64)
    return out


def _graph(router: Router):
    """The two signature functions over the router's Keras models (needs TensorFlow)."""
    import tensorflow as tf

    dets = [router.detectors[c] for c in router.classes]
    models = [d.tf_network() for d in dets]
    c = {k: tf.constant(v) for k, v in _constants(router).items()}
    names = tf.constant(router.classes)
    k_classes = len(router.classes)
    method, threshold = router.method, router.threshold
    margin_cut, cx_cut = router.margin, router.complexity_threshold
    floor = tf.constant(st.LOG_FLOOR, tf.float64)

    def errors_of(images):
        cache: dict = {}  # what classes share within the graph (a backbone's features), once per image
        return tf.stack([det.tf_score(images, cache) for det in dets], axis=1)

    def decide(errors32, complexity):
        e = tf.cast(errors32, tf.float64)
        z = (e - c["mean"]) / c["std"]
        log_e = tf.math.log(tf.maximum(e, floor))  # the margin's (raw errors)
        shifted = tf.math.log(tf.maximum(e + c["log_shift"], floor))  # the log fits' (bank.verdict.stats.ErrorStats.logs)
        lognormal = (shifted - c["log_mean"]) / c["log_std"]
        if method == "gaussian":
            test_z = z
        elif method == "lognormal" or complexity is None:
            test_z = lognormal
        else:  # the residual from each class's line at the input's clamped complexity
            reach = st.COMPLEXITY_CLAMP * c["c_std"]
            dc = tf.clip_by_value(tf.math.log(complexity)[:, None] - c["c_mean"], -reach, reach)
            corrected = (shifted - (c["log_mean"] + c["slope"] * dc)) / c["residual_std"]
            test_z = tf.where(c["has_cx"] > 0, corrected, lognormal)
        flag_error = test_z > threshold
        if complexity is not None and cx_cut is not None:
            cz = (tf.math.log(complexity)[:, None] - c["c_mean"]) / c["c_std"]
            flag_cx = (c["has_cx"] > 0) & (tf.abs(cz) > cx_cut)
        else:
            flag_cx = tf.zeros_like(flag_error)
        inf = tf.constant(math.inf, tf.float64)
        if k_classes > 1:  # log error minus the lowest among the other classes whose error accepts the image
            cand = tf.where(flag_error, inf, log_e)  # (ties: the lower index is the best)
            low, idx = tf.math.top_k(-cand, k=2)
            is_best = tf.range(k_classes)[None, :] == idx[:, :1]
            others_min = tf.where(is_best, -low[:, 1:2], -low[:, :1])
            margin = tf.where(tf.math.is_finite(others_min), log_e - others_min,
                              tf.constant(math.nan, tf.float64))
        else:
            margin = tf.fill(tf.shape(e), tf.constant(math.nan, tf.float64))
        flag_margin = margin > margin_cut if margin_cut is not None else tf.zeros_like(flag_error)
        flag = flag_error | flag_margin | flag_cx
        at_least = tf.reduce_sum(tf.cast(c["calibration"][None, :, :] >= e[:, :, None], tf.float64), axis=2)
        conformal = tf.where(c["n_calibration"] > 0, (1.0 + at_least) / (c["n_calibration"] + 1.0),
                             tf.constant(math.nan, tf.float64))
        argmin = tf.argmin(e, axis=1)
        unknown = tf.reduce_all(flag, axis=1)
        nearest = tf.gather(names, argmin)
        accepted = tf.gather(names, tf.argmin(tf.where(flag, inf, e), axis=1))  # the nearest that accepts it
        out = {"error": e, "z": z, "score": tf.exp(-0.5 * z * z), "test_z": test_z,
               "p_value": 0.5 * tf.math.erfc(test_z / math.sqrt(2.0)), "conformal_p_value": conformal,
               "margin": margin, "flag": flag,
               "flag_error": flag_error, "flag_margin": flag_margin, "flag_complexity": flag_cx,
               "argmin": argmin, "nearest": nearest, "unknown": unknown,
               "label": tf.where(unknown, tf.constant(UNKNOWN), accepted)}
        if complexity is not None:
            out["complexity_z"] = tf.where(c["has_cx"] > 0, (tf.math.log(complexity)[:, None] - c["c_mean"])
                                           / c["c_std"], tf.constant(math.nan, tf.float64))
        return out

    def with_complexity(images, complexity):
        return decide(errors_of(images), complexity)

    def images_only(images):
        return decide(errors_of(images), None)

    return models, with_complexity, images_only


def metadata(router: Router, spec: InputSpec, name: str, version: int) -> dict:
    """What ``assets.extra/bank.json`` says: the classes in output order, their registry versions,
    the rule, and how to prepare each input."""
    return {
        "name": name, "version": version, "classes": router.classes,
        "class_versions": {c: {"version": v, "model_sha256": sha} for c, (v, sha) in router.versions.items()},
        "input": {"height": spec.height, "width": spec.width, "channels": spec.channels, "dtype": "float32",
                  "range": [0.0, 1.0], "color": "gray (luminosity)" if spec.channels == 1 else "rgb"},
        "complexity": COMPLEXITY_RECIPE,
        "rule": {"method": router.method, "threshold": router.threshold, "margin": router.margin,
                 "complexity_threshold": router.complexity_threshold},
        "signatures": {"serving_default": ["images", "complexity"], "images_only": ["images"]},
        "stats": {c: s.to_dict() for c, s in zip(router.classes, router.stats)},
    }


def export_bank(registry, out: str | os.PathLike, *, name: str = "bank", version: int | None = None,
                classes: Sequence[str] | None = None, **rule) -> Path:
    """Write the active bank (or ``classes``) as ``out/name/version`` and return that folder.

    ``rule``: the router's ``threshold``, ``method``, ``margin`` and
    ``complexity_threshold``. Every class must share one input spec (a
    SavedModel signature takes one image shape); export the others apart
    with ``classes``. An existing version is never overwritten.
    """
    from ..registry.store import validate_class_name

    validate_class_name(name)  # a folder name TensorFlow Serving takes as the model's name
    router = Router.from_registry(registry, classes, runtime="keras", **rule)
    other = {c: d.kind for c, d in router.detectors.items() if not d.exports}
    if other:  # a TensorFlow graph of a NumPy model is not written yet: said, not a crash
        named = ", ".join(f"{c!r} ({k})" for c, k in other.items())
        exportable = [k for k in KINDS if kind_class(k).exports]
        raise InputError(f"bank export writes {', '.join(exportable)} classes as TensorFlow graphs; these "
                         f"classes are another kind: {named}. Serve them with 'bank serve', train them again with "
                         f"--kind {exportable[0]} to export them, or export the others with --classes")
    if router.comparison != "raw":  # the graph compares raw scores, as a bank of one unit does
        kinds = sorted({d.kind for d in router.detectors.values()})
        raise InputError(f"these classes score in different units ({', '.join(kinds)}) and are compared relative "
                         "to each class's held-out scores, which the exported graph does not do: export each kind "
                         "apart with --classes and --name")
    if len(router.groups) > 1:
        specs = "; ".join(f"{s.height}x{s.width}x{s.channels}: {', '.join(router.classes[k] for k in ks)}"
                          for s, ks in router.groups.items())
        raise InputError(f"the classes have different input specs ({specs}); a SavedModel takes one: export them "
                         "apart with --classes and --name")
    spec = next(iter(router.groups))
    home = Path(out) / name
    version = next_version(home) if version is None else int(version)
    if version < 1:
        raise InputError(f"version: expected a whole number >= 1, got {version}")
    final = home / str(version)
    if final.exists():
        raise InputError(f"{final} already exists: choose another --version (versions are never overwritten)")
    home.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=home))  # not a number: TF Serving ignores it
    try:
        _write(router, spec, tmp / "model")
        meta = tmp / "model" / METADATA
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(metadata(router, spec, name, version), indent=2) + "\n")
        os.rename(tmp / "model", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write(router: Router, spec: InputSpec, path: Path) -> None:
    import keras
    import tensorflow as tf

    from .._quiet import quiet_stderr

    models, with_complexity, images_only = _graph(router)
    images = tf.TensorSpec((None, *spec.shape), tf.float32, name="images")
    archive = keras.export.ExportArchive()
    for m in {id(m): m for m in models}.values():  # a backbone shared by classes, tracked once
        archive.track(m)
    archive.add_endpoint("serving_default", with_complexity,
                         input_signature=[images, tf.TensorSpec((None,), tf.float64, name="complexity")])
    archive.add_endpoint("images_only", images_only, input_signature=[images])
    with quiet_stderr():
        archive.write_out(str(path), verbose=False)
