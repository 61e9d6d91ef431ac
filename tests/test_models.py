"""Architectures follow the input spec; training validates its inputs."""

import numpy as np
import pytest

from bank import AutoencoderModel, NotFittedError
from bank.nets import models
from bank.io.images import InputSpec
from conftest import tiny_detector


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (64, 64, 3), (128, 128, 1), (30, 30, 1), (17, 23, 3)])
def test_default_architecture_reconstructs_the_input_shape(shape):
    name, params = models.default_architecture(shape)
    assert name == ("dense" if shape[0] * shape[1] <= 256 else "conv")
    model = models.build(name, shape, params)
    assert tuple(model.output_shape[1:]) == shape
    assert np.isfinite(model.predict(np.zeros((2, *shape), np.float32), verbose=0)).all()


def test_28x28_uses_the_seed_layout():
    assert models.default_architecture((28, 28, 1)) == ("conv", {"filters": [32, 64], "latent_dim": 16})


def test_configurable_filters_and_latent_size():
    model = models.build("conv", (32, 32, 1), {"filters": [8, 16, 16], "latent_dim": 4})
    assert model.get_layer("latent").units == 4
    assert [layer.filters for layer in model.layers if layer.__class__.__name__ == "Conv2D"] == [8, 16, 16]
    with pytest.raises(ValueError, match="architecture: expected one of"):
        models.build("vae", (8, 8, 1), {})
    with pytest.raises(ValueError, match="bad parameters"):
        models.build("dense", (8, 8, 1), {"nope": 1})


def test_conv_detector_trains_on_colour_images_of_odd_size():
    rng = np.random.default_rng(0)
    base = rng.random((1, 20, 18, 3), dtype=np.float32)
    images = np.clip(base + 0.05 * rng.standard_normal((40, 20, 18, 3)), 0, 1).astype(np.float32)
    det = tiny_detector(images, epochs=2)
    assert det.spec_ == InputSpec(20, 18, "rgb") and det.architecture_ == "conv"
    assert det.reconstruction_error(images[:3]).shape == (3,)
    np.testing.assert_array_equal(det.predict(images[:3]), (det.zscore(images[:3]) > det.threshold).astype(int))
    proba = det.predict_proba(images[:3])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 0], 0.5 * (1 - np.vectorize(__import__("math").erf)(det.zscore(images[:3]) / 2**0.5)))


def test_statistics_come_from_images_the_model_never_trained_on(digits):
    images, labels = digits
    det = tiny_detector(images[labels == 4], epochs=2)
    t = det.training_
    assert t["n_train"] + t["n_monitor"] + t["n_calibration"] == t["n_images"] == (labels == 4).sum()
    assert det.stats_.n == t["n_calibration"] >= 2


def test_the_same_seed_gives_the_same_model(digits):
    images, labels = digits
    a = tiny_detector(images[labels == 5], epochs=2, seed=3)
    b = tiny_detector(images[labels == 5], epochs=2, seed=3)
    assert a.stats_ == b.stats_


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({}, np.zeros((3, 8, 8), np.float32), "at least 4"),
        ({}, [], "at least one image"),
        ({"epochs": 0}, np.zeros((10, 8, 8), np.float32), "epochs"),
        ({"calibration_fraction": 1.5}, np.zeros((10, 8, 8), np.float32), "calibration_fraction"),
        ({"architecture": "vae"}, np.zeros((10, 8, 8), np.float32), "architecture"),
        ({}, np.full((10, 8, 8), 3.0, np.float32), r"\[0, 1\]"),
    ],
)
def test_fit_refuses_bad_input_clearly(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderModel(verbose=0, **kwargs).fit(X)


def test_scoring_before_fit_says_so():
    with pytest.raises(NotFittedError, match="not fitted"):
        AutoencoderModel().decision_function(np.zeros((1, 8, 8)))
