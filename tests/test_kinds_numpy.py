"""The NumPy kinds of class model: PCA and HOG + one-class SVM, and HOG itself.

Small and fast: scikit-learn's 8x8 digits and random images. Checks that the
NumPy scoring paths equal the libraries they stand in for, that a model
round-trips through plain arrays, and that scoring a restored model imports
neither scikit-learn nor scikit-image nor TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bank.errors import InputError
from bank.kinds.base import NotFittedError
from bank.kinds.hog import hog, hog_length
from bank.kinds.hog_ocsvm import HOGOneClassSVM
from bank.kinds.pca import FusedPCA, PCADetector, fused_scores


@pytest.fixture(scope="module")
def digit_images(digits):
    """The 8x8 digits as (N, 8, 8, 1) and their labels."""
    images, labels = digits
    return images[..., None], labels


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(images, np.ones((1, factor, factor, 1), dtype=images.dtype))


def auroc(own: np.ndarray, other: np.ndarray) -> float:
    """P(a score of the other class > one of the own class), ties half: the AUROC."""
    diff = other[:, None] - own[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def round_trip(model, tmp_path):
    """Through JSON and np.savez / np.load(allow_pickle=False), as a registry would store it."""
    params, arrays = model.to_arrays()
    path = tmp_path / f"{model.kind}.npz"
    np.savez(path, **arrays)
    with np.load(path, allow_pickle=False) as stored:
        loaded = {k: stored[k] for k in stored.files}
    return type(model).from_arrays(json.loads(json.dumps(params)), loaded)


# ------------------------------------------------------------------ HOG

HOG_SETTINGS = [
    dict(orientations=9, pixels_per_cell=(4, 4), cells_per_block=(3, 3)),
    dict(orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2)),  # odd cells
    dict(orientations=7, pixels_per_cell=(5, 6), cells_per_block=(1, 2), block_norm="L1"),  # edges not exact
    dict(orientations=8, pixels_per_cell=(3, 3), cells_per_block=(2, 3), block_norm="L1-sqrt"),
    dict(orientations=12, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2", transform_sqrt=True),
]


@pytest.mark.parametrize("settings", HOG_SETTINGS)
def test_hog_equals_skimage_gray(settings, digit_images):
    skimage_feature = pytest.importorskip("skimage.feature")
    rng = np.random.default_rng(0)
    batches = [rng.random((6, 29, 33)).astype(np.float32), rng.random((3, 24, 26)),
               upscale(digit_images[0][:8], 4)[..., 0]]
    for batch in batches:
        ours = hog(batch, **settings)
        ref = np.stack([skimage_feature.hog(im, **settings) for im in batch])
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
        assert ours.shape[1] == hog_length(batch.shape[1], batch.shape[2], settings["orientations"],
                                           settings["pixels_per_cell"], settings["cells_per_block"])


@pytest.mark.parametrize("settings", HOG_SETTINGS[:3])
def test_hog_equals_skimage_rgb(settings):
    skimage_feature = pytest.importorskip("skimage.feature")
    rng = np.random.default_rng(1)
    smooth = rng.random((4, 30, 30, 3)).astype(np.float32)
    levels = (rng.integers(0, 3, (4, 30, 30, 3)) / 2).astype(np.float32)  # many ties between channels
    for batch in (smooth, levels):
        ours = hog(batch, **settings)
        ref = np.stack([skimage_feature.hog(im, channel_axis=-1, **settings) for im in batch])
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_hog_gray_channel_axis_and_errors():
    x = np.random.default_rng(2).random((3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(hog(x, 9, 4, 2), hog(x[..., None], 9, 4, 2))
    with pytest.raises(InputError, match="too small"):
        hog(x, 9, (8, 8), (3, 3))
    with pytest.raises(InputError, match="block_norm"):
        hog(x, 9, 4, 2, block_norm="L3")


# ------------------------------------------------------------------ PCA

def test_pca_fused_equals_per_detector(digit_images):
    images, labels = digit_images
    dets = [PCADetector(n_components=n).fit(images[labels == d]) for d, n in ((0, 5), (1, 12), (2, 0.9), (3, 1))]
    scores = fused_scores(dets, images[:200])
    assert scores.shape == (200, 4)
    for k, det in enumerate(dets):
        np.testing.assert_allclose(scores[:, k], det.score_samples(images[:200]), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(FusedPCA(dets)(images[:200]), scores)
    assert np.all(scores >= 0)


def test_pca_caps_components_and_reconstructs(digit_images):
    images, labels = digit_images
    few = images[labels == 4][:10]
    det = PCADetector(n_components=50).fit(few)
    assert det.components_.shape == (9, 64)  # N - 1
    rec = det.reconstruct(few)
    assert rec.shape == few.shape and rec.dtype == np.float32 and 0 <= rec.min() and rec.max() <= 1
    np.testing.assert_allclose(det.score_samples(few), 0, atol=1e-10)  # N - 1 directions span the training set
    with pytest.raises(InputError, match="n_components"):
        PCADetector(n_components=1.5)
    with pytest.raises(InputError, match="shape"):
        det.score_samples(images[:2, :4])
    with pytest.raises(NotFittedError, match="not fitted"):
        PCADetector().score_samples(few)


# --------------------------------------------------------- HOG + one-class SVM

def test_ocsvm_decision_equals_sklearn(digit_images):
    from sklearn.svm import OneClassSVM

    images, labels = digit_images
    x = upscale(images[labels == 3], 2)
    det = HOGOneClassSVM(nu=0.2, max_samples=None, weight_share=1.0).fit(x[:150])
    svm = OneClassSVM(kernel="rbf", nu=0.2, gamma=det.gamma_).fit(det.features(x[:150]))
    probe = upscale(images[:300], 2)
    np.testing.assert_allclose(det.decision_function(probe), svm.decision_function(det.features(probe)),
                               rtol=0, atol=1e-6)
    ks = svm.decision_function(det.features(probe)) - det.intercept_
    near = ks > 1e-3 * det.dual_coef_.sum()  # elsewhere the kernel sum has too few digits left to take its log
    assert near.sum() > 100
    np.testing.assert_allclose(det.score_from_decision(svm.decision_function(det.features(probe)))[near],
                               det.score_samples(probe)[near], rtol=1e-6)


def test_ocsvm_keeps_the_heaviest_support_vectors(digit_images):
    """weight_share keeps the fewest heaviest support vectors carrying that share of the weight: fewer to
    score against, the class still told from the others as well."""
    from sklearn.metrics import roc_auc_score

    from bank.kinds.hog_ocsvm import heaviest

    np.testing.assert_array_equal(heaviest(np.array([0.1, 0.5, 0.2, 0.2]), 0.6), [1, 2])  # 0.5 + first 0.2
    np.testing.assert_array_equal(heaviest(np.array([0.1, 0.5, 0.2, 0.2]), 1.0), [0, 1, 2, 3])
    images, labels = digit_images
    whole = HOGOneClassSVM(weight_share=1.0).fit(images[labels == 4])
    kept = HOGOneClassSVM(weight_share=0.6).fit(images[labels == 4])
    assert len(kept.support_vectors_) < 0.8 * len(whole.support_vectors_)
    assert kept.dual_coef_.sum() >= 0.6 * whole.dual_coef_.sum() - 1e-9
    assert set(map(bytes, kept.support_vectors_)) <= set(map(bytes, whole.support_vectors_))
    auroc = [roc_auc_score(labels != 4, d.score_samples(images)) for d in (whole, kept)]
    assert auroc[1] > auroc[0] - 0.01, auroc
    with pytest.raises(InputError, match="weight_share"):
        HOGOneClassSVM(weight_share=0)


def test_ocsvm_score_monotone_and_bounded(digit_images):
    images, labels = digit_images
    det = HOGOneClassSVM().fit(images[labels == 5])
    decision = det.decision_function(images)
    score = det.score_samples(images)
    order = np.argsort(score)
    assert np.all(np.diff(decision[order]) <= 1e-12)  # higher score, lower (or equal) decision
    assert np.all(score >= 0) and np.all(np.isfinite(score))
    assert np.ptp(score[labels != 5]) > 1  # other digits spread out: no ceiling, no underflow
    clear = np.abs(decision) > 1e-9  # the SVM's own boundary sits at threshold_, up to rounding
    np.testing.assert_array_equal((score < det.threshold_)[clear], (decision > 0)[clear])
    noise = np.random.default_rng(3).random((5, 8, 8, 1)).astype(np.float32)
    assert np.all(det.score_samples(noise) >= 0)
    with pytest.raises(InputError, match="gamma"):
        HOGOneClassSVM(gamma="wide")


# ------------------------------------------------------------ both kinds

@pytest.fixture(scope="module")
def fitted(digit_images):
    images, labels = digit_images
    zeros = images[labels == 0]
    return {"pca": PCADetector().fit(zeros[:120]), "hog-ocsvm": HOGOneClassSVM().fit(zeros[:120])}


@pytest.mark.parametrize("kind", ["pca", "hog-ocsvm"])
def test_round_trip_scores_identically(kind, fitted, digit_images, tmp_path):
    model = fitted[kind]
    restored = round_trip(model, tmp_path)
    assert restored.kind == kind
    probe = digit_images[0][:100]
    np.testing.assert_array_equal(restored.score_samples(probe), model.score_samples(probe))
    rgb = np.random.default_rng(4).random((40, 12, 10, 3)).astype(np.float32)
    model = type(model)().fit(rgb[:30])
    np.testing.assert_array_equal(round_trip(model, tmp_path).score_samples(rgb[30:]), model.score_samples(rgb[30:]))


@pytest.mark.parametrize("kind, field", [("pca", "mean"), ("pca", "components"),
                                         ("hog-ocsvm", "support_vectors"), ("hog-ocsvm", "dual_coef")])
def test_from_arrays_names_a_bad_array(kind, field, fitted):
    model = fitted[kind]
    params, arrays = model.to_arrays()
    missing = {k: v for k, v in arrays.items() if k != field}
    with pytest.raises(InputError, match=f"missing array '{field}'"):
        type(model).from_arrays(params, missing)
    bad = {**arrays, field: arrays[field][..., :-1]}
    with pytest.raises(InputError, match=f"'{field}' expected shape"):
        type(model).from_arrays(params, bad)
    with pytest.raises(InputError, match="input_shape"):
        type(model).from_arrays({**params, "input_shape": [8, 8]}, arrays)


def test_scoring_restored_models_imports_no_heavy_library(fitted, digit_images, tmp_path):
    for kind, model in fitted.items():
        params, arrays = model.to_arrays()
        np.savez(tmp_path / f"{kind}.npz", **arrays)
        (tmp_path / f"{kind}.json").write_text(json.dumps(params))
    np.save(tmp_path / "x.npy", digit_images[0][:50])
    code = f"""
import json, sys
import numpy as np
from bank.kinds.pca import PCADetector, fused_scores
from bank.kinds.hog_ocsvm import HOGOneClassSVM
d = {str(tmp_path)!r}
x = np.load(d + "/x.npy")
out = {{}}
for kind, cls in (("pca", PCADetector), ("hog-ocsvm", HOGOneClassSVM)):
    with np.load(d + f"/{{kind}}.npz", allow_pickle=False) as z:
        model = cls.from_arrays(json.load(open(d + f"/{{kind}}.json")), dict(z))
    out[kind] = model.score_samples(x).tolist()
    if kind == "pca":
        out["fused"] = fused_scores([model, model], x)[:, 0].tolist()
heavy = {{"sklearn", "skimage", "tensorflow", "keras", "torch"}}
out["heavy"] = sorted({{m.split(".")[0] for m in sys.modules}} & heavy)
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["heavy"] == []
    for kind, model in fitted.items():
        np.testing.assert_array_equal(out[kind], model.score_samples(digit_images[0][:50]))
    np.testing.assert_allclose(out["fused"], out["pca"], rtol=1e-9)


@pytest.mark.parametrize("kind", ["pca", "hog-ocsvm"])
def test_detectors_separate_two_digits(kind, digit_images):
    images, labels = digit_images
    zeros, ones = images[labels == 0], images[labels == 1]
    for own, other in ((zeros, ones), (ones, zeros)):
        model = (PCADetector() if kind == "pca" else HOGOneClassSVM()).fit(own[:120])
        held, rest = model.score_samples(own[120:]), model.score_samples(other)
        assert held.mean() < rest.mean()
        assert auroc(held, rest) > 0.9


def test_signed_hog_tells_an_image_from_its_inversion(digit_images):
    images, _ = digit_images
    x = images[:20]
    np.testing.assert_allclose(hog(x, pixels_per_cell=2), hog(1.0 - x, pixels_per_cell=2), atol=1e-6)
    signed, inverted = hog(x, pixels_per_cell=2, signed=True), hog(1.0 - x, pixels_per_cell=2, signed=True)
    assert np.abs(signed - inverted).max() > 0.1
    det = HOGOneClassSVM(signed=True).fit(images[:300])
    assert HOGOneClassSVM.from_arrays(*det.to_arrays()).signed is True
    params, arrays = det.to_arrays()
    del params["signed"]  # a card written before the option: unsigned, as it was fitted
    assert HOGOneClassSVM.from_arrays(params, arrays).signed is False


def test_a_bank_of_hog_classes_scores_in_one_hog_and_one_product(digits, monkeypatch):
    """Classes that share their HOG settings see the same vectors: a bank's batch is described once, not once a
    class, and every class's kernel sum comes from one float32 product (issue 28: a fast ae-hog), each class
    scoring as it would alone, its own images, other digits and noise."""
    import bank.kinds.hog_ocsvm as ho

    images, labels = digits
    x = images[:, :, :, None] if images.ndim == 3 else images
    dets = [HOGOneClassSVM(gamma_factor=g).fit(x[labels == d][:80]) for d, g in ((0, 4.0), (1, 1.0), (2, 8.0))]
    noise = np.random.default_rng(0).random((5, *x.shape[1:]))
    batch = np.concatenate([x[:40], x[labels == 1][:5], noise])
    score = ho.fused_scorer(dets)
    calls = []
    real = ho.hog
    monkeypatch.setattr(ho, "hog", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = score(batch)
    assert len(calls) == 1 and fused.shape == (len(batch), 3)
    monkeypatch.setattr(ho, "hog", real)
    for k, d in enumerate(dets):
        np.testing.assert_allclose(fused[:, k], d.score_samples(batch), rtol=1e-5, atol=1e-6)
