"""Kinds of class model beside the autoencoder (PCA, HOG + one-class SVM): one contract, routed by a bank."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bank.errors import InputError
from bank.kinds.base import ARRAYS_FILE, ClassModel
from bank.kinds.hog_ocsvm import HOGOCSVMModel
from bank.kinds.pca import PCAModel
from bank.answering.router import Router

KINDS = [PCAModel, HOGOCSVMModel]


@pytest.fixture(scope="module")
def split(digits):
    images, labels = digits
    return images[:1400], labels[:1400], images[1400:], labels[1400:]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bank_of_one_kind_tells_digits_apart(kind, split):
    x_train, y_train, x_test, y_test = split
    classes = [0, 1, 7]
    bank = Router({str(d): kind(n_components=16).fit(x_train[y_train == d]) if kind is PCAModel
                   else kind().fit(x_train[y_train == d]) for d in classes})
    keep = np.isin(y_test, classes)
    res = bank.score(x_test[keep])
    truth = y_test[keep].astype(str)
    assert np.mean(np.asarray(res.nearest) == truth) >= 0.9
    # each class flags few of its own and the scores are the kind's own: the group scorer equals each model
    for k, c in enumerate(res.classes):
        own = truth == c
        assert res.flags[own, k].mean() <= 0.2
        assert np.allclose(res.errors[:, k], bank.detectors[c].score_samples(x_test[keep]))


@pytest.mark.parametrize("kind", KINDS)
def test_the_contract(kind, split):
    x_train, y_train, x_test, y_test = split
    m = kind()
    assert isinstance(m, ClassModel)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.score_samples(x_test[:2])
    assert m.fit(x_train[y_train == 0]) is m
    assert m.training_["n_calibration"] + m.training_["n_train"] == int((y_train == 0).sum())
    own, other = m.score_samples(x_test[y_test == 0]), m.score_samples(x_test[y_test == 1])
    assert own.min() >= 0 and own.mean() < other.mean()
    assert m.predict(x_test[y_test == 0]).mean() < m.predict(x_test[y_test == 1]).mean()
    p = m.predict_proba(x_test[:5])
    assert p.shape == (5, 2) and np.allclose(p.sum(1), 1)
    # one photo-like colour image is one image, brought to the model's spec
    rgb = np.repeat(x_test[0][..., None], 3, axis=2)
    assert m.score_samples(rgb).shape == (1,)
    with pytest.raises(InputError, match="calibration_fraction"):
        kind(calibration_fraction=1.5).fit(x_train[:20])


@pytest.mark.parametrize("kind", KINDS)
def test_saved_and_loaded_plain_files(kind, split, tmp_path):
    x_train, y_train, x_test, _ = split
    m = kind().fit(x_train[y_train == 3])
    card = m.save(tmp_path)
    assert card["kind"] == kind.kind and set(card["files"]) == {ARRAYS_FILE}
    json.dumps(card)  # the card is plain JSON
    files = {name: (tmp_path / name).read_bytes() for name in card["files"]}
    back = kind.load(json.loads(json.dumps(card)), files)
    assert np.array_equal(back.score_samples(x_test[:50]), m.score_samples(x_test[:50]))
    assert back.stats_ == m.stats_
    # arrays of Python objects (a pickle) are refused, not unpickled
    buf = io.BytesIO()
    np.savez(buf, mean=np.array([object()], dtype=object))
    with pytest.raises(InputError, match="not plain arrays"):
        kind.load(card, {ARRAYS_FILE: buf.getvalue()})
    with pytest.raises(InputError, match="card kind"):
        kind.load({**card, "kind": "autoencoder"}, files)


def test_a_bank_mixing_kinds_compares_relative_errors(split, bank_registry, tmp_path):
    """An autoencoder, a PCA model and a HOG one-class SVM in one registry: routed, classified, served."""
    from fastapi.testclient import TestClient

    from bank.registry.store import Registry
    from bank.answering.server import create_app

    x_train, y_train, x_test, y_test = split
    reg = Registry(tmp_path / "mixed")
    reg.register("0", bank_registry.load_detector("0", runtime="keras"))
    reg.register("1", PCAModel(n_components=16).fit(x_train[y_train == 1]))
    reg.register("7", HOGOCSVMModel().fit(x_train[y_train == 7]))
    router = Router.from_registry(reg)
    assert router.kinds == ["autoencoder", "pca", "hog-ocsvm"] and router.comparison == "relative"
    keep = np.isin(y_test, [0, 1, 7])
    res = router.score(x_test[keep])
    truth = y_test[keep].astype(str)
    assert res.compare == "relative"
    assert np.mean(np.asarray(res.nearest) == truth) >= 0.9
    # the argmin and the margin read each log error centred and scaled by its unit, not raw units: the
    # autoencoder's and PCA's squared errors share a unit (its classes' mean log error, their pooled spread:
    # between them the ranking is the raw one); the HOG class, its width fitted per class, has its own
    sd = np.array([d.stats_.log_std for d in router.detectors.values()])
    lm = np.array([d.stats_.log_mean for d in router.detectors.values()])
    spread = np.array([np.sqrt((sd[0] ** 2 + sd[1] ** 2) / 2)] * 2 + [sd[2]])
    expected = (np.log(res.errors) - np.array([(lm[0] + lm[1]) / 2] * 2 + [lm[2]])) / spread
    np.testing.assert_allclose(res.rank, expected)
    assert res.nearest == [res.classes[i] for i in np.argmin(expected, axis=1)]
    # one kind's classes keep comparing raw errors (autoencoders and PCA share the unit)
    assert Router({"0": router.detectors["0"], "1": router.detectors["1"]}).comparison == "raw"
    assert Router({"7": router.detectors["7"]}).comparison == "relative"  # its kernel width is the class's own
    with pytest.raises(InputError, match="expected one of auto, raw, relative"):
        Router(router.detectors, compare="units")

    # the report draws reconstructions for the classes that reconstruct (not the HOG class), and its rule says
    # the margin compares relative log errors
    from bank.reports.report import write_report

    fig = write_report(tmp_path / "report", router, x_test[keep][:30], list(truth[:30]),
                       [f"{i}.png" for i in range(30)])
    assert fig["compare"] == "relative" and "montage_sample.png" in fig["pictures"].values()
    assert "relative log error" in (tmp_path / "report" / "report.html").read_text()

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((x_test[keep][0] * 255).astype(np.uint8)).save(buf, format="PNG")
    with TestClient(create_app(reg.root)) as client:
        doc = client.post("/v1/classify", content=buf.getvalue(), headers={"content-type": "image/png"}).json()
        kinds = {c["class"]: c["kind"] for c in client.get("/v1/classes").json()["classes"]}
    assert doc["compare"] == "relative" and doc["results"][0]["nearest"] == truth[0]
    assert set(doc["results"][0]["classes"]["7"]) >= {"error", "z", "p_value", "flag", "relative_z"}
    assert kinds == {"0": "autoencoder", "1": "pca", "7": "hog-ocsvm"}


def test_answering_imports_neither_tensorflow_nor_scikit_learn(split, tmp_path):
    x_train, y_train, x_test, _ = split
    for kind in KINDS:
        for d in (0, 1):
            folder = tmp_path / kind.kind / str(d)
            folder.mkdir(parents=True)
            card = kind().fit(x_train[y_train == d]).save(folder)
            (folder / "card.json").write_text(json.dumps(card))
    np.save(tmp_path / "x.npy", x_test[:20])
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        from bank.kinds.pca import PCAModel
        from bank.kinds.hog_ocsvm import HOGOCSVMModel
        from bank.answering.router import Router
        x = np.load({str(tmp_path / "x.npy")!r})
        for kind in (PCAModel, HOGOCSVMModel):
            models = {{}}
            for d in ("0", "1"):
                folder = Path({str(tmp_path)!r}) / kind.kind / d
                card = json.loads((folder / "card.json").read_text())
                models[d] = kind.load(card, {{n: (folder / n).read_bytes() for n in card["files"]}})
            print(Router(models).classify(x)[:3])
        heavy = sorted(m for m in ("tensorflow", "keras", "sklearn", "skimage", "torch") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


# ---------------------------------------------------------------- through the registry and the command line

@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory, digits):
    """PNG folders of digits 0, 1 and 7 (train: 60 each; test: 20 each), a corrupt file among the 0s."""
    from PIL import Image

    images, labels = digits
    root = tmp_path_factory.mktemp("kind-digits")
    for d in (0, 1, 7):
        own = images[labels == d]
        for split, part in (("train", own[:60]), ("test", own[60:80])):
            folder = root / split / str(d)
            folder.mkdir(parents=True)
            for i, x in enumerate(part):
                Image.fromarray((x * 255).astype(np.uint8)).resize((16, 16)).save(folder / f"{i}.png")
    (root / "train" / "0" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.mark.parametrize("kind", ["pca", "hog-ocsvm"])
def test_a_kind_through_the_command_line(kind, digit_folders, tmp_path, capsys):
    from bank.cli import main
    from bank.registry.store import Registry

    reg = str(tmp_path / "reg")
    assert main(["train-all", str(digit_folders / "train"), "--kind", kind, "--registry", reg, "--jobs", "1",
                 "--epochs", "3"]) == 0
    assert f"--epochs: {kind} does not take it; ignored" in capsys.readouterr().err
    card = json.loads((tmp_path / "reg" / "0" / "1" / "card.json").read_text())
    assert card["kind"] == kind and list(card["files"]) == [ARRAYS_FILE]
    assert card["training"]["skipped_files"]["count"] == 1
    assert Registry(reg).verify() == []

    assert main(["list", "--registry", reg]) == 0
    assert kind in capsys.readouterr().out
    assert main(["show", "7", "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert f"model        {kind}" in out and ARRAYS_FILE in out

    assert main(["evaluate", str(digit_folders / "test"), "--registry", reg, "--out", str(tmp_path / "rep"),
                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["accuracy"] >= 0.85

    assert main(["classify", str(digit_folders / "test" / "7" / "0.png"), "--registry", reg, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["nearest"] == "7"
    assert doc["compare"] == ("raw" if kind == "pca" else "relative")  # hog-ocsvm's unit is each class's own
    assert main(["classify", str(digit_folders / "test" / "7" / "0.png"), "--registry", reg, "--json",
                 "--compare", "raw"]) == 0
    assert json.loads(capsys.readouterr().out)["compare"] == "raw"

    # export refuses by name and says what to do instead
    assert main(["export", str(tmp_path / "out"), "--registry", reg]) == 1
    err = capsys.readouterr().err
    assert f"'0' ({kind})" in err and "bank serve" in err

    # answered from the registry in a fresh process: neither TensorFlow nor scikit-learn imported
    code = textwrap.dedent(f"""
        import sys
        from bank import Registry, Router
        router = Router.from_registry(Registry({reg!r}))
        print(router.classify([{str(digit_folders / "test" / "1" / "0.png")!r}]))
        print("HEAVY", sorted(m for m in ("tensorflow", "keras", "sklearn", "skimage") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['1']" in out.stdout and "HEAVY []" in out.stdout, out.stdout

    # a changed array file is caught before it is loaded
    arrays = tmp_path / "reg" / "1" / "1" / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[:-10] + b"0123456789")
    problems = Registry(reg).verify()
    assert len(problems) == 1 and "checksum mismatch" in str(problems[0])


def test_the_autoencoder_honours_the_same_contract(bank_registry, digits, tmp_path):
    from bank import AutoencoderModel

    det = bank_registry.load_detector("7")
    images, labels = digits
    assert isinstance(det, ClassModel) and det.kind == "autoencoder"
    x = images[1400:1500]
    np.testing.assert_array_equal(det.score_samples(x), det.reconstruction_error(x))
    assert det.predict(x[labels[1400:1500] == 7]).mean() < det.predict(x[labels[1400:1500] != 7]).mean()
    assert det.predict_proba(x[:3]).shape == (3, 2)
    keras_det = bank_registry.load_detector("7", runtime="keras")
    assert keras_det.save(tmp_path, litert=False)["kind"] == "autoencoder"  # as every kind: test_contract.py
    with pytest.raises(RuntimeError, match="not fitted"):
        AutoencoderModel().score_samples(x)
