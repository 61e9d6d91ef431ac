"""Training from folders of photos, streamed from disk: the scan, the tf.data pipeline, resuming, the card."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from photos import make_family

from bank import AutoencoderModel, Registry
from bank.cli import main
from bank.io.decoding import read_image
from bank.io.images import InputSpec, to_spec
from bank.io.pipeline import dataset, scan
from bank.answering.router import Router


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half: the rank form of the AUROC."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    """Two classes of synthetic photos to train on (with corrupt files among the stripes), and held-out ones."""
    root = tmp_path_factory.mktemp("photos")
    make_family(root / "train" / "stripes", "stripes", 90, seed=1, corrupt=True)
    make_family(root / "train" / "blobs", "blobs", 90, seed=1)
    held = {f: make_family(root / "held" / f, f, 30, seed=2) for f in ("stripes", "blobs")}
    return root, held


def test_scan_keeps_readable_files_and_names_the_rest(photo_root):
    root, _ = photo_root
    files = scan([root / "train" / "stripes"])
    assert len(files) == 90 and not files.gray
    assert sorted(os.path.basename(n) for n, _ in files.skipped) == ["cut.jpg", "empty.png", "notes.jpg"]
    reasons = dict((os.path.basename(n), r) for n, r in files.skipped)
    assert reasons["empty.png"] == "empty file" and "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["cut.jpg"] or "decode" in reasons["cut.jpg"]
    assert len(set(files.sizes)) > 10 and files.spec() == InputSpec(64, 64, "rgb")  # many sizes: 64x64 square


def test_the_pipeline_gives_the_pixels_the_router_sees(photo_root):
    root, _ = photo_root
    files = scan([root / "train" / "blobs"]).paths[:7]
    spec = InputSpec(24, 20, "gray")
    got = np.concatenate([x for x, y in dataset(files, spec, batch_size=3).as_numpy_iterator()])
    want = to_spec([read_image(p) for p in files], spec)
    np.testing.assert_array_equal(got, want)
    shuffled = np.concatenate([x for x, _ in dataset(files, spec, 3, seed=0, repeats=2).as_numpy_iterator()])
    assert len(shuffled) == 14 and not np.array_equal(shuffled[:7], want)


def test_streamed_training_separates_two_families(photo_root, tmp_path):
    root, held = photo_root
    reg = tmp_path / "reg"
    for family in ("stripes", "blobs"):
        assert main(["train", family, str(root / "train"), "--registry", str(reg), "--size", "32x32",
                     "--epochs", "8", "--batch-size", "16", "--kind", "autoencoder", "--json"]) == 0
    e = Registry(reg).entry("stripes")
    t = e.card["training"]
    assert t["data"] == "files, decoded once and kept in memory" and t["n_images"] == 90
    assert t["skipped_files"]["count"] == 3
    assert {os.path.basename(f["image"]) for f in t["skipped_files"]["files"]} == {"cut.jpg", "empty.png", "notes.jpg"}
    plot = e.path / "loss.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert e.card["extras"][0]["file"] == "loss.png"
    assert len(e.card["params"]["history"]["loss"]) == t["epochs_run"] >= 1
    assert not (reg / ".training" / "stripes").exists()  # the state is gone once registered

    router = Router.from_registry(Registry(reg))
    res = {f: router.score([read_image(p) for p in held[f]]) for f in held}
    k = {c: router.classes.index(c) for c in router.classes}
    for own, other in (("stripes", "blobs"), ("blobs", "stripes")):
        by_error = auroc(res[other].errors[:, k[own]], res[own].errors[:, k[own]])  # the detector alone
        by_flag_score = auroc(res[other].anomaly[:, k[own]], res[own].anomaly[:, k[own]])  # with the bank's tests
        assert by_error > 0.85 and by_flag_score > 0.9, (own, by_error, by_flag_score)
    labels = res["stripes"].nearest + res["blobs"].nearest
    accuracy = np.mean(np.array(labels) == np.array(["stripes"] * 30 + ["blobs"] * 30))
    assert accuracy > 0.85, accuracy


def test_a_file_gone_bad_during_training_is_left_out(photo_root, tmp_path, monkeypatch):
    """Streamed from disk each epoch (no cache), a file overwritten after the scan is reported, not fatal."""
    import bank.io.pipeline

    monkeypatch.setattr(bank.io.pipeline, "CACHE_BYTES", 0)
    root, _ = photo_root
    folder = tmp_path / "copy"
    folder.mkdir()
    for p in scan([root / "train" / "blobs"]).paths[:40]:
        (folder / os.path.basename(p)).write_bytes(open(p, "rb").read())
    files = scan([folder])
    det = AutoencoderModel(spec=InputSpec(16, 16, "gray"), epochs=2, batch_size=8, verbose=0)
    victim = files.paths[det._split(len(files))[0][0]]  # a training image
    open(victim, "w").write("overwritten after the scan")
    det.fit(files)
    assert det.training_["data"] == "files, streamed from disk each epoch"
    assert any(os.path.basename(victim) in w and "left out" in w for w in det.training_["warnings"])
    assert np.isfinite(det.stats_.mean)


def test_a_finished_checkpoint_is_reused_and_other_settings_start_over(digits, tmp_path):
    images, labels = digits
    x = images[labels == 3][:80]
    first = AutoencoderModel(epochs=3, batch_size=16, verbose=0, checkpoint_dir=tmp_path / "w").fit(x)
    assert first.resumed_from_ == 0 and json.loads((tmp_path / "w" / "run.json").read_text())["finished"]
    again = AutoencoderModel(epochs=3, batch_size=16, verbose=0, checkpoint_dir=tmp_path / "w").fit(x)
    assert again.resumed_from_ == 3 and again.history_ == first.history_
    np.testing.assert_allclose(again.stats_.mean, first.stats_.mean, rtol=1e-5)
    other = AutoencoderModel(epochs=2, batch_size=16, verbose=0, checkpoint_dir=tmp_path / "w").fit(x)
    assert other.resumed_from_ == 0 and len(other.history_["loss"]) == 2


def test_a_killed_training_resumes_where_it_stopped(photo_root, tmp_path):
    """SIGKILL mid-training, then the same command: it goes on from the last backed-up epoch."""
    root, _ = photo_root
    reg = tmp_path / "reg"
    cmd = [sys.executable, "-m", "bank", "train", "blobs", str(root / "train"), "--registry", str(reg),
           "--size", "32x32", "--epochs", "8", "--patience", "8", "--batch-size", "16", "--kind", "autoencoder"]
    home = reg / ".training" / "blobs"  # the run's state: <key prefix>/ under it

    def logged() -> int:
        logs = list(home.glob("*/history.csv"))
        return len(logs[0].read_text().splitlines()) if logs else 0

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while logged() < 3:  # the header and two epochs
            assert proc.poll() is None, "the training ended before it could be interrupted"
            assert time.monotonic() < deadline, "no two epochs logged within 240 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not Registry(reg).classes()  # nothing registered by the killed run
    [best] = home.glob("*/best.weights.h5")
    best.write_bytes(best.read_bytes()[:100])  # as if killed while writing the best epoch's weights
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    t = Registry(reg).entry("blobs").card["training"]
    assert 2 <= t["resumed_from_epoch"] < 8, t
    assert f"resumed an interrupted training after epoch {t['resumed_from_epoch']}" in again.stderr
    assert t["epochs_run"] == 8 and len(Registry(reg).entry("blobs").card["params"]["history"]["val_loss"]) == 8
    assert t["best_epoch"] > t["resumed_from_epoch"]  # the broken best was dropped: chosen among the later epochs
    assert "found the state of an interrupted training of class 'blobs'" in again.stderr
    assert not (reg / ".training").exists()  # the state is gone once registered


def test_the_pets_example_reports_both_detectors(photo_root, tmp_path):
    """examples/pets.py on the two synthetic families standing in for cats and dogs, as a user runs it (the
    autoencoder: blobs look alike turned, which geotrans, the default for photos, cannot learn)."""
    root, _ = photo_root
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "pets.py")
    proc = subprocess.run([sys.executable, example, "--cats", str(root / "train" / "stripes"), "--dogs",
                           str(root / "train" / "blobs"), "--size", "32", "--color", "rgb", "--epochs", "6",
                           "--batch-size", "16", "--kind", "autoencoder", "--registry", str(tmp_path / "reg"),
                           "--json"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["n_test"] == {"cat": 18, "dog": 18} and out["skipped"] == {"cat": 3, "dog": 0}
    assert out["n_train"] == {"cat": 72, "dog": 72}
    assert "cut.jpg" in proc.stderr  # the corrupt files are named
    assert out["cat_auroc"] > 0.8 and out["dog_auroc"] > 0.8 and out["accuracy"] > 0.8, out
    assert out["welch_t"] > 2, out
    assert len(out["examples"]) == 6 and all(0 <= e["probability_of_cat"] <= 1 for e in out["examples"])
    assert Registry(tmp_path / "reg").classes() == ["cat", "dog"]
