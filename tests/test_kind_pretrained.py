"""The pretrained kind: photos through ImageNet features, one model per class, one backbone per bank.

Trained on a few hundred of ../shared/data/pets' photos (skipped, saying why, without them); the backbone
is built once for the module (about 20 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bank import Registry, Router
from bank.errors import InputError, RegistryError
from bank.kinds.base import NotFittedError
from bank.kinds.pretrained import PretrainedModel

from conftest import classify_in_a_fresh_process

PETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pets"
pytestmark = pytest.mark.skipif(not (PETS / "cats").is_dir(), reason=f"no photos at {PETS}")

N_TRAIN, N_TEST = 160, 30


def photos(animal: str, start: int, n: int) -> list[np.ndarray]:
    return [np.asarray(Image.open(PETS / f"{animal}s" / f"{animal}.{i}.jpg").convert("RGB"))
            for i in range(start, start + n)]


@pytest.fixture(scope="module")
def pets_registry(tmp_path_factory):
    """A registry with a cat and a dog class of the pretrained kind, and photos neither was trained on."""
    root = tmp_path_factory.mktemp("pets") / "registry"
    reg = Registry(root)
    models = {}
    for animal in ("cat", "dog"):
        models[animal] = PretrainedModel(seed=0).fit(photos(animal, 0, N_TRAIN))
        reg.register(animal, models[animal])
    test = {a: photos(a, 1000, N_TEST) for a in ("cat", "dog")}
    return reg, models, test


def test_cats_are_told_from_dogs_by_their_own_classes(pets_registry):
    reg, _, test = pets_registry
    router = Router.from_registry(reg)
    res = router.score(test["cat"] + test["dog"])
    truth = ["cat"] * N_TEST + ["dog"] * N_TEST
    assert np.mean(np.asarray(res.nearest) == truth) >= 0.9
    assert np.mean(res.unknown) <= 0.15  # photos of the classes are mostly accepted
    assert router.comparison == "raw"  # one unit across the classes of the kind


def test_saved_and_loaded_it_answers_exactly_as_before(pets_registry):
    reg, models, test = pets_registry
    x = test["cat"][:5] + test["dog"][:5]
    loaded = Registry(reg.root).load_detector("cat")
    np.testing.assert_array_equal(loaded.score_samples(x), models["cat"].score_samples(x))
    assert loaded.stats_ == models["cat"].stats_


def test_the_registry_keeps_the_backbone_once_and_each_card_names_it(pets_registry):
    reg, _, _ = pets_registry
    shared = list((reg.root / ".shared").iterdir())
    assert len(shared) == 1 and shared[0].suffix == ".tflite"
    cards = [json.loads((reg.root / a / "1" / "card.json").read_text()) for a in ("cat", "dog")]
    assert cards[0]["shared"] == cards[1]["shared"]
    assert cards[0]["params"]["backbone"] == "efficientnet-lite0"
    # a class's own files stay small: its features as bytes
    size = sum(p.stat().st_size for p in (reg.root / "cat" / "1").iterdir())
    assert size < 1280 * N_TRAIN * 1.2


def test_one_backbone_pass_scores_every_class_as_each_would_alone(pets_registry):
    _, models, test = pets_registry
    x = Router(models).prepare(test["dog"][0])
    batch = np.stack([Router(models).prepare(img)[next(iter(x))] for img in test["dog"][:6]])
    calls = []
    bb = models["cat"].backbone_
    real = bb.model.predict_on_batch
    bb.model.predict_on_batch = lambda a: calls.append(len(a)) or real(a)
    try:
        fused = PretrainedModel.group_scorer([models["cat"], models["dog"]])(batch)
    finally:
        bb.model.predict_on_batch = real
    assert sum(calls) == len(batch)  # one pass per image for both classes
    alone = np.stack([models[c]._scores(batch) for c in ("cat", "dog")], axis=1)
    np.testing.assert_allclose(fused, alone, rtol=1e-6)


def test_a_changed_backbone_file_is_refused(pets_registry, tmp_path):
    import shutil

    reg, _, _ = pets_registry
    root = tmp_path / "copy"
    shutil.copytree(reg.root, root)
    f = next((root / ".shared").iterdir())
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="checksum") as err:
        Router.from_registry(Registry(root))
    assert ".shared" in str(err.value) and "shared by every class" in str(err.value)  # where, and what to do
    problems = Registry(root).verify(load=False)
    assert {p.class_name for p in problems} == {"cat", "dog"}


def test_classes_fitted_on_other_backbone_weights_are_refused_with_what_to_do(pets_registry):
    _, models, _ = pets_registry
    import copy

    other = copy.copy(models["dog"])
    other.backbone_ = copy.copy(models["dog"].backbone_)
    other.backbone_.weights_sha256 = "0" * 64
    with pytest.raises(InputError, match="retrain"):
        Router({"cat": models["cat"], "dog": other}).score(np.zeros((1, 32, 32, 3)))


def test_photos_of_other_things_are_unknown_with_the_reason(pets_registry):
    pytest.importorskip("skimage")
    from skimage import data as skdata
    from sklearn.datasets import load_digits, load_sample_images

    reg, _, test = pets_registry
    rng = np.random.default_rng(0)
    shapes = np.ones((4, 128, 128, 3), np.float32)
    shapes[0, 30:90, 30:90] = [1, 0, 0]
    shapes[1, :, 60:70] = 0
    yy, xx = np.mgrid[:128, :128]
    shapes[2][(yy - 64) ** 2 + (xx - 64) ** 2 < 40**2] = [0, 0, 1]
    shapes[3, ::16] = 0
    foreign = {
        "blank": [np.zeros((200, 200, 3)), np.ones((200, 200, 3)), np.full((200, 200, 3), 0.5)],
        "noise": [rng.random((200, 200, 3)) for _ in range(3)],
        "shapes": list(shapes),
        "digits": [np.kron(d / 16, np.ones((16, 16))) for d in load_digits().images[:5]],
        "photos": [skdata.astronaut(), skdata.coffee(), skdata.rocket(), skdata.camera(),
                   *load_sample_images().images],
    }
    router = Router.from_registry(reg)
    for what, images in foreign.items():
        res = router.score(images)
        assert res.unknown.mean() >= 0.8, (what, res.labels)
        rec = res.records()[0]
        assert all(c["reasons"] for c in rec["classes"].values()) or not rec["unknown"]
    # and the classes' own photos, in gray, are still theirs: a gray cat is a cat
    gray = [np.asarray(Image.fromarray(im).convert("L")) for im in test["cat"][:10]]
    assert np.mean(np.asarray(router.score(gray).labels) == "cat") >= 0.7


def test_answering_never_imports_tensorflow(pets_registry, tmp_path):
    reg, _, test = pets_registry
    out = classify_in_a_fresh_process(reg.root, np.stack(test["cat"][:3]).astype(np.float32) / 255, tmp_path)
    assert "HEAVY []" in out
    assert "cat" in out


def test_bad_parameters_and_unfitted_use_are_clear():
    with pytest.raises(InputError, match="head"):
        PretrainedModel(head="svm").fit(np.zeros((8, 8, 8, 3)))
    with pytest.raises(InputError, match="k: expected"):
        PretrainedModel(k=0).fit(np.zeros((8, 8, 8, 3)))
    with pytest.raises(InputError, match="224x224"):
        from bank.io.images import InputSpec

        PretrainedModel(spec=InputSpec(64, 64, "rgb")).fit(np.zeros((8, 8, 8, 3)))
    with pytest.raises(NotFittedError):
        PretrainedModel().score_samples(np.zeros((1, 8, 8, 3)))


def test_exported_for_tensorflow_serving_as_bank_score_answers(pets_registry, tmp_path):
    from test_export import _run_export

    from bank.answering.export import export_bank
    from bank.io.images import complexity, to_spec
    from bank.io.inputs import as_images

    reg, _, test = pets_registry
    folder = export_bank(reg, tmp_path / "models")
    router = Router.from_registry(reg)  # as `bank score` answers: the backbone through LiteRT
    images = test["cat"][:6] + test["dog"][:6] + [np.zeros((200, 200, 3), np.uint8)]
    x = to_spec(as_images(images), next(iter(router.groups)))  # pixels in [0, 1], as the signature takes
    got = _run_export(folder, x, complexity(x), tmp_path)
    want = router.score(images)
    np.testing.assert_allclose(got["error"], want.errors, atol=1e-4)
    assert [s.decode() for s in got["label"]] == want.labels
    np.testing.assert_array_equal(got["flag"], want.flags)


def test_the_autoencoder_head_learns_its_class_and_loads_back_exactly(pets_registry, tmp_path):
    _, _, test = pets_registry
    model = PretrainedModel(head="autoencoder", epochs=15, seed=0).fit(photos("cat", 0, 120))
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    reg = Registry(tmp_path / "reg")
    reg.register("cat", model)
    back = reg.load_detector("cat")
    x = test["cat"][:8] + test["dog"][:8]
    np.testing.assert_array_equal(back.score_samples(x), model.score_samples(x))
    scores = model.score_samples(x)
    assert np.mean(scores[:8]) < np.mean(scores[8:])  # its own photos rebuilt better than dogs
    assert len(list((tmp_path / "reg" / ".shared").iterdir())) == 1


def test_gc_removes_the_backbone_once_no_class_names_it(pets_registry, tmp_path):
    import os
    import shutil
    import time

    reg, _, _ = pets_registry
    root = tmp_path / "copy"
    shutil.copytree(reg.root, root)
    copy = Registry(root)
    old = time.time() - 3600
    for p in (root / ".shared").iterdir():
        os.utime(p, (old, old))
    assert copy.gc() == []  # in use by cat and dog
    copy.remove("cat")
    assert copy.gc() == []  # still by dog
    copy.remove("dog")
    gone = copy.gc()
    assert len(gone) == 1 and gone[0].parent.name == ".shared" and not gone[0].exists()


def test_a_class_own_photos_are_scored_as_new_ones_so_outliers_can_clean_its_folder(pets_registry):
    """A training photo is its own nearest neighbour among the class's features: scored with itself, every photo
    of the folder looked typical and `bank outliers` on the class's own folder listed none of 8 dogs planted
    among 150 cats. Left out, a training photo scores like a new photo of the class."""
    from bank.kinds.pretrained import knn_distance

    _, models, test = pets_registry
    cat = models["cat"]
    own = cat.score_samples(photos("cat", 0, 40))
    new = cat.score_samples(test["cat"])
    assert 0.9 < np.median(own) / np.median(new) < 1.1  # with itself among its 5 nearest: 0.79
    assert np.median(own) > 0.9 * cat.stats_.mean
    sims = np.array([[1.0, 0.9, 0.8, 0.7], [0.95, 0.9, 0.8, 0.7]])
    np.testing.assert_allclose(knn_distance(sims, 2), [1 - 0.85, 1 - 0.925])  # the first row's 1.0 is itself
    np.testing.assert_allclose(knn_distance(sims, 2, exclude_self=True), [1 - 0.85, 1 - 0.85])
