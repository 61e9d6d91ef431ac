"""Answering without TensorFlow: the LiteRT models written at registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bank import Registry, RegistryError, Router
from bank.registry.cards import parse_card
from bank.digest import sha256_file

from conftest import tiny_detector


def test_registration_writes_checked_litert_models(bank_registry):
    e = bank_registry.entry("0")
    files = {f: sha for f, sha in e.model_files if f.endswith(".tflite")}
    assert sorted(files) == ["model-b1.tflite", "model-b4.tflite"] and e.has_litert
    for f, sha in files.items():
        assert sha256_file(e.path / f) == sha
    assert e.card["params"]["litert"]["max_rel_diff"] < 1e-5


@pytest.mark.parametrize("n", [1, 2, 4, 5, 7, 70])  # one, a padded rest, a full batch, a single rest, a padded rest, many
def test_litert_and_keras_give_the_same_errors_and_labels(bank_registry, digits, n):
    images, _ = digits
    x = images[1400 : 1400 + n]
    lite = Router.from_registry(bank_registry, runtime="litert")
    ref = Router.from_registry(bank_registry, runtime="keras")
    assert all(type(d.model_).__name__ == "LiteModel" for d in lite.detectors.values())
    a, b = lite.score(x), ref.score(x)
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-5)
    assert a.labels == b.labels and list(a.nearest) == list(b.nearest)


def test_a_conv_model_converts_too(tmp_path, digits):
    images, labels = digits
    big = np.stack([np.asarray(Image.fromarray((x * 255).astype(np.uint8)).resize((20, 20))) for x in
                    images[labels == 3][:120]]).astype(np.float32) / 255  # 20x20: the conv architecture
    det = tiny_detector(big, epochs=1)
    assert det.architecture_ == "conv"
    reg = Registry(tmp_path / "reg")
    reg.register("3", det)
    lite = reg.load_detector("3", runtime="litert")
    np.testing.assert_allclose(lite.reconstruction_error(big[:40]), det.reconstruction_error(big[:40]), rtol=1e-5)
    x, rec = lite.reconstruct(big[:3])
    assert rec.shape == x.shape == (3, 20, 20, 1)


def _run_without_tensorflow(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python; it fails if TensorFlow or Keras was imported."""
    check = "\nimport sys\nassert not {'tensorflow', 'keras'} & set(sys.modules), 'TensorFlow was imported'\n"
    return subprocess.run([sys.executable, "-c", code + check], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_answering_never_imports_tensorflow(bank_registry, digits, tmp_path):
    images, _ = digits
    png = tmp_path / "digit.png"
    Image.fromarray((images[1500] * 255).astype(np.uint8)).save(png)
    np.save(tmp_path / "x.npy", images[1400:1410])
    code = (f"import numpy as np\nfrom bank import Registry, Router\n"
            f"r = Router.from_registry(Registry({str(bank_registry.root)!r}))\n"
            f"print(r.classify(np.load('x.npy')))\n"
            f"from bank.cli import main\n"
            f"assert main(['classify', {str(png)!r}, '--registry', {str(bank_registry.root)!r}, '--json']) == 0\n")
    done = _run_without_tensorflow(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"label"' in done.stdout
    assert "XNNPACK" not in done.stderr  # LiteRT's start-up line is not left on the terminal


def test_a_changed_litert_file_is_refused(bank_registry, tmp_path):
    reg = _copy(bank_registry, tmp_path)
    e = reg.entry("1")
    (e.path / "model-b4.tflite").write_bytes(b"\0" * 100)
    with pytest.raises(RegistryError, match="class '1' version 1: model-b4.tflite checksum mismatch"):
        reg.load_detector("1")
    with pytest.raises(RegistryError, match="checksum mismatch"):
        Router.from_registry(reg)
    assert [p.class_name for p in reg.verify(load=False)] == ["1"]


@pytest.mark.parametrize("payload", [b"not a flatbuffer at all", bytes(range(256)) * 40])
def test_a_planted_litert_file_with_a_fixed_checksum_is_refused_not_crashing(bank_registry, tmp_path, payload):
    reg = _copy(bank_registry, tmp_path)
    e = reg.entry("1")
    (e.path / "model-b1.tflite").write_bytes(payload)
    card = json.loads((e.path / "card.json").read_text())
    card["files"]["model-b1.tflite"] = sha256_file(e.path / "model-b1.tflite")  # the attacker fixes the checksum too
    (e.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match="class '1' version 1: cannot load its LiteRT model"):
        reg.load_detector("1")
    router = Router.from_registry(reg, skip_broken=True)
    assert router.classes == ["0", "7"] and router.skipped[0][0] == "1"


def test_a_litert_model_of_another_shape_is_refused(bank_registry, tmp_path):
    reg = _copy(bank_registry, tmp_path)
    e = reg.entry("7")
    card = json.loads((e.path / "card.json").read_text())
    card["input_spec"]["height"] = 12
    (e.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match=r"class '7' version 1: cannot load its LiteRT model.*\[1, 8, 8, 1\]"):
        reg.load_detector("7", runtime="litert")
    with pytest.raises(RegistryError, match=r"class '7' version 1: the model maps \(8, 8, 1\)"):
        reg.load_detector("7", runtime="keras")


@pytest.mark.parametrize("field", [
    {"files": [{"batch": 1, "file": "../../model-b1.tflite", "sha256": "0" * 64}]},
    {"files": [{"batch": 32, "file": "model-b32.tflite", "sha256": "0" * 64}]},  # no batch-1 model
    {"files": [{"batch": 1, "file": "model-b1.tflite", "sha256": "xyz"}]},
    {"files": "model-b1.tflite"},
    [],
])
def test_a_malformed_litert_field_of_an_old_card_is_refused(field):
    old = Path(__file__).parent / "data" / "registry-0.1" / "registry" / "0" / "1" / "card.json"
    card = dict(json.loads(old.read_text()), litert=field)  # written before every kind had one card format
    with pytest.raises(RegistryError, match="class 'x' version 1: card.json litert"):
        parse_card(json.dumps(card), "class 'x' version 1")


def test_an_entry_without_litert_answers_through_keras(tmp_path, digits, bank_registry):
    reg = Registry(tmp_path / "reg")
    det = bank_registry.load_detector("0", runtime="keras")
    reg.register("0", det, litert=False)
    assert reg.load_detector("0").model_.__class__.__name__ != "LiteModel"  # auto falls back
    with pytest.raises(RegistryError, match="class '0' version 1: no LiteRT model"):
        reg.load_detector("0", runtime="litert")


def test_a_failed_conversion_still_registers_the_class(tmp_path, bank_registry, monkeypatch):
    from bank.nets import runtime

    def broken(*a, **k):
        raise RuntimeError("converter says no")

    monkeypatch.setattr(runtime, "convert", broken)
    reg = Registry(tmp_path / "reg")
    with pytest.warns(UserWarning, match="class '0': .*registered without a LiteRT model.*converter says no"):
        e = reg.register("0", bank_registry.load_detector("0", runtime="keras"))
    assert e.card["params"]["litert"] == {"skipped": "RuntimeError: converter says no"} and not e.has_litert
    assert reg.load_detector("0").stats_.n > 0


def test_a_litert_detector_cannot_be_registered_again(tmp_path, bank_registry):
    with pytest.raises(ValueError, match="saving needs its Keras model; this one was loaded for LiteRT"):
        Registry(tmp_path / "reg").register("0", bank_registry.load_detector("0", runtime="litert"))


def _copy(reg: Registry, tmp_path: Path) -> Registry:
    import shutil

    shutil.copytree(reg.root, tmp_path / "copy")
    return Registry(tmp_path / "copy")


def test_stderr_survives_quiet_blocks_in_many_threads():
    """LiteRT interpreters made in several threads each quiet descriptor 2; taking turns, they leave it as it was
    (two at once left it on a dead temporary file: bank classify's "skipped" lines were lost, 14 runs in 20)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, random, threading, time
        from bank._quiet import quiet_stderr

        def work():
            with quiet_stderr():
                os.write(2, b"chatter\\n")
                time.sleep(random.random() * 0.01)

        threads = [threading.Thread(target=work) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        os.write(2, b"after the quiet threads\\n")
    """)
    for _ in range(6):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stderr == "after the quiet threads\n"  # the chatter muted, what follows kept
