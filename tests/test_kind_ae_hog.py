"""The ae-hog kind: an autoencoder and a HOG one-class SVM of one class, scored as one, through every layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bank.errors import InputError
from bank.io.inputs import prepare
from bank.kinds.ae_hog import AE_FILE, AEHOGModel
from bank.kinds.base import ARRAYS_FILE, ClassModel
from bank.registry.store import Registry
from bank.answering.router import Router
from conftest import classify_in_a_fresh_process

TINY = {"epochs": 8, "batch_size": 32}


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    images, labels = digits
    reg = Registry(tmp_path_factory.mktemp("ae-hog"))
    models = {}
    for d in (0, 1, 7):
        with pytest.warns(UserWarning):  # the tiny autoencoder says it has not finished learning
            models[str(d)] = AEHOGModel(ae=TINY).fit(images[:1400][labels[:1400] == d])
        reg.register(str(d), models[str(d)])
    return models, reg


def test_two_experts_scored_as_one(trained, digits):
    models, _ = trained
    images, labels = digits
    m = models["7"]
    assert isinstance(m, ClassModel) and m.weight_ > 0
    x = images[1400:1500]
    e, h = m._parts(prepare(x, m.spec_))
    np.testing.assert_allclose(np.log(m.score_samples(x)), np.log(e) + m.weight_ * (np.log(h) - m.hog_log_mean_),
                               rtol=1e-9)
    own, other = labels[1400:1500] == 7, labels[1400:1500] != 7
    assert np.median(m.score_samples(x[own])) < np.median(m.score_samples(x[other]))
    bank = Router(models)
    assert bank.comparison == "raw"  # the HOG term is put on each class's footing: scores compare as errors
    keep = np.isin(labels[1400:], [0, 1, 7])
    res = bank.score(images[1400:][keep])
    assert np.mean(np.asarray(res.nearest) == labels[1400:][keep].astype(str)) >= 0.9
    np.testing.assert_allclose(res.errors[:, 2], models["7"].score_samples(images[1400:][keep]), rtol=1e-5)
    with pytest.raises(InputError, match="weight"):
        AEHOGModel(weight=-1).fit(images[:40])


def test_registered_loaded_and_answered_without_tensorflow(trained, digits, tmp_path):
    models, reg = trained
    images, _ = digits
    card = reg.entry("7").card
    assert card["kind"] == "ae-hog" and {AE_FILE, ARRAYS_FILE, "ae-b1.tflite"} <= set(card["files"])
    back = reg.load_detector("7")
    np.testing.assert_allclose(back.score_samples(images[1400:1450]), models["7"].score_samples(images[1400:1450]),
                               rtol=1e-4)  # LiteRT against Keras: float32 to 1e-5 of the error
    assert back.stats_ == models["7"].stats_
    stdout = classify_in_a_fresh_process(reg.root, images[1400:1410], tmp_path)
    assert "HEAVY []" in stdout, stdout
    # a changed file is refused before it is loaded
    arrays = reg.entry("1").path / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[:-4] + b"oops")
    assert any("checksum mismatch" in str(p) for p in reg.verify(load=False))


def test_trained_from_the_command_line(digits, tmp_path, capsys):
    from PIL import Image

    from bank.cli import main

    images, labels = digits
    folder = tmp_path / "sevens"
    folder.mkdir()
    for i, x in enumerate(images[labels == 7][:80]):
        Image.fromarray((x * 255).astype(np.uint8)).save(folder / f"{i}.png")
    reg = str(tmp_path / "reg")
    assert main(["train", "7", str(folder), "--kind", "ae-hog", "--epochs", "3", "--registry", reg, "--json"]) == 0
    capsys.readouterr()
    card = json.loads((tmp_path / "reg" / "7" / "1" / "card.json").read_text())
    assert card["kind"] == "ae-hog" and card["params"]["ae"]["training"]["epochs"] == 3
    assert main(["classify", str(folder / "0.png"), "--registry", reg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["nearest"] == "7"


def test_small_gray_images_get_a_dense_autoencoder_stacked_in_the_bank(digits, tmp_path):
    """For MNIST-sized images (more than 16x16, up to 32x32) the autoencoder inside is dense unless the user
    names one (the HOG term knows the shapes; the dense one answers at a seventh of the conv one's cost), its
    weights are written to stack a bank's classes, and the stacked bank scores as each class alone."""
    from bank.kinds.ae_hog import AE_DENSE, DENSE_LAYERS, inner_choice

    # what the user says of the autoencoder: a latent size alone keeps it dense, conv filters make it conv
    assert inner_choice((28, 28, 1), "auto", {"latent_dim": 16}) == ("dense", {**DENSE_LAYERS, "latent_dim": 16})
    assert inner_choice((28, 28, 1), "dense", None) == ("dense", DENSE_LAYERS)
    assert inner_choice((28, 28, 1), "auto", {"filters": [8]}) == ("auto", {"filters": [8]})
    assert inner_choice((8, 8, 1), "auto", None) == ("auto", None)  # tiny: the autoencoder's own choice

    images, labels = digits
    x = images[..., None] if images.ndim == 3 else images
    big = np.kron(x, np.ones((1, 3, 3, 1), x.dtype))[:, :24, :24]  # 24x24 digits
    reg = Registry(tmp_path / "reg")
    models = {}
    for d in (0, 1):
        with pytest.warns(UserWarning):  # few epochs: still learning
            models[str(d)] = AEHOGModel(ae=TINY).fit(big[:600][labels[:600] == d])
        reg.register(str(d), models[str(d)])
    ae = models["0"].ae_
    assert ae.architecture_ == "dense" and ae.params_ == DENSE_LAYERS
    card = reg.entry("0").card
    assert AE_DENSE in card["files"] and card["params"]["dense"]["max_rel_diff"] < 1e-5
    told = AEHOGModel(ae={**TINY, "architecture": "conv"})
    with pytest.warns(UserWarning):
        assert told.fit(big[:300][labels[:300] == 1]).ae_.architecture_ == "conv"
    stacked = Router.from_registry(reg)  # runtime auto: the dense weights stacked
    alone = Router.from_registry(reg, runtime="litert")  # each class's LiteRT network
    assert all(d.ae_.dense_ is not None for d in stacked.detectors.values())
    probe = big[600:700]
    np.testing.assert_allclose(stacked.errors(probe), alone.errors(probe), rtol=1e-5)
    assert stacked.classify(big[600:700][labels[600:700] == 1][:5]) == ["1"] * 5


def test_an_interrupted_training_goes_on_from_its_last_epoch(digits, tmp_path):
    """The autoencoder inside keeps its state in the run's folder: run again with the same images and
    settings, the training goes on from the last finished epoch; the key names the run."""
    images, labels = digits
    x = images[:1400][labels[:1400] == 3]
    settings = {"epochs": 6, "batch_size": 16, "patience": 10}

    def stop(e):
        if e["epoch"] == 3:
            raise KeyboardInterrupt

    first = AEHOGModel(ae={**settings, "progress": stop})
    first.checkpoint_dir = tmp_path
    key = first.run_key(x)
    assert key == AEHOGModel(ae=settings).run_key(x) != AEHOGModel(ae=settings).run_key(x[:-1])
    with pytest.raises(KeyboardInterrupt):
        first.fit(x)
    from bank.nets.trainstate import resumable

    assert resumable(tmp_path, key)  # what bank train checks before it says it resumes
    again = AEHOGModel(ae=settings)
    again.checkpoint_dir = tmp_path
    with pytest.warns(UserWarning):  # six epochs do not finish learning
        again.fit(x)
    assert 2 <= again.training_["resumed_from_epoch"] <= 3 and len(again.ae_.history_["loss"]) == 6
    assert AEHOGModel.resumes
