"""The geotrans kind: a network that recognises turns and flips of its class, through every layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bank.errors import InputError
from bank.io.images import InputSpec
from bank.io.inputs import prepare
from bank.kinds.base import ClassModel
from bank.io import augment
from bank.kinds.geotrans import NET_FILE, GeoTransModel, surprise, transform
from bank.registry.store import Registry
from bank.answering.router import Router
from conftest import classify_in_a_fresh_process

TINY = {"epochs": 6, "batch_size": 64, "transforms": 8, "crop": 1.0, "light": 0.0}  # digits: no mirror


def test_the_transformations_are_the_turns_and_the_mirror():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 1)
    np.testing.assert_array_equal(transform(x, 0), x)
    np.testing.assert_array_equal(transform(x, 1)[0, :, :, 0], np.rot90(x[0, :, :, 0]))
    np.testing.assert_array_equal(transform(x, 2)[1, :, :, 0], x[1, ::-1, ::-1, 0])
    np.testing.assert_array_equal(transform(x, 4)[0, :, :, 0], x[0, :, ::-1, 0])
    np.testing.assert_array_equal(transform(x, 5)[0, :, :, 0], np.rot90(x[0, :, ::-1, 0]))
    # eight different images of an image with no symmetry
    assert len({transform(x, t)[0].tobytes() for t in range(8)}) == 8
    # the training changes keep the size, stay in [0, 1], and do nothing when off
    rng = np.random.default_rng(0)
    big = np.random.default_rng(1).random((40, 8, 8, 3)).astype(np.float32)
    for changed in (augment.shift(big, 2, rng), augment.crop(big, 0.5, rng), augment.mirror(big, rng),
                    augment.light(big, 0.3, rng)):
        assert changed.shape == big.shape and changed.min() >= 0 and changed.max() <= 1
    assert augment.shift(big, 0, rng) is big and augment.crop(big, 1.0, rng) is big
    assert augment.light(big, 0.0, rng) is big
    mirrored = augment.mirror(big, rng)
    same = [np.array_equal(m, b) for m, b in zip(mirrored, big)]
    flipped = [np.array_equal(m, b[:, ::-1]) for m, b in zip(mirrored, big)]
    assert all(a or b for a, b in zip(same, flipped)) and 5 < sum(flipped) < 35
    cropped = augment.crop(big, 0.5, rng)  # nearest pixels of a window: every value is one of the image's
    assert all(np.isin(c, b).all() for c, b in zip(cropped, big))
    # surprise: -log softmax at the true transformation
    logits = np.array([[0.0, 0.0], [10.0, -10.0]])
    np.testing.assert_allclose(surprise(logits, np.array([0, 1])), [np.log(2), 20 + np.log1p(np.exp(-20))])


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    images, labels = digits
    reg = Registry(tmp_path_factory.mktemp("geotrans"))
    models = {}
    for d in (2, 4, 7):
        models[str(d)] = GeoTransModel(**TINY).fit(images[:1400][labels[:1400] == d])
        reg.register(str(d), models[str(d)])
    return models, reg


def test_its_score_is_the_surprise_at_the_transformations(trained, digits):
    models, _ = trained
    images, labels = digits
    m = models["7"]
    assert isinstance(m, ClassModel) and m.spec_ == InputSpec(8, 8, "gray")
    x = images[1400:1500]
    z = m.logits(prepare(x, m.spec_))
    assert z.shape == (100, 8, 8) and m.transforms == 8
    want = np.mean([surprise(z[:, t], np.full(100, t)) for t in range(8)], axis=0)
    np.testing.assert_allclose(m.score_samples(x), want, rtol=1e-6)
    own, other = labels[1400:1500] == 7, labels[1400:1500] != 7
    assert np.median(m.score_samples(x[own])) < np.median(m.score_samples(x[other]))
    bank = Router(models)
    assert bank.comparison == "raw"  # nats of surprise: one unit for every class of the kind
    keep = np.isin(labels[1400:], [2, 4, 7])
    res = bank.score(images[1400:][keep])
    assert np.mean(np.asarray(res.nearest) == labels[1400:][keep].astype(str)) >= 0.8
    assert res.conformal_p is not None and np.all((res.conformal_p > 0) & (res.conformal_p <= 1))


def test_bad_settings_are_named_before_training(digits):
    images, _ = digits
    for kw, field in [({"transforms": 6}, "transforms"), ({"epochs": 0}, "epochs"), ({"shift": 0.7}, "shift"),
                      ({"dropout": 1.0}, "dropout"), ({"filters": "16,32"}, "filters"), ({"crop": 0}, "crop"),
                      ({"light": -0.1}, "light"), ({"mirror": True, "transforms": 8}, "mirror"),
                      ({"spec": InputSpec(8, 12, "gray")}, "square")]:
        with pytest.raises(InputError, match=field):
            GeoTransModel(**kw).fit(images[:40])


def test_photos_are_brought_to_a_small_square():
    assert GeoTransModel.choose_spec(InputSpec(200, 300, "rgb")) == InputSpec(64, 64, "rgb")
    assert GeoTransModel.choose_spec(InputSpec(28, 28, "gray")) == InputSpec(28, 28, "gray")
    assert GeoTransModel.choose_spec(InputSpec(20, 30, "gray")) == InputSpec(30, 30, "gray")


def test_registered_loaded_and_answered_without_tensorflow(trained, digits, tmp_path):
    models, reg = trained
    images, _ = digits
    card = reg.entry("7").card
    assert card["kind"] == "geotrans" and {NET_FILE, "net-b1.tflite", "net-b4.tflite"} <= set(card["files"])
    assert len(card["params"]["history"]["loss"]) == TINY["epochs"]
    back = reg.load_detector("7")
    # LiteRT against Keras, batches of 1, 4 and a remainder
    for n in (1, 4, 7):
        np.testing.assert_allclose(back.score_samples(images[1400:1400 + n]),
                                   models["7"].score_samples(images[1400:1400 + n]), rtol=1e-4, atol=1e-5)
    assert back.stats_ == models["7"].stats_
    router = Router.from_registry(reg, ["2", "4", "7"])  # LiteRT networks, the classes shared among the cores
    np.testing.assert_allclose(router.errors(images[1400:1413])[:, 2], back.score_samples(images[1400:1413]),
                               rtol=1e-6)
    stdout = classify_in_a_fresh_process(reg.root, images[1400:1410], tmp_path)
    assert "HEAVY []" in stdout, stdout
    # a changed file is refused before it is loaded
    net = reg.entry("2").path / "net-b1.tflite"
    net.write_bytes(net.read_bytes()[:-4] + b"oops")
    assert any("checksum mismatch" in str(p) for p in reg.verify(load=False))


def test_a_network_of_the_wrong_shape_is_refused(trained):
    from bank.nets.netfiles import keras_from_bytes

    models, reg = trained
    data = (reg.entry("4").path / NET_FILE).read_bytes()
    with pytest.raises(InputError, match="card says"):
        keras_from_bytes(data, "geotrans model", NET_FILE, (8, 8, 1), (4,))


def test_trained_from_the_command_line(digits, tmp_path, capsys):
    from PIL import Image

    from bank.cli import main

    images, labels = digits
    folder = tmp_path / "sevens"
    folder.mkdir()
    for i, x in enumerate(images[labels == 7][:80]):
        Image.fromarray((x * 255).astype(np.uint8)).resize((12, 12)).save(folder / f"{i}.png")
    reg = str(tmp_path / "reg")
    assert main(["train", "7", str(folder), "--kind", "geotrans", "--epochs", "2", "--shift", "0",
                 "--patience", "3", "--registry", reg, "--json"]) == 0
    err = capsys.readouterr().err
    assert "--patience" in err and "ignored" in err and "--epochs" not in err  # geotrans takes --epochs
    card = json.loads((tmp_path / "reg" / "7" / "1" / "card.json").read_text())
    assert card["kind"] == "geotrans" and card["params"]["epochs"] == 2 and card["params"]["shift_pixels"] == 0
    assert card["input_spec"]["height"] == card["input_spec"]["width"] == 12
    assert main(["classify", str(folder / "0.png"), "--registry", reg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["nearest"] == "7"
    assert main(["outliers", "7", str(folder), "--registry", reg, "--quantile", "0.5"]) == 0
    assert "no montage: a geotrans model does not rebuild images" in capsys.readouterr().out
    # a size that cannot be turned is refused before any image is read
    assert main(["train", "8", str(folder), "--kind", "geotrans", "--size", "12x16", "--registry", reg]) != 0
    assert "square" in capsys.readouterr().err


def test_pets_example_runs_it_with_its_own_epochs(tmp_path):
    from photos import make_family

    root = Path(__file__).resolve().parent.parent
    cats = make_family(tmp_path / "cats", "stripes", 30, seed=1)
    dogs = make_family(tmp_path / "dogs", "blobs", 30, seed=1)
    proc = subprocess.run([sys.executable, str(root / "examples/pets.py"), "--cats", str(cats[0].parent),
                           "--dogs", str(dogs[0].parent), "--size", "16", "--color", "rgb", "--kind", "geotrans,pca",
                           "--epochs", "2", "--latent", "4", "--registry", str(tmp_path / "reg"), "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["kind"] == "geotrans" and 0 <= out["cat_auroc"] <= 1 and 0 <= out["accuracy"] <= 1
    assert out["kinds"]["geotrans"]["ignored_options"] == ["--latent"]  # it takes --epochs
    assert out["kinds"]["pca"]["ignored_options"] == ["--epochs", "--latent"]
    card = Registry(tmp_path / "reg").entry("cat", out["versions"]["cat"] if "versions" in out else 1).card
    assert card["kind"] == "geotrans" and card["params"]["epochs"] == 2


def test_exported_for_tensorflow_serving_as_the_router_answers(trained, digits, tmp_path):
    from test_export import _run_export

    from bank.answering.export import export_bank
    from bank.io.images import complexity, to_spec

    _, reg = trained
    images, _ = digits
    folder = export_bank(reg, tmp_path / "models", classes=["4", "7"])  # "2" was damaged above
    router = Router.from_registry(reg, ["4", "7"], runtime="keras")
    x = to_spec(images[1400:1430, ..., None], next(iter(router.groups)))
    got = _run_export(folder, x, complexity(x), tmp_path)
    want = router.score(images[1400:1430])
    np.testing.assert_allclose(got["error"], want.errors, rtol=1e-4, atol=1e-6)  # float32 graph, float64 router
    assert [s.decode() for s in got["nearest"]] == want.nearest
    np.testing.assert_array_equal(got["flag"], want.flags)


def test_auto_picks_pretrained_for_photos_ae_hog_for_small_gray_images_and_the_autoencoder_for_tiny_ones(digits, tmp_path, capsys):
    from photos import make_family

    from bank.cli import main
    from bank.kinds import choose_kind
    from bank.training.runs import make_detector

    images, labels = digits
    assert choose_kind(28, gray=True) == "ae-hog" and choose_kind(8, gray=True) == "autoencoder"
    assert choose_kind(16, gray=True) == "autoencoder" and choose_kind(17, gray=True) == "ae-hog"
    assert choose_kind(28, gray=False) == "pretrained" and choose_kind(200, gray=True) == "pretrained"
    assert choose_kind(8, gray=False) == "autoencoder"  # colour icons are not photos
    assert make_detector(images[:20], kind="auto").kind == "autoencoder"
    colour = [np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)] * 6
    with pytest.warns(UserWarning, match="auto chose pretrained, which does not take patience"):
        assert make_detector(colour, kind="auto", patience=3, epochs=2).kind == "pretrained"
    # small gray images of mixed sizes: ae-hog (their own sizes decide, not the 64x64 they are brought to)
    mixed = [np.zeros((20, 20, 1), np.float32), np.ones((24, 18, 1), np.float32)] * 4
    assert make_detector(mixed, kind="auto").kind == "ae-hog"
    photos = make_family(tmp_path / "stripes", "stripes", 40, seed=1)
    reg = str(tmp_path / "reg")
    # options given equal to the autoencoder's defaults still reach geotrans; the others are named as ignored
    assert main(["train", "stripes", str(photos[0].parent), "--kind", "geotrans", "--epochs", "2", "--batch-size",
                 "32", "--patience", "8", "--registry", reg, "--json"]) == 0
    got = capsys.readouterr()
    out = json.loads(got.out)
    assert out["kind"] == "geotrans" and out["input_spec"]["height"] == out["input_spec"]["width"] == 64
    assert "--patience: geotrans does not take it; ignored" in got.err
    card = Registry(reg).entry("stripes").card
    assert card["params"]["epochs"] == 2 and card["params"]["batch_size"] == 32
    assert card["extras"][0]["file"] == "loss.png"  # its loss curve, as an autoencoder's
    # auto on photos: the pretrained kind, which sees its network's size: a size asked for is refused, saying so
    assert main(["train", "blobs", str(photos[0].parent), "--size", "24x32", "--registry", reg]) == 1
    err = capsys.readouterr().err
    assert "kind auto: pretrained, for photos (colour images" in err and "leave --size and --color out" in err


def test_train_all_chooses_one_kind_for_the_whole_root(tmp_path, capsys):
    from photos import make_family

    from bank.cli import main

    make_family(tmp_path / "root" / "stripes", "stripes", 24, seed=1)
    make_family(tmp_path / "root" / "blobs", "blobs", 24, seed=1)
    reg = str(tmp_path / "reg")
    assert main(["train-all", str(tmp_path / "root"), "--jobs", "1", "--registry", reg]) == 0
    assert "kind auto: pretrained" in capsys.readouterr().err
    assert {Registry(reg).entry(c).kind for c in ("stripes", "blobs")} == {"pretrained"}


def test_a_loaded_model_keeps_its_settings(trained):
    _, reg = trained
    back = reg.load_detector("4")
    assert (back.epochs, back.batch_size, list(back.filters)) == (TINY["epochs"], TINY["batch_size"], [16, 32, 64])
