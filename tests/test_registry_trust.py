"""The registry under stress: many writers at once, writers killed midway,
readers during re-registration, broken and planted entries, symlinks, and
property-based checks of the card parser."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from bank import Registry, RegistryError, Router
from bank.cli import main
from bank.registry.cards import parse_card
from bank.digest import sha256_file
from conftest import tiny_detector

WRITER = Path(__file__).with_name("registry_writer.py")


def model_file(entry):
    """An autoencoder entry's Keras model file."""
    return entry.path / "model.keras"


@pytest.fixture(scope="module")
def template(tmp_path_factory, digits):
    """A real fitted detector's model file and card fields, for writers that copy them."""
    images, labels = digits
    det = tiny_detector(images[labels == 1][:60], epochs=2)
    root = tmp_path_factory.mktemp("template")
    fields = det.save(root, litert=False)  # model.keras, and the card's fields
    (root / "fields.json").write_text(json.dumps(fields))
    return root


def writer(root, name, tag, template, *extra):
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(root), name, tag, str(template), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def assert_healthy(reg: Registry) -> None:
    """Every entry present is whole: its card parses and its model matches the checksum."""
    assert reg.verify(load=False) == []
    for name in reg.classes():
        for v in reg.versions(name):
            reg.check_model(reg.entry(name, v))


# ------------------------------------------------------------ concurrency and crashes

def test_eight_writers_at_once_lose_nothing(tmp_path, template):
    root, start = tmp_path / "reg", tmp_path / "go"
    plan = {"a": 4, "b": 2, "c": 1, "d": 1}  # writers per class, all starting together
    procs = []
    for name, n in plan.items():
        for w in range(n):
            procs.append(writer(root, name, f"{name}{w}", template, "--times", "3", "--start", str(start)))
    time.sleep(1.0)  # let every writer reach the start line
    start.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for _, e in outs]

    reg = Registry(root)
    assert reg.classes() == ["a", "b", "c", "d"]
    for name, n in plan.items():
        versions = reg.versions(name)
        assert versions == list(range(1, 3 * n + 1))  # unique, none skipped, none lost
        tags = sorted(reg.entry(name, v).card["training"]["writer"] for v in versions)
        assert tags == sorted(f"{name}{w}/{i}" for w in range(n) for i in range(3))
        assert reg.active_version(name) == versions[-1]  # the newest registration is active
    reported = sorted(int(v) for out, _ in outs for v in out.split())
    assert len(reported) == 24
    assert_healthy(reg)
    assert reg.leftovers() == []
    assert reg.load_detector("a").stats_.n > 0  # a real model, loadable


@pytest.mark.parametrize("point", ["save", "card", "rename", "active", "remove"])
def test_a_writer_killed_midway_leaves_a_readable_registry(tmp_path, template, point):
    root = tmp_path / "reg"
    first = writer(root, "a", "first", template, "--times", "2")
    assert first.wait(timeout=60) == 0
    p = writer(root, "a", "killed", template, "--die-at", point)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL

    reg = Registry(root)
    assert_healthy(reg)  # whole entries only
    versions = reg.versions("a")
    if point in ("save", "card"):
        assert versions == [1, 2] and reg.active_version("a") == 2
    elif point in ("rename", "active"):  # whole and in place, but the writer died before activating it
        assert versions == [1, 2, 3] and reg.active_version("a") == 2
        assert reg.entry("a", 3).card["training"]["writer"] == "killed/0"
    else:  # remove: the version is gone from view, its files wait in the trash
        assert versions == [1]
    leftovers = reg.leftovers()
    assert bool(leftovers) == (point in ("save", "card", "remove", "active"))
    if point in ("card", "active"):  # cleaned by gc; the others by the next registration
        assert reg.gc() == leftovers and reg.leftovers() == []
        assert_healthy(reg)
    again = writer(root, "a", "after", template)
    assert again.wait(timeout=60) == 0
    assert reg.active_version("a") == max(versions) + 1
    assert reg.leftovers() == []
    assert_healthy(reg)


def test_writers_killed_at_random_moments(tmp_path, template):
    """Kill writers at random times while others keep writing: only whole entries survive."""
    root = tmp_path / "reg"
    rng = random.Random(0)
    kills = 0
    for _ in range(6):
        victim = writer(root, "x", "victim", template, "--times", "1000")  # still writing when killed
        time.sleep(rng.uniform(0.3, 1.2))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        kills += victim.returncode == -signal.SIGKILL
        assert_healthy(Registry(root))
    assert kills >= 4  # most were killed mid-run rather than finishing
    reg = Registry(root)
    reg.gc()
    assert reg.leftovers() == []
    n = len(reg.versions("x"))
    assert reg.versions("x") == list(range(1, n + 1))


def test_gc_leaves_a_live_writer_alone(tmp_path, template):
    """A temporary folder in use is not a leftover, however long its writer takes."""
    from bank.registry.store import _locked

    reg = Registry(tmp_path)
    cdir = tmp_path / "a"
    cdir.mkdir()
    busy = cdir / ".tmp-busy"
    with _locked(cdir / ".tmp-busy.lock"):
        busy.mkdir()
        os.utime(busy, (0, 0))  # ancient
        assert reg.gc() == [] and busy.exists()
    assert set(reg.gc()) == {busy, cdir / ".tmp-busy.lock"}  # its writer is gone
    assert not busy.exists()


def test_a_router_keeps_working_while_its_class_is_re_registered(two_classes, fitted, digits):
    images = digits[0][:20]
    reg = two_classes
    router = Router.from_registry(reg)
    before = router.errors(images)
    reg.register("1", fitted["0"])  # a new version of class 1 (another model)
    np.testing.assert_array_equal(router.errors(images), before)  # the loaded versions serve on
    newer = router.reload()
    assert newer.versions["1"][0] == 2 and newer.versions["0"] == router.versions["0"]
    assert newer.detectors["0"] is router.detectors["0"]  # unchanged classes are not loaded again
    np.testing.assert_allclose(newer.errors(images)[:, 1], before[:, 0], rtol=1e-5)

    # a broken new version is refused: the loaded one keeps serving
    entry = reg.register("1", fitted["1"])
    model_file(entry).write_bytes(model_file(entry).read_bytes()[:100])
    kept = newer.reload()
    assert kept.versions["1"][0] == 2 and kept.detectors["1"] is newer.detectors["1"]
    assert "version 3" in kept.skipped[0][1] and "still using version 2" in kept.skipped[0][1]


# ------------------------------------------------------------ integrity

@pytest.fixture(scope="module")
def fitted(digits):
    images, labels = digits
    return {str(d): tiny_detector(images[labels == d][:60], epochs=2) for d in (0, 1)}


@pytest.fixture
def two_classes(tmp_path, fitted):
    reg = Registry(tmp_path / "reg")
    for name, det in fitted.items():
        reg.register(name, det)
    return reg


def test_a_truncated_model_is_refused_by_name_and_skip_broken_loads_the_rest(two_classes):
    reg = two_classes
    model = model_file(reg.entry("1"))
    model.write_bytes(model.read_bytes()[:-50])
    with pytest.raises(RegistryError, match="class '1' version 1: model.keras checksum mismatch"):
        Router.from_registry(reg)
    router = Router.from_registry(reg, skip_broken=True)
    assert router.classes == ["0"] and router.skipped[0][0] == "1"


def test_an_active_file_naming_a_missing_version_is_an_error(two_classes):
    (two_classes.root / "0" / "ACTIVE").write_text("9\n")
    with pytest.raises(RegistryError, match="class '0': ACTIVE names version '9'.*bank activate 0"):
        two_classes.entry("0")
    assert [(p.class_name, p.version) for p in two_classes.verify(load=False)] == [("0", None)]


def test_cli_verify_and_skip_broken(two_classes, tmp_path, capsys):
    from PIL import Image

    root = str(two_classes.root)
    assert main(["registry", "verify", "--registry", root]) == 0
    assert "2 entries checked (cards, checksums, and models loaded in safe mode): all sound" in capsys.readouterr().out
    model = model_file(two_classes.entry("0"))
    data = bytearray(model.read_bytes())
    data[len(data) // 3] ^= 0x01  # one byte
    model.write_bytes(bytes(data))
    assert main(["registry", "verify", "--registry", root, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["problems"][0]["class"] == "0" and "checksum" in report["problems"][0]["error"]

    img = tmp_path / "d.png"
    Image.new("L", (8, 8), 0).save(img)
    assert main(["classify", str(img), "--registry", root]) == 1
    assert "class '0' version 1: model.keras checksum mismatch" in capsys.readouterr().err
    assert main(["classify", str(img), "--registry", root, "--skip-broken", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "skipped a broken class: class '0' version 1" in err
    doc = json.loads(out)
    assert doc["classes"] == ["1"] and doc["skipped_classes"][0]["class"] == "0"


def test_list_marks_the_active_version_and_a_broken_class(two_classes, fitted, capsys):
    two_classes.register("0", fitted["0"])
    two_classes.activate("0", 1)
    (two_classes.root / "1" / "1" / "card.json").write_text("{")
    assert main(["list", "--registry", str(two_classes.root), "--json"]) == 0
    rows = {c["class"]: c for c in json.loads(capsys.readouterr().out)["classes"]}
    assert rows["0"]["active"] == 1 and rows["0"]["versions"] == [1, 2]
    assert "not valid JSON" in rows["1"]["broken"]
    model = model_file(two_classes.entry("0"))
    model.write_bytes(model.read_bytes() + b"x")
    assert main(["list", "--registry", str(two_classes.root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^0\s+BROKEN\s+1,2\s+class '0' version 1: model.keras checksum mismatch", out, re.M)


# ------------------------------------------------------------ security

def test_a_model_with_a_lambda_layer_is_refused(two_classes):
    import keras

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Lambda(lambda t: t * 0.0)(inp)
    planted = keras.Model(inp, out)
    entry = two_classes.entry("0")
    planted.save(model_file(entry))
    card = dict(entry.card, files={**entry.card["files"], "model.keras": sha256_file(model_file(entry))})
    # the attacker fixed the checksum too
    (entry.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match="class '0' version 1: .*cannot load model.keras.*Lambda"):
        two_classes.load_detector("0", runtime="keras")
    problems = two_classes.verify()
    assert [(p.class_name, p.version) for p in problems] == [("0", 1)]


def test_a_model_config_naming_code_outside_keras_is_refused(two_classes):
    """A crafted model.keras whose config asks for os.system as an activation."""
    import zipfile

    entry = two_classes.entry("0")
    with zipfile.ZipFile(model_file(entry)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(files["config.json"])
    layer = next(x for x in cfg["config"]["layers"] if "activation" in x["config"])
    layer["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system",
                                     "registered_name": "system"}
    files["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(model_file(entry), "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    card = dict(entry.card, files={**entry.card["files"], "model.keras": sha256_file(model_file(entry))})
    (entry.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match="class '0' version 1: .*cannot load model.keras"):
        two_classes.load_detector("0", runtime="keras")
    assert [(p.class_name, p.version) for p in two_classes.verify()] == [("0", 1)]


def test_a_model_swapped_after_its_check_is_not_loaded(two_classes, fitted, monkeypatch, digits, tmp_path):
    """model.keras replaced by another valid model right after its checksum was checked: the model
    loaded is the one checked (from the bytes read), never the file read again."""
    reg = two_classes
    swapped = tmp_path / "other.keras"
    fitted["1"].model_.save(swapped)  # a valid model of the same shape, with other weights
    read = Registry._read_checked
    swaps = []

    def read_then_swap(self, e, file, sha256, keep=True):
        data = read(self, e, file, sha256, keep)
        if file == "model.keras" and not swaps:
            os.replace(swapped, e.path / file)  # between the check and the load
            swaps.append(file)
        return data

    monkeypatch.setattr(Registry, "_read_checked", read_then_swap)
    det = reg.load_detector("0", runtime="keras")
    assert swaps == ["model.keras"]
    x = digits[0][:16]
    np.testing.assert_allclose(det.reconstruction_error(x), fitted["0"].reconstruction_error(x), rtol=1e-5)
    assert not np.allclose(fitted["1"].reconstruction_error(x), fitted["0"].reconstruction_error(x), rtol=1e-3)
    with pytest.raises(RegistryError, match="class '0' version 1: model.keras checksum mismatch"):
        reg.load_detector("0", runtime="keras")  # the swapped file itself is refused at the next load


def test_symlinks_out_of_the_registry_are_not_followed(two_classes, fitted, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (two_classes.root / "evil").symlink_to(outside, target_is_directory=True)
    assert "evil" not in two_classes.classes()
    with pytest.raises(RegistryError, match="symbolic link"):
        two_classes.register("evil", fitted["0"])
    assert list(outside.iterdir()) == []
    assert any("symbolic link" in str(p) for p in two_classes.verify(load=False))

    secret = tmp_path / "secret.keras"
    model = model_file(two_classes.entry("1"))
    secret.write_bytes(model.read_bytes())
    model.unlink()
    model.symlink_to(secret)
    with pytest.raises(RegistryError, match="class '1' version 1: .*symbolic link"):
        two_classes.load_detector("1")


@pytest.mark.parametrize("name", ["..", ".", "../../etc", "a/../b", "x\u202e", "con\x7f"])
def test_names_that_could_escape_are_refused(two_classes, fitted, name):
    with pytest.raises(RegistryError, match="class name"):
        two_classes.register(name, fitted["0"])
    assert two_classes.classes() == ["0", "1"]


def test_a_failed_training_or_save_writes_nothing(tmp_path, digits, capsys):
    folder = tmp_path / "few"
    folder.mkdir()
    from PIL import Image

    for i in range(2):
        Image.new("L", (8, 8), i * 50).save(folder / f"{i}.png")
    root = tmp_path / "reg"
    assert main(["train", "few", str(folder), "--registry", str(root)]) == 1
    assert "at least" in capsys.readouterr().err
    assert not root.exists() or list(root.iterdir()) == []

    images, labels = digits
    det = tiny_detector(images[labels == 0][:40], epochs=1)
    reg = Registry(root)

    def broken_save(path):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    det.model_.save = broken_save
    with pytest.raises(OSError, match="disk full"):
        reg.register("zero", det)
    assert reg.classes() == [] and reg.leftovers() == [] and [p.name for p in (root / "zero").iterdir()] == []


# ------------------------------------------------------------ the card parser, property-based

json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=True) | hs.text(max_size=8),
    lambda children: hs.lists(children, max_size=4) | hs.dictionaries(hs.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.text(max_size=200) | json_values.map(json.dumps))
def test_any_text_is_a_card_or_a_registry_error(text):
    try:
        card = parse_card(text, "class 'x' version 1")
    except RegistryError as e:
        assert str(e).startswith("class 'x' version 1: ")
    else:
        assert isinstance(card, dict) and card["format_version"] == 1


@pytest.fixture(scope="module")
def good_card(template):
    fields = json.loads((template / "fields.json").read_text())
    return {"format_version": 1, "class": "x", "version": 1, **fields}


FIELDS = ["format_version", "class", "version", "input_spec", "kind", "params", "files", "stats", "training"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=hs.sampled_from(FIELDS), sub=hs.one_of(hs.none(), hs.text(max_size=5)), value=json_values,
       drop=hs.booleans())
def test_a_mutated_card_is_accepted_whole_or_refused_clearly(good_card, field, sub, value, drop):
    card = json.loads(json.dumps(good_card))
    target = card
    if sub is not None and isinstance(card.get(field), dict):  # mutate one level down: stats.std, input_spec.height...
        target, field = card[field], sub if sub in card[field] or not card[field] else next(iter(card[field]))
    if drop:
        target.pop(field, None)
    else:
        target[field] = value
    try:
        parsed = parse_card(json.dumps(card), "class 'x' version 1")
    except RegistryError as e:
        assert "class 'x' version 1" in str(e)
    else:  # accepted: then the spec and stats it holds are usable
        from bank.io.images import InputSpec
        from bank.verdict.stats import ErrorStats

        spec, stats = InputSpec.from_dict(parsed["input_spec"]), ErrorStats.from_dict(parsed["stats"])
        assert spec.height >= 1 and spec.width >= 1 and stats.std > 0 and np.isfinite(stats.mean)


def test_activating_a_broken_version_is_refused(two_classes, fitted, capsys):
    two_classes.register("0", fitted["0"])
    model = model_file(two_classes.entry("0", 1))
    model.write_bytes(model.read_bytes()[:-1])
    with pytest.raises(RegistryError, match="class '0' version 1: model.keras checksum mismatch"):
        two_classes.activate("0", 1)
    assert two_classes.active_version("0") == 2
    assert main(["show", "0", "--version", "1", "--registry", str(two_classes.root), "--json"]) == 0
    assert "checksum mismatch" in json.loads(capsys.readouterr().out)["broken"]


def test_verify_without_a_registry_and_errors_in_json(tmp_path, capsys):
    assert main(["registry", "verify", "--registry", str(tmp_path / "none"), "--json"]) == 1
    out, err = capsys.readouterr()
    assert "bank registry verify: error: no registry at" in err and "no registry at" in json.loads(out)["error"]


def test_remove_keeps_the_class_folder_and_its_lock_and_odd_folders_are_ignored(two_classes, fitted):
    reg = two_classes
    cdir = reg.root / "0"
    lock = os.open(cdir / ".lock", os.O_RDONLY)  # a writer holding the class lock file open
    try:
        assert reg.remove("0") == [1]
        assert cdir.is_dir() and (cdir / ".lock").exists() and reg.classes() == ["1"]
        assert reg.register("0", fitted["0"]).version == 1 and reg.active_version("0") == 1
    finally:
        os.close(lock)
    for odd in ("\u00b2", "\u0661", "01", "7x"):  # not versions: superscript two, Arabic one, leading zero
        (cdir / odd).mkdir()
    assert reg.versions("0") == [1]
    (reg.root / ".lk").symlink_to(reg.root.parent / "outside.txt")
    (cdir / ".lock").unlink()
    (cdir / ".lock").symlink_to(reg.root.parent / "outside.txt")
    with pytest.raises(OSError):
        reg.activate("0", 1)
    assert not (reg.root.parent / "outside.txt").exists()


def test_unknown_is_not_a_class_name_and_nan_errors_are_refused():
    from bank.registry.store import validate_class_name
    from bank.verdict.decision import decide
    from bank.verdict.stats import ErrorStats

    for name in ("unknown", "Unknown", "UNKNOWN"):
        with pytest.raises(RegistryError, match="reserved"):
            validate_class_name(name)
    s = ErrorStats(0.01, 0.005, 10)
    with pytest.raises(ValueError, match="image b.png: class 'x' gave the error nan"):
        decide(np.array([[0.01, 0.02], [np.nan, 0.01]]), ["x", "y"], [s, s], ["a.png", "b.png"])


def test_a_card_whose_input_spec_disagrees_with_the_model_is_refused(two_classes, tmp_path, capsys):
    e = two_classes.entry("1")
    (e.path / "card.json").write_text(json.dumps({**e.card, "input_spec": {**e.card["input_spec"], "height": 12}}))
    with pytest.raises(RegistryError, match=r"class '1' version 1: the model maps \(8, 8, 1\).*\(12, 8, 1\)"):
        two_classes.load_detector("1", runtime="keras")
    with pytest.raises(RegistryError, match=r"class '1' version 1: cannot load its LiteRT model"):
        two_classes.load_detector("1")
    from PIL import Image

    (tmp_path / "data" / "0").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "data" / "0" / "x.png")
    out_file = tmp_path / "a_file"
    out_file.write_text("x")
    code = main(["evaluate", str(tmp_path / "data"), "--registry", str(two_classes.root), "--classes", "0", "--out",
                 str(out_file)])
    err = capsys.readouterr().err
    assert code == 1 and "bank evaluate: error:" in err and "a_file" in err  # an OSError, named, no traceback
