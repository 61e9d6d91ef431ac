"""`bank export`: the active bank as one SavedModel that TensorFlow alone answers, as the router does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bank import AutoencoderModel, Registry
from bank.cli import main
from bank.answering.export import export_bank
from bank.io.images import InputSpec, complexity, to_spec
from bank.answering.router import Router

from conftest import tiny_detector

#: Loads the export with TensorFlow only, runs both signatures, and saves every output.
LOADER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    folder, inputs, out = sys.argv[1:]
    x = np.load(inputs)
    model = tf.saved_model.load(folder)
    full = model.signatures["serving_default"](images=tf.constant(x["images"]),
                                               complexity=tf.constant(x["complexity"]))
    plain = model.signatures["images_only"](images=tf.constant(x["images"]))
    assert not [m for m in sys.modules if m == "bank" or m.startswith("bank.")], "the export needs bank"
    np.savez(out, **{k: v.numpy() for k, v in full.items()}, **{"plain_" + k: v.numpy() for k, v in plain.items()})
""")

NUMBERS = ("error", "z", "score", "test_z", "p_value", "conformal_p_value", "margin", "complexity_z")


@pytest.fixture(scope="module")
def probe(digits):
    """Held-out 0s, 1s and 7s, other digits, then a blank, a flat gray, noise and an inverted digit."""
    images, labels = digits
    held = images[1400:][np.isin(labels[1400:], (0, 1, 7))][:40]
    rng = np.random.default_rng(3)
    odd = np.stack([np.zeros((8, 8)), np.full((8, 8), 0.5), rng.random((8, 8)), 1 - held[0]])
    return np.concatenate([held, images[1400:1420], odd.astype(np.float32)])[..., None]


def _run_export(folder, images, cx, tmp_path) -> dict:
    """Every output of both signatures, from a fresh process that imports TensorFlow and not bank."""
    np.savez(tmp_path / "in.npz", images=images, complexity=cx)
    proc = subprocess.run([sys.executable, "-c", LOADER, str(folder), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "out.npz", allow_pickle=True) as out:  # strings come back as object arrays
        return {k: out[k] for k in out.files}


def _same(got: dict, want, prefix: str = "", atol: float = 1e-9) -> None:
    for k in NUMBERS:
        ref = getattr(want, {"error": "errors", "conformal_p_value": "conformal_p"}.get(k, k))
        if ref is None:
            assert prefix + k not in got
            continue
        tol = {"atol": 1e-5} if k in ("score", "p_value") else {"atol": atol}
        np.testing.assert_allclose(got[prefix + k], ref, rtol=1e-5, **tol, err_msg=k)  # NaN where the router has NaN
    np.testing.assert_array_equal(got[prefix + "flag"], want.flags)
    np.testing.assert_array_equal(got[prefix + "flag_error"], want.flag_error)
    np.testing.assert_array_equal(got[prefix + "flag_margin"], want.flag_margin)
    np.testing.assert_array_equal(got[prefix + "argmin"], np.argmin(want.errors, axis=1))
    np.testing.assert_array_equal(got[prefix + "unknown"], want.unknown)
    assert [s.decode() for s in got[prefix + "nearest"]] == want.nearest
    assert [s.decode() for s in got[prefix + "label"]] == want.labels


def test_export_answers_as_the_router_without_bank(bank_registry, probe, tmp_path):
    folder = export_bank(bank_registry, tmp_path / "models")
    assert folder == tmp_path / "models" / "bank" / "1"
    assert (folder / "saved_model.pb").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name != "1"], "the temporary folder is left behind"

    router = Router.from_registry(bank_registry, runtime="keras")
    spec = next(iter(router.groups))
    x = to_spec(probe, spec)
    got = _run_export(folder, x, complexity(x), tmp_path)
    full = router.score(probe)
    assert set(full.labels[-4:]) == {"unknown"} and full.labels[:40].count("unknown") < 8, "the probe misses a case"
    _same(got, full)
    _same(got, router.result(router.errors(probe)), prefix="plain_")  # no complexities: the router's fallback

    meta = json.loads((folder / "assets.extra" / "bank.json").read_text())
    assert meta["classes"] == router.classes == ["0", "1", "7"]
    assert meta["input"] == {"height": 8, "width": 8, "channels": 1, "dtype": "float32", "range": [0.0, 1.0],
                             "color": "gray (luminosity)"}
    assert meta["class_versions"]["7"]["version"] == bank_registry.active_version("7")
    assert meta["rule"] == {"method": "complexity", "threshold": 3.0, "margin": 0.2, "complexity_threshold": 4.0}


def test_export_keeps_a_chosen_rule(bank_registry, probe, tmp_path):
    rule = {"threshold": 2.0, "method": "gaussian", "margin": None, "complexity_threshold": None}
    folder = export_bank(bank_registry, tmp_path / "m", name="digits", classes=["1", "7"], **rule)
    router = Router.from_registry(bank_registry, ["1", "7"], runtime="keras", **rule)
    x = to_spec(probe, next(iter(router.groups)))
    got = _run_export(folder, x, complexity(x), tmp_path)
    _same(got, router.score(probe))
    assert not got["flag_margin"].any() and not got["flag_complexity"].any()


def test_cli_export_versions_and_refusals(bank_registry, tmp_path, capsys):
    out = tmp_path / "models"
    assert main(["export", str(out), "--registry", str(bank_registry.root), "--classes", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(out / "bank" / "1") and doc["classes"] == ["0"]
    assert main(["export", str(out), "--registry", str(bank_registry.root), "--classes", "0"]) == 0
    assert "wrote " + str(out / "bank" / "2") in capsys.readouterr().out
    # an existing version is never overwritten; a name that is no folder name is refused; nothing is left behind
    assert main(["export", str(out), "--registry", str(bank_registry.root), "--version", "1"]) == 1
    assert "bank/1 already exists" in capsys.readouterr().err
    assert main(["export", str(out), "--registry", str(bank_registry.root), "--name", "../up"]) == 1
    assert "../up" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "bank").iterdir()) == ["1", "2"]
    assert not (tmp_path / "up").exists()


def test_export_refuses_mixed_input_specs(digits, tmp_path):
    images, labels = digits
    reg = Registry(tmp_path / "reg")
    reg.register("0", tiny_detector(images[labels == 0][:120], epochs=2))
    big = AutoencoderModel(spec=InputSpec(12, 12, "gray"), epochs=2, seed=0, verbose=0)
    reg.register("1", big.fit(images[labels == 1][:120]))
    with pytest.raises(ValueError, match=r"different input specs \(8x8x1: 0; 12x12x1: 1\)"):
        export_bank(reg, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pb"))
    assert (export_bank(reg, tmp_path / "out", classes=["1"]) / "saved_model.pb").is_file()


def test_failed_write_leaves_no_version(bank_registry, tmp_path, monkeypatch):
    import bank.answering.export as ex

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ex, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        export_bank(bank_registry, tmp_path / "m")
    assert list((tmp_path / "m" / "bank").iterdir()) == []


@pytest.mark.parametrize("settings", [dict(orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
                                           block_norm="L2-Hys"),
                                      dict(orientations=8, pixels_per_cell=(3, 5), cells_per_block=(2, 1),
                                           block_norm="L1", signed=True),
                                      dict(orientations=6, pixels_per_cell=(4, 4), cells_per_block=(1, 2),
                                           block_norm="L1-sqrt", colour=True),
                                      dict(orientations=12, pixels_per_cell=(5, 5), cells_per_block=(3, 3),
                                           block_norm="L2")])
def test_the_hog_graph_is_the_numpy_hog(settings, digits):
    """The HOG an exported ae-hog graph computes is bank.kinds.hog's: gray and colour, every block norm,
    signed, cells that do not fit whole, flat and stepped images (gradients on bin edges)."""
    import tensorflow as tf

    from bank.kinds.hog import hog
    from bank.kinds.hog_graph import hog_graph

    settings = dict(settings)
    colour = settings.pop("colour", False)
    rng = np.random.default_rng(0)
    images, _ = digits
    x = np.kron(images[:12], np.ones((3, 3), np.float32))[..., None]  # 24x24 digits
    steps = np.tile(np.repeat(np.arange(4, dtype=np.float32) / 4, 6), (24, 1))  # 0 and 90-degree gradients
    x = np.concatenate([x, np.zeros((1, 24, 24, 1), np.float32), np.stack([steps, steps.T])[..., None],
                        rng.random((3, 24, 24, 1)).astype(np.float32)])
    if colour:  # and 8-bit colour, whose channels often tie in gradient: the same channel must win
        x = np.concatenate([x, x[::-1] * 0.5, rng.random(x.shape).astype(np.float32)], axis=-1)
        eight = rng.integers(0, 4, (12, 24, 24, 3)) / 3  # 4 levels a channel: ties everywhere
        smooth = np.round(np.kron(rng.random((12, 6, 6, 3)), np.ones((4, 4, 1))) * 255) / 255
        x = np.concatenate([x, eight, smooth]).astype(np.float32)
    want = hog(x, **settings)
    got = hog_graph(tf.constant(x), **{"signed": False, **settings}).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_an_ae_hog_bank_exports_and_answers_as_the_router(digits, tmp_path):
    """The default kind for small gray images exports: the autoencoders and the HOG SVMs in one graph, the HOG
    of the images made once, answering as the router does."""
    import warnings

    from bank.kinds.ae_hog import AEHOGModel

    images, labels = digits
    reg = Registry(tmp_path / "reg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny autoencoders say they have not finished learning
        for d in (0, 1, 7):
            reg.register(str(d), AEHOGModel(ae={"epochs": 8, "batch_size": 32}).fit(images[:1400][labels[:1400] == d]))
    folder = export_bank(reg, tmp_path / "models", name="digits")
    meta = json.loads((folder / "assets.extra" / "bank.json").read_text())
    assert meta["classes"] == ["0", "1", "7"]
    x = images[1400:1460][..., None].astype(np.float32)
    want = Router.from_registry(reg, runtime="keras").score(x)
    got = _run_export(folder, x, complexity(x), tmp_path)
    _same(got, want, atol=1e-5)  # within 1e-5 (errors 5.6e-7 when written), every flag and label the router's
