"""The benchmarks and the pets example run other kinds of class model (``--kind``), without TensorFlow.

examples/pets.py on the two synthetic photo families, benchmarks/speed.py on its synthetic 28x28 images,
benchmarks/open_set.py on a small MNIST-like IDX folder written here: each with the pca and hog-ocsvm
kinds side by side, as a user runs it (a fresh process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photos import make_family

from bank import Registry

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pets_runs_kinds_side_by_side(tmp_path):
    cats = make_family(tmp_path / "cats", "stripes", 40, seed=1)
    dogs = make_family(tmp_path / "dogs", "blobs", 40, seed=1)
    reg = tmp_path / "reg"
    proc = run("examples/pets.py", "--cats", str(cats[0].parent), "--dogs", str(dogs[0].parent), "--size", "32",
               "--color", "rgb", "--kind", "pca,hog-ocsvm", "--epochs", "3", "--registry", str(reg), "--json", cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert out["kind"] == "pca" and list(out["kinds"]) == ["pca", "hog-ocsvm"]
    for key in ("cat_auroc", "dog_auroc", "welch_t", "accuracy"):  # today's keys: the first kind's figures
        assert out[key] == out["kinds"]["pca"][key]
    for f in out["kinds"].values():  # figures, not a judgement of the kinds: stripes against blobs is easy in colour
        assert 0 <= f["cat_auroc"] <= 1 and 0 <= f["accuracy"] <= 1 and np.isfinite(f["welch_t"])
        assert f["n_train"] == {"cat": 32, "dog": 32} and len(f["examples"]) == 6
    assert out["accuracy"] > 0.8, out
    assert out["kinds"]["hog-ocsvm"]["ignored_options"] == ["--epochs"]
    assert "--epochs: the autoencoder's; ignored by pca, hog-ocsvm" in proc.stderr
    registry = Registry(reg)
    assert registry.classes() == ["cat", "dog"]
    assert out["kinds"]["pca"]["versions"] == out["active"] == {"cat": 1, "dog": 1}
    assert out["kinds"]["hog-ocsvm"]["versions"] == {"cat": 2, "dog": 2}
    assert registry.entry("cat").card["kind"] == "pca"  # the first kind answers from the registry

    table = run("examples/pets.py", "--cats", str(cats[0].parent), "--dogs", str(dogs[0].parent), "--size", "32",
                "--kind", "hog-ocsvm,pca", "--registry", str(tmp_path / "reg2"), cwd=tmp_path).stdout
    assert "| hog-ocsvm |" in table and "| pca |" in table and "kind: hog-ocsvm" in table
    assert "ignored" not in table  # no autoencoder option given


def test_pets_refuses_an_unknown_kind(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples/pets.py"), "--cats", "a", "--dogs", "b", "--kind",
                           "pca,svm"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "autoencoder, pca, hog-ocsvm" in proc.stderr


def benchmark_module(name: str):
    """A module of benchmarks/, imported."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize("kind", ["pca", "hog-ocsvm"])
def test_speed_times_a_fitted_bank_of_a_kind(tmp_path, kind, capsys):
    proc = run("benchmarks/speed.py", "--kind", kind, "--quick", "--train-images", "40", "--classes", "1,12",
               "--batches", "1,8", "--train-epochs", "2", "--json", cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert out["kind"] == kind and out["data"]["source"] == "synthetic"
    assert out["ignored_options"] == ["--train-epochs"]
    assert [r["way"] for r in out["ways"]] == ["scorer", "router", "router_score"]
    assert all(r["calls"] >= 100 and r["img_per_s"] > 0 and r["single_ms"] > 0 for r in out["ways"])
    assert out["check"]["max_rel_diff"] <= 1e-5 and out["check"]["same_argmin"]
    assert [r["batch"] for r in out["scaling_batches"]] == [1, 8]
    assert [r["classes"] for r in out["scaling_classes"]] == [1, 12]
    assert not out["tensorflow_imported"] and not out["tensorflow_imported_here"]
    if kind == "pca":
        assert set(out["targets_met"]) == {"single_ms", "img_per_s"}
    else:
        assert out["targets"] == {} and out["targets_met"] == {}

    benchmark_module("speed").print_kind_tables(out)  # the tables of that run, as it prints them without --json
    table = capsys.readouterr().out
    assert "SYNTHETIC" in table and "(3) bank.Router.score" in table
    assert ("<= 0.3 ms" in table) == (kind == "pca") and ("fused_scores" in table) == (kind == "pca")


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of uint8 ``array`` (MNIST's format)."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(head + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx_digits(tmp_path_factory):
    """A small MNIST-like IDX folder: ten synthetic 28x28 classes, 60 training and 100 test images each."""
    synthetic_class = benchmark_module("speed").synthetic_class
    root = tmp_path_factory.mktemp("idx")
    for split, n, seed in (("train", 60, 0), ("t10k", 100, 1)):
        images = np.concatenate([synthetic_class(k, n, seed) for k in range(10)])
        labels = np.repeat(np.arange(10, dtype=np.uint8), n)
        write_idx(root / f"{split}-images-idx3-ubyte", images)
        write_idx(root / f"{split}-labels-idx1-ubyte", labels)
    return root


def test_open_set_judges_banks_of_each_kind(tmp_path, idx_digits):
    proc = run("benchmarks/open_set.py", "--data", str(idx_digits), "--kind", "pca,hog-ocsvm", "--epochs", "2",
               "--json", cwd=tmp_path)
    out = json.loads(proc.stdout)
    assert out["kinds"] == {"pca": "pca", "hog-ocsvm": "hog-ocsvm"} and list(out["banks"]) == ["pca", "hog-ocsvm"]
    assert out["ignored_options"] == {"pca": ["--epochs"], "hog-ocsvm": ["--epochs"]}
    latent = "default + latent distance z > 3"
    assert latent in out["banks"]["pca"] and latent not in out["banks"]["hog-ocsvm"]
    assert out["skipped_rules"] == {"hog-ocsvm": {latent: "hog-ocsvm has no latent code"}}
    default = "default: corrected z > 3, margin, or complexity |z| > 4"
    for bank in out["banks"].values():
        assert bank[default]["blank"] == 1.0 and bank[default]["argmin accuracy"] > 0.9

    table = run("benchmarks/open_set.py", "--data", str(idx_digits), "--banks", "pca", "--limit", "30",
                cwd=tmp_path).stdout
    assert "\npca bank\n" in table and "(a row per kind)" in table and "| pca |" in table
    assert "at most its first 30 training images" in table
