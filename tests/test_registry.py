"""Registry round trip, versions, activation, removal, integrity, names."""

import json

import numpy as np
import pytest

from bank import Registry, RegistryError
from bank.registry.store import validate_class_name
from conftest import tiny_detector


def model_file(entry):
    """An autoencoder entry's Keras model file."""
    return entry.path / "model.keras"


@pytest.fixture
def ones(digits):
    images, labels = digits
    return images[labels == 1][:60]


def test_round_trip_gives_the_same_errors_and_stats(tmp_path, ones):
    det = tiny_detector(ones, epochs=3)
    reg = Registry(tmp_path)
    entry = reg.register("one", det)
    assert (entry.class_name, entry.version) == ("one", 1)
    loaded = reg.load_detector("one")
    np.testing.assert_allclose(loaded.reconstruction_error(ones[:10]), det.reconstruction_error(ones[:10]), rtol=1e-6)
    assert loaded.stats_ == det.stats_ and loaded.spec_ == det.spec_
    card = json.loads((entry.path / "card.json").read_text())
    for key in ("class", "version", "created", "kind", "input_spec", "params", "files", "training", "stats",
                "versions", "format_version"):
        assert key in card
    assert card["training"]["n_calibration"] == det.stats_.n
    assert set(card["versions"]) >= {"bank", "tensorflow", "keras"}


def test_versions_activation_and_removal(tmp_path, ones):
    reg = Registry(tmp_path)
    det = tiny_detector(ones, epochs=2)
    assert [reg.register("one", det).version for _ in range(3)] == [1, 2, 3]
    reg.register("other", det)
    assert reg.classes() == ["one", "other"] and reg.active_version("one") == 3
    reg.activate("one", 1)
    assert reg.active_version("one") == 1
    assert reg.entry("one").version == 1
    assert reg.remove("one", 1) == [1]
    assert reg.active_version("one") == 3  # the newest left takes over
    assert reg.remove("one") == [2, 3]
    assert reg.classes() == ["other"]
    assert reg.versions("other") == [1]  # untouched
    with pytest.raises(RegistryError, match="no class 'one'"):
        reg.entry("one")
    with pytest.raises(RegistryError, match="no version 7"):
        reg.remove("other", 7)


def test_a_changed_model_file_is_refused(tmp_path, ones):
    reg = Registry(tmp_path)
    entry = reg.register("one", tiny_detector(ones, epochs=2))
    data = bytearray(model_file(entry).read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file(entry).write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="class 'one' version 1: model.keras checksum mismatch"):
        reg.load_detector("one")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: "{not json", "not valid JSON"),
        (lambda c: json.dumps({**c, "format_version": 99}), "unknown card format_version 99"),
        (lambda c: json.dumps({k: v for k, v in c.items() if k != "stats"}), "lacks the field 'stats'"),
        (lambda c: json.dumps({**c, "stats": {**c["stats"], "std": -1}}), "stats.std"),
        (lambda c: json.dumps({**c, "input_spec": {"height": 0, "width": 8}}), "height"),
        (lambda c: json.dumps({**c, "class": "two"}), "says class 'two'"),
    ],
)
def test_broken_cards_name_class_and_version(tmp_path, ones, mutate, match):
    reg = Registry(tmp_path)
    entry = reg.register("one", tiny_detector(ones, epochs=1))
    card = json.loads((entry.path / "card.json").read_text())
    (entry.path / "card.json").write_text(mutate(card))
    with pytest.raises(RegistryError, match=match) as e:
        reg.load_detector("one")
    assert "class 'one' version 1" in str(e.value)


def test_missing_card_is_a_clear_error(tmp_path, ones):
    reg = Registry(tmp_path)
    entry = reg.register("one", tiny_detector(ones, epochs=1))
    (entry.path / "card.json").unlink()
    with pytest.raises(RegistryError, match="class 'one' version 1: cannot read card.json"):
        reg.entry("one")


@pytest.mark.parametrize("name", ["", "  ", "../evil", "a/b", "a\\b", ".hidden", "x" * 101, "tab\there", "nul\x00"])
def test_unsafe_class_names_are_refused(name):
    with pytest.raises(RegistryError, match="class name"):
        validate_class_name(name)


def test_names_are_unicode_normalized():
    assert validate_class_name("cafe\u0301") == "caf\u00e9"
    assert validate_class_name("défaut-7 ok") == "défaut-7 ok"


def test_unfitted_detector_writes_nothing(tmp_path):
    from bank import AutoencoderModel, NotFittedError

    reg = Registry(tmp_path)
    with pytest.raises(NotFittedError):
        reg.register("one", AutoencoderModel())
    assert reg.classes() == []


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BANK_REGISTRY", str(tmp_path / "elsewhere"))
    assert Registry().root == tmp_path / "elsewhere"
    monkeypatch.delenv("BANK_REGISTRY")
    assert str(Registry().root) == "registry"
